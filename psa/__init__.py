"""Polarized Self-Attention (Liu et al., arXiv:2107.00782) as Keras 3 layers.

Self-contained: imports nothing from the rest of the project.
"""

from psa.layers import (
    PSA_MODES,
    ChannelOnlyAttention,
    PolarizedSelfAttention,
    SpatialOnlyAttention,
)

__all__ = [
    "PSA_MODES",
    "ChannelOnlyAttention",
    "PolarizedSelfAttention",
    "SpatialOnlyAttention",
]
