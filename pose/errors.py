"""The one error type for user mistakes, and how a command-line tool reports it.

``UserError`` is the base of every error that a user's input causes (a config key, an
annotation file, a checkpoint, a box file, an input path): the message names the file and
what is wrong, and a tool prints it as one line, ``error: <message>``, with exit code 2 and
no traceback. Everything else is a bug and keeps its traceback.

This module is the lowest layer: it imports nothing of the project, so ``datasets/`` can
subclass it too (``AnnotationError``, ``ImageDecodeError``, ``MetadataError``).
"""

import sys

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
    return 0 if code is None else int(code)


def one_line(exc):
    """An exception's message on one line (YAML parser messages span several)."""
    return " ".join(str(exc).split())

