"""Tests of pose.fileio: every write is atomic."""

import json
import os

import cv2
import numpy as np
import pytest

from pose import fileio


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "x.json"
    target.write_text('{"old": true}')

    def boom(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(fileio.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        fileio.write_json({"a": 1}, target)
    assert os.listdir(tmp_path) == ["x.json"]  # no temporary file left behind
    assert json.loads(target.read_text()) == {"old": True}  # the good file is untouched


def test_failed_writer_keeps_the_old_file(tmp_path):
    target = tmp_path / "model.keras"
    target.write_bytes(b"good")
    with pytest.raises(RuntimeError), fileio.atomic_path(target) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"good"
    assert os.listdir(tmp_path) == ["model.keras"]


def test_json_compact_and_indented(tmp_path):
    fileio.write_json({"a": [1, 2]}, tmp_path / "c.json", indent=None)
    assert (tmp_path / "c.json").read_text() == '{"a":[1,2]}'
    fileio.write_json({"a": 1}, tmp_path / "sub" / "i.json")
    assert (tmp_path / "sub" / "i.json").read_text() == '{\n  "a": 1\n}'


def test_atomic_directory_replaces_a_folder(tmp_path):
    target = tmp_path / "saved"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with fileio.atomic_directory(target) as tmp:
        with open(os.path.join(tmp, "new.txt"), "w") as f:
            f.write("new")
    assert os.listdir(target) == ["new.txt"]
    with pytest.raises(ValueError), fileio.atomic_directory(target) as tmp:
        raise ValueError("export failed")
    assert os.listdir(target) == ["new.txt"]
    assert sorted(os.listdir(tmp_path)) == ["saved"]


def test_save_image_is_atomic(tmp_path):
    image = np.zeros((10, 12, 3), np.uint8)
    image[..., 0] = 255  # red in RGB
    path = fileio.save_image(image, tmp_path / "a.png")
    assert tuple(cv2.imread(path)[0, 0]) == (0, 0, 255)  # BGR on disk
    with pytest.raises(Exception):
        fileio.save_image(image, tmp_path / "b.notaformat")
    assert sorted(os.listdir(tmp_path)) == ["a.png"]
