"""pose.errors: one line per user mistake, argparse mistakes included, and native stderr
output kept off the terminal (checked in a child process: it redirects file descriptor 2)."""

import os
import subprocess
import sys

import pytest

from pose.errors import (
    USER_ERROR_EXIT_CODE,
    CheckpointError,
    ToolArgumentParser,
    UserError,
    one_line,
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


def test_run_tool_reads_sys_argv_by_default(monkeypatch):
    seen = []
    monkeypatch.setattr("sys.argv", ["tools/x.py", "--out", "o", "--debug"])
    assert run_tool(lambda argv: seen.append(argv)) == 0
    assert seen == [["--out", "o"]]


def test_argument_mistakes_are_user_errors(capsys):
    parser = ToolArgumentParser(prog="tool.py")
    parser.add_argument("--out", required=True)
    parser.add_argument("--n", type=int)
    for argv, message in [([], "the following arguments are required: --out"),
                          (["--out", "o", "--n", "x"], "argument --n: invalid int value: 'x'"),
                          (["--out", "o", "--bogus"], "unrecognized arguments: --bogus")]:
        with pytest.raises(UserError) as raised:
            parser.parse_args(argv)
        assert str(raised.value) == f"{message} (see tool.py --help)"
    assert capsys.readouterr().err == ""  # no usage block
    assert one_line(ValueError(" a\n  b\tc ")) == "a b c"


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
