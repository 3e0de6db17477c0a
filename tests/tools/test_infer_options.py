"""Each option of tools/infer.py reaches what it configures (issue 30).

The tool runs in this process with its model, estimator and run captured at the calls
that take the options (``load_network``, ``PoseEstimator.from_config``,
``run_inference``), so every option is checked against the value it must hand on, with
and without it, in milliseconds. What the tracking, smoothing and batching then do with
those values is tested on real clips in tests/pose/apis/test_tracking.py,
test_smoothing.py and test_inference.py.
"""

import runpy
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from pose.errors import run_tool

ROOT = Path(__file__).resolve().parents[2]


class _Reached(BaseException):
    """The tool handed its work to ``run_inference``: the call is captured."""


@pytest.fixture
def infer(tmp_path, monkeypatch):
    """``handed(*options)``: what tools/infer.py passes on for those options."""
    import pose.apis.estimator as estimator
    import pose.apis.runner as runner

    (tmp_path / "photos" / "sub").mkdir(parents=True)
    for name in ("photos/a.png", "photos/sub/b.png"):
        cv2.imwrite(str(tmp_path / name), np.zeros((32, 48, 3), np.uint8))
    (tmp_path / "m.onnx").write_bytes(b"the model is not loaded: load_network is captured")
    calls = {}

    def load_network(path, runtime, threads, **kwargs):
        calls["load"] = {"path": Path(path).name, "runtime": runtime, "threads": threads,
                         **kwargs}
        return SimpleNamespace(description="stub"), None

    def from_config(model, config, **kwargs):
        calls["estimator"] = {"config": config, **kwargs}
        return SimpleNamespace(flip=kwargs.get("flip"), batch_size=kwargs.get("batch_size"))

    def run_inference(estimator_, inputs, out, source, **kwargs):
        calls["run"] = {"inputs": [Path(i.path).name for i in inputs], "source": source,
                        "out": Path(out).name, **kwargs}
        raise _Reached()

    monkeypatch.setattr(estimator, "load_network", load_network)
    monkeypatch.setattr(estimator.PoseEstimator, "from_config", from_config)
    monkeypatch.setattr(estimator, "runtime_description", lambda model, threads: "stub")
    monkeypatch.setattr(runner, "run_inference", run_inference)

    def resolve_config(config, saved, overrides, source=None):
        calls["config"] = {"config": config and Path(config).name, "overrides": overrides}
        return "config"

    def detector_from_args(args, threads=None):
        calls["detector"] = vars(args)
        return SimpleNamespace(name="planted detector")

    monkeypatch.setattr("pose.config.resolve_config", resolve_config)
    monkeypatch.setattr("pose.apis.detector.detector_from_args", detector_from_args)
    for name in ("n.onnx", "c.yaml", "det.onnx"):
        (tmp_path / name).write_bytes(b"captured")
    (tmp_path / "dets.json").write_text(
        '[{"image_id": 1, "category_id": 1, "bbox": [1, 1, 9, 9], "score": 0.9}]')
    main = runpy.run_path(str(ROOT / "tools" / "infer.py"), run_name="tool")["main"]

    def handed(*options, inputs=("photos",)):
        calls.clear()
        out = tmp_path / f"out{abs(hash(options))}"
        try:
            code = run_tool(main, [*(str(tmp_path / i) for i in inputs), "--weights",
                                   str(tmp_path / "m.onnx"), "--out", str(out),
                                   *map(str, options)])
        except _Reached:
            return dict(calls)
        raise AssertionError(f"{options}: exit {code} before run_inference")

    return handed


@pytest.mark.parametrize("options, where, get, value", [
    (["--track-metric", "iou"], "run", lambda r: r["tracking"].metric, "iou"),
    (["--track-threshold", 0.6], "run", lambda r: r["tracking"].match_threshold, 0.6),
    (["--track-max-age", 3], "run", lambda r: r["tracking"].max_age, 3),
    (["--detect-every", 5], "run", lambda r: r["tracking"].detect_every, 5),
    (["--track-min-score", 0.7], "run", lambda r: r["tracking"].min_score, 0.7),
    (["--smooth"], "run", lambda r: r["tracking"].smooth is not None, True),
    (["--smooth-min-cutoff", 2.5], "run",
     lambda r: r["tracking"].smooth.min_cutoff, 2.5),
    (["--smooth-beta", 0.5], "run", lambda r: r["tracking"].smooth.beta, 0.5),
    (["--smooth-d-cutoff", 3.0], "run",
     lambda r: r["tracking"].smooth.d_cutoff, 3.0),
    (["--threshold", 0.6], "run", lambda r: r["threshold"], 0.6),
    (["--box-threshold", 0.8], "run", lambda r: r["box_threshold"], 0.8),
    (["--ignore-exif"], "run", lambda r: r["exif_orientation"], False),
    (["--quiet"], "run", lambda r: r["verbose"], 0),
    (["--recursive"], "run", lambda r: r["inputs"], ["a.png", "b.png"]),
    (["--no-flip"], "estimator", lambda e: e["flip"], False),
    (["--batch-size", 7], "estimator", lambda e: e["batch_size"], 7),
    (["--batching", "padded"], "estimator", lambda e: e["batching"], "padded"),
    (["--threads", 3], "load", lambda loaded: loaded["threads"], 3),
    (["--input-size", 96, 128], "load", lambda loaded: loaded["input_size"], [96, 128]),
    (["--runtime", "onnx"], "load", lambda loaded: loaded["runtime"], "onnx"),
])
def test_each_option_reaches_what_it_configures(infer, options, where, get, value):
    # a --smooth-* value is compared with --smooth alone (without it there is no filter)
    base = ["--smooth"] if options[0].startswith("--smooth-") else []
    with_option = get(infer(*base, *options)[where])
    without = get(infer(*base)[where])
    assert with_option == value != without, (options, without)


def test_whole_image_is_said_as_the_reason_for_the_boxes(infer, capsys):
    """Without --boxes or --detector the box is the whole image either way; --whole-image
    says it was asked for instead of advising a detector."""
    infer()
    default = capsys.readouterr().out
    infer("--whole-image")
    asked = capsys.readouterr().out
    assert "person boxes: whole image (no --detector or --boxes given" in default
    assert "person boxes: whole image (given by --whole-image)" in asked


@pytest.mark.parametrize("options, where, get, value", [
    (["--weights", "WEIGHTS"], "load", lambda loaded: loaded["path"], "n.onnx"),
    (["--config", "CONFIG"], "config", lambda c: c["config"], "c.yaml"),
    (["--set", "test.flip_test=false"], "config", lambda c: c["overrides"],
     ["test.flip_test=false"]),
    (["--out", "OUT"], "run", lambda r: r["out"], "mine"),
    (["--boxes", "BOXES"], "run", lambda r: type(r["source"]).__name__, "DetectionBoxes"),
    (["--detector", "DETECTOR"], "run", lambda r: r["source"].name, "planted detector"),
])
def test_the_model_config_output_and_box_options_reach_their_calls(infer, tmp_path, options,
                                                                  where, get, value):
    paths = {"WEIGHTS": "n.onnx", "CONFIG": "c.yaml", "OUT": "mine", "BOXES": "dets.json",
             "DETECTOR": "det.onnx"}
    options = [str(tmp_path / paths[o]) if o in paths else o for o in options]
    with_option = get(infer(*options)[where])
    without = get(infer()[where])
    assert with_option == value != without


@pytest.mark.parametrize("option, values, attribute", [
    ("--detector-format", ["yolov8"], "detector_format"),
    ("--detector-preset", ["yolox"], "detector_preset"),
    ("--detector-size", ["320", "256"], "detector_size"),
    ("--detector-mean", ["1", "2", "3"], "detector_mean"),
    ("--detector-std", ["4", "5", "6"], "detector_std"),
    ("--detector-threshold", ["0.6"], "detector_threshold"),
    ("--person-class", ["3"], "person_class"),
    ("--detector-nms-iou", ["0.4"], "detector_nms_iou"),
    ("--detector-nms-classes", ["all"], "detector_nms_classes"),
    ("--max-people", ["2"], "max_people"),
])
def test_each_detector_option_reaches_the_detector(infer, tmp_path, option, values,
                                                   attribute):
    """The detector is built from the options as tools/detect.py builds it
    (``detector_from_args``; what each option then does to the boxes:
    tests/tools/test_detector_options.py)."""
    detector = ["--detector", str(tmp_path / "det.onnx")]
    got = infer(*detector, option, *values)["detector"][attribute]
    default = infer(*detector)["detector"][attribute]
    as_given = [float(v) for v in got] if len(values) > 1 else str(got)
    assert as_given == ([float(v) for v in values] if len(values) > 1 else values[0])
    assert got != default


def test_the_inputs_are_the_files_given(infer, tmp_path):
    assert infer()["run"]["inputs"] == ["a.png"]
    assert infer(inputs=("photos/sub/b.png",))["run"]["inputs"] == ["b.png"]
    assert infer(inputs=("photos/a.png", "photos/sub"))["run"]["inputs"] == ["a.png", "b.png"]


@pytest.mark.parametrize("option, name", [("--detector", "det.onnx"), ("--boxes", "dets.json")])
def test_out_may_not_hold_the_detector_or_the_box_file(infer, tmp_path, capsys, option, name):
    """The detector file and the box file are inputs too: a --out folder holding one is
    refused (with --overwrite as well), as it is for a photo; elsewhere they are taken."""
    assert infer(option, str(tmp_path / name))["run"]
    out = tmp_path / "held"
    out.mkdir()
    (out / name).write_bytes((tmp_path / name).read_bytes())
    main = runpy.run_path(str(ROOT / "tools" / "infer.py"), run_name="tool")["main"]
    code = run_tool(main, [str(tmp_path / "photos"), "--weights", str(tmp_path / "m.onnx"),
                           option, str(out / name), "--out", str(out), "--overwrite"])
    assert code == 2
    assert f"--out {out} holds the input {out / name}" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [name]
