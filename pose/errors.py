"""The one error type for user mistakes, and how a command-line tool reports it.

``UserError`` is the base of every error that a user's input causes (a config key, an
annotation file, a checkpoint, a box file, an input path): the message names the file and
what is wrong, and a tool prints it as one line, ``error: <message>``, with exit code 2 and
no traceback. Everything else is a bug and keeps its traceback.

This module is the lowest layer: it imports nothing of the project, so ``datasets/`` can
subclass it too (``AnnotationError``, ``ImageDecodeError``, ``MetadataError``).

``hide_native_output`` keeps the start-up lines that TensorFlow, absl, CUDA probing and
OpenCV write from C++ off the terminal, so that a mistake really is one line.
"""

import argparse
import io
import logging
import os
import sys
import tempfile

USER_ERROR_EXIT_CODE = 2


class UserError(ValueError):
    """Bad input from the user; the message names the file (or option) and the problem.

    A ``ValueError`` so that existing ``except ValueError`` callers keep working.
    """


class CheckpointError(UserError):
    """A checkpoint (``.keras`` file, export) that is missing, empty, truncated or corrupt."""


def run_tool(main, argv=None):
    """Run a tool's ``main(argv)`` and turn a ``UserError`` into one line on stderr.

    ``--debug`` among the arguments is taken out before ``main`` parses them and lets the
    error propagate with its traceback (tools list it in their ``--help``). Returns the
    exit code: ``main``'s return value (None counts as 0), or 2 after a ``UserError``.
    Any other exception is a bug: it propagates with its traceback, after the native
    output that ``hide_native_output`` kept off the terminal (it may say why).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        code = main([a for a in args if a != "--debug"])
    except UserError as exc:
        if debug:
            raise
        print(f"error: {one_line(exc)}", file=sys.stderr, flush=True)
        return USER_ERROR_EXIT_CODE
    except Exception:
        replay_native_output()
        raise
    return 0 if code is None else int(code)


_native_output = None  # the file that holds what native code wrote to fd 2, once hidden


def hide_native_output(argv=None):
    """Send what native libraries write to this process's stderr into a temporary file.

    TensorFlow, absl, CUDA probing and OpenCV write their start-up lines from C++ straight
    to file descriptor 2, whatever ``TF_CPP_MIN_LOG_LEVEL`` says (absl's "All log messages
    before absl::InitializeLog() ..." and the ``cudart_stub`` lines come before it is
    read). A tool calls this first, before those libraries load: fd 2 then points to a
    temporary file, and ``sys.stderr`` is reopened on a copy of the original stderr, so
    Python's own output (the ``error:`` line, progress, tracebacks) still reaches the
    terminal. Python warnings go to the same file (``logging.captureWarnings``). With
    ``--debug`` among the arguments nothing is hidden. Child processes inherit the file as
    their fd 2 unless they are given their own (this project's tools give them pipes or
    logs). Idempotent.

    Args:
        argv: the tool's arguments; None: ``sys.argv[1:]``.

    Returns:
        The temporary file (binary), or None when nothing is hidden.
    """
    global _native_output
    args = sys.argv[1:] if argv is None else list(argv)
    if _native_output is not None or "--debug" in args:
        return _native_output
    try:
        sys.stderr.flush()
        terminal = os.dup(2)
        hidden = tempfile.TemporaryFile(prefix="native-stderr-")
        os.dup2(hidden.fileno(), 2)
    except (OSError, AttributeError, ValueError):  # no fd 2 (e.g. a GUI); keep it as it is
        return None
    sys.stderr = io.TextIOWrapper(io.FileIO(terminal, "w"), encoding="utf-8",
                                  errors="backslashreplace", line_buffering=True)
    warnings_log = logging.getLogger("py.warnings")
    warnings_log.addHandler(logging.StreamHandler(io.TextIOWrapper(
        os.fdopen(os.dup(hidden.fileno()), "wb"), encoding="utf-8", line_buffering=True)))
    warnings_log.propagate = False
    logging.captureWarnings(True)
    _native_output = hidden
    return hidden


def replay_native_output():
    """Write what ``hide_native_output`` kept off the terminal to stderr (for a bug's
    report); nothing when nothing was hidden."""
    if _native_output is None:
        return
    try:
        _native_output.seek(0)
        text = _native_output.read().decode("utf-8", "backslashreplace")
    except OSError:
        return
    if text.strip():
        sys.stderr.write("native library output (shown because the tool failed):\n" + text)
        sys.stderr.flush()


class ToolArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose mistakes are ``UserError``s: a missing or
    malformed argument is one line ``error: ...`` with exit code 2 from ``run_tool``, like
    every other mistake, instead of argparse's usage block (``--help`` still shows it)."""

    def error(self, message):
        raise UserError(f"{message} (see {self.prog} --help)")


def one_line(exc):
    """An exception's message on one line (YAML parser messages span several)."""
    return " ".join(str(exc).split())

