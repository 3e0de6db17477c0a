"""Training end to end on generated data: checkpoints, evaluation tool, resume, distribution."""

import csv
import dataclasses
import json
import logging
import os
import runpy
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from datasets.metadata import DatasetMeta, MetadataError
from pose.config import ConfigError, load_config, save_config
from pose.engine.callbacks import EpochCosineDecay, EpochStepDecay, learning_rate_schedule
from pose.engine.distribution import weights_digest
from pose.engine.training import train, trim_log
from pose.errors import UserError, run_tool

ROOT = Path(__file__).resolve().parents[3]


def _python(args, **kwargs):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, **kwargs)


def _run_tool_here(name, args):
    """``tools/NAME`` in this process (TensorFlow is already imported and started): its
    exit code. The tools' own processes are tested in tests/tools/."""
    main = runpy.run_path(str(ROOT / "tools" / name), run_name="tool")["main"]
    return run_tool(main, [str(a) for a in args])


def _epochs_in_log(path):
    with open(path, newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def test_step_schedule_matches_the_epoch_boundaries():
    schedule = EpochStepDecay(1e-3, steps_per_epoch=10, boundaries=(2, 3), factor=0.1,
                              warmup_epochs=1)
    values = [float(schedule(step)) for step in (0, 9, 10, 19, 20, 29, 30, 45)]
    expected = [1e-4, 1e-3, 1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5]
    np.testing.assert_allclose(values, expected, rtol=1e-5)


def test_cosine_schedule_warms_up_then_follows_the_half_cosine_to_zero(tiny_config):
    schedule = EpochCosineDecay(2e-3, steps_per_epoch=10, epochs=6, warmup_epochs=2)
    steps = np.array([0, 9, 19, 20, 35, 50, 59, 60, 80])
    epoch = steps / 10
    cosine = 0.5 * (1 + np.cos(np.pi * np.clip((epoch - 2) / 4, 0, 1)))  # by hand
    expected = 2e-3 * cosine * np.minimum(1.0, (steps + 1) / 20)
    np.testing.assert_allclose([float(schedule(int(s))) for s in steps], expected, rtol=1e-5,
                               atol=1e-9)  # float32 near 0
    assert expected[3] == pytest.approx(2e-3) and expected[-1] == 0.0
    assert float(schedule(40)) == pytest.approx(1e-3)  # halfway through the cosine

    cosine_train = dataclasses.replace(tiny_config.train, lr_schedule="cosine", epochs=6)
    assert isinstance(learning_rate_schedule(cosine_train, 10), EpochCosineDecay)
    assert isinstance(learning_rate_schedule(tiny_config.train, 10), EpochStepDecay)
    wrong = dataclasses.replace(tiny_config, train=dataclasses.replace(
        tiny_config.train, lr_schedule="linear"))
    with pytest.raises(ConfigError, match="lr_schedule must be one of step, cosine"):
        train(wrong, "unused-workdir", verbose=0)
    # the range table refuses it when the section is built, before any training
    with pytest.raises(ConfigError, match="data.image_cache_mib must be an integer >= 0"):
        dataclasses.replace(tiny_config.data, image_cache_mib=-1)


def test_short_training_writes_a_checkpoint_that_the_test_tool_evaluates(tmp_path, tiny_config):
    import warnings

    workdir = tmp_path / "run"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = train(tiny_config, str(workdir), verbose=0)
    assert not [w for w in caught if "shuffle" in str(w.message)]  # nothing to read past
    assert np.isfinite(history.history["loss"]).all()
    for name in ("last.keras", "last.yaml", "best.keras", "best.yaml", "best.json",
                 "log.csv", "config.yaml"):
        assert (workdir / name).is_file(), name
    assert _epochs_in_log(workdir / "log.csv") == [0]
    assert (workdir / "eval" / "epoch_001" / "metrics.json").is_file()

    out = tmp_path / "test_out"
    assert _run_tool_here("test.py", ["--weights", workdir / "best.keras", "--gt-boxes",
                                      "--out", out]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["boxes"] == "ground truth" and metrics["flip_test"] is True
    assert 0.0 <= metrics["AP"] <= 1.0 and metrics["num_boxes"] > 0
    results = json.loads((out / "keypoints_results.json").read_text())
    assert results and len(results[0]["keypoints"]) == 17 * 3


def test_rerun_after_a_kill_resumes_from_the_backup(tmp_path, tiny_config, caplog):
    config = dataclasses.replace(tiny_config, train=dataclasses.replace(
        tiny_config.train, epochs=4, batch_size=2, lr_steps=(2,)))
    config_path = tmp_path / "config.yaml"
    save_config(config, config_path)
    workdir = tmp_path / "run"
    command = [sys.executable, "tools/train.py", "--config", str(config_path),
               "--workdir", str(workdir), "--no-validate"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    metadata = workdir / "backup" / "training_metadata.json"
    deadline = time.time() + 240
    try:
        while not metadata.exists() and process.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert metadata.exists(), "the first run never finished an epoch"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    backed_up_epoch = json.loads(metadata.read_text())["epoch"]
    assert backed_up_epoch < 4, "the run finished before it could be killed"

    rerun = _python(["tools/train.py", "--config", str(config_path), "--workdir",
                     str(workdir), "--no-validate"], timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    first_epoch_line = next(line for line in rerun.stdout.splitlines()
                            if line.startswith("Epoch "))
    assert first_epoch_line.startswith(f"Epoch {backed_up_epoch + 1}/4")
    assert f"resuming {workdir} from epoch {backed_up_epoch + 1} of 4" in rerun.stdout
    assert _epochs_in_log(workdir / "log.csv") == [0, 1, 2, 3]  # each epoch once
    with open(workdir / "log.csv", newline="") as f:  # the rate used in each epoch
        rates = [float(row["learning_rate"]) for row in csv.DictReader(f)]
    np.testing.assert_allclose(rates, [1e-3, 1e-3, 1e-4, 1e-4], rtol=1e-5)
    assert not (workdir / "backup").exists()  # removed once training completed

    # the same command again (in this process: no TensorFlow start-up to pay): says so,
    # exits 0 and touches nothing
    before = {p.name: p.stat().st_mtime_ns for p in workdir.iterdir() if p.is_file()}
    with caplog.at_level(logging.INFO, logger="pose.engine.training"):
        assert _run_tool_here("train.py", ["--config", config_path, "--workdir", workdir,
                                           "--no-validate"]) == 0
    assert "already finished its 4 epochs; nothing to do (pass --force" in caplog.text
    assert {p.name: p.stat().st_mtime_ns for p in workdir.iterdir() if p.is_file()} == before


MIRRORED_SCRIPT = """
import sys, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from pose.config import load_config
from pose.engine.training import train
history = train(load_config(sys.argv[1]), sys.argv[2], strategy="mirrored", verbose=0,
                validate=False)
print("replicas", tf.distribute.MirroredStrategy().num_replicas_in_sync,
      "loss", history.history["loss"][-1])

# SyncMovingStatistics on this strategy's 2 replicas: each contributes the same moving
# statistics, so their average is exactly those values (a sum would double them).
import keras, numpy as np
from pose.engine.distribution import SyncMovingStatistics
strategy = tf.distribute.MirroredStrategy()
with strategy.scope():
    model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Conv2D(2, 1),
                              keras.layers.BatchNormalization(), keras.layers.Conv2D(3, 1),
                              keras.layers.BatchNormalization()])
rng = np.random.default_rng(0)
for w in model.non_trainable_weights:  # distinct values: a misplaced slice shows too
    w.assign(rng.uniform(1.0, 2.0, w.shape).astype("float32"))
before = [w.numpy() for w in model.non_trainable_weights]
callback = SyncMovingStatistics(strategy)
callback.set_model(model)
callback.on_epoch_end(0)
print("statistics_kept", all(np.array_equal(b, w.numpy())
                             for b, w in zip(before, model.non_trainable_weights)))
"""


def test_two_training_steps_under_mirrored_strategy_on_two_cpus(tmp_path, tiny_config):
    # 40 images give ~80 instances; a per-replica batch of 16 (global 32) makes 2 steps.
    config = dataclasses.replace(
        tiny_config, train=dataclasses.replace(tiny_config.train, batch_size=16))
    config_path = tmp_path / "config.yaml"
    save_config(config, config_path)
    result = _python(["-c", MIRRORED_SCRIPT, str(config_path), str(tmp_path / "run")],
                     timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    words = result.stdout.split()
    assert words[words.index("replicas") + 1] == "2"
    assert np.isfinite(float(words[words.index("loss") + 1]))
    assert words[words.index("statistics_kept") + 1] == "True"  # averaged, not summed


def _free_local_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _start_worker_pair(config_path, workdir, tmpdir, logs):
    """Two ``tools/train.py --strategy multiworker`` processes on loopback (fresh ports)."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_local_ports(2)]}
    tmpdir.mkdir()
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TMPDIR=str(tmpdir),
                   TF_CONFIG=json.dumps({"cluster": cluster,
                                         "task": {"type": "worker", "index": index}}))
        with open(logs / f"{tmpdir.name}_worker{index}.log", "w") as log:
            processes.append(subprocess.Popen(
                [sys.executable, "tools/train.py", "--config", str(config_path), "--workdir",
                 str(workdir), "--strategy", "multiworker", "--no-validate"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
    return processes


def _kill(processes):
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait()


def test_two_workers_on_loopback_train_identically_and_resume_after_a_kill(tmp_path,
                                                                           tiny_config):
    """Two worker processes, ``TF_CONFIG``, ``--strategy multiworker``: identical weights,
    only the chief writes into the workdir, and a killed pair resumes where it was."""
    config = dataclasses.replace(
        tiny_config, train=dataclasses.replace(tiny_config.train, epochs=3, batch_size=4))
    config_path = tmp_path / "config.yaml"
    save_config(config, config_path)
    workdir, logs = tmp_path / "run", tmp_path / "logs"
    logs.mkdir()

    first = _start_worker_pair(config_path, workdir, tmp_path / "tmp_killed", logs)
    metadata = workdir / "backup" / "training_metadata.json"

    def worker_log_once_both_backed_up():
        """The non-chief's scratch folder and its log.csv rows once both workers backed up
        an epoch, else None. Each worker's backup is its last epoch-end callback, so once
        both wrote theirs, both log.csv rows exist too. The chief's alone says nothing
        about the other worker, whose callbacks run after the epoch's last collective at
        their own pace. Read here, before the kill: an epoch takes about a second, so
        the worker may already have finished and removed its scratch folder by the time
        the pair is killed (seen once on a loaded machine)."""
        if not metadata.exists():
            return None
        for scratch in (tmp_path / "tmp_killed").glob("pose_*"):
            try:
                if (scratch / "backup" / "training_metadata.json").exists():
                    epochs = _epochs_in_log(scratch / "log.csv")
                    if epochs:  # its row was once not yet visible when its backup was
                        return scratch, epochs
            except OSError:  # not written yet, or being removed
                continue
        return None

    deadline = time.time() + 600  # two TensorFlow start-ups on two loaded cores
    worker_log = None
    try:
        while (worker_log is None and time.time() < deadline
               and all(p.poll() is None for p in first)):
            worker_log = worker_log_once_both_backed_up()
            time.sleep(0.1)
        assert worker_log, (logs / "tmp_killed_worker0.log").read_text()[-3000:]
    finally:
        _kill(first)
    backed_up_epoch = json.loads(metadata.read_text())["epoch"]
    assert backed_up_epoch < 3, "the pair finished before it could be killed"
    # The non-chief wrote its files into its own temporary folder, not into the workdir.
    scratch, worker_epochs = worker_log
    assert scratch.name.startswith("pose_worker1_")
    assert worker_epochs  # at least the backed-up epoch's row

    second = _start_worker_pair(config_path, workdir, tmp_path / "tmp_resumed", logs)
    try:
        for process in second:
            process.wait(timeout=300)
    finally:
        _kill(second)
    outputs = [(logs / f"tmp_resumed_worker{i}.log").read_text() for i in range(2)]
    for process, output in zip(second, outputs):
        assert process.returncode == 0, output[-3000:]
        first_epoch = next(line for line in output.splitlines() if line.startswith("Epoch "))
        assert first_epoch.startswith(f"Epoch {backed_up_epoch + 1}/3"), first_epoch
    digests = [output.split("final weights sha256 ")[1].split()[0] for output in outputs]
    assert digests[0] == digests[1]  # both workers hold the same weights
    import keras

    assert weights_digest(keras.saving.load_model(workdir / "last.keras")) == digests[0]
    epochs = _epochs_in_log(workdir / "log.csv")
    assert epochs == [0, 1, 2]  # each epoch once (trim_log on the resume)
    # (a SIGKILL in the middle of an atomic write can leave its hidden temporary file)
    assert sorted(p.name for p in workdir.iterdir() if not p.name.startswith(".tmp-")) == [
        "config.yaml", "finished.json", "last.keras", "last.yaml", "log.csv", "tensorboard"]
    assert not list((tmp_path / "tmp_resumed").glob("pose_*"))  # the non-chief cleaned up


def test_mixed_precision_keeps_the_head_in_float32_and_restores_the_policy(tmp_path,
                                                                          tiny_config):
    import keras

    from pose.engine.checkpoint import build_model

    config = dataclasses.replace(
        tiny_config, train=dataclasses.replace(tiny_config.train, mixed_precision=True))
    history = train(config, str(tmp_path / "run"), verbose=0, validate=False)
    assert np.isfinite(history.history["loss"]).all()
    assert keras.mixed_precision.global_policy().name == "float32"
    # Checkpoints hold float32 master weights and load as a float32 model; the tools load
    # them without the optimizer (evaluation, inference, export; a resume restores its
    # own backup), so nothing warns about the loss-scale optimizer's extra variables.
    import warnings

    from pose.engine.checkpoint import load_model

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, _ = load_model(tmp_path / "run" / "last.keras")
    assert not [w for w in caught if "optimizer" in str(w.message)]
    assert model.get_layer("final_layer").compute_dtype == "float32"

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        mixed = build_model(config.model)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert mixed.get_layer("stage2_m0_b0_block0_conv1").compute_dtype == "float16"
    assert mixed.get_layer("final_layer").compute_dtype == "float32"
    assert mixed.output.dtype == "float32"


def test_crowdpose_style_set_trains_evaluates_and_infers_from_configs_alone(
        tmp_path, crowdpose_config, crowdpose_style_coco):
    """A 14-keypoint COCO-format file with CrowdPose's quirks (COCO's 17-keypoint skeleton
    in its category, no 'area'): two training steps, validation AP, then tools/test.py and
    tools/infer.py with nothing but the checkpoint (its config carries the metadata)."""
    workdir = tmp_path / "run"
    history = train(crowdpose_config, str(workdir), verbose=0)
    assert history.params["steps"] == 2 and np.isfinite(history.history["loss"]).all()
    saved = load_config(workdir / "best.yaml")
    preset = DatasetMeta.from_config(crowdpose_config.data)  # configs/datasets/crowdpose.yaml
    assert DatasetMeta.from_config(saved.data) == preset
    assert saved.data.keypoint_names[12:] == ("head", "neck")
    assert saved.data.skeleton == preset.names_of(preset.skeleton)  # not the file's 17-kp one
    val = json.loads((workdir / "eval" / "epoch_001" / "metrics.json").read_text())
    assert 0.0 <= val["AP"] <= 1.0 and val["num_boxes"] > 0

    out = tmp_path / "test_out"
    assert _run_tool_here("test.py", ["--weights", workdir / "best.keras", "--gt-boxes",
                                      "--out", out]) == 0
    results = json.loads((out / "keypoints_results.json").read_text())
    assert results and all(len(r["keypoints"]) == 14 * 3 for r in results)
    assert json.loads((out / "metrics.json").read_text())["AP"] >= 0.0

    infer_out = tmp_path / "infer_out"
    assert _run_tool_here("infer.py", ["--weights", workdir / "best.keras",
                                       crowdpose_style_coco / "val2017", "--out", infer_out,
                                       "--quiet"]) == 0
    people = json.loads((infer_out / "predictions.json").read_text())
    assert len(people) == 4 and all(len(p["keypoints"]) == 14 * 3 for p in people)


def test_metadata_and_model_arguments_are_checked_before_the_workdir_exists(
        tmp_path, crowdpose_config):
    workdir = tmp_path / "run"
    no_preset = dataclasses.replace(crowdpose_config, data=dataclasses.replace(
        crowdpose_config.data, dataset=None, oks_sigmas=(0.1,) * 14))
    with pytest.raises(MetadataError, match=r"person_keypoints_train2017.json: the "
                       r"category's skeleton refers to keypoints the file does not have: "
                       r"limb \[16, 14\] \(1-based"):
        train(no_preset, str(workdir), verbose=0)
    wrong_k = dataclasses.replace(crowdpose_config, model=dataclasses.replace(
        crowdpose_config.model, num_keypoints=17))
    with pytest.raises(ValueError, match=r"model.num_keypoints is 17 but .*train2017.json "
                       r"has 14 keypoints"):
        train(wrong_k, str(workdir), verbose=0)
    negative = dataclasses.replace(crowdpose_config, model=dataclasses.replace(
        crowdpose_config.model, width=-16))
    with pytest.raises(ValueError, match=r"model: HRNet width must be a positive integer, "
                       r"got -16"):
        train(negative, str(workdir), verbose=0)
    assert not workdir.exists()


def test_trim_log_drops_rows_of_epochs_not_done(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("epoch,learning_rate,loss\n0,0.001,1.0\n1,0.001,0.9\n2,0.001,0.8\n"
                   "1,0.001,0.95\n")
    trim_log(str(log), epochs_done=2)  # a run resuming at the third epoch
    assert _epochs_in_log(log) == [0, 1]
    assert "0.95" in log.read_text()  # the later row of epoch 1 is kept


def test_first_step_notice_does_not_promise_seconds(caplog):
    """The demo model's first step took 29-97 s on two loaded cores: the notice says so."""
    from pose.engine.callbacks import FirstStepNotice

    notice = FirstStepNotice()
    with caplog.at_level(logging.INFO, logger="pose.engine.callbacks"):
        notice.on_train_begin()
        notice.on_train_batch_end(0)
    begin, done = (r.getMessage() for r in caplog.records)
    assert "ten seconds to half a minute for the demo model" in begin
    assert "seconds for the demo" not in begin
    assert done.strip().startswith("first training step done after ")


def test_a_workdir_of_another_config_is_not_silently_reused(tmp_path, tiny_config):
    from pose.engine.training import FINISHED_FILE, run_state
    from pose.errors import UserError

    save_config(tiny_config, tmp_path / "config.yaml")
    assert run_state(str(tmp_path), tiny_config) == ("new", 0)
    (tmp_path / FINISHED_FILE).write_text('{"epochs": 1}')
    assert run_state(str(tmp_path), tiny_config) == ("finished", 1)
    longer = dataclasses.replace(tiny_config,
                                 train=dataclasses.replace(tiny_config.train, epochs=3))
    with pytest.raises(UserError, match=r"holds a finished run with another config "
                       r"\(train.epochs: 1 -> 3\); pass --force to retrain"):
        run_state(str(tmp_path), longer)


def test_augmentation_defaults_live_in_datasets_augmentation():
    from datasets.transforms import Augmentation
    from pose.config import DataConfig
    from pose.engine.training import augmentation_from_config

    assert augmentation_from_config(DataConfig()) == Augmentation()
    custom = DataConfig(scale_factor=0.1, flip_prob=0.0, half_body_min_joints=3)
    assert augmentation_from_config(custom) == Augmentation(scale_factor=0.1, flip_prob=0.0,
                                                            half_body_min_joints=3)


def test_a_workdir_of_a_users_files_named_like_a_run_is_refused(tmp_path, tiny_config):
    """A user's best.keras and log.csv in a folder that holds no run are not replaced;
    other files do not matter, and --force trains there anyway (not run here)."""
    from pose.engine.training import RUN_OUTPUTS, check_workdir_is_a_run

    workdir = tmp_path / "mine"
    workdir.mkdir()
    (workdir / "notes.txt").write_text("other names are never written")
    check_workdir_is_a_run(str(workdir))
    (workdir / "best.keras").write_bytes(b"my model")
    (workdir / "log.csv").write_text("my log")
    with pytest.raises(UserError) as error:
        train(tiny_config, str(workdir), verbose=0)
    assert str(error.value) == (
        f"{workdir} holds best.keras, log.csv but no training run of this project (no "
        "config.yaml): training would replace them; choose another --workdir, or pass "
        "--force to train there anyway")
    assert (workdir / "best.keras").read_bytes() == b"my model"
    assert sorted(p.name for p in workdir.iterdir()) == ["best.keras", "log.csv", "notes.txt"]
    (workdir / "config.yaml").write_text("model: {}\n")  # a run's workdir: its own rules
    check_workdir_is_a_run(str(workdir))
    assert RUN_OUTPUTS[0] == "config.yaml"
