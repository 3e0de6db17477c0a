"""Polarized Self-Attention layers for Keras 3 (channels-last).

Paper: Huajun Liu, Fuqiang Liu, Xinyi Fan, Dong Huang, "Polarized Self-Attention:
Towards High-quality Pixel-wise Regression", arXiv:2107.00782 (2021).

The paper's equations, for an input ``X`` of shape (H, W, C) and ``N = H*W``
(``σ`` are reshapes, ``F_SM`` softmax, ``F_SG`` sigmoid, ``F_GP`` global average
pooling, every ``W`` a bias-free 1×1 convolution):

* channel-only branch (eq. 1-2)::

      A_ch(X) = F_SG[ LN( W_z( σ1(W_v X) × F_SM(σ2(W_q X)) ) ) ]   # (1, 1, C)
      Z_ch    = A_ch(X) ⊙ X

  ``W_v``: C→C/2, ``W_q``: C→1, softmax over the N positions, ``W_z``: C/2→C,
  LayerNorm (``LN``) over the C channels.

* spatial-only branch (eq. 3-4)::

      A_sp(X) = F_SG[ σ3( F_SM(σ1(F_GP(W_q X))) × σ2(W_v X) ) ]     # (H, W, 1)
      Z_sp    = A_sp(X) ⊙ X

  ``W_q``, ``W_v``: C→C/2, softmax over the C/2 channels of the pooled query.

* composition (eq. 5-6): parallel ``Z = Z_ch + Z_sp``; sequential
  ``Z = Z_sp(Z_ch(X))``.

Where the official code and the popular ports differ from the paper
(this implementation follows the paper's equations above):

* The official parallel module (github.com/DeLightCMU/PSA,
  ``semantic-segmentation/network/PSA.py``, class ``PSA_p``) has no LayerNorm in
  the channel branch (``conv_up`` is a bare 1×1 convolution followed by the
  sigmoid), and in its spatial branch it applies the softmax *after* the product,
  over the H·W positions of the spatial map, instead of over the C/2 channels of
  the pooled query.
* The official sequential module (``PSA_s``) replaces ``W_z`` by a bottleneck
  (C/2 → C/8 conv with bias, LayerNorm, ReLU, C/8 → C conv with bias), and its
  spatial branch applies the softmax over H·W to the value ``W_v X``.
* Several third-party ports drop one or both softmaxes entirely.

Because of the first two points, official ``PSA_p`` / ``PSA_s`` checkpoints do not
reproduce their outputs with these layers even though the 1×1 kernels have the same
shapes. The kernels map as (PyTorch ``(C_out, C_in, 1, 1)`` → Keras ``(C_in, C_out)``,
i.e. drop the 1×1 and transpose): ``conv_v_right`` → ``channel/wv``,
``conv_q_right`` → ``channel/wq``, ``conv_up`` → ``channel/wz``,
``conv_q_left`` → ``spatial/wq``, ``conv_v_left`` → ``spatial/wv``.

Order of evaluation. Every 1×1 convolution is linear and bias-free, and each
nonlinearity acts either on a per-image vector or after the contraction over
positions/channels, so the same outputs are obtained far more cheaply by moving the
kernels onto the per-image vectors:

* channel: ``Σ_n p_n (W_v x_n) = W_v (Σ_n p_n x_n)`` — the weighted sum is taken
  over the C input channels and ``W_v`` is applied once per image;
* spatial: ``GAP(W_q X) = W_q GAP(X)`` and ``q · (W_v x_n) = x_n · (W_vᵀ q)`` — the
  per-pixel logit is a dot product of ``x_n`` with one C-vector per image.

The result equals the paper's equations up to float rounding (the tests check it
against a direct NumPy statement of the equations), costs O(H·W·C + C²) instead of
O(H·W·C²) multiply-accumulates, and never materialises a (B, H, W, C/2) tensor.
The weights are the same as in the paper's formulation.

Mixed precision: the softmaxes, the weighted sums feeding them, the LayerNorm and
the sigmoids are computed in float32 and only the final gates are cast back to
the compute dtype; the weights are never autocast (they are read in float32).
Every per-pixel operation is O(H·W·C), so the float32 work is cheap next to the
convolutions around the layer.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = [
    "ChannelOnlyAttention",
    "SpatialOnlyAttention",
    "PolarizedSelfAttention",
    "PSA_MODES",
]

PSA_MODES = ("parallel", "sequential")


def _check_epsilon(epsilon):
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)):
        raise ValueError(f"`epsilon` must be a positive number, received {epsilon!r}.")
    if not epsilon > 0:
        raise ValueError(f"`epsilon` must be a positive number, received {epsilon!r}.")
    return float(epsilon)


def _check_input_shape(layer_name, input_shape):
    """Return the channel count of a (B, H, W, C) shape or raise a ValueError."""
    input_shape = tuple(input_shape)
    if len(input_shape) != 4:
        raise ValueError(
            f"{layer_name} expects a 4-D channels-last input (B, H, W, C), "
            f"received shape {input_shape}."
        )
    channels = input_shape[-1]
    if channels is None:
        raise ValueError(
            f"{layer_name} needs a known channel count (last axis), received shape "
            f"{input_shape}."
        )
    channels = int(channels)
    if channels < 2 or channels % 2:
        raise ValueError(
            f"{layer_name} needs an even channel count of at least 2 (the branches "
            f"use C/2 channels), received C={channels} (input shape {input_shape})."
        )
    return channels


def _softmax(x, axis):
    """Numerically stable softmax over `axis` (an int or a tuple of ints)."""
    x = x - ops.stop_gradient(ops.max(x, axis=axis, keepdims=True))
    e = ops.exp(x)
    return e / ops.sum(e, axis=axis, keepdims=True)


def _check_hw(height, width):
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive int, received {value!r}.")


class _PSABase(keras.layers.Layer):
    """Shared plumbing: channel bookkeeping, output shape, MAC guard."""

    def __init__(self, kernel_initializer="he_normal", **kwargs):
        super().__init__(**kwargs)
        try:
            self.kernel_initializer = keras.initializers.get(kernel_initializer)
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"`kernel_initializer` is not a valid Keras initializer, received "
                f"{kernel_initializer!r}."
            ) from err
        self.channels = None

    def _kernel(self, name, shape):
        return self.add_weight(
            name=name,
            shape=shape,
            initializer=self.kernel_initializer,
            trainable=True,
            autocast=False,  # `call` computes in float32 (see module docstring)
        )

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def _built_channels(self):
        if self.channels is None:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' is not built yet: call it on an "
                "input (or call build) before count_macs, received channels=None."
            )
        return self.channels

    def get_config(self):
        config = super().get_config()
        init = keras.initializers.serialize(self.kernel_initializer)
        config["kernel_initializer"] = init
        return config


@keras.saving.register_keras_serializable(package="psa")
class ChannelOnlyAttention(_PSABase):
    """Channel-only branch of Polarized Self-Attention: one sigmoid gate per channel.

    Paper: Liu et al., "Polarized Self-Attention: Towards High-quality Pixel-wise
    Regression", arXiv:2107.00782, eq. (1)-(2). Computes
    ``sigmoid(LN(W_z(Σ_n softmax_n(W_q x_n) · W_v x_n))) ⊙ X``; see the module
    docstring for the evaluation order and for how the official code differs
    (its ``PSA_p`` has no LayerNorm here).

    Weights (no biases): ``wv`` (C, C/2), ``wq`` (C, 1), ``wz`` (C/2, C), and the
    LayerNorm ``gamma`` (C,) (ones) and ``beta`` (C,) (zeros).

    Args:
        epsilon: float, added to the LayerNorm variance. Default 1e-5 (PyTorch's).
        kernel_initializer: str, dict or `keras.initializers.Initializer` for the
            three 1×1 kernels. Default "he_normal" (the official code uses Kaiming
            normal, fan-in).
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Input: (B, H, W, C) with C even; H and W may be unknown. Output: same shape.

    Example:
        >>> x = keras.Input(shape=(None, None, 32))
        >>> y = ChannelOnlyAttention(name="psa_channel")(x)  # (B, H, W, 32)
    """

    def __init__(self, epsilon=1e-5, kernel_initializer="he_normal", **kwargs):
        super().__init__(kernel_initializer=kernel_initializer, **kwargs)
        self.epsilon = _check_epsilon(epsilon)

    def build(self, input_shape):
        c = _check_input_shape(type(self).__name__, input_shape)
        self.channels = c
        self.wv = self._kernel("wv", (c, c // 2))
        self.wq = self._kernel("wq", (c, 1))
        self.wz = self._kernel("wz", (c // 2, c))
        self.gamma = self.add_weight(
            name="gamma", shape=(c,), initializer="ones", autocast=False
        )
        self.beta = self.add_weight(
            name="beta", shape=(c,), initializer="zeros", autocast=False
        )
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: c})

    def call(self, inputs):
        x32 = ops.cast(inputs, "float32")  # (B, H, W, C)
        logits = ops.matmul(x32, self.wq)  # (B, H, W, 1): W_q x_n
        weights = _softmax(logits, axis=(1, 2))  # (B, H, W, 1), sums to 1 over H*W
        pooled = ops.sum(x32 * weights, axis=(1, 2))  # (B, C): Σ_n p_n x_n
        context = ops.matmul(pooled, self.wv)  # (B, C/2) = Σ_n p_n W_v x_n
        z = ops.matmul(context, self.wz)  # (B, C)
        mean = ops.mean(z, axis=-1, keepdims=True)  # (B, 1)
        var = ops.mean(ops.square(z - mean), axis=-1, keepdims=True)  # (B, 1), biased
        z = (z - mean) * ops.rsqrt(var + self.epsilon)  # (B, C), LayerNorm over C
        z = z * self.gamma + self.beta  # (B, C)
        gate = ops.sigmoid(z)  # (B, C)
        gate = ops.expand_dims(ops.expand_dims(gate, 1), 1)  # (B, 1, 1, C)
        return inputs * ops.cast(gate, inputs.dtype)  # (B, H, W, C)

    def count_macs(self, height, width, direct=False):
        """Multiply-accumulates for one image with an (height, width) feature map.

        Counted: every multiplication inside a 1×1 convolution, a weighted sum or a
        dot product. Not counted: softmax, LayerNorm, sigmoid, the gating product
        ``gate ⊙ X`` (H·W·C elementwise multiplies) and additions of pooling.
        With N = height*width and the built channel count C:

        * ``direct=False`` (what `call` computes): ``W_q x_n`` N·C, ``Σ_n p_n x_n``
          N·C, ``W_v`` on the pooled vector C·C/2, ``W_z`` C/2·C;
          total ``2·N·C + C²``.
        * ``direct=True`` (the paper's order): ``W_v`` N·C·C/2, ``W_q`` N·C,
          weighted sum N·C/2, ``W_z`` C/2·C.

        Args:
            height: int, feature-map height.
            width: int, feature-map width.
            direct: bool, count the paper's order of evaluation instead of this
                layer's. Default False.

        Returns:
            int, the MAC count.
        """
        _check_hw(height, width)
        c = self._built_channels()
        n, h = height * width, c // 2
        if direct:
            return n * c * h + n * c + n * h + h * c
        return 2 * n * c + c * h + h * c

    def get_config(self):
        config = super().get_config()
        config["epsilon"] = self.epsilon
        return config


@keras.saving.register_keras_serializable(package="psa")
class SpatialOnlyAttention(_PSABase):
    """Spatial-only branch of Polarized Self-Attention: one sigmoid gate per pixel.

    Paper: Liu et al., "Polarized Self-Attention: Towards High-quality Pixel-wise
    Regression", arXiv:2107.00782, eq. (3)-(4). Computes
    ``sigmoid(softmax_c(GAP(W_q X)) · W_v x_n) ⊙ X`` at every pixel ``n``; see the
    module docstring for the evaluation order and for how the official code
    differs (its ``PSA_p`` applies the softmax over H·W after the product).

    Weights (no biases): ``wq`` (C, C/2) and ``wv`` (C, C/2).

    Args:
        kernel_initializer: str, dict or `keras.initializers.Initializer` for the
            two 1×1 kernels. Default "he_normal".
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Input: (B, H, W, C) with C even; H and W may be unknown. Output: same shape.

    Example:
        >>> x = keras.Input(shape=(None, None, 32))
        >>> y = SpatialOnlyAttention(name="psa_spatial")(x)  # (B, H, W, 32)
    """

    def __init__(self, kernel_initializer="he_normal", **kwargs):
        super().__init__(kernel_initializer=kernel_initializer, **kwargs)

    def build(self, input_shape):
        c = _check_input_shape(type(self).__name__, input_shape)
        self.channels = c
        self.wq = self._kernel("wq", (c, c // 2))
        self.wv = self._kernel("wv", (c, c // 2))
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: c})

    def call(self, inputs):
        x32 = ops.cast(inputs, "float32")  # (B, H, W, C)
        mean = ops.mean(x32, axis=(1, 2))  # (B, C): GAP(X)
        query = ops.matmul(mean, self.wq)  # (B, C/2) = GAP(W_q X)
        query = _softmax(query, axis=-1)  # (B, C/2), softmax over channels
        probe = ops.matmul(query, ops.transpose(self.wv))  # (B, C) = W_vᵀ q
        probe = ops.expand_dims(ops.expand_dims(probe, 1), -1)  # (B, 1, C, 1)
        logits = ops.matmul(x32, probe)  # (B, H, W, 1): x_n · W_vᵀ q = q · W_v x_n
        gate = ops.sigmoid(logits)  # (B, H, W, 1)
        return inputs * ops.cast(gate, inputs.dtype)  # (B, H, W, C)

    def count_macs(self, height, width, direct=False):
        """Multiply-accumulates for one image with an (height, width) feature map.

        Counted: every multiplication inside a 1×1 convolution, a weighted sum or a
        dot product. Not counted: softmax, sigmoid, the gating product ``gate ⊙ X``
        (H·W·C elementwise multiplies) and the additions of global average pooling.
        With N = height*width and the built channel count C:

        * ``direct=False`` (what `call` computes): ``W_q`` on the pooled vector
          C·C/2, ``W_vᵀ q`` C·C/2, per-pixel ``x_n · (W_vᵀ q)`` N·C;
          total ``N·C + C²``.
        * ``direct=True`` (the paper's order): ``W_q`` N·C·C/2, ``W_v`` N·C·C/2,
          per-pixel dot product N·C/2.

        Args:
            height: int, feature-map height.
            width: int, feature-map width.
            direct: bool, count the paper's order of evaluation instead of this
                layer's. Default False.

        Returns:
            int, the MAC count.
        """
        _check_hw(height, width)
        c = self._built_channels()
        n, h = height * width, c // 2
        if direct:
            return 2 * n * c * h + n * h
        return c * h + c * h + n * c


@keras.saving.register_keras_serializable(package="psa")
class PolarizedSelfAttention(_PSABase):
    """Polarized Self-Attention block: channel-only and spatial-only gates.

    Paper: Liu et al., "Polarized Self-Attention: Towards High-quality Pixel-wise
    Regression", arXiv:2107.00782, eq. (5)-(6). ``mode="parallel"`` returns
    ``ChannelOnly(X) + SpatialOnly(X)``; ``mode="sequential"`` returns
    ``SpatialOnly(ChannelOnly(X))``. The two branches are sublayers named
    ``"channel"`` (`ChannelOnlyAttention`) and ``"spatial"``
    (`SpatialOnlyAttention`), so the weight paths are ``channel/wv``,
    ``channel/wq``, ``channel/wz``, ``channel/gamma``, ``channel/beta``,
    ``spatial/wq``, ``spatial/wv``. See the module docstring for how the official
    ``PSA_p``/``PSA_s`` differ from the paper (this layer follows the paper).

    Args:
        mode: str, "parallel" (PSA_p) or "sequential" (PSA_s). Default "parallel".
        epsilon: float, LayerNorm epsilon of the channel branch. Default 1e-5.
        kernel_initializer: str, dict or `keras.initializers.Initializer` for all
            1×1 kernels. Default "he_normal".
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Input: (B, H, W, C) with C even; H and W may be unknown. Output: same shape.
    A block added after an HRNet stage keeps the residual outside the layer.

    Example:
        >>> x = keras.Input(shape=(64, 48, 32))
        >>> y = PolarizedSelfAttention(mode="parallel", name="psa")(x)
        >>> # y: (B, 64, 48, 32)
        >>> psa_layer = PolarizedSelfAttention(mode="sequential")
    """

    def __init__(
        self, mode="parallel", epsilon=1e-5, kernel_initializer="he_normal", **kwargs
    ):
        super().__init__(kernel_initializer=kernel_initializer, **kwargs)
        if not isinstance(mode, str) or mode not in PSA_MODES:
            raise ValueError(
                f"`mode` must be one of {PSA_MODES}, received {mode!r}."
            )
        self.mode = mode
        self.epsilon = _check_epsilon(epsilon)
        init = keras.initializers.serialize(self.kernel_initializer)
        self.channel = ChannelOnlyAttention(
            epsilon=self.epsilon,
            kernel_initializer=keras.initializers.get(init),
            dtype=self.dtype_policy,
            name="channel",
        )
        self.spatial = SpatialOnlyAttention(
            kernel_initializer=keras.initializers.get(init),
            dtype=self.dtype_policy,
            name="spatial",
        )

    def build(self, input_shape):
        c = _check_input_shape(type(self).__name__, input_shape)
        self.channels = c
        self.channel.build(input_shape)
        self.spatial.build(input_shape)
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: c})

    def call(self, inputs):
        if self.mode == "parallel":
            return self.channel(inputs) + self.spatial(inputs)  # (B, H, W, C)
        return self.spatial(self.channel(inputs))  # (B, H, W, C)

    def count_macs(self, height, width, direct=False):
        """Multiply-accumulates for one image: the sum of the two branches.

        Same counting rules as `ChannelOnlyAttention.count_macs` and
        `SpatialOnlyAttention.count_macs` (the final addition of the parallel mode
        is not counted). Both modes run both branches at the same size, so the
        count does not depend on `mode`.

        Args:
            height: int, feature-map height.
            width: int, feature-map width.
            direct: bool, count the paper's order of evaluation. Default False.

        Returns:
            int, the MAC count.
        """
        _check_hw(height, width)
        self._built_channels()
        return self.channel.count_macs(height, width, direct) + self.spatial.count_macs(
            height, width, direct
        )

    def get_config(self):
        config = super().get_config()
        config["mode"] = self.mode
        config["epsilon"] = self.epsilon
        return config
