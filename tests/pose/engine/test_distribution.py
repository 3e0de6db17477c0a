"""pose.engine.distribution in this process: strategy names, the worker's role from the
cluster spec, the non-chief's scratch folder, the weights digest, and the moving-statistics
average across workers (with a stand-in for the strategy's collective). The real strategies
run in tests/pose/engine/test_training.py (2-replica mirrored, two workers on loopback)."""

import os
import types

import keras
import numpy as np
import pytest

from pose.engine.distribution import (
    STRATEGIES,
    SyncMovingStatistics,
    adapt_to_multiworker,
    make_strategy,
    weights_digest,
    worker_role,
    worker_scratch,
)


def _cluster(spec, task_type, task_id):
    resolver = types.SimpleNamespace(cluster_spec=lambda: types.SimpleNamespace(
        as_dict=lambda: spec), task_type=task_type, task_id=task_id)
    return types.SimpleNamespace(cluster_resolver=resolver)


def test_strategies_by_name_and_roles():
    import tensorflow as tf

    assert STRATEGIES == ("default", "mirrored", "multiworker")
    assert make_strategy("default") is tf.distribute.get_strategy()
    assert type(make_strategy("mirrored")) is tf.distribute.MirroredStrategy
    # Without TF_CONFIG a multi-worker strategy is one local worker (no collective set up).
    assert isinstance(make_strategy("multiworker"), tf.distribute.MultiWorkerMirroredStrategy)
    with pytest.raises(ValueError, match=r"strategy must be one of .*got 'tpu'"):
        make_strategy("tpu")
    assert adapt_to_multiworker(keras.Sequential([keras.Input((2,))]),
                                tf.distribute.get_strategy()) is False
    workers = {"worker": ["a:1", "b:1"]}
    assert worker_role(types.SimpleNamespace()) == (True, None)  # no cluster at all
    assert worker_role(_cluster({}, None, None)) == (True, None)
    assert worker_role(_cluster(workers, "worker", 0)) == (True, "worker0")
    assert worker_role(_cluster(workers, "worker", 1)) == (False, "worker1")
    with_chief = dict(workers, chief=["c:1"])
    assert worker_role(_cluster(with_chief, "chief", 0)) == (True, "chief0")
    assert worker_role(_cluster(with_chief, "worker", 0)) == (False, "worker0")


def test_worker_scratch_starts_from_the_chiefs_backup_and_is_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    workdir = tmp_path / "run"
    (workdir / "backup").mkdir(parents=True)
    (workdir / "backup" / "training_metadata.json").write_text('{"epoch": 2}')
    with worker_scratch(str(workdir), "worker1") as scratch:
        assert os.path.basename(scratch).startswith("pose_worker1_")
        assert os.path.dirname(scratch) == str(tmp_path / "tmp")
        assert (open(os.path.join(scratch, "backup", "training_metadata.json")).read()
                == '{"epoch": 2}')
    assert not os.path.exists(scratch)
    with pytest.raises(KeyError), worker_scratch(str(tmp_path / "fresh"), "worker2") as other:
        assert os.listdir(other) == []  # no chief backup yet: an empty folder
        raise KeyError("removed even after an error")
    assert not os.path.exists(other)


def test_weights_digest_tells_every_weight_apart():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2),
                              keras.layers.BatchNormalization()])
    first = weights_digest(model)
    assert first == weights_digest(model) and len(first) == 64
    for w in model.weights:
        before = w.numpy()
        w.assign(before + 1.0)
        assert weights_digest(model) != first, w.path
        w.assign(before)
    assert weights_digest(model) == first


class _TwoWorkers:
    """Stands in for a two-worker strategy: this worker's values and the other worker's
    (``other``), reduced as ``tf.distribute`` reduces ("MEAN" or "SUM" over the workers)."""

    def __init__(self, other):
        self.other = other

    def experimental_distribute_values_from_function(self, fn):
        return [np.asarray(fn(None)), self.other]

    def reduce(self, op, values, axis):
        assert axis is None
        total = values[0] + values[1]
        return types.SimpleNamespace(numpy=lambda: total / 2 if op == "MEAN" else total)


def test_moving_statistics_are_averaged_over_the_workers():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
                              keras.layers.BatchNormalization(),
                              keras.layers.Dense(2), keras.layers.BatchNormalization()])
    rng = np.random.default_rng(0)
    stats = model.non_trainable_weights
    mine = [rng.uniform(1, 2, w.shape).astype("float32") for w in stats]
    theirs = [rng.uniform(1, 2, w.shape).astype("float32") for w in stats]
    for w, value in zip(stats, mine):
        w.assign(value)
    trainable = [w.numpy() for w in model.trainable_weights]
    callback = SyncMovingStatistics(_TwoWorkers(np.concatenate([t.ravel() for t in theirs])))
    callback.set_model(model)
    callback.on_epoch_end(0)
    for w, a, b in zip(stats, mine, theirs):
        np.testing.assert_allclose(w.numpy(), (a + b) / 2, rtol=1e-6, err_msg=w.path)
    for w, before in zip(model.trainable_weights, trainable):  # untouched
        np.testing.assert_array_equal(w.numpy(), before)


def test_moving_statistics_keep_shapes_and_leave_integer_weights_alone():
    """A frozen layer's 2-D kernel is a non-trainable weight too: averaged in its own
    shape. An integer non-trainable weight (a counter) is not a statistic: left as is."""

    class Counter(keras.layers.Layer):
        def build(self, input_shape):
            self.count = self.add_weight(shape=(), dtype="int32", initializer="zeros",
                                         trainable=False)

        def call(self, x):
            return x

    frozen = keras.layers.Dense(2)
    model = keras.Sequential([keras.Input((3,)), frozen, Counter()])
    frozen.trainable = False
    kernel, bias = frozen.kernel, frozen.bias
    counter = model.layers[-1].count
    counter.assign(7)
    mine, theirs = np.arange(6.0).reshape(3, 2), np.full((3, 2), 10.0)  # (3, 2) kernel
    kernel.assign(mine)
    bias.assign([1.0, 2.0])
    callback = SyncMovingStatistics(_TwoWorkers(np.concatenate([theirs.ravel(), [3.0, 4.0]])))
    callback.set_model(model)
    callback.on_epoch_end(0)
    np.testing.assert_allclose(kernel.numpy(), [[5, 5.5], [6, 6.5], [7, 7.5]])  # by hand
    np.testing.assert_allclose(bias.numpy(), [2.0, 3.0])
    assert int(counter.numpy()) == 7


def test_multiworker_adapter_builds_from_the_local_batch_and_logs_vectors():
    """The two Keras gaps of adapt_to_multiworker, on a one-process multi-worker strategy:
    the symbolic build gets this worker's first replica batch out of the distributed
    iterator (an explicit batch passes through), and every log of a train step comes back
    as a one-element vector holding the same value (for the trainer's reduce on axis 0)."""
    import tensorflow as tf
    from tensorflow.python.distribute.values import PerReplica

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    built = []
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: (
        built.append(data_batch) or "built")
    model.train_step = lambda data: {"loss": data[1] * 2.0, "mae": tf.constant(0.25)}
    assert adapt_to_multiworker(model, strategy) is True

    images = PerReplica((tf.constant([[1.0, 2.0]]), tf.constant([[3.0, 4.0]])))
    targets = tf.constant([5.0])  # not distributed: passed as it is
    batches = iter([(images, targets), "never read"])
    assert model._maybe_symbolic_build(iterator=[(0, 0, batches)]) == "built"
    local_images, local_targets = built[-1]
    np.testing.assert_array_equal(local_images.numpy(), [[1.0, 2.0]])  # replica 0's
    assert local_targets is targets
    assert next(batches) == "never read"  # one batch taken, no more
    assert model._maybe_symbolic_build(data_batch="given") == "built" and built[-1] == "given"
    assert model._maybe_symbolic_build(iterator=[(0, 0, iter([]))], data_batch="given") \
        == "built" and built[-1] == "given"

    logs = model.train_step((None, tf.constant(1.5)))
    assert sorted(logs) == ["loss", "mae"]
    assert [tuple(v.shape) for v in logs.values()] == [(1,), (1,)]
    assert keras.ops.convert_to_numpy(logs["loss"]).tolist() == [3.0]
    assert keras.ops.convert_to_numpy(logs["mae"]).tolist() == [0.25]
