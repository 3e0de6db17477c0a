"""Distributed training: the ``tf.distribute`` strategy by name, the worker's role and
scratch folder under multi-worker training, and what Keras 3's trainer lacks there.

Only the chief (``chief`` in ``TF_CONFIG``, else worker 0) writes into the run's workdir;
the other workers write into a temporary folder of their own (``worker_scratch``).
"""

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile

import keras
import numpy as np

STRATEGIES = ("default", "mirrored", "multiworker")

logger = logging.getLogger(__name__)


def make_strategy(name):
    """A ``tf.distribute`` strategy by name: default, mirrored (all local devices), multiworker."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")


def worker_role(distribution):
    """``(is_chief, task)`` of this process in the strategy's cluster: a single process is
    the chief; in a multi-worker cluster the chief is ``chief`` in ``TF_CONFIG``, else
    ``worker`` 0; ``task`` is e.g. ``"worker1"`` (None outside a cluster)."""
    resolver = getattr(distribution, "cluster_resolver", None)
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not spec or resolver.task_type is None:
        return True, None
    task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
    chief = task_type == "chief" or (task_type == "worker" and task_id == 0
                                     and "chief" not in spec)
    return chief, f"{task_type}{task_id}"


@contextlib.contextmanager
def worker_scratch(workdir, task):
    """A non-chief worker's own temporary workdir, seeded with the chief's ``backup/``
    (so that it resumes from the same epoch) and removed afterwards."""
    scratch = tempfile.mkdtemp(prefix=f"pose_{task}_")
    try:
        backup = os.path.join(workdir, "backup")
        if os.path.isdir(backup):
            shutil.copytree(backup, os.path.join(scratch, "backup"))
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def adapt_to_multiworker(model, distribution):
    """Let ``model.fit`` run under ``MultiWorkerMirroredStrategy`` (Keras 3.15).

    Keras 3's TensorFlow trainer has two gaps under that strategy (keras-team/keras#20585);
    this fills both on ``model`` alone, and leaves other strategies untouched:

    - before the first step it reduces one distributed ``(images, heatmaps, weights)``
      batch with a single ``strategy.reduce`` call to learn the shapes, which fails for a
      nested structure across workers ("Attempt to convert a value (PerReplica ...)"); the
      shapes are all it needs, so it gets this worker's own replica batch instead;
    - after each step it averages every log across workers with ``strategy.reduce("MEAN",
      v, axis=0)``, which fails on the scalar loss ("Invalid reduction dimension 0"); the
      train step therefore returns each log as a one-element vector, which that reduction
      turns back into the scalar mean over the workers.

    Returns True when ``model`` was adapted (a multi-worker strategy), else False.
    """
    import tensorflow as tf

    if not isinstance(distribution, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    symbolic_build = model._maybe_symbolic_build
    train_step = model.train_step

    def local_batch(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return distribution.experimental_local_results(value)[0]
        return value

    def build(iterator=None, data_batch=None):
        if iterator is not None and data_batch is None:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(local_batch, next(batches))
                break
        return symbolic_build(data_batch=data_batch)

    def step_with_vector_logs(data):
        return {name: keras.ops.reshape(value, (1,))
                for name, value in train_step(data).items()}

    model._maybe_symbolic_build = build
    model.train_step = step_with_vector_logs
    return True


class SyncMovingStatistics(keras.callbacks.Callback):
    """Multi-worker training: average the non-trainable weights (BatchNorm moving mean and
    variance) over the workers at the end of every epoch.

    The trainable weights stay equal on every worker (gradients are all-reduced), but each
    worker's batch norm updates its moving statistics from its own batches, so they drift
    apart and the chief's checkpoint would hold the chief's alone. Averaging them (one
    collective of all of them per epoch) makes every worker hold the same model, with
    statistics over the global batch's data (PyTorch's DistributedDataParallel broadcasts
    rank 0's instead). Runs before the backup and checkpoint callbacks.
    """

    def __init__(self, distribution):
        super().__init__()
        self.distribution = distribution

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf

        variables = [w for w in self.model.non_trainable_weights
                     if keras.backend.is_float_dtype(w.dtype)]
        if not variables:
            return
        local = np.concatenate([keras.ops.convert_to_numpy(w).ravel() for w in variables])
        per_worker = self.distribution.experimental_distribute_values_from_function(
            lambda _: tf.constant(local))
        mean = self.distribution.reduce("MEAN", per_worker, axis=None).numpy()
        offset = 0
        for w in variables:
            size = int(np.prod(w.shape))
            w.assign(mean[offset:offset + size].reshape(w.shape))  # (flat) -> weight shape
            offset += size


def weights_digest(model):
    """SHA-256 of all of ``model``'s weights in order: equal digests, equal weights."""
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()
