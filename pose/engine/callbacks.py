"""The training run's schedule and callbacks: the epoch step learning rate, its log,
the first-step notice, validation AP, safe ``last``/``best`` checkpoints and TensorBoard
heatmap images."""

import json
import logging
import math
import os
import time

import keras
import numpy as np

from datasets.coco import load_coco
from pose.engine.checkpoint import save_model
from pose.evaluation.evaluator import evaluate
from pose.evaluation.metrics import STAT_NAMES
from pose.evaluation.predictor import forward
from pose.fileio import write_json

logger = logging.getLogger(__name__)


def _linear_warmup(lr, step, warmup_epochs, steps_per_epoch):
    """``lr`` scaled by (step + 1) / warm-up steps during the first ``warmup_epochs``."""
    if warmup_epochs <= 0:
        return lr
    return lr * keras.ops.minimum(1.0, (step + 1.0) / (warmup_epochs * steps_per_epoch))


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
        return _linear_warmup(lr, step, self.warmup_epochs, self.steps_per_epoch)

    def get_config(self):
        return {"base_lr": self.base_lr, "steps_per_epoch": self.steps_per_epoch,
                "boundaries": self.boundaries, "factor": self.factor,
                "warmup_epochs": self.warmup_epochs}


@keras.saving.register_keras_serializable(package="pose")
class EpochCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then a half cosine from ``base_lr`` to 0 at the end of training.

    lr(step) = base_lr · ½(1 + cos(π · t)), t = (epoch − warmup_epochs) / (epochs −
    warmup_epochs) in [0, 1], epoch = step / steps_per_epoch; during the first
    ``warmup_epochs`` the rate rises linearly to ``base_lr`` as in ``EpochStepDecay``. For
    short schedules: the rate stays high longer than after a step drop and ends near 0.

    Args:
        base_lr: float, the peak learning rate.
        steps_per_epoch: int, optimizer steps in one epoch.
        epochs: int, the length of training (the rate reaches 0 at its end).
        warmup_epochs: float, epochs of linear warm-up. Default 0.
    """

    def __init__(self, base_lr, steps_per_epoch, epochs, warmup_epochs=0):
        if steps_per_epoch < 1 or epochs <= warmup_epochs:
            raise ValueError(f"need steps_per_epoch >= 1 and epochs > warmup_epochs, got "
                             f"{steps_per_epoch!r}, {epochs!r}, {warmup_epochs!r}")
        self.base_lr = float(base_lr)
        self.steps_per_epoch = int(steps_per_epoch)
        self.epochs = int(epochs)
        self.warmup_epochs = float(warmup_epochs)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        epoch = step / self.steps_per_epoch
        progress = keras.ops.clip((epoch - self.warmup_epochs)
                                  / (self.epochs - self.warmup_epochs), 0.0, 1.0)
        lr = self.base_lr * 0.5 * (1.0 + keras.ops.cos(math.pi * progress))
        return _linear_warmup(lr, step, self.warmup_epochs, self.steps_per_epoch)

    def get_config(self):
        return {"base_lr": self.base_lr, "steps_per_epoch": self.steps_per_epoch,
                "epochs": self.epochs, "warmup_epochs": self.warmup_epochs}


LR_SCHEDULES = ("step", "cosine")


def learning_rate_schedule(train_config, steps_per_epoch):
    """The ``train`` section's schedule: ``step`` (HRNet's drops at ``lr_steps`` by
    ``lr_factor``) or ``cosine`` (to 0 at ``epochs``; ``lr_steps`` unused), both with
    ``warmup_epochs`` of linear warm-up."""
    if train_config.lr_schedule == "cosine":
        return EpochCosineDecay(train_config.lr, steps_per_epoch, train_config.epochs,
                                train_config.warmup_epochs)
    if train_config.lr_schedule == "step":
        return EpochStepDecay(train_config.lr, steps_per_epoch, train_config.lr_steps,
                              train_config.lr_factor, train_config.warmup_epochs)
    raise ValueError(f"train.lr_schedule must be one of {LR_SCHEDULES}, got "
                     f"{train_config.lr_schedule!r}")


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
                    "CPU this takes from about ten seconds to half a minute for the demo model "
                    "and one to two minutes for a full W32 ...")

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


def finite_loss(logs):
    """False when ``logs`` hold a NaN or infinite ``loss`` (a vector of per-worker values
    under multi-worker training counts as one), True otherwise."""
    loss = (logs or {}).get("loss")
    return loss is None or bool(np.all(np.isfinite(keras.ops.convert_to_numpy(loss))))


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stop training at the first batch whose loss is NaN or infinite, and remember where.

    Keras' ``TerminateOnNaN`` stops too, but the epoch's end callbacks still run after it:
    they would save the diverged weights over the last good checkpoint and backup.
    ``SafeCheckpoints`` and ``FiniteBackupAndRestore`` skip an epoch whose loss is not
    finite; ``stopped_at`` (``(epoch, batch, loss)``, 0-based) lets the trainer report it.
    """

    def __init__(self):
        super().__init__()
        self.stopped_at = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.stopped_at is None and not finite_loss(logs):
            loss = np.ravel(keras.ops.convert_to_numpy(logs["loss"]))
            self.stopped_at = (self._epoch, batch, float(loss[~np.isfinite(loss)][0]))
            self.model.stop_training = True


class FiniteBackupAndRestore(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` that keeps the last backup when an epoch ends with a non-finite
    loss (resuming from diverged weights would only diverge again)."""

    def on_epoch_end(self, epoch, logs=None):
        if finite_loss(logs):
            super().on_epoch_end(epoch, logs)

    def on_train_end(self, logs=None):
        if not self.model.stop_training:  # a stopped run keeps its backup to resume from
            super().on_train_end(logs)


class SafeCheckpoints(keras.callbacks.Callback):
    """``last.keras`` every epoch and ``best.keras`` on a new best validation AP, atomically;
    nothing for an epoch whose loss is not finite (the last good checkpoint stays)."""

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
        if not finite_loss(logs):
            return
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
