"""Each option of tools/serve.py (and of ``tools/benchmark.py serve``) reaches what it
configures, with and without it.

The tool runs in this process with the calls that take the options captured
(``load_network``, ``PoseEstimator.from_config``, ``PoseService``, ``create_app``,
``serve``, ``detector_from_args``), so each option is checked against the value it must
hand on in milliseconds. What the server then does with those values is tested on a real
server in tests/pose/serving/.
"""

import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

from pose.errors import run_tool

ROOT = Path(__file__).resolve().parents[2]


class _Reached(BaseException):
    """The tool handed its app to ``serve``: the calls are captured."""


@pytest.fixture
def serve(tmp_path, monkeypatch):
    """``handed(*options)``: what tools/serve.py passes on for those options."""
    import pose.apis.estimator as estimator
    import pose.serving.app as app
    import pose.serving.service as service

    calls = {}

    def load_network(path, runtime, threads, **kwargs):
        calls["load"] = {"path": Path(path).name, "runtime": runtime, "threads": threads,
                         **kwargs}
        return SimpleNamespace(description="stub"), None

    def from_config(model, config, **kwargs):
        calls["estimator"] = {"config": config, **kwargs}
        return SimpleNamespace()

    class Service:
        def __init__(self, estimator_, source, **kwargs):
            calls["service"] = {"source": source, **kwargs}
            self.max_bytes = kwargs["max_bytes"]

        def warm_up(self):
            calls["warmed"] = True

    def create_app(service_, access_log=None):
        calls["app"] = {"access_log": access_log and Path(access_log).name}
        return "app"

    def serve_(app_, host, port, max_bytes=None, on_started=None):
        calls["serve"] = {"host": host, "port": port, "max_bytes": max_bytes}
        raise _Reached()

    def resolve_config(config, saved, overrides, source=None):
        calls["config"] = {"config": config and Path(config).name, "overrides": overrides}
        return "config"

    def detector_from_args(args, threads=None):
        calls["detector"] = vars(args)
        return SimpleNamespace(name="planted detector")

    monkeypatch.setattr(estimator, "load_network", load_network)
    monkeypatch.setattr(estimator.PoseEstimator, "from_config", from_config)
    monkeypatch.setattr(estimator, "runtime_description", lambda model, threads: "stub")
    monkeypatch.setattr(service, "PoseService", Service)
    monkeypatch.setattr(app, "create_app", create_app)
    monkeypatch.setattr(app, "serve", serve_)
    monkeypatch.setattr("pose.config.resolve_config", resolve_config)
    monkeypatch.setattr("pose.apis.detector.detector_from_args", detector_from_args)
    for name in ("m.onnx", "n.onnx", "c.yaml", "det.onnx"):
        (tmp_path / name).write_bytes(b"captured")
    main = runpy.run_path(str(ROOT / "tools" / "serve.py"), run_name="tool")["main"]

    def handed(*options):
        calls.clear()
        try:
            code = run_tool(main, ["--weights", str(tmp_path / "m.onnx"), *map(str, options)])
        except _Reached:
            return dict(calls)
        raise AssertionError(f"{options}: exit {code} before serve")

    return handed


PATHS = {"WEIGHTS": "n.onnx", "CONFIG": "c.yaml", "DETECTOR": "det.onnx", "LOG": "log.jsonl"}


@pytest.mark.parametrize("options, where, get, value", [
    (["--weights", "WEIGHTS"], "load", lambda loaded: loaded["path"], "n.onnx"),
    (["--runtime", "onnx"], "load", lambda loaded: loaded["runtime"], "onnx"),
    (["--threads", 3], "load", lambda loaded: loaded["threads"], 3),
    (["--input-size", 96, 128], "load", lambda loaded: loaded["input_size"], [96, 128]),
    (["--config", "CONFIG"], "config", lambda c: c["config"], "c.yaml"),
    (["--set", "test.flip_test=false"], "config", lambda c: c["overrides"],
     ["test.flip_test=false"]),
    (["--detector", "DETECTOR"], "service", lambda s: s["source"].name, "planted detector"),
    (["--no-flip"], "estimator", lambda e: e["flip"], False),
    (["--batch-size", 7], "estimator", lambda e: e["batch_size"], 7),
    (["--threshold", 0.6], "service", lambda s: s["threshold"], 0.6),
    (["--box-threshold", 0.8], "service", lambda s: s["box_threshold"], 0.8),
    (["--queue", 3], "service", lambda s: s["queue_size"], 3),
    (["--timeout", 2.5], "service", lambda s: s["timeout"], 2.5),
    (["--max-upload-mib", 3], "service", lambda s: s["max_bytes"], 3 << 20),
    (["--max-upload-mib", 3], "serve", lambda s: s["max_bytes"], 3 << 20),
    (["--stream-max-age", 4.0], "service", lambda s: s["stream_max_age"], 4.0),
    (["--smooth-min-cutoff", 2.5], "service", lambda s: s["smooth"].min_cutoff, 2.5),
    (["--smooth-beta", 0.5], "service", lambda s: s["smooth"].beta, 0.5),
    (["--smooth-d-cutoff", 3.0], "service", lambda s: s["smooth"].d_cutoff, 3.0),
    (["--host", "0.0.0.0"], "serve", lambda s: s["host"], "0.0.0.0"),
    (["--port", 0], "serve", lambda s: s["port"], 0),
    (["--access-log", "LOG"], "app", lambda a: a["access_log"], "log.jsonl"),
])
def test_each_serve_option_reaches_what_it_configures(serve, tmp_path, options, where, get,
                                                      value):
    options = [str(tmp_path / PATHS[o]) if o in PATHS else o for o in options]
    with_option = get(serve(*options)[where])
    without = get(serve()[where])
    assert with_option == value != without, (options, without)


def test_whole_image_is_the_default_box_source_and_the_host_is_this_machine(serve):
    default, asked = serve()["service"], serve("--whole-image")["service"]
    assert type(default["source"]).__name__ == type(asked["source"]).__name__ == (
        "WholeImageBoxes")
    assert serve()["serve"]["host"] == "127.0.0.1"


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
def test_each_detector_option_reaches_the_servers_detector(serve, tmp_path, option, values,
                                                           attribute):
    detector = ["--detector", str(tmp_path / "det.onnx")]
    got = serve(*detector, option, *values)["detector"][attribute]
    default = serve(*detector)["detector"][attribute]
    as_given = [float(v) for v in got] if len(values) > 1 else str(got)
    assert as_given == ([float(v) for v in values] if len(values) > 1 else values[0])
    assert got != default


def test_the_serve_benchmark_passes_its_options_on(tmp_path, monkeypatch):
    import pose.experiments.serve_benchmark as bench

    calls = {}

    def benchmark_serving(weights, **kwargs):
        calls.update(weights=Path(weights).name, **kwargs)
        return {"runtime": "stub", "rows": []}

    monkeypatch.setattr(bench, "benchmark_serving", benchmark_serving)
    main = runpy.run_path(str(ROOT / "tools" / "benchmark.py"), run_name="tool")["main"]
    (tmp_path / "w.tflite").write_bytes(b"captured")

    def handed(*options, out="b.json"):
        calls.clear()
        assert run_tool(main, ["serve", "--weights", str(tmp_path / "w.tflite"), "--out",
                               str(tmp_path / out), *map(str, options)]) == 0
        assert (tmp_path / out).is_file()
        return dict(calls)

    default = handed(out="default.json")
    assert default == {"weights": "w.tflite", "clients": [1, 4, 32], "seconds": 10.0,
                       "frames": 40, "threads": None}
    for option, values, key, value in [("--clients", [2, 8], "clients", [2, 8]),
                                       ("--seconds", [3.5], "seconds", 3.5),
                                       ("--frames", [12], "frames", 12),
                                       ("--threads", [2], "threads", 2)]:
        got = handed(option, *values, out=f"{key}.json")[key]
        assert got == value != default[key], option
