"""A training loss that turns NaN: training stops at that batch, the epoch's checkpoint and
backup keep the last good state, and train() ends with a clean error (not "finished")."""

import json
import math

import keras
import numpy as np
import pytest

from pose.engine.callbacks import FiniteBackupAndRestore, SafeCheckpoints, StopOnNonFiniteLoss
from pose.engine.training import TrainingDiverged, train
from pose.errors import UserError


def _batches(finite_steps):
    """(x, y) batches of a linear problem; NaN inputs from step ``finite_steps`` on."""
    rng = np.random.default_rng(0)
    step = 0
    while True:
        x = rng.standard_normal((4, 3)).astype("float32")
        if step >= finite_steps:
            x[:] = np.nan
        yield x, x.sum(axis=1, keepdims=True)
        step += 1


def test_a_nan_loss_keeps_the_last_good_checkpoint_and_backup(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    guard = StopOnNonFiniteLoss()
    saved = {}

    class Remember(keras.callbacks.Callback):  # the weights at each epoch's end
        def on_epoch_end(self, epoch, logs=None):
            saved[epoch] = [w.copy() for w in self.model.get_weights()]

    history = model.fit(_batches(finite_steps=3), steps_per_epoch=2, epochs=4, verbose=0,
                        shuffle=False,
                        callbacks=[guard, Remember(), SafeCheckpoints(str(tmp_path), None),
                                   FiniteBackupAndRestore(str(tmp_path / "backup"))])
    # steps 0-1 (epoch 1) and 2 (epoch 2) are finite; step 3, epoch 2's second, is not
    assert guard.stopped_at[:2] == (1, 1) and math.isnan(guard.stopped_at[2])
    assert len(history.history["loss"]) == 2 and math.isnan(history.history["loss"][1])
    last = keras.saving.load_model(tmp_path / "last.keras")
    for got, want in zip(last.get_weights(), saved[0]):  # epoch 1's weights, finite
        np.testing.assert_array_equal(got, want)
    assert not all(np.isfinite(w).all() for w in saved[1])  # what was not saved
    backup = json.loads((tmp_path / "backup" / "training_metadata.json").read_text())
    assert backup["epoch"] == 1  # kept (not deleted at the end): resumable from epoch 2


def test_train_reports_divergence_as_an_error_and_not_as_finished(tmp_path, tiny_config,
                                                                  monkeypatch):
    """train() wiring: when the guard stopped the run, train() raises TrainingDiverged (a
    UserError: one line, exit 2 from the tools) and writes no finished.json. Keras' fit is
    replaced by one that reports a NaN at epoch 3, step 5 (a real divergence would cost a
    training run; the callbacks' behaviour is tested above)."""
    def diverging_fit(model, *args, callbacks=(), **kwargs):
        (guard,) = [c for c in callbacks if isinstance(c, StopOnNonFiniteLoss)]
        guard.stopped_at = (2, 4, float("nan"))
        return keras.callbacks.History()

    monkeypatch.setattr(keras.Model, "fit", diverging_fit)
    workdir = tmp_path / "run"
    with pytest.raises(TrainingDiverged) as raised:
        train(tiny_config, str(workdir), verbose=0, validate=False)
    assert isinstance(raised.value, UserError)
    assert str(raised.value) == (
        "training stopped: the loss became nan in epoch 3, step 5; no checkpoint was "
        "written; lower train.lr (now 0.001) or check the training data")
    assert not (workdir / "finished.json").exists()
