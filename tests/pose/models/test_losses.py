"""JointsMSELoss against a NumPy restatement of HRNet's JointsMSELoss / JointsOHKMMSELoss."""

import keras
import numpy as np
import pytest

from pose.models.losses import JointsMSELoss


def _reference(pred, target, weight, topk=None):
    # HRNet: per joint, 0.5 * MSE(pred * w, target * w) over batch and pixels.
    B, H, W, K = pred.shape
    per_joint = np.zeros((B, K))
    for b in range(B):
        for k in range(K):
            diff = pred[b, :, :, k] * weight[b, k] - target[b, :, :, k] * weight[b, k]
            per_joint[b, k] = 0.5 * np.mean(diff ** 2)
    if topk is None:
        return per_joint.mean()
    return np.mean([np.sort(row)[::-1][:topk].mean() for row in per_joint])


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    pred = rng.normal(size=(3, 8, 6, 5)).astype("float32")
    target = rng.uniform(size=(3, 8, 6, 5)).astype("float32")
    weight = (rng.uniform(size=(3, 5)) > 0.3).astype("float32")
    return pred, target, weight


def test_matches_hrnet_joints_mse(batch):
    pred, target, weight = batch
    value = float(JointsMSELoss()(target, pred, weight))
    assert value == pytest.approx(_reference(pred, target, weight), rel=1e-5)


@pytest.mark.parametrize("topk", [1, 2])
def test_ohkm_keeps_the_hardest_joints(batch, topk):
    pred, target, weight = batch
    value = float(JointsMSELoss(ohkm_topk=topk)(target, pred, weight))
    assert value == pytest.approx(_reference(pred, target, weight, topk=topk), rel=1e-5)


def test_zero_weight_joints_do_not_count(batch):
    pred, target, weight = batch
    weight[:] = 1.0
    weight[:, 0] = 0.0
    moved = pred.copy()
    moved[..., 0] += 100.0  # a huge error on the masked joint changes nothing
    loss = JointsMSELoss()
    assert float(loss(target, moved, weight)) == pytest.approx(float(loss(target, pred, weight)))


def test_fit_uses_target_weights_as_sample_weight(batch):
    pred, target, weight = batch
    inputs = keras.Input((8, 6, 5))
    model = keras.Model(inputs, keras.layers.Identity()(inputs))
    model.compile(loss=JointsMSELoss())
    logs = model.evaluate(pred, target, sample_weight=weight, batch_size=3, verbose=0,
                          return_dict=True)
    assert logs["loss"] == pytest.approx(_reference(pred, target, weight), rel=1e-5)


@pytest.mark.parametrize("topk", [0, -1, 2.0, "3"])
def test_bad_topk_is_rejected(topk):
    with pytest.raises(ValueError) as error:
        JointsMSELoss(ohkm_topk=topk)
    assert str(error.value) == f"ohkm_topk must be a positive integer or None, got {topk!r}"


@pytest.mark.parametrize("kwargs", [{}, {"ohkm_topk": 8, "name": "ohkm"}])
def test_the_loss_round_trips_through_its_config(kwargs):
    # What a saved, compiled model stores for its loss and rebuilds on loading.
    loss = JointsMSELoss(**kwargs)
    assert loss.name == kwargs.get("name", "joints_mse")
    rebuilt = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(rebuilt) is JointsMSELoss
    assert (rebuilt.name, rebuilt.ohkm_topk) == (loss.name, kwargs.get("ohkm_topk"))


def test_fractional_target_weight_is_squared_as_hrnet():
    # One sample, a 1x2 heatmap, two joints; target 0. Joint 0 predicts (1, 3): pixel MSE
    # (1 + 9) / 2 = 5, weight 0.5 → 5 · 0.5² = 1.25. Joint 1 predicts (2, 2): MSE 4,
    # weight 1 → 4. Loss = 0.5 · (1.25 + 4) / 2 = 1.3125 (weighting once would give 1.625).
    pred = np.array([[[[1.0, 2.0], [3.0, 2.0]]]], "float32")  # (B=1, H=1, W=2, K=2)
    target = np.zeros_like(pred)
    weight = np.array([[0.5, 1.0]], "float32")
    assert float(JointsMSELoss()(target, pred, weight)) == pytest.approx(1.3125, rel=1e-6)
    inputs = keras.Input((1, 2, 2))
    model = keras.Model(inputs, keras.layers.Identity()(inputs))
    model.compile(loss=JointsMSELoss())
    logs = model.evaluate(pred, target, sample_weight=weight, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(1.3125, rel=1e-6)
