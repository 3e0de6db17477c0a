"""The heatmap-change measures of PSA inserted into pretrained weights."""

import numpy as np
import pytest

from pose.experiments.psa_insertion import heatmap_change


def test_heatmap_change_by_hand():
    base = np.zeros((1, 2, 3, 2))  # (B, H, W, K)
    base[0, 0, 1, 0] = 3.0  # joint 0 peaks at (0, 1)
    base[0, 1, 2, 1] = 4.0  # joint 1 peaks at (1, 2)
    other = base.copy()
    other[0, 1, 0, 1] = 5.0  # joint 1 now peaks at (1, 0); joint 0 unchanged
    change = heatmap_change(base, other)
    assert change["rel_l2"] == pytest.approx(5.0 / 5.0)  # |diff| = 5, |base| = sqrt(9+16)
    assert change["norm_ratio"] == pytest.approx(np.sqrt(9 + 16 + 25) / 5.0)
    assert change["argmax_agreement"] == 0.5
    assert heatmap_change(base, 2 * base) == {"rel_l2": 1.0, "norm_ratio": 2.0,
                                              "argmax_agreement": 1.0}
