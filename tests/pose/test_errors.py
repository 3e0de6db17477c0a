"""pose.errors: one line per user mistake, argparse mistakes included, and native stderr
output kept off the terminal (checked in a child process: it redirects file descriptor 2)."""

import os
import subprocess
import sys

import pytest

from pose.errors import (
    USER_ERROR_EXIT_CODE,
    CheckpointError,
    run_tool,
)


def test_run_tool_turns_a_user_error_into_one_line(capsys):
    def main(argv):
        assert "--debug" not in argv  # taken out before main parses
        raise CheckpointError("corrupt checkpoint x.keras:\n  not a zip")

    assert USER_ERROR_EXIT_CODE == 2
    assert run_tool(main, ["--x"]) == 2
    assert capsys.readouterr().err == "error: corrupt checkpoint x.keras: not a zip\n"
    with pytest.raises(CheckpointError):  # --debug: the traceback
        run_tool(main, ["--debug"])
    assert run_tool(lambda argv: None, []) == 0 and run_tool(lambda argv: 1, []) == 1
    with pytest.raises(KeyError):  # a bug is no user error
        run_tool(lambda argv: {}["x"], [])
    assert capsys.readouterr().err == ""  # nothing hidden in this process: nothing replayed


def test_a_full_disk_or_a_read_only_file_system_is_one_line_and_other_os_errors_are_bugs(
        capsys):
    import errno

    def failing(error_number, filename="run/metrics.json"):
        def main(argv):
            raise OSError(error_number, os.strerror(error_number), filename)
        return main

    for error_number, message in [
        (errno.ENOSPC, "run/metrics.json: no space left on the device (disk full)"),
        (errno.EDQUOT, "run/metrics.json: disk quota exceeded"),
        (errno.EROFS, "run/metrics.json: the file system is read-only"),
        (errno.ENOMEM, "run/metrics.json: not enough memory"),
    ]:
        assert run_tool(failing(error_number)) == 2
        assert capsys.readouterr().err == (f"error: {message}; this run's unfinished outputs "
                                           "were removed\n")
    assert run_tool(failing(errno.ENOSPC, None)) == 2
    assert capsys.readouterr().err.startswith("error: no space left on the device")
    with pytest.raises(OSError):  # --debug: the traceback
        run_tool(failing(errno.ENOSPC), ["--debug"])
    with pytest.raises(OSError):  # any other OS error is a bug of the tool
        run_tool(failing(errno.EBADF))


def test_run_tool_reads_sys_argv_by_default(monkeypatch):
    seen = []
    monkeypatch.setattr("sys.argv", ["tools/x.py", "--out", "o", "--debug"])
    assert run_tool(lambda argv: seen.append(argv)) == 0
    assert seen == [["--out", "o"]]


CHILD = r"""
import os, sys, warnings
from pose.errors import hide_native_output, run_tool
hide_native_output(sys.argv[1:])
os.write(2, b"native start-up line\n")          # what TensorFlow's C++ code does
warnings.warn("a library warning")
print("python line", file=sys.stderr)
def main(argv):
    if "--bug" in argv:
        raise KeyError("bug")
    return 0
sys.exit(run_tool(main, sys.argv[1:]))
"""


@pytest.mark.parametrize("args, shown", [
    ([], ["python line"]),
    (["--debug"], ["native start-up line", "a library warning", "python line"]),
    (["--bug"], ["python line", "native library output (shown because the tool failed):",
                 "native start-up line", "a library warning", "KeyError: 'bug'"]),
])
def test_native_output_is_hidden_unless_debug_or_a_bug(args, shown):
    # the child imports the same pose.errors as this process (a mutation tool's copy too)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    run = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True,
                         timeout=60, env=env)
    lines = run.stderr.splitlines()
    found = [next((i for i, line in enumerate(lines) if text in line), None) for text in shown]
    assert None not in found and found == sorted(found), run.stderr  # all, in this order
    if not args:
        assert lines == ["python line"] and run.returncode == 0


PLAIN_LOCALE_CHILD = r"""
import logging, os, sys, warnings
from pose.errors import hide_native_output, replay_native_output
if sys.argv[1:] == ["--explicit-debug"]:
    hide_native_output(["--debug"])      # the arguments given win over sys.argv
else:
    hide_native_output()                 # reads sys.argv[1:]
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")  # as tools do
os.write(2, b"native \xff line\n")        # native output need not be UTF-8
warnings.warn("a library warning \u00e9")
print("python line \u00e9 \udc80", file=sys.stderr)  # not ASCII, and a lone surrogate
logging.getLogger("tool").info("a log line")
if "--replay" in sys.argv:
    replay_native_output()
os._exit(3)                              # a hard exit flushes nothing: lines must be out
"""


@pytest.mark.parametrize("args", [[], ["--replay"], ["--debug"], ["--explicit-debug"]])
def test_hidden_output_in_a_plain_locale_up_to_a_hard_exit(args):
    """In the C locale (ASCII) the terminal still gets UTF-8, text it cannot encode
    escaped, every line written before a hard exit, the tool's log on stdout and no
    library warning there; the replay escapes native bytes that are not UTF-8; the
    default arguments are the process's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "PYTHONIO"))}
    env.update(LC_ALL="C", LANG="C", PYTHONUTF8="0",
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    run = subprocess.run([sys.executable, "-c", PLAIN_LOCALE_CHILD, *args],
                         capture_output=True, timeout=60, env=env)
    assert run.returncode == 3, run.stderr
    assert run.stdout == b"a log line\n"  # the library warning is not the tool's log
    python_line = "python line \u00e9 \\udc80".encode()
    warning = b"UserWarning: a library warning "
    lines = run.stderr.splitlines()
    if args == []:
        assert lines == [python_line], run.stderr
    elif args == ["--replay"]:  # the warning's own text ends with a newline
        assert lines == [python_line, b"native library output (shown because the tool failed):",
                         b"native \\xff line",
                         b"<string>:10: UserWarning: a library warning \xc3\xa9", b""], run.stderr
    else:  # nothing hidden: the native bytes as they are, the warning on stderr
        # (Python's own stderr in the C locale: ASCII, its escapes)
        assert lines[0] == b"native \xff line" and lines[-1].startswith(b"python line"), \
            run.stderr
        assert any(warning in line for line in lines), run.stderr


INTERRUPTED_CHILD = r"""
import signal, sys, time
from pose.errors import run_tool
# as in a terminal: a test runner's worker may hand its children SIGINT ignored
signal.signal(signal.SIGINT, signal.default_int_handler)
def main(argv):
    print("ready", flush=True)
    time.sleep(60)
sys.exit(run_tool(main, sys.argv[1:]))
"""


@pytest.mark.parametrize("signal_name, code, how", [("SIGINT", 130, "Ctrl-C"),
                                                    ("SIGTERM", 143, "SIGTERM")])
def test_ctrl_c_and_sigterm_end_a_tool_with_one_line(signal_name, code, how):
    import signal

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    child = subprocess.Popen([sys.executable, "-c", INTERRUPTED_CHILD], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline() == "ready\n"
        child.send_signal(getattr(signal, signal_name))
        _, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == code
    assert err.splitlines() == [f"error: interrupted ({how}); this run's unfinished outputs "
                                "were removed"]


def test_an_interrupt_under_debug_keeps_its_traceback_and_the_handler_is_restored():
    import signal

    before = signal.getsignal(signal.SIGTERM)

    def main(argv):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_tool(main, ["--debug"])
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_failure_hook_registered_twice_runs_once():
    """``on_failure`` says whether the hook is new (a run's first claim) and keeps one copy:
    a failed run calls it once."""
    from pose.errors import on_failure

    calls = []

    def hook():
        calls.append(1)

    def main(argv):
        assert on_failure(hook) is True
        assert on_failure(hook) is False
        return 1

    assert run_tool(main, []) == 1
    assert calls == [1]


def test_the_sigterm_handler_is_given_back_after_each_run():
    """run_tool turns SIGTERM into an exception while the tool runs and puts the caller's
    handler back afterwards, whether the run succeeded or failed."""
    import signal

    def mine(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        def fails(argv):
            raise CheckpointError("bad value")

        for main in (lambda argv: 0, fails):
            run_tool(main, [])
            assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)
