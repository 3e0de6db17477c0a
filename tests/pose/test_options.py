"""pose.options: the range table and the argument parser every tool uses."""

import os

import pytest

from pose.errors import UserError, one_line
from pose.options import (
    OPTION_RANGES,
    MissingRangeError,
    Range,
    ToolArgumentParser,
    max_threads,
    option_range,
    output_options,
)


def test_argument_mistakes_are_user_errors(capsys):
    parser = ToolArgumentParser(prog="tool.py")
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int)
    for argv, message in [([], "the following arguments are required: --out"),
                          (["--out", "o", "--threads", "x"],
                           "argument --threads: invalid int value: 'x'"),
                          (["--out", "o", "--bogus"], "unrecognized arguments: --bogus")]:
        with pytest.raises(UserError) as raised:
            parser.parse_args(argv)
        assert str(raised.value) == f"{message} (see tool.py --help)"
    assert capsys.readouterr().err == ""  # no usage block
    assert one_line(ValueError(" a\n  b\tc ")) == "a b c"


@pytest.mark.parametrize("bounds, inside, outside, text", [
    (Range(1), [1, 2, 10 ** 12], [0, -1, 1.5, True, "2"], "a positive integer"),
    (Range(0), [0, 5], [-1], "an integer >= 0"),
    (Range(0.0, 1.0), [0.0, 0.5, 1.0, 0, 1], [-1e-9, 1.0 + 1e-9, float("nan")],
     "a number in [0.0, 1.0]"),
    (Range(0.0, None, False), [1e-300, 1e300], [0.0, -1.0, float("inf"), float("nan")],
     "a positive finite number"),
    (Range(0.0, 1e6, False), [1e-9, 1e6], [0.0, 1e6 * (1 + 1e-9)], "a number in (0.0, 1000000.0]"),
    (Range(0.0), [0.0, 3.0], [-1e-9, float("-inf")], "a finite number >= 0.0"),
    (Range(1, 16), [1, 16], [0, 17], "an integer in [1, 16]"),
])
def test_each_range_holds_its_bounds_and_refuses_the_nearest_values_outside(
        bounds, inside, outside, text):
    assert bounds.text() == text
    for value in inside:
        assert bounds.contains(value) and bounds.check(value, "--x") == value
    for value in outside:
        assert not bounds.contains(value)
        with pytest.raises(UserError) as raised:
            bounds.check(value, "--x")
        assert str(raised.value) == f"--x must be {text}, got {value!r}"


def test_threads_range_is_worked_out_on_this_machine(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert max_threads() == 16  # the floor
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert max_threads() == 32
    parser = ToolArgumentParser(prog="tool.py")
    parser.add_argument("--threads", type=int)
    assert parser.parse_args(["--threads", "32"]).threads == 32
    assert parser.parse_args(["--threads", "1"]).threads == 1
    assert parser.parse_args([]).threads is None
    for value, message in [("0", "--threads must be an integer in [1, 32], got 0"),
                           ("33", "--threads must be an integer in [1, 32], got 33")]:
        with pytest.raises(UserError) as raised:
            parser.parse_args(["--threads", value])
        assert str(raised.value) == message


def test_every_entry_of_a_list_option_is_checked_and_nan_is_refused():
    parser = ToolArgumentParser(tool="infer")
    parser.add_argument("--input-size", type=int, nargs=2)
    parser.add_argument("--detector-std", type=float, nargs=3)
    assert parser.parse_args(["--input-size", "192", "256"]).input_size == [192, 256]
    with pytest.raises(UserError, match=r"^--input-size must be an integer in \[1, 2048\], "
                                        "got 0$"):
        parser.parse_args(["--input-size", "192", "0"])
    for value in ("nan", "inf", "-1", "0"):
        with pytest.raises(UserError, match=rf"^--detector-std must be .*, got {value}"):
            parser.parse_args(["--detector-std", "1", "1", value])


def test_a_tools_own_row_wins_over_the_common_one():
    """``--width`` is an image width in make_synthetic_coco and an HRNet width in the
    benchmark's ``model`` subcommand: each tool's own row decides."""
    assert option_range("tools/make_synthetic_coco.py", "--width").low == 64
    assert option_range("tools/benchmark.py model", "--width").low == 1
    assert option_range("tools/demo.py", "--train") == OPTION_RANGES["demo --train"]
    assert option_range("tools/anything.py", "--threads") == OPTION_RANGES["--threads"]
    assert option_range("tools/anything.py", "--width") is None
    parser = ToolArgumentParser(tool="benchmark")
    model = parser.add_subparsers(dest="cmd").add_parser("model")
    model.add_argument("--width", type=int, default=32)
    assert parser.parse_args(["model", "--width", "18"]).width == 18
    with pytest.raises(UserError, match=r"^--width must be an integer in \[1, 1024\], got 0"):
        parser.parse_args(["model", "--width", "0"])  # the subcommand's options are checked


def test_a_numeric_option_without_a_range_is_a_bug_of_the_tool():
    parser = ToolArgumentParser(tool="train")
    with pytest.raises(MissingRangeError, match="--speed has no row"):
        parser.add_argument("--speed", type=float)
    with pytest.raises(MissingRangeError, match="--speed has no row"):
        parser.add_argument_group("g").add_argument("--speed", type=int)
    with pytest.raises(MissingRangeError, match="--speed has no row"):
        parser.add_mutually_exclusive_group().add_argument("--speed", type=int)
    parser.add_argument("--name")  # not a number: no range needed


def test_outputs_are_declared_with_the_option():
    parser = ToolArgumentParser(tool="x")
    parser.add_argument("--out", output="file")
    parser.add_argument_group("g").add_argument("--workdir", output="folder")
    parser.add_argument("--config")
    assert output_options(parser) == {"out": "file", "workdir": "folder"}
    with pytest.raises(ValueError, match="output must be 'file' or 'folder'"):
        parser.add_argument("--log", output="files")


def test_an_argument_with_a_nul_character_is_refused():
    parser = ToolArgumentParser(tool="x")
    parser.add_argument("--out")
    with pytest.raises(UserError, match="holds a NUL character"):
        parser.parse_args(["--out", "a\x00b"])


@pytest.mark.parametrize("option, value", [
    ("--track-max-age", "0"), ("--track-threshold", "0"), ("--track-threshold", "1"),
    ("--detect-every", "1"), ("--track-min-score", "0"), ("--smooth-beta", "0"),
    ("--threshold", "0"), ("--box-threshold", "1"), ("--detector-threshold", "0"),
    ("--detector-threshold", "1"), ("--detector-nms-iou", "1"), ("--max-people", "1"),
])
def test_the_documented_ends_of_the_video_and_detector_options_parse(option, value):
    """Each end that the help or the library documents (``TrackingParams``: max age 0 =
    forgotten at the first miss, thresholds in [0, 1]; ``OneEuroParams``: beta >= 0;
    ``DetectorBoxes``: threshold in [0, 1], NMS IoU up to 1) is taken by tools/infer.py's
    parser, and the library takes what the parser gave."""
    import runpy

    from pose.apis.smoothing import OneEuroParams
    from pose.apis.tracking import TrackingParams

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parse_args = runpy.run_path(os.path.join(root, "tools", "infer.py"),
                                run_name="tool")["parse_args"]
    _, args = parse_args(["a.jpg", "--weights", "m.onnx", "--out", "o", option, value])
    dest = option.lstrip("-").replace("-", "_")
    assert getattr(args, dest) == float(value)
    TrackingParams(match_threshold=args.track_threshold, max_age=args.track_max_age,
                   detect_every=args.detect_every, min_score=args.track_min_score)
    OneEuroParams(args.smooth_min_cutoff, args.smooth_beta, args.smooth_d_cutoff)


@pytest.mark.parametrize("value", ["\x00", "\x00a", "a\x00", "--out=\x00"])
def test_a_nul_character_anywhere_in_an_argument_is_refused(value):
    """First, last, alone or in ``--option=value``: no path holds one."""
    parser = ToolArgumentParser(tool="x")
    parser.add_argument("--out")
    args = [value] if value.startswith("--") else ["--out", value]
    with pytest.raises(UserError, match="holds a NUL character"):
        parser.parse_args(args)
