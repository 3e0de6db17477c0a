"""pose.checks: output paths refused before anything is written, and the numeric checks."""

import json
import os

import numpy as np
import pytest

from pose.checks import (
    MANIFEST_NAME,
    OutputError,
    OutputManifest,
    check_output_file,
    check_output_folder,
    check_positive_options,
    check_threads,
    claim_output_files,
    claim_output_folder,
    finite,
    max_threads,
    positive,
)
from pose.errors import UserError


def test_output_files(tmp_path):
    source = tmp_path / "in.keras"
    source.write_bytes(b"x")
    (tmp_path / "link.keras").symlink_to(source)
    for path in (source, tmp_path / "link.keras", tmp_path / "." / "in.keras"):
        with pytest.raises(OutputError, match="is an input of this command"):
            check_output_file(path, [source])
    with pytest.raises(OutputError, match="is an existing folder; this output is a file"):
        check_output_file(tmp_path, [source])
    with pytest.raises(OutputError, match=r"in.keras is a file, not a folder"):
        check_output_file(source / "m.tflite", [])
    check_output_file(tmp_path / "new" / "m.tflite", [source, None, tmp_path / "absent"])
    check_output_file(tmp_path / "other.keras", [source])  # an existing file: replaced
    assert sorted(os.listdir(tmp_path)) == ["in.keras", "link.keras"]  # nothing created


def test_output_folders(tmp_path):
    (tmp_path / "photos").mkdir()
    photo = tmp_path / "photos" / "a.jpg"
    photo.write_bytes(b"x")
    with pytest.raises(OutputError, match="photos is the input folder"):
        check_output_folder(tmp_path / "photos", [tmp_path / "photos"])
    with pytest.raises(OutputError, match=f"photos holds the input {photo}"):
        check_output_folder(tmp_path / "photos", [photo])
    with pytest.raises(OutputError, match="a.jpg is an existing file; this output is a folder"):
        check_output_folder(photo, [])
    check_output_folder(tmp_path / "photos" / "out", [photo, tmp_path / "photos"])
    check_output_folder(tmp_path, [photo])  # the parent of an input's folder is fine
    assert not (tmp_path / "photos" / "out").exists()


def test_positive_and_finite():
    assert positive(3, "--n") == 3 and positive(np.int64(2), "--n") == 2
    assert positive(0.5, "lr", integer=False) == 0.5 and finite(-1.5, "t") == -1.5
    for value in (0, -3, 1.5, True, "4", None):
        with pytest.raises(UserError, match=r"^--n must be a positive integer, got "):
            positive(value, "--n")
    for value in (0.0, -1e-3, float("nan"), float("inf")):
        with pytest.raises(UserError, match=r"^lr must be a positive finite number"):
            positive(value, "lr", integer=False)
    for value in (float("nan"), float("-inf"), "0.3", False):
        with pytest.raises(UserError, match=r"^t must be a finite number, got "):
            finite(value, "t")

    class Args:
        batch_size, input_size, threads = None, [192, 0], 2

    with pytest.raises(UserError, match="^--input-size must be a positive integer, got 0$"):
        check_positive_options(Args, "batch_size", "threads", "input_size")


def test_threads_within_one_and_four_times_the_cores(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert max_threads() == 16  # the floor
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert max_threads() == 32
    assert check_threads(None) is None and check_threads(1) == 1 and check_threads(32) == 32
    with pytest.raises(UserError, match="^--threads must be a positive integer, got 0$"):
        check_threads(0)
    with pytest.raises(UserError) as error:
        check_threads(33)
    assert str(error.value) == ("--threads must be at most 32 (4 × the 8 cores, at least "
                                "16), got 33")


def test_an_output_folder_is_new_empty_or_this_tools_own(tmp_path):
    """The manifest rule: a user's file blocks the folder (unless overwrite), this tool's
    earlier files do not, another tool's do; an unreadable manifest counts as empty."""
    out = tmp_path / "out"
    claim_output_folder(out, "tools/a.py")  # new
    out.mkdir()
    outputs = claim_output_folder(out, "tools/a.py")  # empty
    (out / "sub").mkdir()
    (out / "sub" / "x.jpg").write_bytes(b"1")
    (out / "p.json").write_text("{}")
    outputs.record(os.path.join("sub", "x.jpg"), "p.json")
    assert json.loads((out / MANIFEST_NAME).read_text()) == {
        "files": {"p.json": "tools/a.py", os.path.join("sub", "x.jpg"): "tools/a.py"}}
    claim_output_folder(out, "tools/a.py")  # only its own files: fine
    with pytest.raises(OutputError, match="holds files this tool did not write"):
        claim_output_folder(out, "tools/b.py")  # another tool's
    (out / "mine.txt").write_text("mine")
    with pytest.raises(OutputError) as error:
        claim_output_folder(out, "tools/a.py")
    assert str(error.value) == (f"--out {out} holds files this tool did not write "
                                "(mine.txt): choose a new or empty folder, or pass "
                                "--overwrite to write among them")
    claim_output_folder(out, "tools/a.py", overwrite=True)
    (out / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(OutputError, match=r"\(mine.txt, p.json, sub\)"):
        claim_output_folder(out, "tools/a.py")


def test_files_written_together_are_replaced_only_when_this_tool_wrote_them(tmp_path):
    model, config = tmp_path / "m.keras", tmp_path / "m.yaml"
    record = claim_output_files([model, config], "tools/c.py", inputs=[])  # neither exists
    model.write_text("model")
    config.write_text("config")
    record()
    claim_output_files([model, config], "tools/c.py", inputs=[])()  # its own: fine
    assert OutputManifest(tmp_path, "tools/c.py").owns("m.yaml")
    assert not OutputManifest(tmp_path, "tools/d.py").owns("m.yaml")
    (tmp_path / "n.yaml").write_text("a user's config")
    with pytest.raises(OutputError) as error:
        claim_output_files([tmp_path / "n.keras", tmp_path / "n.yaml"], "tools/c.py")
    assert str(error.value) == (f"--out {tmp_path / 'n.yaml'} exists and this tool did not "
                                "write it: pass --overwrite to replace it, or choose another "
                                "path")
    claim_output_files([tmp_path / "n.keras", tmp_path / "n.yaml"], "tools/c.py",
                       overwrite=True)
    with pytest.raises(OutputError, match="is an input of this command"):
        claim_output_files([model], "tools/c.py", inputs=[model])
