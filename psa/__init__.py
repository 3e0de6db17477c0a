"""Polarized Self-Attention (Liu et al., arXiv:2107.00782) as Keras 3 layers, in the
paper's, the official code's and the common Keras port's forms (``psa.layers``).

Self-contained: imports nothing from the rest of the project.
"""

from psa.layers import (
    CHANNEL_PROJECTIONS,
    PSA_FORMS,
    PSA_MODES,
    SPATIAL_SOFTMAXES,
    ChannelOnlyAttention,
    PolarizedSelfAttention,
    SpatialOnlyAttention,
    branch_variants,
)

__all__ = [
    "CHANNEL_PROJECTIONS",
    "PSA_FORMS",
    "PSA_MODES",
    "SPATIAL_SOFTMAXES",
    "ChannelOnlyAttention",
    "PolarizedSelfAttention",
    "SpatialOnlyAttention",
    "branch_variants",
]
