"""pose.checks: output paths refused before anything is written, and ``positive``."""

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
    claim_output_files,
    claim_output_folder,
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


def test_positive():
    assert positive(3, "--n") == 3 and positive(np.int64(2), "--n") == 2
    assert positive(0.5, "lr", integer=False) == 0.5
    for value in (0, -3, 1.5, True, "4", None):
        with pytest.raises(UserError, match=r"^--n must be a positive integer, got "):
            positive(value, "--n")
    for value in (0.0, -1e-3, float("nan"), float("inf")):
        with pytest.raises(UserError, match=r"^lr must be a positive finite number"):
            positive(value, "lr", integer=False)


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


def _failing_tool(write, error=UserError("bad value")):
    """A tool's ``main`` that claims and writes outputs with ``write()`` then fails."""
    def main(argv):
        write()
        if error is not None:
            raise error
        return 0
    return main


def test_a_failed_run_removes_what_it_created_and_keeps_what_was_there(tmp_path, capsys):
    from pose.errors import run_tool
    from pose.fileio import write_text

    out = tmp_path / "new" / "out"

    def write_new_folder():
        outputs = claim_output_folder(out, "tools/a.py")
        write_text("x", out / "sub" / "a.txt")
        outputs.record("sub")

    assert run_tool(_failing_tool(write_new_folder)) == 2
    assert not (tmp_path / "new").exists()  # the folder and its new parent: gone
    assert capsys.readouterr().err == "error: bad value\n"

    kept = tmp_path / "kept"
    outputs = claim_output_folder(kept, "tools/a.py")
    write_text("earlier", kept / "old.txt")
    outputs.record("old.txt")
    manifest = (kept / MANIFEST_NAME).read_bytes()

    def write_among_earlier_outputs():
        outputs = claim_output_folder(kept, "tools/a.py")
        write_text("now", kept / "new.txt")
        write_text("replaced", kept / "old.txt")
        outputs.record("new.txt", "old.txt")

    for error in (KeyboardInterrupt(), RuntimeError("a bug")):
        if isinstance(error, RuntimeError):
            with pytest.raises(RuntimeError):
                run_tool(_failing_tool(write_among_earlier_outputs, error))
        else:
            assert run_tool(_failing_tool(write_among_earlier_outputs, error)) == 130
        assert sorted(os.listdir(kept)) == [MANIFEST_NAME, "old.txt"]
        assert (kept / MANIFEST_NAME).read_bytes() == manifest
    # a non-zero exit code is a failure too; a success keeps everything
    assert run_tool(lambda argv: _failing_tool(write_among_earlier_outputs, None)(argv) or 1) == 1
    assert sorted(os.listdir(kept)) == [MANIFEST_NAME, "old.txt"]
    assert run_tool(_failing_tool(write_among_earlier_outputs, None)) == 0
    assert sorted(os.listdir(kept)) == [MANIFEST_NAME, "new.txt", "old.txt"]


def test_a_failed_file_output_is_removed_and_a_later_run_undoes_only_its_own(tmp_path):
    from pose.errors import run_tool
    from pose.fileio import write_text

    target = tmp_path / "a" / "b" / "result.json"
    other = tmp_path / "other.json"

    def write_file(path):
        def write():
            record = claim_output_files([path], "tools/a.py")
            write_text("{}", path)
            record()
        return write

    assert run_tool(_failing_tool(write_file(target))) == 2
    assert sorted(os.listdir(tmp_path)) == []  # a/b/ made for the file: gone too
    assert run_tool(_failing_tool(write_file(other), None)) == 0
    # a later run that fails before claiming anything leaves the earlier run's file
    assert run_tool(_failing_tool(lambda: None)) == 2
    assert other.exists()
    # one that fails after claiming its own output removes that one only
    assert run_tool(_failing_tool(write_file(target))) == 2
    assert other.exists() and not (tmp_path / "a").exists()


def test_a_run_folder_records_its_plan_at_once_and_keeps_it_after_a_failure(tmp_path):
    from pose.checks import claim_run_folder
    from pose.errors import run_tool

    work = tmp_path / "work"
    assert run_tool(_failing_tool(lambda: claim_run_folder(work, "tools/c.py", ["none"]))) == 2
    assert not work.exists()  # failed before its first result: nothing left

    def start_a_run():
        claim_run_folder(work, "tools/c.py", ["none", "report.md"])
        (work / "none").mkdir()

    assert run_tool(_failing_tool(start_a_run, KeyboardInterrupt())) == 130
    assert (work / "none").is_dir()  # the resume point stays
    assert OutputManifest(work, "tools/c.py").owns("none")
    claim_run_folder(work, "tools/c.py", ["none", "report.md"])  # the re-run resumes
    (work / "mine.txt").write_text("a user's file")
    with pytest.raises(OutputError, match=r"holds files this tool did not write \(mine.txt\)"):
        claim_run_folder(work, "tools/c.py", ["none"])
    claim_run_folder(work, "tools/c.py", ["none"], overwrite=True)
    with pytest.raises(OutputError, match="holds files this tool did not write"):
        claim_run_folder(work, "tools/other.py", ["x"])


def test_input_files_must_be_regular_readable_files(tmp_path):
    from pose.checks import check_input_file

    (tmp_path / "a.yaml").write_text("x")
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "pipe.yaml")
    assert check_input_file(tmp_path / "a.yaml") == str(tmp_path / "a.yaml")
    for path, message in [
        ("", "an empty path was given as the config file"),
        (tmp_path / "none.yaml", f"{tmp_path / 'none.yaml'}: config file not found"),
        (tmp_path / "folder", f"{tmp_path / 'folder'}: is a folder; the config file is a file"),
        (tmp_path / "pipe.yaml", f"{tmp_path / 'pipe.yaml'}: not a regular file (a pipe or a "
                                 "device); the config file must be a file"),
        (tmp_path / ("x" * 300), f"{tmp_path / ('x' * 300)}"[:60] + "...: cannot read the "
                                 "config file (File name too long)"),
    ]:
        with pytest.raises(UserError) as raised:
            check_input_file(path, "config file")
        assert str(raised.value) == message
    if os.geteuid() != 0:  # root reads anything
        (tmp_path / "a.yaml").chmod(0)
        with pytest.raises(UserError, match="permission denied"):
            check_input_file(tmp_path / "a.yaml", "config file")


def test_output_names_that_cannot_exist_are_refused_before_writing(tmp_path):
    long_name = str(tmp_path / ("x" * 300))
    for check in (check_output_file, check_output_folder):
        with pytest.raises(OutputError, match=r"^--out .*\.\.\.: the name is longer than the "
                                              "file system allows$"):
            check(long_name)
        with pytest.raises(OutputError, match="^--out: an empty path was given$"):
            check("")
        check(str(tmp_path / ("x" * 255)))  # the longest name a file system here allows
    assert os.listdir(tmp_path) == []


# Paths as users type them (issue 30): each claim refuses an input, a user's file and a
# read-only place however the path is spelt.
SPELLINGS = {
    "relative": lambda root, rel: rel,
    "dot-dot": lambda root, rel: os.path.join("sub", "..", rel),
    "absolute": lambda root, rel: str(root / rel),
    "symlink": lambda root, rel: _link(root, rel),
}


def _link(root, rel):
    """A symlink in ``root/links`` to ``rel`` (a file, or a folder)."""
    (root / "links").mkdir(exist_ok=True)
    link = root / "links" / ("to_" + rel.replace(os.sep, "_"))
    if not link.exists():
        link.symlink_to(root / rel)
    return os.path.relpath(link, root)


def _claims(path, inputs, overwrite=False):
    from pose.checks import claim_output_file, claim_run_folder

    return {
        "file": lambda: claim_output_file(path, "tools/t.py", inputs, overwrite),
        "files": lambda: claim_output_files([path], "tools/t.py", inputs, overwrite),
        "folder": lambda: claim_output_folder(path, "tools/t.py", inputs, overwrite),
        "run folder": lambda: claim_run_folder(path, "tools/t.py", ["a"], inputs, overwrite),
    }


@pytest.fixture
def user_tree(tmp_path, monkeypatch):
    """A user's files: photos/a.jpg (an input), notes.txt, and an empty sub/ for ``..``."""
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"a photo")
    (tmp_path / "notes.txt").write_text("a user's notes")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _snapshot(root):
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None
            for p in sorted(root.rglob("*")) if "links" not in p.parts}


@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize("claim", ["file", "files", "folder", "run folder"])
def test_an_input_is_never_an_output_however_it_is_spelt(user_tree, spelling, claim):
    """Refused even with --overwrite (which lets a tool replace a user's file, never its
    own input)."""
    target = "photos/a.jpg" if claim in ("file", "files") else "photos"
    path = SPELLINGS[spelling](user_tree, target)
    before = _snapshot(user_tree)
    with pytest.raises(OutputError, match="input"):
        _claims(path, [str(user_tree / "photos" / "a.jpg")], overwrite=True)[claim]()
    assert _snapshot(user_tree) == before


@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize("claim", ["file", "files", "folder", "run folder"])
def test_a_users_file_or_folder_is_refused_however_it_is_spelt(user_tree, spelling, claim):
    """An existing file (for a file output) or a folder holding a user's file (for a
    folder output) is refused without --overwrite, and left as it was."""
    target = "notes.txt" if claim in ("file", "files") else "photos"
    path = SPELLINGS[spelling](user_tree, target)
    before = _snapshot(user_tree)
    with pytest.raises(OutputError, match="overwrite"):
        _claims(path, [])[claim]()
    assert _snapshot(user_tree) == before


@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize("claim", ["file", "files", "folder", "run folder"])
def test_a_read_only_place_is_refused_however_it_is_spelt(user_tree, spelling, claim,
                                                          monkeypatch):
    """A folder on a read-only file system (faked: statvfs says ST_RDONLY for it, as a
    read-only mount does; root ignores permission bits, so those cannot show it) is
    refused before anything is written below it."""
    locked = user_tree / "locked"
    locked.mkdir()
    real_statvfs = os.statvfs

    class ReadOnly:
        def __init__(self, result):
            self.f_flag = result.f_flag | os.ST_RDONLY

    monkeypatch.setattr(os, "statvfs", lambda p: ReadOnly(real_statvfs(p)) if os.path.realpath(
        p).startswith(str(locked)) else real_statvfs(p))
    target = os.path.join("locked", "new", "out.json" if claim in ("file", "files") else "o")
    if spelling == "symlink":  # a link to the locked folder, then the path below it
        path = os.path.join(_link(user_tree, "locked"), "new", os.path.basename(target))
    else:
        path = SPELLINGS[spelling](user_tree, target)
    with pytest.raises(OutputError, match="read-only"):
        _claims(path, [])[claim]()
    assert list(locked.iterdir()) == []


def test_a_symlink_at_the_output_is_the_users_even_when_it_points_nowhere(tmp_path):
    """A link whose target is gone is still the user's entry: replaced only with
    --overwrite, like a file."""
    from pose.checks import claim_output_file

    link = tmp_path / "dets.json"
    link.symlink_to(tmp_path / "gone.json")
    with pytest.raises(OutputError, match="exists and this tool did not write it"):
        claim_output_file(link, "tools/detect.py")
    assert link.is_symlink()
    claim_output_file(link, "tools/detect.py", overwrite=True)


def test_record_keeps_what_another_run_recorded_since(tmp_path):
    """Two runs sharing an output folder, each holding the manifest it read at its start:
    the later record() adds to what the other wrote meanwhile, it does not write over it."""
    first = OutputManifest(tmp_path, "tools/detect.py")
    second = OutputManifest(tmp_path, "tools/infer.py")
    second.record("overlays")
    first.record("dets.json")
    first.record("dets2.json")  # and again: record() twice in one run
    files = json.loads((tmp_path / MANIFEST_NAME).read_text())["files"]
    assert files == {"dets.json": "tools/detect.py", "dets2.json": "tools/detect.py",
                     "overlays": "tools/infer.py"}


def test_a_failed_run_removes_each_of_its_claimed_outputs(tmp_path):
    """A run that claims a folder and then a file and fails removes both (each claim after
    the first adds to the run's list; it does not start a new one)."""
    from pose.checks import claim_output_file
    from pose.errors import run_tool
    from pose.fileio import write_text

    def write_two():
        claim_output_folder(tmp_path / "overlays", "tools/a.py")
        write_text("o", tmp_path / "overlays" / "a.png")
        claim_output_file(tmp_path / "dets.json", "tools/a.py")
        write_text("[]", tmp_path / "dets.json")

    assert run_tool(_failing_tool(write_two)) == 2
    assert sorted(os.listdir(tmp_path)) == []
