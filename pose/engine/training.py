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

import csv
import dataclasses
import io
import json
import logging
import os
import shutil

import keras

from datasets.coco import load_coco, load_train_records
from datasets.metadata import DatasetMeta
from datasets.pipeline import PipelineStats, build_dataset
from datasets.transforms import Augmentation
from pose.checks import check_output_folder
from pose.codec import codec_for_model
from pose.config import ConfigError, config_to_dict, load_config, save_config
from pose.engine.callbacks import (
    LR_SCHEDULES,
    FiniteBackupAndRestore,
    FirstStepNotice,
    HeatmapImages,
    LearningRateLogger,
    SafeCheckpoints,
    StopOnNonFiniteLoss,
    ValidationAP,
    learning_rate_schedule,
)
from pose.engine.checkpoint import build_model, check_model_config
from pose.engine.distribution import (
    SyncMovingStatistics,
    adapt_to_multiworker,
    make_strategy,
    weights_digest,
    worker_role,
    worker_scratch,
)
from pose.engine.pretrained import initialize_from, require_init_weights
from pose.errors import UserError
from pose.fileio import write_json, write_text
from pose.models.losses import JointsMSELoss

logger = logging.getLogger(__name__)


def augmentation_from_config(data):
    """The ``Augmentation`` of a ``DataConfig``: its fields of the same names (the
    defaults of both are ``Augmentation``'s)."""
    names = [f.name for f in dataclasses.fields(Augmentation) if hasattr(data, f.name)]
    return Augmentation(**{name: getattr(data, name) for name in names})


# What train.init_weights does not carry over, said in the log and in init_weights.json: a
# checkpoint's optimizer (Adam's moments and step, a mixed-precision run's loss scale) is
# not restored, since a new run starts its learning-rate schedule at epoch 1 (a resumed run
# restores its own optimizer from backup/ instead).
FRESH_OPTIMIZER = ("the optimizer starts fresh: train.init_weights carries the network's "
                   "weights only, not a checkpoint's optimizer state (Adam's moments, step "
                   "count, loss scale), because this run's schedule starts at epoch 1; to "
                   "continue a run with its optimizer, re-run its own command (it resumes "
                   "from its backup/)")


def _write_init_report(report, train_config, workdir, verbose):
    """Write what ``initialize_from`` loaded, skipped and left fresh to the workdir."""
    write_json(dict(source=os.path.abspath(train_config.init_weights), **report.as_dict(),
                    optimizer=FRESH_OPTIMIZER),
               os.path.join(workdir, "init_weights.json"))
    if verbose:
        logger.info("initial weights from %s: %s (details in %s); %s",
                    train_config.init_weights, report.summary(),
                    os.path.join(workdir, "init_weights.json"), FRESH_OPTIMIZER)


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
    if config.train.lr_schedule not in LR_SCHEDULES:
        raise ConfigError(f"{source}: train.lr_schedule must be one of "
                          f"{', '.join(LR_SCHEDULES)}, got {config.train.lr_schedule!r}")
    if config.data.image_cache_mib < 0:
        raise ConfigError(f"{source}: data.image_cache_mib must be >= 0 (0: no cache), got "
                          f"{config.data.image_cache_mib!r}")
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


# What a run writes into its workdir (config.yaml first of all, so every run has one).
RUN_OUTPUTS = ("config.yaml", "last.keras", "last.yaml", "best.keras", "best.yaml",
               "best.json", "log.csv", FINISHED_FILE, "backup", "tensorboard", "eval")


def check_workdir_is_a_run(workdir):
    """Refuse a workdir that holds files with the names a run writes but no run (no
    ``config.yaml``): a user's ``best.keras`` or ``log.csv`` there would be replaced.

    Raises:
        UserError: naming the workdir and those files (``--force`` trains there anyway).
    """
    if os.path.isfile(os.path.join(workdir, "config.yaml")):
        return
    taken = [name for name in RUN_OUTPUTS if os.path.lexists(os.path.join(workdir, name))]
    if taken:
        raise UserError(f"{workdir} holds {', '.join(taken)} but no training run of this "
                        "project (no config.yaml): training would replace them; choose "
                        "another --workdir, or pass --force to train there anyway")


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
    # the trainer's files have names of their own: only a file, the images folders or a
    # read-only place are refused
    check_output_folder(workdir, [data.resolve(data.train_images), data.resolve(data.val_images)],
                        option="workdir")
    if not force:
        check_workdir_is_a_run(workdir)
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
                            augmentation=augmentation_from_config(config.data), stats=stats,
                            image_cache_mib=data.image_cache_mib)
    try:
        sample_images, sample_heatmaps, _ = next(iter(dataset.take(1)))
    except StopIteration:
        raise UserError(
            f"no training batch can be made: none of the {len(records)} training images "
            f"could be read ({stats.missing_files} missing, {stats.decode_errors} not "
            f"decodable), e.g. {list(stats.failed_paths)[:3]}") from None

    init_report = None
    if config.train.init_weights:  # read before anything is written: it may be unusable
        with distribution.scope():
            init_report = initialize_from(model, config.train.init_weights,
                                          allow_partial=config.train.init_partial)
    os.makedirs(workdir, exist_ok=True)  # everything is checked: the first write
    save_config(config, os.path.join(workdir, "config.yaml"))
    if init_report is not None:
        _write_init_report(init_report, config.train, workdir, verbose)
    log_path = os.path.join(workdir, "log.csv")
    trim_log(log_path, epochs_done)
    if state == "resume" and verbose:
        logger.info("resuming %s from epoch %d of %d (epochs 1-%d done; state in %s)",
                    workdir, epochs_done + 1, config.train.epochs, epochs_done,
                    os.path.join(workdir, "backup"))
    with distribution.scope():
        schedule = learning_rate_schedule(config.train, steps_per_epoch)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=schedule),
                      loss=JointsMSELoss(ohkm_topk=config.train.ohkm_topk))
        # Built here, not inside the first traced step: a variable created during a
        # trace makes tf.function trace the whole step a second time (Keras defers the
        # build under the default strategy). The demo model's first step: 15.6 -> 9.0 s.
        model.optimizer.build(model.trainable_variables)

    callbacks = [SyncMovingStatistics(distribution)] if adapt_to_multiworker(
        model, distribution) else []
    divergence = StopOnNonFiniteLoss()
    callbacks += [divergence, LearningRateLogger()]
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
        FiniteBackupAndRestore(os.path.join(workdir, "backup")),
    ]
    if verbose:
        callbacks.insert(0, FirstStepNotice())
        logger.info("training %d instances, %d steps/epoch of %d on %d replica(s), "
                    "%d epochs -> %s", len(records), steps_per_epoch, global_batch,
                    distribution.num_replicas_in_sync, config.train.epochs, workdir)
    # Repeated, so that an image skipped as unreadable never cuts an epoch short.
    # shuffle=False: the tf.data pipeline shuffles with the run's seed; Keras would only warn
    # that it ignores its own default (shuffle=True) for a dataset, on every fit.
    history = model.fit(dataset.repeat(), epochs=config.train.epochs,
                        steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=verbose,
                        shuffle=False)
    if verbose and stats.skipped:
        logger.info("skipped unreadable images: %s", stats.as_dict())
    if verbose:
        logger.info("final weights sha256 %s", weights_digest(model))
    if divergence.stopped_at is not None:
        raise diverged_error(divergence.stopped_at, workdir, config.train.lr)
    write_json({"epochs": config.train.epochs}, os.path.join(workdir, FINISHED_FILE))
    return history


class TrainingDiverged(UserError):
    """The training loss became NaN or infinite (a too high learning rate, bad data)."""


def diverged_error(stopped_at, workdir, lr):
    """The ``TrainingDiverged`` that says where the loss stopped being finite and what the
    workdir still holds."""
    epoch, batch, loss = stopped_at
    last = os.path.join(workdir, "last.keras")
    kept = (f"{last} holds the last epoch that ended with a finite loss" if os.path.isfile(last)
            else "no checkpoint was written")
    return TrainingDiverged(f"training stopped: the loss became {loss} in epoch {epoch + 1}, "
                            f"step {batch + 1}; {kept}; lower train.lr (now {lr:g}) or check "
                            "the training data")
