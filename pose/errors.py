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

import errno
import io
import logging
import os
import signal
import sys
import tempfile
import threading

USER_ERROR_EXIT_CODE = 2
# A run stopped by the user: 128 + the signal's number, as a shell reports it.
INTERRUPTED_EXIT_CODES = {"SIGINT": 128 + signal.SIGINT, "SIGTERM": 128 + signal.SIGTERM}


# Errors of the machine's resources rather than of the program: one line, like a user's
# mistake (errno → what the user reads).
RESOURCE_ERRORS = {errno.ENOSPC: "no space left on the device (disk full)",
                   errno.EDQUOT: "disk quota exceeded",
                   errno.EROFS: "the file system is read-only",
                   errno.ENOMEM: "not enough memory"}


class Terminated(BaseException):
    """SIGTERM, raised in the main thread while ``run_tool`` runs a tool (a
    ``BaseException`` like ``KeyboardInterrupt``, so that ``except Exception`` in library
    code does not swallow it and ``finally`` blocks and context managers still clean up)."""


def _raise_terminated(signum, frame):
    raise Terminated()


class UserError(ValueError):
    """Bad input from the user; the message names the file (or option) and the problem.

    A ``ValueError`` so that existing ``except ValueError`` callers keep working.
    """


class CheckpointError(UserError):
    """A checkpoint (``.keras`` file, export) that is missing, empty, truncated or corrupt."""


_failure_hooks = []  # called when a tool run by run_tool fails (pose.checks' cleanup)


def on_failure(hook):
    """Have ``run_tool`` call ``hook()`` when the tool it runs fails (an error, Ctrl-C,
    SIGTERM, a bug or a non-zero exit code). Hooks are dropped when the run ends, so each
    run registers its own; ``pose.checks`` registers the removal of the outputs a run
    claimed. Returns True when ``hook`` was not registered yet (the first call of a run).
    """
    if hook in _failure_hooks:
        return False
    _failure_hooks.append(hook)
    return True


def _run_failure_hooks():
    while _failure_hooks:
        _failure_hooks.pop()()


def run_tool(main, argv=None):
    """Run a tool's ``main(argv)`` and turn a ``UserError`` into one line on stderr.

    ``--debug`` among the arguments is taken out before ``main`` parses them and lets the
    error propagate with its traceback (tools list it in their ``--help``). Returns the
    exit code: ``main``'s return value (None counts as 0), 2 after a ``UserError`` or a
    full disk, a read-only file system or a refused memory request (``RESOURCE_ERRORS``), 130
    after Ctrl-C and 143 after SIGTERM (each one ``error:`` line, no traceback).
    Any other exception is a bug: it propagates with its traceback, after the native
    output that ``hide_native_output`` kept off the terminal (it may say why).
    Whenever the run fails (any of these, or a non-zero return value) the ``on_failure``
    hooks run: the outputs the run claimed through ``pose.checks`` are removed, so a failed
    run leaves nothing where its output would be.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    _failure_hooks.clear()
    code = None
    try:
        code = main([a for a in args if a != "--debug"])
        code = 0 if code is None else int(code)
    except UserError as exc:
        code = USER_ERROR_EXIT_CODE
        if debug:
            raise
        print(f"error: {one_line(exc)}", file=sys.stderr, flush=True)
    except OSError as exc:
        if exc.errno not in RESOURCE_ERRORS:
            replay_native_output()
            raise
        code = USER_ERROR_EXIT_CODE
        if debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{RESOURCE_ERRORS[exc.errno]}; this run's unfinished outputs "
              "were removed", file=sys.stderr, flush=True)
    except (KeyboardInterrupt, Terminated) as exc:
        name = "SIGINT" if isinstance(exc, KeyboardInterrupt) else "SIGTERM"
        code = INTERRUPTED_EXIT_CODES[name]
        if debug:
            raise
        how = "Ctrl-C" if name == "SIGINT" else "SIGTERM"
        print(f"error: interrupted ({how}); this run's unfinished outputs were removed",
              file=sys.stderr, flush=True)
    except Exception:
        replay_native_output()
        raise
    finally:
        if code != 0:  # None: a bug's exception is on its way
            _run_failure_hooks()
        _failure_hooks.clear()
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    return code


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


def one_line(exc):
    """An exception's message on one line (YAML parser messages span several)."""
    return " ".join(str(exc).split())

