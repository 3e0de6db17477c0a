"""Checks of a user's input made before anything is loaded or written.

A tool's output must never replace one of its inputs or a file it was not asked to
replace: ``check_output_file`` and ``check_output_folder`` refuse an output that is an
input (the same file or folder, also through another spelling or a link), a folder where
a file goes and the reverse, and a place that cannot be written (no write permission, a
read-only file system, a file where a parent folder should be). Each raises
``OutputError`` (a ``UserError``: one line from the tools) naming the option, the path and
what is wrong; nothing is created by the checks.

The numeric checks (``positive``, ``finite``) give the command-line options and config keys
one wording: ``--batch-size must be a positive integer, got -3``; they raise ``error``
(default ``UserError``; the config passes its ``ConfigError``).

Example:
    >>> check_output_file("model.tflite", inputs=["run/best.keras"], option="--out")
    >>> check_output_folder("out/", inputs=["photos/a.jpg"], option="--out")
"""

import math
import numbers
import os

from pose.errors import UserError


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


def positive(value, name, integer=True, error=UserError):
    """``value`` when it is a positive (integer) number, else ``error`` naming ``name``
    (an option or config key)."""
    kind = "a positive integer" if integer else "a positive finite number"
    ok = isinstance(value, numbers.Integral if integer else numbers.Real)
    if not ok or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise error(f"{name} must be {kind}, got {value!r}")
    return value


def finite(value, name, error=UserError):
    """``value`` when it is a finite number (not NaN or infinite), else ``error`` naming
    ``name``."""
    if (not isinstance(value, numbers.Real) or isinstance(value, bool)
            or not math.isfinite(value)):
        raise error(f"{name} must be a finite number, got {value!r}")
    return value


def max_threads():
    """The most runtime threads a tool accepts: 4 × the core count, at least 16. More than
    that only slows a runtime down, and thousands crash or hang some of them."""
    return max(16, 4 * (os.cpu_count() or 1))


def check_threads(value, option="--threads"):
    """``value`` (None: the runtime's default) when it lies in 1..``max_threads()``, else
    a ``UserError`` naming the option and the range."""
    if value is not None:
        limit = max_threads()
        positive(value, option)
        if value > limit:
            raise UserError(f"{option} must be at most {limit} (4 × the {os.cpu_count()} "
                            f"cores, at least 16), got {value}")
    return value


def check_positive_options(args, *names):
    """``positive`` on each option ``names`` of an ``argparse`` namespace that was given
    (None: not given); a list value (``--input-size W H``) checks each entry. The message
    names the option as typed: ``--batch-size must be a positive integer, got 0``."""
    for name in names:
        value = getattr(args, name)
        for item in (value if isinstance(value, (list, tuple)) else [value]):
            if item is not None:
                positive(item, "--" + name.replace("_", "-"))
