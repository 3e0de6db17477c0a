"""Training: Keras ``fit`` with HRNet's recipe, distribution, safe checkpoints and resume.

``train(config, workdir)`` is what ``tools/train.py`` runs. Everything it writes lives in
``workdir``:

    last.keras / last.yaml    model after the latest epoch, with its resolved config
    best.keras / best.yaml    model with the best validation AP so far
    best.json                 that AP and its epoch (read back when a run resumes)
    log.csv                   one row per epoch: loss, the learning rate used in that
                              epoch, validation AP/AR; never two rows for one epoch
    finished.json             written when the last epoch is done: re-running the same
                              command then says so and touches nothing (force=True retrains)
    init_weights.json         with train.init_weights: the weights loaded, skipped, left fresh
    tensorboard/              scalars and predicted-vs-target heatmap images
    backup/                   BackupAndRestore state: re-running the same command after a
                              crash or kill resumes from the last finished epoch (and says so)
    eval/epoch_NNN/           COCO results and metrics of each validation run

With ``strategy="multiworker"`` every worker runs the same steps and callbacks (validation
and the heatmap images call the model on every worker together), but only the chief
(``chief`` in ``TF_CONFIG``, else worker 0) writes into ``workdir``; the other workers
write into a temporary folder of their own that is removed when they finish, and resume
from a copy of the chief's ``backup/`` (so ``workdir`` must be on storage that every worker
reads, as for Keras's own multi-worker backups).
"""

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import shutil
import tempfile
import time

import keras
import numpy as np

from datasets.coco import load_coco, load_train_records
from datasets.metadata import DatasetMeta
from datasets.pipeline import PipelineStats, build_dataset
from datasets.transforms import Augmentation
from pose.codec import codec_for_model
from pose.config import ConfigError, config_to_dict, load_config, save_config
from pose.engine.checkpoint import build_model, check_model_config, save_model
from pose.engine.pretrained import initialize_from, require_init_weights
from pose.errors import UserError
from pose.evaluation.evaluator import evaluate
from pose.evaluation.metrics import STAT_NAMES
from pose.evaluation.predictor import forward
from pose.fileio import write_json, write_text
from pose.models.losses import JointsMSELoss

STRATEGIES = ("default", "mirrored", "multiworker")

logger = logging.getLogger(__name__)


@keras.saving.register_keras_serializable(package="pose")
class EpochStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """HRNet's multi-step schedule in epochs, with an optional linear warm-up.

    lr(step) = base_lr · factor^(number of boundaries ≤ epoch), where epoch = step /
    steps_per_epoch; during the first ``warmup_epochs`` it rises linearly from
    base_lr / steps to base_lr.

    Args:
        base_lr: float, the initial learning rate.
        steps_per_epoch: int, optimizer steps in one epoch.
        boundaries: tuple of int, epochs at which the rate is multiplied by ``factor``.
        factor: float, the multiplier at each boundary. Default 0.1.
        warmup_epochs: float, epochs of linear warm-up. Default 0.
    """

    def __init__(self, base_lr, steps_per_epoch, boundaries, factor=0.1, warmup_epochs=0):
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch!r}")
        self.base_lr = float(base_lr)
        self.steps_per_epoch = int(steps_per_epoch)
        self.boundaries = tuple(int(b) for b in boundaries)
        self.factor = float(factor)
        self.warmup_epochs = float(warmup_epochs)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        epoch = step / self.steps_per_epoch
        drops = sum(keras.ops.cast(epoch >= b, "float32") for b in self.boundaries)
        lr = self.base_lr * keras.ops.power(self.factor, drops)
        if self.warmup_epochs > 0:
            warmup_steps = self.warmup_epochs * self.steps_per_epoch
            lr = lr * keras.ops.minimum(1.0, (step + 1.0) / warmup_steps)
        return lr

    def get_config(self):
        return {"base_lr": self.base_lr, "steps_per_epoch": self.steps_per_epoch,
                "boundaries": self.boundaries, "factor": self.factor,
                "warmup_epochs": self.warmup_epochs}


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


class LearningRateLogger(keras.callbacks.Callback):
    """Puts the learning rate of the epoch's last step into the epoch logs (CSV, TensorBoard).

    ``optimizer.learning_rate`` at the end of an epoch is the schedule at the NEXT step,
    i.e. the next epoch's rate after a step boundary; the rate used is the schedule at
    ``iterations - 1``.
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        optimizer = getattr(self.model.optimizer, "inner_optimizer", self.model.optimizer)
        schedule = getattr(optimizer, "_learning_rate", None)
        if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            step = max(int(keras.ops.convert_to_numpy(optimizer.iterations)) - 1, 0)
            rate = schedule(step)
        else:
            rate = optimizer.learning_rate
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(rate))


class FirstStepNotice(keras.callbacks.Callback):
    """Says that the first step is being traced, and how long it took, instead of looking frozen."""

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()
        self._seen = False
        logger.info("Tracing and compiling the training step before the first batch; on a "
                    "CPU this takes from about half a minute to two minutes for the demo model "
                    "and several minutes for a full W32 ...")

    def on_train_batch_end(self, batch, logs=None):
        if not self._seen:
            self._seen = True
            logger.info("\nfirst training step done after %.0f s",
                        time.perf_counter() - self._start)


class ValidationAP(keras.callbacks.Callback):
    """COCO keypoint AP on the validation set every ``every`` epochs and after the last.

    Adds ``val_AP`` ... ``val_ARL`` to the epoch logs (NaN on epochs without evaluation,
    so the CSV columns stay fixed) before the logging and checkpoint callbacks read them.

    Args:
        codec: the model's ``HeatmapCodec``.
        meta: ``DatasetMeta`` (flip pairs, OKS sigmas).
        test_cfg: ``pose.config.TestConfig``.
        annotation_file, image_dir: the validation set; the annotations are read once.
        every: int, epochs between evaluations.
        epochs: int, the run's last epoch (always evaluated).
        out_dir: str, ``epoch_NNN/`` folders of results and metrics go here.
        detections: a detection-results JSON, or None for ground-truth boxes.
        missing_images: "skip" or "error". Default "skip".
        verbose: 0 silent, 1 progress bar and messages.
    """

    def __init__(self, codec, meta, test_cfg, annotation_file, image_dir, every, epochs,
                 out_dir, detections=None, missing_images="skip", verbose=1):
        super().__init__()
        self.codec = codec
        self.meta = meta
        self.test_cfg = test_cfg
        self.annotation_file = annotation_file
        self.image_dir = image_dir
        self.detections = detections
        self.missing_images = missing_images
        self.every = max(1, int(every))
        self.epochs = epochs
        self.out_dir = out_dir
        self.verbose = verbose
        self._coco = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        due = (epoch + 1) % self.every == 0 or epoch + 1 == self.epochs
        if not due:
            logs.update({f"val_{name}": math.nan for name in STAT_NAMES})
            return
        if self.verbose:
            logger.info("\nvalidation AP after epoch %d:", epoch + 1)
        if self._coco is None:
            self._coco = load_coco(self.annotation_file)
        report = evaluate(self.model, self.codec, self.meta, self.test_cfg, self._coco,
                          self.image_dir, self.detections,
                          missing_images=self.missing_images,
                          out_dir=os.path.join(self.out_dir, f"epoch_{epoch + 1:03d}"),
                          verbose=self.verbose)
        logs.update({f"val_{name}": float(report[name]) for name in STAT_NAMES})


class SafeCheckpoints(keras.callbacks.Callback):
    """``last.keras`` every epoch and ``best.keras`` on a new best validation AP, atomically."""

    def __init__(self, workdir, config, monitor="val_AP"):
        super().__init__()
        self.workdir = workdir
        self.config = config
        self.monitor = monitor
        self.best_path = os.path.join(workdir, "best.json")
        self.best = -math.inf
        if os.path.isfile(self.best_path):  # a resumed run keeps its best so far
            with open(self.best_path, encoding="utf-8") as f:
                self.best = json.load(f)[monitor]

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        save_model(self.model, os.path.join(self.workdir, "last.keras"), self.config)
        value = logs.get(self.monitor, math.nan)
        if not math.isnan(value) and value > self.best:
            self.best = value
            save_model(self.model, os.path.join(self.workdir, "best.keras"), self.config)
            write_json({self.monitor: value, "epoch": epoch + 1}, self.best_path)


class HeatmapImages(keras.callbacks.Callback):
    """TensorBoard images: for a fixed batch, target | predicted heatmaps (max over joints)."""

    def __init__(self, log_dir, images, heatmaps, every):
        super().__init__()
        import tensorflow as tf

        self._tf = tf
        self.writer = tf.summary.create_file_writer(os.path.join(log_dir, "heatmaps"))
        self.images = images
        self.heatmaps = np.asarray(heatmaps)
        self.every = max(1, int(every))

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every and epoch + 1 != self.params.get("epochs"):
            return
        predicted = forward(self.model, self.images)
        target = self.heatmaps.max(axis=-1, keepdims=True)  # (B, H, W, 1)
        predicted = np.clip(predicted.max(axis=-1, keepdims=True), 0.0, 1.0)
        side_by_side = np.concatenate([target, predicted], axis=2)  # (B, H, 2W, 1)
        with self.writer.as_default():
            self._tf.summary.image("target | predicted", side_by_side, step=epoch + 1,
                                   max_outputs=len(side_by_side))
        self.writer.flush()


def augmentation_from_config(data):
    """The ``Augmentation`` of a ``DataConfig``: its fields of the same names (the
    defaults of both are ``Augmentation``'s)."""
    names = [f.name for f in dataclasses.fields(Augmentation) if hasattr(data, f.name)]
    return Augmentation(**{name: getattr(data, name) for name in names})


def _initialize(model, train_config, workdir, verbose):
    """Load ``train.init_weights`` into ``model``; write what happened to the workdir."""
    report = initialize_from(model, train_config.init_weights,
                             allow_partial=train_config.init_partial)
    write_json(dict(source=os.path.abspath(train_config.init_weights), **report.as_dict()),
               os.path.join(workdir, "init_weights.json"))
    if verbose:
        logger.info("initial weights from %s: %s (details in %s)", train_config.init_weights,
                    report.summary(), os.path.join(workdir, "init_weights.json"))


FINISHED_FILE = "finished.json"


def train(config, workdir, strategy="default", verbose=1, validate=True, force=False,
          source="config"):
    """Train the config's model on its training set; returns the Keras ``History``.

    Everything is checked (model arguments, annotation file, dataset metadata against the
    model) before anything is written. Re-running with the same ``workdir`` resumes from
    ``workdir/backup`` (the last finished epoch, printed); when the run already finished,
    nothing is touched and None is returned (``force=True`` retrains from scratch). See
    the module docstring for everything written.

    Args:
        config: ``pose.config.Config``.
        workdir: str, the run's folder.
        strategy: "default", "mirrored" or "multiworker"; the batch size in the config is
            per replica, the global batch is that times the replicas.
        verbose: 0 silent, 1 progress bars and messages.
        validate: bool, run the validation AP callback. Default True.
        force: bool, retrain a finished run (or one with another config) from epoch 1,
            deleting its log, backup and checkpoints first. Default False.
        source: str, where the config came from (its file), for messages.

    Raises:
        UserError (``ConfigError``, ``AnnotationError``, ``MetadataError``): bad config,
            data or metadata; the workdir holds a run with another config (without force);
            no training batch can be made.
    """
    previous_policy = keras.mixed_precision.global_policy()
    if config.train.mixed_precision:
        # float16 compute; the heatmap head (dtype float32), the loss and decoding stay
        # in float32, and Keras wraps the optimizer in a LossScaleOptimizer.
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        return _train(config, workdir, strategy, verbose, validate, force, source)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def resolve_training_config(config, coco, source="config"):
    """The config with the dataset metadata of the training file filled in, after checking
    the model arguments and that the model predicts the file's keypoints."""
    check_model_config(config.model, source)
    meta = DatasetMeta.from_coco(coco, data=config.data)
    if meta.num_keypoints != config.model.num_keypoints:
        raise ConfigError(
            f"{source}: model.num_keypoints is {config.model.num_keypoints} but "
            f"{coco.annotation_file} has {meta.num_keypoints} keypoints "
            f"({', '.join(meta.keypoint_names)})")
    data = dataclasses.replace(config.data, **meta.config_fields())
    return dataclasses.replace(config, data=data), meta


def _first_difference(old, new, prefix=""):
    for key in new:
        if old.get(key) != new[key]:
            if isinstance(new[key], dict) and isinstance(old.get(key), dict):
                return _first_difference(old[key], new[key], f"{prefix}{key}.")
            return f"{prefix}{key}: {old.get(key)!r} -> {new[key]!r}"
    return None


def run_state(workdir, config):
    """``("new", 0)``, ``("resume", epochs_done)`` or ``("finished", epochs)`` of a workdir.

    Raises:
        UserError: the workdir holds a run of another config.
    """
    config_path = os.path.join(workdir, "config.yaml")
    finished = os.path.isfile(os.path.join(workdir, FINISHED_FILE))
    backup = os.path.join(workdir, "backup", "training_metadata.json")
    if os.path.isfile(config_path) and (finished or os.path.isfile(backup)):
        difference = _first_difference(config_to_dict(load_config(config_path)),
                                       config_to_dict(config))
        if difference:
            raise UserError(
                f"{workdir} holds a {'finished' if finished else 'started'} run with another "
                f"config ({difference}); pass --force to retrain there from epoch 1, or "
                "choose another --workdir")
    if finished:
        return "finished", config.train.epochs
    if os.path.isfile(backup):
        with open(backup, encoding="utf-8") as f:
            return "resume", int(json.load(f)["epoch"])
    return "new", 0


def clear_run(workdir):
    """Delete what a previous run left (log, backup, checkpoints, marker) for --force."""
    for name in ("log.csv", "best.json", FINISHED_FILE, "last.keras", "last.yaml",
                 "best.keras", "best.yaml"):
        path = os.path.join(workdir, name)
        if os.path.isfile(path):
            os.remove(path)
    shutil.rmtree(os.path.join(workdir, "backup"), ignore_errors=True)


def trim_log(path, epochs_done):
    """Keep only ``log.csv`` rows of epochs already done (CSVLogger's 0-based ``epoch``
    < ``epochs_done``), one per epoch (the last written), so that a resumed run never
    writes an epoch twice."""
    if not os.path.isfile(path):
        return
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or "epoch" not in rows[0]:
        return
    column = rows[0].index("epoch")
    body = [r for r in rows[1:] if r]
    by_epoch = {int(float(r[column])): r for r in body}  # the last row of an epoch wins
    kept = [by_epoch[e] for e in sorted(by_epoch) if e < epochs_done]
    if kept != body:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([rows[0]] + kept)
        write_text(out.getvalue(), path)


def _train(config, workdir, strategy, verbose, validate, force, source):
    data = config.data
    coco = load_coco(data.resolve(data.train_annotations))
    config, meta = resolve_training_config(config, coco, source)
    if config.train.init_weights:  # before anything is written: a missing file fails at once
        require_init_weights(config.train.init_weights)
    if not force and run_state(workdir, config)[0] == "finished":
        logger.info("%s: this run already finished its %d epochs; nothing to do (pass "
                    "--force to retrain from epoch 1)", workdir, config.train.epochs)
        return None
    keras.utils.set_random_seed(config.train.seed)
    distribution = make_strategy(strategy)
    chief, task = worker_role(distribution)
    if chief:
        return _fit(config, coco, meta, workdir, distribution, verbose, validate, force)
    with worker_scratch(workdir, task) as scratch:
        if verbose:
            logger.info("%s: not the chief; writing into %s (removed at the end)", task,
                        scratch)
        return _fit(config, coco, meta, scratch, distribution, verbose, validate, False)


def _fit(config, coco, meta, workdir, distribution, verbose, validate, force):
    if force:
        clear_run(workdir)
    state, epochs_done = run_state(workdir, config)
    global_batch = config.train.batch_size * distribution.num_replicas_in_sync
    data = config.data
    with distribution.scope():
        model = build_model(config.model)
    codec = codec_for_model(model, sigma=data.sigma, encoding=data.encoding,
                            decoding=config.test.decoding)
    records = load_train_records(coco, data.resolve(data.train_images),
                                 codec.input_size, missing_images=data.missing_images)
    # datasets.coco logs the records' load report (INFO, or WARNING with problems).
    steps_per_epoch = len(records) // global_batch
    if steps_per_epoch < 1:
        raise UserError(f"{len(records)} training records make no batch of {global_batch} "
                        f"({config.train.batch_size} per replica x "
                        f"{distribution.num_replicas_in_sync} replicas): "
                        f"{records.report.summary()}")
    stats = PipelineStats()
    dataset = build_dataset(records, codec, global_batch, training=True,
                            seed=config.train.seed, meta=meta,
                            augmentation=augmentation_from_config(config.data), stats=stats)
    try:
        sample_images, sample_heatmaps, _ = next(iter(dataset.take(1)))
    except StopIteration:
        raise UserError(
            f"no training batch can be made: none of the {len(records)} training images "
            f"could be read ({stats.missing_files} missing, {stats.decode_errors} not "
            f"decodable), e.g. {list(stats.failed_paths)[:3]}") from None

    os.makedirs(workdir, exist_ok=True)  # everything is checked: the first write
    save_config(config, os.path.join(workdir, "config.yaml"))
    if config.train.init_weights:
        with distribution.scope():
            _initialize(model, config.train, workdir, verbose)
    log_path = os.path.join(workdir, "log.csv")
    trim_log(log_path, epochs_done)
    if state == "resume" and verbose:
        logger.info("resuming %s from epoch %d of %d (epochs 1-%d done; state in %s)",
                    workdir, epochs_done + 1, config.train.epochs, epochs_done,
                    os.path.join(workdir, "backup"))
    with distribution.scope():
        schedule = EpochStepDecay(config.train.lr, steps_per_epoch, config.train.lr_steps,
                                  config.train.lr_factor, config.train.warmup_epochs)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=schedule),
                      loss=JointsMSELoss(ohkm_topk=config.train.ohkm_topk))

    callbacks = [SyncMovingStatistics(distribution)] if adapt_to_multiworker(
        model, distribution) else []
    callbacks += [
        keras.callbacks.TerminateOnNaN(),
        LearningRateLogger(),
    ]
    if validate:
        detections = (None if config.test.use_gt_boxes
                      else data.resolve(config.test.detections))
        callbacks.append(ValidationAP(
            codec, meta, config.test, data.resolve(data.val_annotations),
            data.resolve(data.val_images), config.train.val_every, config.train.epochs,
            os.path.join(workdir, "eval"), detections=detections,
            missing_images=data.missing_images, verbose=verbose))
    callbacks += [
        SafeCheckpoints(workdir, config),
        keras.callbacks.CSVLogger(log_path, append=True),
        keras.callbacks.TensorBoard(os.path.join(workdir, "tensorboard"), write_graph=False),
        HeatmapImages(os.path.join(workdir, "tensorboard"), sample_images[:4].numpy(),
                      sample_heatmaps[:4].numpy(), config.train.val_every),
        # Last: when the backup says an epoch is done, its log row and checkpoints exist
        # (a kill before it re-runs the epoch, and trim_log drops its old row).
        keras.callbacks.BackupAndRestore(os.path.join(workdir, "backup")),
    ]
    if verbose:
        callbacks.insert(0, FirstStepNotice())
        logger.info("training %d instances, %d steps/epoch of %d on %d replica(s), "
                    "%d epochs -> %s", len(records), steps_per_epoch, global_batch,
                    distribution.num_replicas_in_sync, config.train.epochs, workdir)
    # Repeated, so that an image skipped as unreadable never cuts an epoch short.
    history = model.fit(dataset.repeat(), epochs=config.train.epochs,
                        steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=verbose)
    if verbose and stats.skipped:
        logger.info("skipped unreadable images: %s", stats.as_dict())
    if verbose:
        logger.info("final weights sha256 %s", weights_digest(model))
    if not model.stop_training:  # TerminateOnNaN stops early: not finished
        write_json({"epochs": config.train.epochs}, os.path.join(workdir, FINISHED_FILE))
    return history
