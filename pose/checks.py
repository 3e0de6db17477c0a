"""Checks of a user's input made before anything is loaded or written.

A tool's output must never replace one of its inputs or a file it was not asked to
replace: ``check_output_file`` and ``check_output_folder`` refuse an output that is an
input (the same file or folder, also through another spelling or a link), a folder where
a file goes and the reverse, and a place that cannot be written (no write permission, a
read-only file system, a file where a parent folder should be). Each raises
``OutputError`` (a ``UserError``: one line from the tools) naming the option, the path and
what is wrong; nothing is created by the checks.

What a tool may replace: an output file that exists is replaced only with ``--overwrite``
or when this tool wrote it in an earlier run — ``OutputManifest``, the list of the files
each tool wrote, kept in a hidden ``.psa-pose-outputs.json`` in the output's folder; an
output folder must be new, empty, or hold only files its manifest lists. A user's own
file of the same name, or a folder of the user's files, is never written over silently.

What a failed run leaves: nothing. Each claim (``claim_output_file``, ``claim_output_files``,
``claim_output_folder``) notes what was there before; when the tool run by
``pose.errors.run_tool`` fails (a user error, Ctrl-C, SIGTERM, a bug, a non-zero exit
code), the files and folders the run created there are removed and the manifest is put
back as it was. (A file replaced with ``--overwrite`` before the failure stays replaced:
it was the user's choice to give it up. Training run folders are not claimed this way:
they keep their last checkpoint, so that the same command resumes.)

``positive`` checks a number passed to a library function in the wording of the range table
of ``pose.options`` (which checks every command-line option and config value):
``batch_size must be a positive integer, got -3``.

Example:
    >>> check_output_file("model.tflite", inputs=["run/best.keras"], option="--out")
    >>> check_output_folder("out/", inputs=["photos/a.jpg"], option="--out")
"""

import errno
import json
import math
import numbers
import os
import shutil
import stat

from pose.errors import UserError, on_failure
from pose.fileio import write_json


class OutputError(UserError):
    """An output path that would replace an input or cannot be written."""


def _same(a, b):
    """True when paths ``a`` and ``b`` name the same file or folder (links resolved)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _writable_ancestor(path, option):
    """The nearest existing folder at or above ``path``; an ``OutputError`` when a file
    stands where a folder must be, or the folder cannot be written."""
    current = os.path.abspath(path)
    while not os.path.exists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    if not os.path.isdir(current):
        raise OutputError(f"{option} {path}: {current} is a file, not a folder, so nothing "
                          "can be written below it")
    if not os.access(current, os.W_OK | os.X_OK) or _read_only_file_system(current):
        raise OutputError(f"{option} {path}: cannot write into {current} (read-only); choose "
                          f"another {option}")
    return current


def _check_name(path, option):
    """An ``OutputError`` when ``path`` is empty or longer than the file system allows."""
    if not path:
        raise OutputError(f"{option}: an empty path was given")
    try:
        os.lstat(path)
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise OutputError(f"{option} {path[:60]}...: the name is longer than the file "
                              "system allows") from None


def _read_only_file_system(folder):
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows): permissions decide
        return False


def check_output_file(path, inputs=(), option="--out"):
    """Refuse ``path`` as an output file before anything is written.

    Args:
        path: the file the tool will write (replaced when it exists and is a file).
        inputs: paths the tool reads (files or folders); ``path`` may be none of them.
        option: how the user named ``path`` (``--out``), for the message.

    Raises:
        OutputError: ``path`` is an input, an existing folder, lies below a file, or its
            folder cannot be written.
    """
    path = os.fspath(path)
    _check_name(path, option)
    for source in inputs:
        if source is not None and os.path.exists(source) and _same(path, source):
            raise OutputError(f"{option} {path} is an input of this command ({source}); "
                              "writing it would destroy the input: choose another "
                              f"{option}")
    if os.path.isdir(path):
        raise OutputError(f"{option} {path} is an existing folder; this output is a file: "
                          "give a file name")
    _writable_ancestor(os.path.dirname(os.path.abspath(path)), option)


def check_output_folder(path, inputs=(), option="--out"):
    """Refuse ``path`` as an output folder before anything is written.

    The folder may exist (files of the same names in it are replaced), but it may not be
    an input folder, nor the folder of an input file: outputs named after the inputs
    (overlays) would replace them.

    Args:
        path: the folder the tool will write into (created when missing).
        inputs: paths the tool reads (files or folders).
        option: how the user named ``path``, for the message.

    Raises:
        OutputError: ``path`` is an existing file, an input folder, the folder of an input
            file, or cannot be written.
    """
    path = os.fspath(path)
    _check_name(path, option)
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputError(f"{option} {path} is an existing file; this output is a folder: "
                          "give a folder name")
    if os.path.isdir(path):
        for source in inputs:
            if source is None or not os.path.exists(source):
                continue
            holder = source if os.path.isdir(source) else os.path.dirname(
                os.path.abspath(source))
            if _same(path, holder):
                what = "is the input folder" if holder is source else (
                    f"holds the input {source}")
                raise OutputError(f"{option} {path} {what}; outputs written there would "
                                  f"replace inputs: choose another {option}")
    _writable_ancestor(path, option)


MANIFEST_NAME = ".psa-pose-outputs.json"


class OutputManifest:
    """The files that this project's tools wrote under ``root``: the record that lets a
    tool replace its own earlier outputs, and nothing else, without ``--overwrite``.

    Kept in ``root/.psa-pose-outputs.json`` as ``{"files": {relative path: tool}}``; an
    unreadable manifest counts as empty (nothing is then replaced without
    ``--overwrite``).

    Example:
        >>> outputs = OutputManifest("runs", "tools/detect.py")
        >>> outputs.check_file("dets.json", overwrite=False, option="--out")
        >>> ...  # write runs/dets.json
        >>> outputs.record("dets.json")
    """

    def __init__(self, root, tool):
        self.root, self.tool = os.fspath(root), tool
        self.path = os.path.join(self.root, MANIFEST_NAME)
        try:
            with open(self.path, encoding="utf-8") as f:
                files = json.load(f).get("files", {})
            self.files = {str(k): str(v) for k, v in files.items()}
        except (OSError, ValueError, AttributeError):
            self.files = {}

    def owns(self, relative):
        """Whether this tool wrote ``root/relative`` in an earlier run."""
        return self.files.get(os.path.normpath(relative)) == self.tool

    def check_file(self, relative, overwrite=False, option="--out"):
        """Refuse to replace ``root/relative`` when it exists, this tool did not write it
        and ``overwrite`` is off; returns the path."""
        path = os.path.join(self.root, relative)
        if os.path.lexists(path) and not overwrite and not self.owns(relative):
            raise OutputError(f"{option} {path} exists and this tool did not write it: pass "
                              "--overwrite to replace it, or choose another path")
        return path

    def check_folder(self, overwrite=False, option="--out"):
        """Refuse ``root`` as an output folder when it holds entries that this tool did not
        write (a user's files), unless ``overwrite``."""
        if overwrite or not os.path.isdir(self.root):
            return
        owned = {name.split(os.sep)[0] for name, tool in self.files.items()
                 if tool == self.tool}
        foreign = sorted(set(os.listdir(self.root)) - owned - {MANIFEST_NAME})
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more"
                                              if len(foreign) > 3 else "")
            raise OutputError(f"{option} {self.root} holds files this tool did not write "
                              f"({shown}): choose a new or empty folder, or pass --overwrite "
                              "to write among them")

    def record(self, *relatives):
        """Add ``relatives`` (paths under ``root``) to the manifest as this tool's
        (rewritten atomically)."""
        fresh = OutputManifest(self.root, self.tool)  # another run may have written since
        fresh.files.update({os.path.normpath(r): self.tool for r in relatives})
        write_json({"files": dict(sorted(fresh.files.items()))}, self.path)
        self.files = fresh.files


def claim_output_file(path, tool, inputs=(), overwrite=False, option="--out"):
    """``check_output_file`` plus the manifest rule: an existing ``path`` is replaced only
    with ``overwrite`` or when ``tool`` wrote it. Returns the ``OutputManifest`` of its
    folder, to ``record`` the file once it is written."""
    check_output_file(path, inputs, option)
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    outputs = OutputManifest(folder, tool)
    outputs.check_file(name, overwrite, option)
    _remove_on_failure(path)
    return outputs


def claim_output_files(paths, tool, inputs=None, overwrite=False, option="--out"):
    """The manifest rule for files of one folder that a tool writes together (a checkpoint
    and its config beside it): each existing one must be this tool's, unless ``overwrite``;
    with ``inputs`` (a list), ``check_output_file`` on each first. Returns ``record()``, to
    call once all are written."""
    if inputs is not None:
        for path in paths:
            check_output_file(path, inputs, option)
    paths = [os.path.abspath(os.fspath(p)) for p in paths]
    folder = os.path.dirname(paths[0])
    outputs = OutputManifest(folder, tool)
    for path in paths:
        if os.path.dirname(path) != folder:
            raise ValueError(f"claim_output_files: {path} is not in {folder}")
        outputs.check_file(os.path.basename(path), overwrite, option)
    for path in paths:
        _remove_on_failure(path)
    return lambda: outputs.record(*(os.path.basename(p) for p in paths))


def claim_output_folder(path, tool, inputs=(), overwrite=False, option="--out"):
    """``check_output_folder`` plus the manifest rule: the folder is new, empty, or holds
    only what ``tool`` wrote there (unless ``overwrite``). Returns its ``OutputManifest``
    (check each file with ``check_file``, ``record`` it once written)."""
    check_output_folder(path, inputs, option)
    outputs = OutputManifest(path, tool)
    outputs.check_folder(overwrite, option)
    _remove_on_failure(path)
    return outputs


def claim_run_folder(path, tool, names, inputs=(), overwrite=False, option="--workdir"):
    """The manifest rule for a run folder that a re-run resumes (``tools/compare_psa.py``,
    ``tools/demo.py``): the folder is new, empty, or holds only what ``tool`` wrote there
    (unless ``overwrite``), and ``names`` (the entries the run will write at its top) are
    recorded as the tool's at once, so that a run interrupted half-way is this tool's to
    resume. A failed run keeps what it finished here: it is the resume point (a run that
    fails before writing anything but the manifest leaves nothing)."""
    check_output_folder(path, inputs, option)
    outputs = OutputManifest(path, tool)
    outputs.check_folder(overwrite, option)
    _claimed.add(path, keep_work=True)
    outputs.record(*names)
    return outputs


class _ClaimedOutputs:
    """What this process's tool run claimed, with what was there before the claim:
    ``undo()`` removes what the run created there (``on_failure`` of ``pose.errors``)."""

    def __init__(self):
        # absolute path → (the highest of it and its folders that did not exist, or None;
        # the names in it when it was a folder, or None; its folder's manifest and the
        # manifest's bytes, or None when there was none)
        self.claims = {}

    def add(self, path, keep_work=False):
        """Note ``path`` and what is there now. ``keep_work``: a resumable run folder,
        undone only while the run has written nothing there but the manifest."""
        if on_failure(self.undo):  # the first claim of a new run: forget older runs'
            self.claims.clear()
        path = os.path.abspath(os.fspath(path))
        if path in self.claims:
            return
        created = None
        current = path
        while not os.path.lexists(current):
            created, current = current, os.path.dirname(current)
        entries = set(os.listdir(path)) if created is None and os.path.isdir(path) else None
        folder = path if entries is not None else os.path.dirname(path)
        manifest = os.path.join(folder, MANIFEST_NAME)
        try:
            with open(manifest, "rb") as f:
                manifest_bytes = f.read()
        except OSError:
            manifest_bytes = None
        self.claims[path] = (created, entries, manifest, manifest_bytes, keep_work)

    def undo(self):
        for path, (created, entries, manifest, manifest_bytes, keep_work) in reversed(
                list(self.claims.items())):
            try:
                if keep_work and os.path.isdir(path) and (
                        set(os.listdir(path)) != (entries or set()) | {MANIFEST_NAME}):
                    continue  # the run wrote its first results: they are the resume point
                if created is not None:
                    _remove(created)
                    continue
                if entries is not None and os.path.isdir(path):
                    for name in set(os.listdir(path)) - entries - {MANIFEST_NAME}:
                        _remove(os.path.join(path, name))
                if manifest_bytes is None:
                    if os.path.isfile(manifest):
                        os.remove(manifest)
                else:
                    with open(manifest, "wb") as f:
                        f.write(manifest_bytes)
            except OSError:  # a read-only or vanished place: nothing more to undo there
                continue
        self.claims.clear()


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


_claimed = _ClaimedOutputs()


def _remove_on_failure(path):
    """Note ``path`` (a claimed output) and what was there, so that a failed run removes
    what it created there."""
    _claimed.add(path)


def check_input_file(path, what="file"):
    """``path`` when it names a regular file this process can read, else a ``UserError``
    naming it and what is wrong: missing, a folder, a pipe or device (reading one could
    block forever), unreadable. ``what`` says what the file is for ("config file")."""
    path = os.fspath(path)
    if not path:
        raise UserError(f"an empty path was given as the {what}")
    shown = path if len(path) <= 200 else path[:60] + "..."
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise UserError(f"{shown}: {what} not found") from None
    except OSError as exc:
        raise UserError(f"{shown}: cannot read the {what} ({exc.strerror})") from None
    if stat.S_ISDIR(mode):
        raise UserError(f"{path}: is a folder; the {what} is a file")
    if not stat.S_ISREG(mode):
        raise UserError(f"{path}: not a regular file (a pipe or a device); the {what} must "
                        "be a file")
    if not os.access(path, os.R_OK):
        raise UserError(f"{path}: cannot read the {what} (permission denied)")
    return path


def positive(value, name, integer=True, error=UserError):
    """``value`` when it is a positive (integer) number, else ``error`` naming ``name``
    (an option or config key)."""
    kind = "a positive integer" if integer else "a positive finite number"
    ok = isinstance(value, numbers.Integral if integer else numbers.Real)
    if not ok or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise error(f"{name} must be {kind}, got {value!r}")
    return value
