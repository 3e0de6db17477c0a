"""Polarized Self-Attention layers for Keras 3 (channels-last), in three forms.

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

Forms (``PolarizedSelfAttention(form=...)``). Three formulations are in use; they share
``W_v``/``W_q`` of both branches and differ in the channel branch's up-projection and in
where the spatial branch takes its softmax (``psa.branches`` names the variants):

=========  ==========  ==========================================  ====================
form       mode        channel up-projection                       spatial softmax
=========  ==========  ==========================================  ====================
paper      both        W_z, LayerNorm over C                       over the C/2 query
official   parallel    W_z, no LayerNorm                           over the H·W
                                                                   positions of q·W_v x
official   sequential  C/2→C/8 (+b), LN over C/8, ReLU, C/8→C (+b)  over the H·W
                                                                   positions of each
                                                                   channel of W_v X
port       parallel    W_z + bias, no LayerNorm                    over the C/2 query
port       sequential  C/2→C/8 (+b), LN over C/8, C/8→C (+b)       over the C/2 query
=========  ==========  ==========================================  ====================

* ``paper`` follows the equations above (the default: every checkpoint made before the
  forms existed is this form, and it is the one the paper's text defines).
* ``official`` is the released code (github.com/DeLightCMU/PSA,
  ``semantic-segmentation/network/PSA.py``, ``PSA_p`` / ``PSA_s``): in the spatial branch
  the pooled query is not softmaxed. ``pose.models.conversion.load_official_psa`` loads
  its state dicts (``conv_v_right`` → ``channel/wv``, ``conv_q_right`` → ``channel/wq``,
  ``conv_up`` → ``channel/wz`` or ``conv_up.0/.1/.3`` → ``channel/wz1, bz1 / gamma,
  beta / wz2, bz2``, ``conv_q_left`` → ``spatial/wq``, ``conv_v_left`` → ``spatial/wv``;
  kernels ``(C_out, C_in, 1, 1)`` → ``(C_in, C_out)``).
* ``port`` is the formulation many Keras users start from (TF-era code built of
  ``Lambda`` layers): the official channel branch with a biased up-projection (and no
  ReLU in the bottleneck), the paper's spatial branch.

Order of evaluation. Every 1×1 convolution is linear and each nonlinearity acts either
on a per-image vector or after the contraction over positions/channels, so in most
variants the same outputs are obtained far more cheaply by moving the kernels onto the
per-image vectors:

* channel (every form): ``Σ_n p_n (W_v x_n) = W_v (Σ_n p_n x_n)``: the weighted sum is
  taken over the C input channels and ``W_v`` is applied once per image; the
  up-projection acts on that per-image vector whatever its kind;
* spatial (paper, port, official parallel): ``GAP(W_q X) = W_q GAP(X)`` and
  ``q · (W_v x_n) = x_n · (W_vᵀ q)``: the per-pixel logit is a dot product of ``x_n``
  with one C-vector per image. The official parallel softmax over positions acts on
  these N scalar logits, so it keeps the cheap order;
* spatial, official sequential: each channel of ``W_v X`` is softmaxed over the
  positions before the contraction with ``q``; that nonlinearity sits between ``W_v``
  and the contraction, so ``W_v X`` is formed at every pixel (O(H·W·C²)).

The results equal the equations up to float rounding (the tests check each form against
a direct NumPy statement and against outputs of the official PyTorch modules) and cost
O(H·W·C + C²) instead of O(H·W·C²) multiply-accumulates where the cheap order applies
(``count_macs``; ``direct=True`` counts the equations' order). The weights are the same
as in the direct formulation.

Mixed precision: the softmaxes, the weighted sums feeding them, the LayerNorms and
the sigmoids are computed in float32 and only the final gates are cast back to
the compute dtype; the weights are never autocast (they are read in float32).
"""

from __future__ import annotations

import keras

from psa.base import PSABase, check_choice, check_epsilon, check_hw, check_input_shape
from psa.branches import (
    CHANNEL_PROJECTIONS,
    SPATIAL_SOFTMAXES,
    ChannelOnlyAttention,
    SpatialOnlyAttention,
)

__all__ = [
    "CHANNEL_PROJECTIONS",
    "ChannelOnlyAttention",
    "PSA_FORMS",
    "PSA_MODES",
    "PolarizedSelfAttention",
    "SPATIAL_SOFTMAXES",
    "SpatialOnlyAttention",
    "branch_variants",
]

PSA_MODES = ("parallel", "sequential")
PSA_FORMS = ("paper", "official", "port")

# (form, mode) → (channel projection, spatial softmax); see the module docstring's table.
_BRANCH_VARIANTS = {
    ("paper", "parallel"): ("layernorm", "query_channels"),
    ("paper", "sequential"): ("layernorm", "query_channels"),
    ("official", "parallel"): ("linear", "product_positions"),
    ("official", "sequential"): ("bottleneck_relu", "value_positions"),
    ("port", "parallel"): ("biased", "query_channels"),
    ("port", "sequential"): ("bottleneck", "query_channels"),
}


def branch_variants(form, mode):
    """``(ChannelOnlyAttention projection, SpatialOnlyAttention softmax)`` of a form and
    mode (the module docstring's table)."""
    check_choice("form", form, PSA_FORMS)
    check_choice("mode", mode, PSA_MODES)
    return _BRANCH_VARIANTS[form, mode]


@keras.saving.register_keras_serializable(package="psa")
class PolarizedSelfAttention(PSABase):
    """Polarized Self-Attention block: channel-only and spatial-only gates.

    Paper: Liu et al., "Polarized Self-Attention: Towards High-quality Pixel-wise
    Regression", arXiv:2107.00782, eq. (5)-(6). ``mode="parallel"`` returns
    ``ChannelOnly(X) + SpatialOnly(X)``; ``mode="sequential"`` returns
    ``SpatialOnly(ChannelOnly(X))``. The two branches are sublayers named
    ``"channel"`` (`ChannelOnlyAttention`) and ``"spatial"``
    (`SpatialOnlyAttention`), so the weight paths are ``channel/wv``,
    ``channel/wq``, ``channel/wz``, ``channel/gamma``, ``channel/beta``,
    ``spatial/wq``, ``spatial/wv`` in the paper form; the other forms have the
    up-projection weights that `ChannelOnlyAttention` lists for their projection.

    Args:
        mode: str, "parallel" (PSA_p) or "sequential" (PSA_s). Default "parallel".
        form: str, "paper", "official" or "port" (the module docstring's table says
            what each computes). Default "paper": the equations, and the form of every
            layer saved before `form` existed, so those load unchanged.
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
        >>> psa_layer = PolarizedSelfAttention(mode="sequential", form="official")
    """

    def __init__(
        self, mode="parallel", epsilon=1e-5, kernel_initializer="he_normal", form="paper",
        **kwargs
    ):
        super().__init__(kernel_initializer=kernel_initializer, **kwargs)
        self.mode = check_choice("mode", mode, PSA_MODES)
        self.form = check_choice("form", form, PSA_FORMS)
        self.epsilon = check_epsilon(epsilon)
        projection, spatial_softmax = branch_variants(form, mode)
        init = keras.initializers.serialize(self.kernel_initializer)
        self.channel = ChannelOnlyAttention(
            epsilon=self.epsilon,
            kernel_initializer=keras.initializers.get(init),
            projection=projection,
            dtype=self.dtype_policy,
            name="channel",
        )
        self.spatial = SpatialOnlyAttention(
            kernel_initializer=keras.initializers.get(init),
            softmax=spatial_softmax,
            dtype=self.dtype_policy,
            name="spatial",
        )

    def build(self, input_shape):
        c = check_input_shape(type(self).__name__, input_shape)
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
        is not counted). In the paper form both modes cost the same; the official
        and port forms' sequential bottleneck and the official sequential spatial
        softmax change the count.

        Args:
            height: int, feature-map height.
            width: int, feature-map width.
            direct: bool, count the paper's order of evaluation. Default False.

        Returns:
            int, the MAC count.
        """
        check_hw(height, width)
        self._built_channels()
        return self.channel.count_macs(height, width, direct) + self.spatial.count_macs(
            height, width, direct
        )

    def get_config(self):
        config = super().get_config()
        config["mode"] = self.mode
        config["form"] = self.form
        config["epsilon"] = self.epsilon
        return config
