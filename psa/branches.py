"""The two branches of Polarized Self-Attention, each in the variants that the paper, the
official code and the common Keras port use (``psa.layers`` maps a form and a mode onto
them and states the equations)."""

from __future__ import annotations

import keras
from keras import ops

from psa.base import (
    PSABase,
    check_choice,
    check_epsilon,
    check_hw,
    check_input_shape,
    layer_norm,
    stable_softmax,
)

# How the channel branch maps its (B, C/2) context to C gate logits:
#   layernorm        W_z (C/2→C, no bias), LayerNorm over C          (paper, both modes)
#   linear           W_z (C/2→C, no bias)                            (official PSA_p)
#   biased           W_z (C/2→C) + b_z                               (port, parallel)
#   bottleneck       C/2→C/8 + b, LayerNorm over C/8, C/8→C + b      (port, sequential)
#   bottleneck_relu  as bottleneck with a ReLU after the LayerNorm   (official PSA_s)
CHANNEL_PROJECTIONS = ("layernorm", "linear", "biased", "bottleneck", "bottleneck_relu")
# Where the spatial branch takes its softmax:
#   query_channels     over the C/2 channels of the pooled query     (paper, port)
#   product_positions  over the H·W positions of the product q·W_v x_n  (official PSA_p)
#   value_positions    over the H·W positions of each channel of W_v X  (official PSA_s)
SPATIAL_SOFTMAXES = ("query_channels", "product_positions", "value_positions")
# The official PSA_s bottleneck: inter_planes // ratio with inter_planes = C // 2, ratio 4.
_BOTTLENECK_RATIO = 4


def bottleneck_width(channels):
    """Width of the C/2 → C/8 → C bottleneck for `channels` (the official floor division)."""
    return (channels // 2) // _BOTTLENECK_RATIO


@keras.saving.register_keras_serializable(package="psa")
class ChannelOnlyAttention(PSABase):
    """Channel-only branch of Polarized Self-Attention: one sigmoid gate per channel.

    Paper: Liu et al., "Polarized Self-Attention: Towards High-quality Pixel-wise
    Regression", arXiv:2107.00782, eq. (1)-(2). Computes
    ``sigmoid(P(Σ_n softmax_n(W_q x_n) · W_v x_n)) ⊙ X`` where ``P`` is the up-projection
    named by `projection` (the paper's is ``LN ∘ W_z``); see `psa.layers` for the
    evaluation order and the three forms.

    Weights, in this order: ``wv`` (C, C/2), ``wq`` (C, 1), then by `projection`:
    ``layernorm``: ``wz`` (C/2, C), ``gamma`` (C,), ``beta`` (C,); ``linear``: ``wz``;
    ``biased``: ``wz``, ``bz`` (C,); ``bottleneck``/``bottleneck_relu``: ``wz1``
    (C/2, C/8), ``bz1`` (C/8,), ``gamma``, ``beta`` (C/8,), ``wz2`` (C/8, C), ``bz2`` (C,)
    (C/8 is ``(C // 2) // 4`` as in the official code; it must be at least 1).

    Args:
        epsilon: float, added to the LayerNorm variance. Default 1e-5 (PyTorch's).
        kernel_initializer: str, dict or `keras.initializers.Initializer` for the 1×1
            kernels. Default "he_normal" (the official code uses Kaiming normal, fan-in).
            Biases start at zero, LayerNorm at gamma 1, beta 0.
        projection: str, one of ``CHANNEL_PROJECTIONS`` (see the comment there).
            Default "layernorm" (the paper).
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Input: (B, H, W, C) with C even; H and W may be unknown. Output: same shape.

    Example:
        >>> x = keras.Input(shape=(None, None, 32))
        >>> y = ChannelOnlyAttention(name="psa_channel")(x)  # (B, H, W, 32)
    """

    def __init__(self, epsilon=1e-5, kernel_initializer="he_normal",
                 projection="layernorm", **kwargs):
        super().__init__(kernel_initializer=kernel_initializer, **kwargs)
        self.epsilon = check_epsilon(epsilon)
        self.projection = check_choice("projection", projection, CHANNEL_PROJECTIONS)

    def build(self, input_shape):
        c = check_input_shape(type(self).__name__, input_shape)
        self.channels = c
        self.wv = self._kernel("wv", (c, c // 2))
        self.wq = self._kernel("wq", (c, 1))
        if self.projection.startswith("bottleneck"):
            r = bottleneck_width(c)
            if r < 1:
                raise ValueError(
                    f"{type(self).__name__} with projection={self.projection!r} needs "
                    f"C >= 8 (a C/2 -> (C//2)//4 bottleneck), received C={c}."
                )
            self.wz1 = self._kernel("wz1", (c // 2, r))
            self.bz1 = self._vector("bz1", r, "zeros")
            self.gamma = self._vector("gamma", r, "ones")
            self.beta = self._vector("beta", r, "zeros")
            self.wz2 = self._kernel("wz2", (r, c))
            self.bz2 = self._vector("bz2", c, "zeros")
        else:
            self.wz = self._kernel("wz", (c // 2, c))
            if self.projection == "layernorm":
                self.gamma = self._vector("gamma", c, "ones")
                self.beta = self._vector("beta", c, "zeros")
            elif self.projection == "biased":
                self.bz = self._vector("bz", c, "zeros")
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: c})

    def _project(self, context):
        """(B, C/2) context → (B, C) gate logits."""
        if self.projection.startswith("bottleneck"):
            z = ops.matmul(context, self.wz1) + self.bz1  # (B, C/8)
            z = layer_norm(z, self.gamma, self.beta, self.epsilon)  # (B, C/8)
            if self.projection == "bottleneck_relu":
                z = ops.relu(z)
            return ops.matmul(z, self.wz2) + self.bz2  # (B, C)
        z = ops.matmul(context, self.wz)  # (B, C)
        if self.projection == "layernorm":
            return layer_norm(z, self.gamma, self.beta, self.epsilon)
        if self.projection == "biased":
            return z + self.bz
        return z

    def call(self, inputs):
        x32 = ops.cast(inputs, "float32")  # (B, H, W, C)
        logits = ops.matmul(x32, self.wq)  # (B, H, W, 1): W_q x_n
        weights = stable_softmax(logits, axis=(1, 2))  # (B, H, W, 1), sums to 1 over H*W
        pooled = ops.sum(x32 * weights, axis=(1, 2))  # (B, C): Σ_n p_n x_n
        context = ops.matmul(pooled, self.wv)  # (B, C/2) = Σ_n p_n W_v x_n
        gate = ops.sigmoid(self._project(context))  # (B, C)
        gate = ops.expand_dims(ops.expand_dims(gate, 1), 1)  # (B, 1, 1, C)
        return inputs * ops.cast(gate, inputs.dtype)  # (B, H, W, C)

    def count_macs(self, height, width, direct=False):
        """Multiply-accumulates for one image with an (height, width) feature map.

        Counted: every multiplication inside a 1×1 convolution, a weighted sum or a
        dot product. Not counted: softmax, LayerNorm, ReLU, sigmoid, biases, the gating
        product ``gate ⊙ X`` (H·W·C elementwise multiplies) and additions of pooling.
        With N = height*width, the built channel count C and the up-projection's
        ``U`` (C/2·C, or C/2·C/8 + C/8·C for the bottleneck):

        * ``direct=False`` (what `call` computes, every form): ``W_q x_n`` N·C,
          ``Σ_n p_n x_n`` N·C, ``W_v`` on the pooled vector C·C/2, then ``U``.
        * ``direct=True`` (the equations' order): ``W_v`` N·C·C/2, ``W_q`` N·C,
          weighted sum N·C/2, then ``U``.

        Args:
            height: int, feature-map height.
            width: int, feature-map width.
            direct: bool, count the equations' order of evaluation instead of this
                layer's. Default False.

        Returns:
            int, the MAC count.
        """
        check_hw(height, width)
        c = self._built_channels()
        n, h = height * width, c // 2
        if self.projection.startswith("bottleneck"):
            up = h * bottleneck_width(c) + bottleneck_width(c) * c
        else:
            up = h * c
        if direct:
            return n * c * h + n * c + n * h + up
        return 2 * n * c + c * h + up

    def get_config(self):
        config = super().get_config()
        config["epsilon"] = self.epsilon
        config["projection"] = self.projection
        return config


@keras.saving.register_keras_serializable(package="psa")
class SpatialOnlyAttention(PSABase):
    """Spatial-only branch of Polarized Self-Attention: one sigmoid gate per pixel.

    Paper: Liu et al., "Polarized Self-Attention: Towards High-quality Pixel-wise
    Regression", arXiv:2107.00782, eq. (3)-(4). With ``q = GAP(W_q X)`` (C/2 per image)
    and ``v_n = W_v x_n`` (C/2 per pixel), the gate at pixel ``n`` is, by `softmax`:

    * ``query_channels`` (paper, port): ``sigmoid(softmax_c(q) · v_n)``;
    * ``product_positions`` (official ``PSA_p``): ``sigmoid(softmax_n(q · v_n))``;
    * ``value_positions`` (official ``PSA_s``): ``sigmoid(Σ_c q_c softmax_n(v_{n,c}))``.

    Weights (no biases): ``wq`` (C, C/2) and ``wv`` (C, C/2).

    Args:
        kernel_initializer: str, dict or `keras.initializers.Initializer` for the
            two 1×1 kernels. Default "he_normal".
        softmax: str, one of ``SPATIAL_SOFTMAXES``. Default "query_channels" (the paper).
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Input: (B, H, W, C) with C even; H and W may be unknown. Output: same shape.

    Example:
        >>> x = keras.Input(shape=(None, None, 32))
        >>> y = SpatialOnlyAttention(name="psa_spatial")(x)  # (B, H, W, 32)
    """

    def __init__(self, kernel_initializer="he_normal", softmax="query_channels", **kwargs):
        super().__init__(kernel_initializer=kernel_initializer, **kwargs)
        self.softmax = check_choice("softmax", softmax, SPATIAL_SOFTMAXES)

    def build(self, input_shape):
        c = check_input_shape(type(self).__name__, input_shape)
        self.channels = c
        self.wq = self._kernel("wq", (c, c // 2))
        self.wv = self._kernel("wv", (c, c // 2))
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: c})

    def call(self, inputs):
        x32 = ops.cast(inputs, "float32")  # (B, H, W, C)
        mean = ops.mean(x32, axis=(1, 2))  # (B, C): GAP(X)
        query = ops.matmul(mean, self.wq)  # (B, C/2) = GAP(W_q X)
        if self.softmax == "value_positions":
            # The softmax acts on every channel of W_v X over the positions before the
            # contraction with q, so W_v X must be formed at every pixel.
            value = ops.matmul(x32, self.wv)  # (B, H, W, C/2) = W_v x_n
            value = stable_softmax(value, axis=(1, 2))  # (B, H, W, C/2), each channel over H*W
            query = ops.expand_dims(ops.expand_dims(query, 1), -1)  # (B, 1, C/2, 1)
            logits = ops.matmul(value, query)  # (B, H, W, 1)
        else:
            if self.softmax == "query_channels":
                query = stable_softmax(query, axis=-1)  # (B, C/2), softmax over channels
            probe = ops.matmul(query, ops.transpose(self.wv))  # (B, C) = W_vᵀ q
            probe = ops.expand_dims(ops.expand_dims(probe, 1), -1)  # (B, 1, C, 1)
            logits = ops.matmul(x32, probe)  # (B, H, W, 1): x_n · W_vᵀ q = q · W_v x_n
            if self.softmax == "product_positions":
                logits = stable_softmax(logits, axis=(1, 2))  # (B, H, W, 1), over H*W
        gate = ops.sigmoid(logits)  # (B, H, W, 1)
        return inputs * ops.cast(gate, inputs.dtype)  # (B, H, W, C)

    def count_macs(self, height, width, direct=False):
        """Multiply-accumulates for one image with an (height, width) feature map.

        Counted: every multiplication inside a 1×1 convolution, a weighted sum or a
        dot product. Not counted: softmax, sigmoid, the gating product ``gate ⊙ X``
        (H·W·C elementwise multiplies) and the additions of global average pooling.
        With N = height*width and the built channel count C:

        * ``direct=False`` (what `call` computes): for ``query_channels`` and
          ``product_positions``, ``W_q`` on the pooled vector C·C/2, ``W_vᵀ q`` C·C/2,
          per-pixel ``x_n · (W_vᵀ q)`` N·C: ``N·C + C²``. For ``value_positions``,
          ``W_v X`` N·C·C/2 (its softmax needs every pixel's value), ``W_q`` on the
          pooled vector C·C/2, per-pixel ``q · v_n`` N·C/2.
        * ``direct=True`` (the equations' order, every variant): ``W_q`` N·C·C/2,
          ``W_v`` N·C·C/2, per-pixel dot product N·C/2.

        Args:
            height: int, feature-map height.
            width: int, feature-map width.
            direct: bool, count the equations' order of evaluation instead of this
                layer's. Default False.

        Returns:
            int, the MAC count.
        """
        check_hw(height, width)
        c = self._built_channels()
        n, h = height * width, c // 2
        if direct:
            return 2 * n * c * h + n * h
        if self.softmax == "value_positions":
            return n * c * h + c * h + n * h
        return c * h + c * h + n * c

    def get_config(self):
        config = super().get_config()
        config["softmax"] = self.softmax
        return config
