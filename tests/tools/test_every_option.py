"""The generated test of every option of every tool (issue 32).

For each tool in ``tools/`` (each subcommand of ``tools/benchmark.py`` counts as a tool)
and each of its options, read from the tool's own parser, Hypothesis draws hostile
values from the option's type and its row in ``pose.options.OPTION_RANGES``: just outside
the range, NaN, infinities, empty, huge, a path that is an input of the command or a
user's file or folder, arbitrary text. Each draw replaces the option in a valid base
command, the tool runs in-process through ``run_tool`` in a fresh folder of inputs, and:

- the exit code is 0 or 2 (no bug's exception, no other code);
- stderr has at most one line, and no traceback;
- no file outside the outputs the command declares (``add_argument(output=...)``) is
  created, changed or removed (a hash snapshot of the folder);
- after exit code 2 the folder is exactly as before: nothing left behind.

The test covers what happens before a tool's work starts (arguments, ranges, inputs, the
output policy): each tool's work is replaced by a stop (``STOPS``) that ends an accepted
command with exit 0, so that the examples take milliseconds. The work itself is tested
by each tool's own tests.

``make test`` runs a few derandomized examples per option; ``make fuzz`` runs
``TOOL_FUZZ_EXAMPLES`` (default 60) random ones per option.
"""

import argparse
import atexit
import contextlib
import hashlib
import importlib
import io
import os
import shutil
import tempfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pose.errors import run_tool
from pose.options import OPTION_RANGES, ToolArgumentParser, option_range, output_options

ROOT = Path(__file__).resolve().parents[2]
FUZZ_EXAMPLES = int(os.environ.get("TOOL_FUZZ_EXAMPLES", "0"))

# tool → (positionals, {option: value(s), None for a flag}): a valid command on the inputs
# of ``_inputs``, run in that folder. Subcommands are "benchmark model" etc.
BASE_COMMANDS = {
    "train": ([], {"--config": "tiny.yaml", "--workdir": "run"}),
    "test": ([], {"--weights": "model.keras", "--annotations": "ann.json", "--images": "images",
                  "--boxes": "boxes.json", "--out": "eval"}),
    "infer": (["images"], {"--weights": "model.keras", "--out": "out", "--quiet": None}),
    "serve": ([], {"--weights": "model.keras", "--access-log": "access.jsonl"}),
    "extract": (["images"], {"--weights": "model.keras", "--config": "tiny.yaml",
                             "--out": "ext", "--quiet": None}),
    "analyze": ([], {"--annotations": "ann.json", "--results": "results.json", "--out": "diag"}),
    "detect": ([], {"--detector": "det.onnx", "--images": ["images"], "--out": "dets.json",
                    "--quiet": None}),
    "export": ([], {"--weights": "model.keras", "--format": "onnx", "--out": "m.onnx"}),
    "convert": (["tiny.pth"], {"--out": "c.keras"}),
    "make_synthetic_coco": ([], {"--out": "synth", "--train": "2", "--val": "1",
                                 "--annotations-only": None}),
    "model_table": (["tiny.yaml"], {"--json": "table.json"}),
    "psa_insertion": (["tiny.pth"], {"--reference": "io.npz", "--json": "psa.json"}),
    "compare_psa": ([], {"--config": "tiny.yaml", "--workdir": "cmp", "--seeds": "2"}),
    "demo": ([], {"--config": "tiny.yaml", "--workdir": "demo", "--train": "4", "--val": "2"}),
    "benchmark_pipeline": ([], {"--out": "bp.json", "--images": "2"}),
    "benchmark_startup": ([], {"--workdir": "bs", "--images": ["images/a.jpg"],
                               "--boxes": "boxes.json"}),
    "benchmark model": ([], {"--out": "bm.json"}),
    "benchmark eval-scale": ([], {"--out": "be.json", "--images": "10"}),
    "benchmark bootstrap": ([], {"--out": "bb.json", "--images": "10"}),
    "benchmark runtimes": ([], {"--weights": "model.keras", "--workdir": "br",
                                "--out": "br.json"}),
    "benchmark video": ([], {"--weights": "model.keras", "--workdir": "bv", "--out": "bv.json"}),
    "benchmark detector-input": ([], {"--images": ["images/a.jpg"], "--out": "bd.json"}),
    "benchmark serve": ([], {"--weights": "model.keras", "--out": "bs.json"}),
}

# Where each tool's work starts: "module:function", replaced by a stop.
STOPS = {
    "train": ["pose.engine.training:_fit"],
    "test": ["tools.test:load_network"],
    "infer": ["pose.apis.estimator:load_network"],
    "serve": ["pose.apis.estimator:load_network", "pose.serving.app:serve"],
    "extract": ["pose.apis.estimator:load_network", "pose.batch.extraction:connect"],
    "analyze": ["tools.analyze:diagnose_files"],
    "detect": ["pose.apis.detector:detector_from_args"],
    "export": ["pose.engine.pretrained:load_any_checkpoint"],
    "convert": ["pose.engine.pretrained:convert_checkpoint"],
    "make_synthetic_coco": ["tools.make_synthetic_coco:generate_coco"],
    "model_table": ["tools.model_table:build_model"],
    "psa_insertion": ["pose.experiments.psa_insertion:measure_psa_insertion"],
    "compare_psa": ["tools.compare_psa:run_comparison", "tools.compare_psa:compare_checkpoints"],
    "demo": ["tools.demo:run_demo"],
    "benchmark_pipeline": ["tools.benchmark_pipeline:generate_coco",
                           "tools.benchmark_pipeline:load_train_records"],
    "benchmark_startup": ["tools.benchmark_startup:make_checkpoint",
                          "pose.experiments.detector_benchmark:make_detector_file"],
    "benchmark": ["tools.benchmark:benchmark_model", "tools.benchmark:benchmark_eval_scale",
                  "tools.benchmark:benchmark_bootstrap_intervals",
                  "tools.benchmark:benchmark_runtimes",
                  "tools.benchmark:benchmark_video_inference",
                  "tools.benchmark:benchmark_detector_input",
                  "pose.experiments.serve_benchmark:benchmark_serving"],
}

# Paths of the inputs folder, as a user would type them.
INPUT_PATHS = ["images", "images/a.jpg", "ann.json", "boxes.json", "model.keras", "tiny.yaml",
               "tiny.pth", "io.npz", "det.onnx"]
USER_PATHS = ["user.txt", "userdir", "userdir/photo.jpg", "sub/../user.txt", "userlink.txt"]
ODD_PATHS = ["", " ", "missing/nowhere.json", "x" * 300, "bad\x00name", "-", ".", "..",
             "user.txt/inside", "pipe.jpg"]
SET_VALUES = ["", "=", "train.lr=nan", "train.lr=-1", "train.seed=-1", "train.seed=1e30",
              "data.flip_prob=2", "data.encoding=heatmap", "model.width=0", "x.y=1", "train",
              "train.epochs=99999999999999999999", "data.oks_sigmas=[-1]", "train.lr_steps=[1,",
              "test.decoding=[]", "data.sigma=inf", "train.batch_size=0", "model.width=1e999",
              "train.lr={a: 1}", "data.root=" + "x" * 300]


class _WorkReached(BaseException):
    """The tool got past every check to the start of its work."""


def _stop(*args, **kwargs):
    raise _WorkReached()


def _tool_module(tool):
    return importlib.import_module(f"tools.{tool.split()[0]}")


def _capture_parser(tool):
    """The tool's ``ToolArgumentParser`` (its subcommand's, for "benchmark model")."""
    captured = []

    def grab(parser, *args, **kwargs):
        captured.append(parser)
        raise _WorkReached()

    with mock.patch.object(ToolArgumentParser, "parse_args", grab):
        with contextlib.suppress(_WorkReached):
            _tool_module(tool).main([])
    parser = captured[0]
    words = tool.split()
    if len(words) > 1:
        subparsers = next(a for a in parser._actions
                          if isinstance(a, argparse._SubParsersAction))
        parser = subparsers.choices[words[1]]
    return parser


def _options(parser):
    return [a for a in parser._actions
            if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]


def _name(action):
    return action.option_strings[0] if action.option_strings else action.dest


def _tool_files():
    return sorted(p.stem for p in (ROOT / "tools").glob("*.py") if p.stem != "__init__")


PARSERS = {tool: _capture_parser(tool) for tool in BASE_COMMANDS}
CASES = [(tool, _name(action)) for tool, parser in PARSERS.items()
         for action in _options(parser)]


def test_every_tool_and_subcommand_has_a_base_command_and_a_stop():
    tools = {tool.split()[0] for tool in BASE_COMMANDS}
    assert tools == set(_tool_files())
    benchmark = _capture_parser("benchmark")
    choices = next(a for a in benchmark._actions
                   if isinstance(a, argparse._SubParsersAction)).choices
    assert {f"benchmark {name}" for name in choices} == {
        t for t in BASE_COMMANDS if t.startswith("benchmark ")}
    assert tools == set(STOPS)


def test_every_tool_declares_its_outputs_and_every_range_row_is_used():
    for tool, parser in PARSERS.items():
        assert output_options(parser), f"{tool} declares no output option"
    used = set()
    for tool, parser in PARSERS.items():
        for action in _options(parser):
            if action.type in (int, float):
                bounds = option_range(parser.prog, _name(action))
                used.update(key for key, value in OPTION_RANGES.items() if value is bounds
                            and key.split()[-1] == _name(action))
    assert set(OPTION_RANGES) - used == set(), "rows of OPTION_RANGES no tool uses"


@contextlib.contextmanager
def _inputs():
    """A fresh folder with the inputs the base commands name, a user's files beside them,
    and a named pipe (reading it would block)."""
    folder = Path(tempfile.mkdtemp(prefix="every-option-"))
    try:
        # hard links: fast, and a tool's atomic writes replace a link, never the original
        shutil.copytree(INPUTS, folder / "w", symlinks=True, copy_function=os.link)
        work = folder / "w"
        os.mkfifo(work / "pipe.jpg")
        yield work
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _make_inputs(root):
    import json

    data = ROOT / "tests" / "data"
    (root / "images").mkdir(parents=True)
    shutil.copy(data / "coco_sample" / "images" / "000000000785.jpg", root / "images" / "a.jpg")
    annotations = json.loads((data / "coco_sample" / "person_keypoints_sample.json").read_text())
    annotations["images"] = [dict(annotations["images"][0], file_name="a.jpg")]
    image_id = annotations["images"][0]["id"]
    annotations["annotations"] = [a for a in annotations["annotations"]
                                  if a["image_id"] == image_id]
    (root / "ann.json").write_text(json.dumps(annotations))
    (root / "boxes.json").write_text(json.dumps(
        [{"image_id": image_id, "category_id": 1, "bbox": [10, 10, 100, 200], "score": 0.9}]))
    person = next(a for a in annotations["annotations"] if a.get("num_keypoints"))
    (root / "results.json").write_text(json.dumps(
        [{"image_id": image_id, "category_id": 1, "keypoints": person["keypoints"],
          "score": 0.9}]))
    (root / "model.keras").write_bytes(b"a checkpoint (the tools stop before loading it)")
    (root / "det.onnx").write_bytes(b"a detector (the tools stop before loading it)")
    shutil.copy(data / "official_hrnet" / "pose_hrnet_tiny.pth", root / "tiny.pth")
    shutil.copy(data / "official_hrnet" / "io.npz", root / "io.npz")
    (root / "tiny.yaml").write_text(
        "model: {width: 8, stem_width: 16, num_blocks: 1, stage1_blocks: 1,"
        " stage_modules: [1, 1, 1], input_size: [32, 64]}\n"
        "data: {root: ., train_annotations: ann.json, train_images: images,"
        " val_annotations: ann.json, val_images: images}\n"
        "train: {batch_size: 1, epochs: 1}\n"
        "test: {detections: boxes.json}\n")
    (root / "user.txt").write_text("a user's notes")
    (root / "userdir").mkdir()
    (root / "userdir" / "photo.jpg").write_bytes(b"a user's photo")
    (root / "sub").mkdir()
    (root / "userlink.txt").symlink_to("user.txt")


INPUTS = Path(tempfile.mkdtemp(prefix="every-option-inputs-")) / "w"
_make_inputs(INPUTS)
atexit.register(shutil.rmtree, INPUTS.parent, True)  # made at collection: no fixture owns it


def _snapshot(folder):
    """relative path → what it is: a file's digest, a link's target, a folder, a pipe."""
    shot = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            key = os.path.relpath(path, folder)
            if os.path.islink(path):
                shot[key] = "link:" + os.readlink(path)
            elif os.path.isdir(path):
                shot[key] = "folder"
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    shot[key] = hashlib.sha1(f.read()).hexdigest()
            else:
                shot[key] = "special"
    return shot


def _values(action, prog):
    """The hostile values of one option: lists of argument strings."""
    if action.nargs == 0:
        return st.just([])
    count = action.nargs if isinstance(action.nargs, int) else 1
    if action.type in (int, float):
        bounds = option_range(prog, _name(action))
        high = bounds.upper()
        step = 1 if bounds.integer else 1e-9
        texts = [str(bounds.low - step), "nan", "inf", "-inf", "1e400", "", "0x10",
                 str(10 ** 18), "-" + str(10 ** 18), str(bounds.low)]
        if high is not None:
            texts += [str(high), str(high + step if bounds.integer else high * (1 + 1e-9))]
        single = st.sampled_from(texts)
    elif action.choices is not None:
        single = st.sampled_from([*map(str, action.choices), "", "bogus", "x" * 300])
    elif action.dest == "overrides":
        single = st.sampled_from(SET_VALUES)
    else:
        single = st.one_of(st.sampled_from(INPUT_PATHS + USER_PATHS + ODD_PATHS),
                           st.text(max_size=12))
    if action.nargs in ("+", "*"):
        return st.lists(single, min_size=0 if action.nargs == "*" else 1, max_size=3)
    return st.lists(single, min_size=count, max_size=count)


def _argv(tool, option=None, values=None):
    """The base command of ``tool``, with ``option`` given ``values`` (a list of argument
    strings; [] for a flag) when ``option`` is given."""
    positionals, options = BASE_COMMANDS[tool]
    argv = tool.split()[1:]
    options = dict(options)
    if option is None:
        pass
    elif option.startswith("-"):
        options[option] = values if values else None
    else:
        positionals = values
    argv += list(positionals)
    for name, value in options.items():
        argv.append(name)
        if value is not None:
            argv += [value] if isinstance(value, str) else list(value)
    return argv


def _declared_outputs(parser, argv, words):
    """Absolute paths the command may write: its output options' values (their defaults
    too), a file output's config beside it, the manifests."""
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            namespace, _ = parser.parse_known_args(argv[len(words) - 1:])
    except (Exception, SystemExit):
        return []
    paths = []
    for dest, kind in output_options(parser).items():
        value = getattr(namespace, dest, None)
        if value:
            paths.append(os.path.abspath(value))
            if kind == "file":
                paths.append(os.path.splitext(os.path.abspath(value))[0] + ".yaml")
    return paths


def _must_refuse(action, prog, values):
    """Why the command must end in exit code 2 with ``values`` for ``action``, or None:
    a number outside its range (NaN, infinities, text that is no number included), a name
    that is not among the choices, an output that would replace an existing path."""
    if action.type in (int, float):
        bounds = option_range(prog, _name(action))
        for text in values:
            try:
                value = action.type(text)
            except ValueError:
                return f"{text!r} is no {action.type.__name__}"
            if not bounds.contains(value):
                return f"{text!r} is outside {bounds.text()}"
        if len(values) == 0 and action.nargs not in ("*", 0):
            return "no value"
    elif action.choices is not None and any(v not in action.choices for v in values):
        return "not a choice"
    elif (getattr(action, "output", None) and values and os.path.lexists(values[0])
          and not _train_workdir(prog, action)):
        return f"the output {values[0]!r} exists"
    return None


def _train_workdir(prog, action):
    """tools/train.py's --workdir may hold other files (a run folder refuses only the
    trainer's own file names there; tests/pose/engine/test_training.py checks those)."""
    return prog == "tools/train.py" and action.dest == "workdir"


def _inside(path, folders):
    return any(path == f or path.startswith(f.rstrip(os.sep) + os.sep) for f in folders)


@pytest.mark.parametrize("tool, option", CASES, ids=[f"{t}-{o}" for t, o in CASES])
def test_every_option_is_refused_in_one_line_or_accepted_and_touches_only_its_outputs(
        tool, option, capfd, monkeypatch):
    parser = PARSERS[tool]
    action = next(a for a in _options(parser) if _name(a) == option)
    for target in STOPS[tool.split()[0]]:
        module, function = target.split(":")
        monkeypatch.setattr(importlib.import_module(module), function, _stop)
    words = tool.split()

    @settings(max_examples=FUZZ_EXAMPLES or 4, derandomize=not FUZZ_EXAMPLES, deadline=None,
              database=None, suppress_health_check=list(HealthCheck))
    @given(values=_values(action, parser.prog))
    def check(values):
        argv = _argv(tool, option, values)
        with _inputs() as work:
            before = _snapshot(work)
            cwd = os.getcwd()
            os.chdir(work)
            try:
                allowed = _declared_outputs(parser, argv, words)
                refuse = _must_refuse(action, parser.prog, values)
                capfd.readouterr()
                try:
                    code = run_tool(_tool_module(tool).main, argv)
                except _WorkReached:
                    code = 0
                except SystemExit as exc:  # argparse's --help: not drawn here
                    code = exc.code
                err = capfd.readouterr().err
            finally:
                os.chdir(cwd)
            after = _snapshot(work)
        shown = f"{tool} {argv!r}"
        assert code in (0, 2), f"{shown}: exit code {code}\n{err}"
        assert "Traceback" not in err, f"{shown}:\n{err}"
        lines = err.strip().splitlines()
        assert len(lines) <= 1, f"{shown}: {len(lines)} stderr lines:\n{err}"
        assert code == 0 or lines and lines[0].startswith("error: "), f"{shown}: {err}"
        if refuse:
            assert code == 2, f"{shown}: accepted although {refuse}"
            if action.type in (int, float) and "invalid" not in err:
                assert option in err, f"{shown}: the error does not name {option}: {err}"
        changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
        if code == 2:
            assert not changed, f"{shown}: a failed run left {sorted(changed)}"
        else:
            allowed_here = [os.path.realpath(p.replace(os.getcwd(), str(work), 1))
                            if p.startswith(os.getcwd()) else p for p in allowed]
            outside = sorted(k for k in changed
                             if not _inside(os.path.realpath(work / k), allowed_here)
                             and os.path.basename(k) != ".psa-pose-outputs.json")
            assert not outside, f"{shown}: changed files it does not declare: {outside}"

    check()


def test_the_stops_are_where_the_work_starts(monkeypatch):
    """Each base command is accepted (it reaches its stop): a base command that fails
    would make every example of its tool a refusal, and test nothing."""
    for tool in BASE_COMMANDS:
        with monkeypatch.context() as patch:
            for target in STOPS[tool.split()[0]]:
                module, function = target.split(":")
                patch.setattr(importlib.import_module(module), function, _stop)
            with _inputs() as work:
                cwd = os.getcwd()
                os.chdir(work)
                try:
                    with pytest.raises(_WorkReached):
                        code = run_tool(_tool_module(tool).main, _argv(tool))
                        pytest.fail(f"{tool} {_argv(tool)}: exit code {code}")
                finally:
                    os.chdir(cwd)



def _run_to_stop(tool, argv, work, stop=_stop):
    """Exit code and stderr of ``tool`` with ``argv`` in ``work``, its work replaced by
    ``stop`` (exit code 0 when the work is reached)."""
    with contextlib.ExitStack() as stack:
        for target in STOPS[tool.split()[0]]:
            module, function = target.split(":")
            stack.enter_context(mock.patch.object(importlib.import_module(module), function, stop))
        cwd = os.getcwd()
        os.chdir(work)
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                try:
                    code = run_tool(_tool_module(tool).main, argv)
                except _WorkReached:
                    code = 0
        finally:
            os.chdir(cwd)
    return code, err.getvalue()


OVERWRITE_CASES = [tool for tool, option in CASES if option == "--overwrite"]


@pytest.mark.parametrize("tool", OVERWRITE_CASES)
def test_overwrite_decides_whether_an_existing_output_is_replaced(tool):
    """With the first declared output already holding a user's file (or a folder with a
    user's file in it), the command is refused without --overwrite, the user's file
    untouched, and reaches its work with it."""
    parser = PARSERS[tool]
    argv = _argv(tool)
    words = tool.split()
    namespace, _ = parser.parse_known_args(argv[len(words) - 1:])
    dest, kind = next((d, k) for d, k in output_options(parser).items()
                      if getattr(namespace, d, None))
    with _inputs() as work:
        target = work / getattr(namespace, dest)
        user_file = target / "notes.txt" if kind == "folder" else target
        user_file.parent.mkdir(parents=True, exist_ok=True)
        user_file.write_text("a user's file")
        code, err = _run_to_stop(tool, argv, work)
        assert code == 2 and "--overwrite" in err, (tool, code, err)
        assert user_file.read_text() == "a user's file"
        code, err = _run_to_stop(tool, argv + ["--overwrite"], work)
        assert code == 0, (tool, err)


DEBUG_CASES = [tool for tool, option in CASES if option == "--debug"]


def _user_mistake(*args, **kwargs):
    from pose.errors import UserError
    raise UserError("a planted mistake")


@pytest.mark.parametrize("tool", DEBUG_CASES)
def test_debug_lets_an_error_out_with_its_traceback(tool):
    """An error at the start of the work is one ``error:`` line (exit code 2); with
    --debug, ``run_tool`` lets it out with its traceback instead."""
    from pose.errors import UserError

    with _inputs() as work:
        code, err = _run_to_stop(tool, _argv(tool), work, stop=_user_mistake)
        assert code == 2 and err == "error: a planted mistake\n", (tool, err)
        with pytest.raises(UserError, match="a planted mistake"):
            _run_to_stop(tool, _argv(tool) + ["--debug"], work, stop=_user_mistake)


TABLE_START = "<!-- every option and its test: start -->"
TABLE_END = "<!-- every option and its test: end -->"


def _testing_md_table():
    """(tool, option) → "path::test" of the table in TESTING.md."""
    text = (ROOT / "TESTING.md").read_text()
    body = text[text.index(TABLE_START) + len(TABLE_START):text.index(TABLE_END)]
    rows = {}
    for line in body.strip().splitlines()[2:]:  # after the header and its rule
        tool, option, test = (cell.strip().strip("`") for cell in line.strip("|").split("|"))
        assert (tool, option) not in rows, f"TESTING.md lists {tool} {option} twice"
        rows[tool, option] = test
    return rows


def _test_source(reference):
    """The source of the test ``path::name`` with its decorators (its parametrize list)."""
    import ast

    path, name = reference.split("::")
    source = (ROOT / path).read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            first = min([d.lineno for d in node.decorator_list] + [node.lineno])
            return "\n".join(source.splitlines()[first - 1:node.end_lineno])
    raise AssertionError(f"TESTING.md names {reference}, which does not exist")


def test_testing_md_names_a_test_for_every_option_of_every_tool():
    """The table of TESTING.md has one row per option of every tool's parser (an option
    without a row fails, so does a row of an option that is gone), and each row names a test
    that exists and passes that option (the tool's own test, or one of the two tests above
    that take every tool's --overwrite and --debug)."""
    rows = _testing_md_table()
    missing = sorted(set(CASES) - set(rows))
    gone = sorted(set(rows) - set(CASES))
    assert not missing, f"options without a row in TESTING.md: {missing}"
    assert not gone, f"rows of TESTING.md for options no tool has: {gone}"
    for (tool, option), reference in rows.items():
        source = _test_source(reference)
        if reference.startswith("tests/tools/test_every_option.py::"):
            assert option in ("--overwrite", "--debug"), (tool, option, reference)
        elif option.startswith("-"):
            assert option in source, f"{reference} does not pass {option} ({tool})"
