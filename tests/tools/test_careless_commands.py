"""The careless command lines of issue 21, each through the tool's ``main`` (in this
process: no TensorFlow start-up per case): exactly one stderr line ``error: ...``, exit code
2, and nothing written or replaced. Two real processes check that TensorFlow's C++ start-up
lines stay off stderr (the in-process cases cannot see them)."""

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from pose.config import save_config
from pose.errors import run_tool
from pose.options import max_threads

ROOT = Path(__file__).resolve().parents[2]


def _main(tool):
    return runpy.run_path(str(ROOT / "tools" / f"{tool}.py"), run_name="tool_under_test")["main"]


def _one_line(capsys, tool, *args):
    """Run the tool; return its single stderr line (asserting that there is exactly one)
    after asserting exit code 2."""
    code = run_tool(_main(tool), [str(a) for a in args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.fixture(scope="module")
def made(tmp_path_factory, tiny_config, randomized):
    """A tiny checkpoint with its config, an input folder of two photos, an exp.yaml."""
    import shutil

    from pose.engine.checkpoint import build_model, save_model

    root = tmp_path_factory.mktemp("careless")
    save_model(randomized(build_model(tiny_config.model)), root / "m.keras", tiny_config)
    save_config(tiny_config, root / "exp.yaml")
    (root / "in").mkdir()
    val = Path(tiny_config.data.root) / tiny_config.data.val_images
    for photo in sorted(val.glob("*.jpg"))[:2]:
        shutil.copy(photo, root / "in" / photo.name)
    return root


def _snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_infer_options_and_exports(capsys, made, tmp_path):
    before = _snapshot(made)
    infer = ["--weights", made / "m.keras", made / "in"]
    (tmp_path / "rand.tflite").write_bytes(os.urandom(3000))
    (tmp_path / "text.onnx").write_text("hello")
    for name in ("rand", "text"):  # the config beside each, as an export has
        (tmp_path / f"{name}.yaml").write_bytes((made / "m.yaml").read_bytes())
    out = tmp_path / "out"
    line = _one_line(capsys, "infer", "--weights", tmp_path / "rand.tflite", made / "in",
                     "--out", out)
    assert line.startswith(f"error: {tmp_path / 'rand.tflite'}: not a readable TFLite model")
    line = _one_line(capsys, "infer", "--weights", tmp_path / "text.onnx", made / "in",
                     "--out", out)
    assert line.startswith(f"error: {tmp_path / 'text.onnx'}: not a readable ONNX model")
    for args, message in [
        (["--input-size", "0", "0"], "--input-size must be an integer in [1, 2048], got 0"),
        (["--batch-size", "-3"], "--batch-size must be an integer in [1, 1024], got -3"),
        (["--batch-size", "0"], "--batch-size must be an integer in [1, 1024], got 0"),
        (["--threshold", "nan"], "--threshold must be a number in [0.0, 1.0], got nan"),
        (["--box-threshold", "inf"], "--box-threshold must be a number in [0.0, 1.0], got inf"),
        (["--batch-size", "abc"], "argument --batch-size: invalid int value: 'abc'"),
        (["--threads", "0"], f"--threads must be an integer in [1, {max_threads()}], got 0"),
        (["--threads", "100000"],
         f"--threads must be an integer in [1, {max_threads()}], got 100000"),
    ]:
        assert _one_line(capsys, "infer", *infer, "--out", out, *args).startswith(
            f"error: {message}"), args
    # outputs that are inputs, or a file where the folder goes
    for target, message in [
        (made / "in", f"--out {made / 'in'} holds the input {made / 'in'}"),
        (made / "m.keras", f"--out {made / 'm.keras'} is an existing file; this output is a "
                           "folder"),
    ]:
        assert _one_line(capsys, "infer", *infer, "--out", target).startswith(
            f"error: {message}"), target
    photo = sorted((made / "in").iterdir())[0]
    assert _one_line(capsys, "infer", "--weights", made / "m.keras", photo, "--out",
                     made / "in").startswith(f"error: --out {made / 'in'} holds the input ")
    # a folder of the user's own files, and the boxes file inside --out
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"a user's photo")
    assert _one_line(capsys, "infer", *infer, "--out", mine) == (
        f"error: --out {mine} holds files this tool did not write (holiday.jpg): choose a "
        "new or empty folder, or pass --overwrite to write among them")
    (mine / "boxes.json").write_text("[]")
    assert _one_line(capsys, "infer", *infer, "--out", mine, "--boxes", mine / "boxes.json",
                     "--overwrite").startswith(
        f"error: --out {mine} holds the input {mine / 'boxes.json'}")
    assert (mine / "holiday.jpg").read_bytes() == b"a user's photo"
    assert _one_line(capsys, "test", "--weights", made / "m.keras", "--out", mine) == (
        f"error: --out {mine} holds files this tool did not write (boxes.json, holiday.jpg): "
        "choose a new or empty folder, or pass --overwrite to write among them")
    assert not out.exists()
    assert _snapshot(made) == before  # no input photograph or checkpoint replaced


def test_train_values_and_files(capsys, made, tmp_path):
    config = made / "exp.yaml"
    work = tmp_path / "run"
    for override, message in [
        ("train.batch_size=0", "train.batch_size must be an integer in [1, 1024], got 0"),
        ("train.epochs=-1", "train.epochs must be an integer in [1, 10000], got -1"),
        ("train.lr=nan", "train.lr must be a positive finite number, got nan"),
        ("test.keypoint_score_threshold=.inf",
         "test.keypoint_score_threshold must be a number in [0.0, 1.0], got inf"),
        ("data.flip_prob=1.5", "data.flip_prob must be a number in [0.0, 1.0], got 1.5"),
        ("train.seed=-1", "train.seed must be an integer in [0, 4294967295], got -1"),
        ("test.decoding=argmax",
         "test.decoding must be one of quarter_offset, dark, udp, got 'argmax'"),
    ]:
        line = _one_line(capsys, "train", "--config", config, "--workdir", work, "--set",
                         override)
        assert line == f"error: override '{override}' for {config}: {message}"
    duplicated = tmp_path / "dup.yaml"
    duplicated.write_text(config.read_text().replace("train:\n", "train:\n  lr: 0.5\n", 1))
    assert _one_line(capsys, "train", "--config", duplicated, "--workdir", work) == \
        _duplicate_message(duplicated)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"PK\x03\x04 not a checkpoint")
    line = _one_line(capsys, "train", "--config", config, "--workdir", work, "--set",
                     f"train.init_weights={corrupt}")
    assert line.startswith(f"error: {corrupt}: ")
    line = _one_line(capsys, "train", "--config", config, "--workdir", work, "--set",
                     f"train.init_weights={tmp_path / 'absent.pth'}")
    assert line.startswith(f"error: train.init_weights: {tmp_path / 'absent.pth'} not found")
    assert not work.exists()  # refused before config.yaml or anything else was written
    line = _one_line(capsys, "train", "--config", config, "--workdir", made / "m.keras")
    assert line.startswith(f"error: workdir {made / 'm.keras'} is an existing file")


def _duplicate_message(path):
    lines = path.read_text().splitlines()
    first = lines.index("  lr: 0.5") + 1
    second = next(i for i, text in enumerate(lines, 1) if text.startswith("  lr: ") and
                  i != first)
    return f"error: {path}: duplicate key 'lr' at lines {first} and {second}; keep one of them"


def test_test_tool_data_that_matches_nothing(capsys, made, tiny_config, tmp_path):
    data = Path(tiny_config.data.root)
    annotations = data / tiny_config.data.val_annotations
    detections = data / tiny_config.test.detections
    out = tmp_path / "out"
    weights = ["--weights", made / "m.keras"]

    text = json.loads(annotations.read_text())
    for ann in text["annotations"]:
        ann["keypoints"] = [str(v) for v in ann["keypoints"]]
    strings = tmp_path / "strings.json"
    strings.write_text(json.dumps(text))
    line = _one_line(capsys, "test", *weights, "--out", out, "--annotations", strings)
    assert line.startswith(f"error: annotation file '{strings}': annotations[0] (id ")
    assert "has keypoints that are not a list of numbers" in line

    boxes = json.loads(detections.read_text())
    for box in boxes:
        box["image_id"] += 10**6
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps(boxes))
    line = _one_line(capsys, "test", *weights, "--out", out, "--boxes", elsewhere)
    assert line.startswith("error: nothing to evaluate: no usable person box lies on an "
                           f"image of {annotations}: ")
    assert f"dropped: unknown_image={len(boxes)}" in line

    line = _one_line(capsys, "test", *weights, "--out", out, "--images", tmp_path / "nope")
    assert line == (f"error: images folder not found: {tmp_path / 'nope'} (the images of "
                    f"{annotations})")
    line = _one_line(capsys, "test", *weights, "--out", made / "m.keras")
    assert line.startswith(f"error: --out {made / 'm.keras'} is an existing file")
    assert not out.exists()


def test_export_and_convert_never_overwrite_their_input(capsys, made, tmp_path):
    before = _snapshot(made)
    weights = made / "m.keras"
    line = _one_line(capsys, "export", "--weights", weights, "--format", "onnx", "--out",
                     weights)
    assert line.startswith(f"error: --out {weights} is an input of this command")
    existing = tmp_path / "existing_file"
    existing.write_text("keep me")
    line = _one_line(capsys, "export", "--weights", weights, "--format", "saved_model",
                     "--out", existing)
    assert line.startswith(f"error: --out {existing} is an existing file; this output is a "
                           "folder")
    line = _one_line(capsys, "export", "--weights", weights, "--format", "saved_model",
                     "--out", made / "in")
    assert line.startswith(f"error: --out {made / 'in'} is a folder that is not a SavedModel")
    line = _one_line(capsys, "export", "--weights", weights, "--format", "tflite", "--out",
                     made / "in")
    assert line.startswith(f"error: --out {made / 'in'} is an existing folder; this output "
                           "is a file")
    pth_named_keras = tmp_path / "model.keras"  # a checkpoint given its output's name
    pth_named_keras.write_bytes(b"PK\x03\x04 stands in for a .pth")
    line = _one_line(capsys, "convert", pth_named_keras, "--out", pth_named_keras)
    assert line.startswith(f"error: --out {pth_named_keras} is an input of this command")
    assert pth_named_keras.read_bytes() == b"PK\x03\x04 stands in for a .pth"
    assert existing.read_text() == "keep me"
    assert _snapshot(made) == before
    line = _one_line(capsys, "convert", tmp_path / "x.pth")  # argparse: one line too
    assert line.startswith("error: the following arguments are required: --out (see ")


def test_a_read_only_output_folder_is_refused_before_loading(capsys, made, tmp_path,
                                                             monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: make the permission check see a lock
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode, **kw: (
            False if os.path.abspath(path) == str(locked) else real_access(path, mode, **kw)))
    try:
        for target in (locked, locked / "sub"):
            line = _one_line(capsys, "infer", "--weights", made / "m.keras", made / "in",
                             "--out", target)
            assert line == (f"error: --out {target}: cannot write into {locked} (read-only); "
                            "choose another --out")
        line = _one_line(capsys, "export", "--weights", made / "m.keras", "--format",
                         "tflite", "--out", locked / "m.tflite")
        assert "cannot write into" in line
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize("tool, args", [
    ("test", ["--weights", "{tmp}/none.keras", "--out", "{tmp}/o"]),
    ("train", ["--config", "{tmp}/exp.yaml", "--workdir", "{tmp}/run", "--set",
               "train.batch_size=0"]),
])
def test_a_real_process_prints_exactly_one_line(tmp_path, tiny_config, tool, args):
    """No TensorFlow/absl/CUDA start-up line reaches stderr, whatever TF_CPP_MIN_LOG_LEVEL
    says (absl's and cudart_stub's lines ignore it): one line and exit 2, no traceback;
    --debug shows them and the traceback (exit 1)."""
    save_config(tiny_config, tmp_path / "exp.yaml")
    command = [sys.executable, f"tools/{tool}.py"] + [a.format(tmp=tmp_path) for a in args]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 2
    assert len(run.stderr.splitlines()) == 1 and run.stderr.startswith("error: "), run.stderr
    assert not (tmp_path / "o").exists() and not (tmp_path / "run").exists()
    if tool == "test":
        assert run.stderr == f"error: checkpoint not found: {tmp_path / 'none.keras'}\n"
        debug = subprocess.run(command + ["--debug"], cwd=ROOT, env=env, capture_output=True,
                               text=True, timeout=300)
        assert debug.returncode == 1 and "Traceback" in debug.stderr
        assert "CheckpointError: checkpoint not found" in debug.stderr
