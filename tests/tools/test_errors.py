"""Every tool turns a user mistake into one line ``error: ...`` on stderr and exit code 2,
before writing anything (the README's troubleshooting table quotes these messages). The
tools run in this process; the real process (its one line, its exit codes, --debug's
traceback) is tests/tools/test_careless_commands.py::test_a_real_process_prints_exactly_one_line."""

import dataclasses
import json
import re
import runpy
from pathlib import Path

import pytest

from pose.config import save_config
from pose.errors import run_tool

ROOT = Path(__file__).resolve().parents[2]


def _main(tool):
    """``main`` of ``tools/<tool>.py``, loaded in this process (no TensorFlow start-up)."""
    return runpy.run_path(str(ROOT / "tools" / f"{tool}.py"), run_name="tool_under_test")["main"]


def _run(capsys, tool, *args):
    code = run_tool(_main(tool), [str(a) for a in args])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


@pytest.fixture
def config_file(tmp_path, tiny_config):
    path = tmp_path / "exp.yaml"
    save_config(tiny_config, path)
    return path


def _edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize("old, new, message", [
    ("  lr: 0.001\n", "  learning_rate: 0.001\n",
     r"error: .*exp.yaml: unknown key train.'learning_rate'; known: batch_size, "),
    ("  width: 8\n", "  width: wide\n", r"error: .*exp.yaml: model.width: expected int, "
     r"got 'wide'$"),
    ("  width: 8\n", "  width: -16\n", r"error: .*exp.yaml: model: HRNet width must be a "
     r"positive integer, got -16$"),
    ("  psa_placement: branch\n", "  psa_placement: everywhere\n",
     r"error: .*exp.yaml: model: HRNet psa_placement must be one of \('none', 'branch', "
     r"'block'\), got 'everywhere'$"),
    ("  psa_form: paper\n", "  psa_form: torch\n",
     r"error: .*exp.yaml: model: HRNet psa_form must be one of \('paper', 'official', "
     r"'port'\), got 'torch'$"),
])
def test_train_config_mistakes_before_anything_is_written(capsys, tmp_path, config_file,
                                                          old, new, message):
    _edit(config_file, old, new)
    code, line = _run(capsys, "train", "--config", config_file, "--workdir", tmp_path / "run")
    assert code == 2
    assert re.match(message, line), line
    assert not (tmp_path / "run").exists()


def test_set_typo_and_truncated_annotation_file(capsys, tmp_path, config_file, tiny_config):
    code, line = _run(capsys, "train", "--config", config_file, "--workdir", tmp_path / "run",
                      "--set", "train.epoch=3")
    assert code == 2 and line.startswith("error: override 'train.epoch=3' for ")
    assert "unknown key 'train.epoch'" in line
    source = Path(tiny_config.data.root) / tiny_config.data.train_annotations
    truncated = tmp_path / "truncated.json"
    truncated.write_bytes(source.read_bytes()[:1000])
    code, line = _run(capsys, "train", "--config", config_file, "--workdir", tmp_path / "run",
                      "--set", f"data.train_annotations={truncated}")
    assert code == 2
    assert line.startswith(f"error: annotation file '{truncated}' is not valid JSON: ")
    assert not (tmp_path / "run").exists()


def test_training_images_all_unreadable(capsys, tmp_path, tiny_config):
    source = Path(tiny_config.data.root) / tiny_config.data.train_annotations
    images = tmp_path / "images"
    images.mkdir()
    for image in json.loads(source.read_text())["images"]:
        (images / image["file_name"]).write_bytes(b"not a JPEG")
    config = dataclasses.replace(tiny_config, data=dataclasses.replace(
        tiny_config.data, train_images=str(images)))
    save_config(config, tmp_path / "exp.yaml")
    code, line = _run(capsys, "train", "--config", tmp_path / "exp.yaml",
                      "--workdir", tmp_path / "run", "--no-validate")
    assert code == 2
    assert line.startswith("error: no training batch can be made: none of the ")
    assert "training images could be read (0 missing, " in line
    assert not (tmp_path / "run").exists()


def test_missing_and_corrupt_checkpoints(capsys, tmp_path):
    code, line = _run(capsys, "test", "--weights", tmp_path / "none.keras", "--out", tmp_path)
    assert (code, line) == (2, f"error: checkpoint not found: {tmp_path / 'none.keras'}")
    empty = tmp_path / "empty.keras"
    empty.write_bytes(b"")
    code, line = _run(capsys, "test", "--weights", empty, "--out", tmp_path / "o")
    assert (code, line) == (2, f"error: corrupt checkpoint {empty}: empty file")
    image = tmp_path / "a.jpg"
    image.write_bytes(b"x")
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(b"PK\x03\x04 truncated")
    code, line = _run(capsys, "infer", "--weights", truncated, image, "--out", tmp_path / "o")
    assert (code, line) == (2, f"error: corrupt checkpoint {truncated}: not a complete Keras "
                               "archive (truncated, or another format)")
    code, line = _run(capsys, "export", "--weights", empty, "--format", "tflite",
                      "--out", tmp_path / "m.tflite")
    assert (code, line) == (2, f"error: corrupt checkpoint {empty}: empty file")
    assert not (tmp_path / "o").exists()
