"""The benchmarks' options reach what they configure (issue 30).

Each benchmark runs in this process with its measurements captured at the calls that take
the options (the timing itself is what the benchmark reports, not a test's business), and
each option is compared with and without it.
"""

import json
import runpy
from pathlib import Path
from types import SimpleNamespace

import cv2
import pytest

from pose.errors import run_tool

ROOT = Path(__file__).resolve().parents[2]


class _Reached(BaseException):
    """The benchmark got to the call that is captured."""


def _tool(name):
    return runpy.run_path(str(ROOT / "tools" / f"{name}.py"), run_name="tool")["main"]


def test_the_model_benchmark_measures_what_its_options_say(tmp_path, monkeypatch):
    main = _tool("benchmark")
    measured = []

    def measure(label, setting, model_args, repeats, rows, results):
        measured.append(dict(label=label, setting=setting, model=model_args, repeats=repeats))
        rows.append({"b8_ms": 1.0})

    def stop(*args, **kwargs):
        raise _Reached()

    monkeypatch.setitem(main.__globals__, "_measure", measure)
    monkeypatch.setitem(main.__globals__, "format_table", stop)

    def run(*options):
        measured.clear()
        with pytest.raises(_Reached):
            run_tool(main, ["model", "--out", str(tmp_path / "b.json"), *map(str, options)])
        return list(measured)

    base = run()
    assert [m["label"].split(" (")[0] for m in base] == [
        "W32 none", "W32 branch/parallel/paper", "W32 branch/sequential/paper",
        "W32 block/parallel/paper", "W32 block/sequential/paper"]
    assert run("--width", 18)[0]["model"]["width"] == 18 != base[0]["model"]["width"]
    assert run("--input", "96x128")[0]["model"]["input_size"] == (96, 128)
    assert run("--repeats", 2)[0]["repeats"] == 2 != base[0]["repeats"]
    setting = run("--onednn", "0", "--intra", 1, "--inter", 3, "--runner",
                  "tf_function")[0]["setting"]
    assert (setting.onednn, setting.intra_op, setting.inter_op, setting.runner) == (
        "0", 1, 3, "tf_function") != (base[0]["setting"].onednn, base[0]["setting"].intra_op,
                               base[0]["setting"].inter_op, base[0]["setting"].runner)
    assert len(run("--sweep")) > len(base)  # the runtime settings measured first
    forms = {m["model"].get("psa_form") for m in run("--forms", "paper,official")}
    assert forms == {"paper", "official"}
    placements = {m["model"]["psa_placement"] for m in run("--placements", "branch")}
    assert placements == {"none", "branch"}


def test_the_video_benchmark_passes_its_options_on(tmp_path, monkeypatch):
    import pose.apis.estimator as estimator
    import pose.experiments.detector_benchmark as detector_benchmark
    import pose.experiments.video_benchmark as video_benchmark

    main = _tool("benchmark")
    seen = {}
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5],
                                  "score": 0.9}]))

    def clip(workdir, frames, size):
        seen["clip"] = (frames, size)
        return str(tmp_path / "clip.mp4"), str(boxes), None

    def benchmark(estimator_, clip_, boxes_, workdir, **kwargs):
        seen["run"] = dict(kwargs, boxes=type(boxes_).__name__,
                           box_file=getattr(boxes_, "path", None))
        raise _Reached()

    def make_detector(workdir, fmt):
        seen["detector"] = fmt
        return str(tmp_path / f"det.{fmt}"), 1

    monkeypatch.setattr(video_benchmark, "four_people_clip", clip)
    monkeypatch.setattr(video_benchmark, "benchmark_video", benchmark)
    monkeypatch.setattr(detector_benchmark, "make_detector_file", make_detector)
    monkeypatch.setattr("pose.apis.detector.detector_from_args",
                        lambda args, threads=None: SimpleNamespace(name="detector"))
    def load_network(path, threads=None, **kwargs):
        seen["threads"] = threads
        return SimpleNamespace(description="stub"), None

    monkeypatch.setattr(estimator, "load_network", load_network)
    monkeypatch.setattr("pose.config.resolve_config", lambda *a, **k: "config")
    monkeypatch.setattr(estimator.PoseEstimator, "from_config",
                        lambda model, config, **k: SimpleNamespace(flip=True))
    monkeypatch.setattr(estimator, "runtime_description", lambda model, threads: "stub")
    (tmp_path / "m.onnx").write_bytes(b"captured")

    def run(*options):
        seen.clear()
        with pytest.raises(_Reached):
            run_tool(main, ["video", "--weights", str(tmp_path / "m.onnx"), "--workdir",
                            str(tmp_path / f"w{abs(hash(options))}"), "--out",
                            str(tmp_path / f"v{abs(hash(options))}.json"),
                            *map(str, options)])
        return dict(seen)

    base = run()
    assert run("--frames", 12)["clip"] == (12, (1280, 720)) != base["clip"]
    assert run("--threads", 2)["threads"] == 2 != base["threads"]
    assert run("--size", "640x360")["clip"] == (40, (640, 360))
    assert run("--rounds", 5)["run"]["rounds"] == 5 != base["run"]["rounds"]
    assert run("--track-min-score", 0.4)["run"]["min_score"] == 0.4 != base["run"]["min_score"]
    assert run("--keypoint-threshold", 0.2)["run"]["keypoint_threshold"] == 0.2 != (
        base["run"]["keypoint_threshold"])
    made = run("--make-detector", "tflite")
    assert made["detector"] == "tflite" and made["run"]["boxes"] == "SimpleNamespace"
    assert "detector" not in base and base["run"]["boxes"] == "DetectionBoxes"
    mine = tmp_path / "mine.json"
    mine.write_text(boxes.read_text())
    assert run("--boxes", mine)["run"]["box_file"] == str(mine) != base["run"]["box_file"]


def test_the_startup_benchmark_builds_and_times_what_its_options_say(tmp_path, monkeypatch,
                                                                     coco_sample_dir):
    main = _tool("benchmark_startup")
    seen = {"exports": [], "runs": []}

    def checkpoint(config, workdir):
        return str(Path(workdir) / f"{Path(config).stem}.keras")

    def export(weights, fmt, quantize=None, export_args=()):
        seen["exports"].append((fmt, quantize, list(export_args)))
        return f"{weights}.{fmt}"

    def overlay(weights, inputs, out_dir, extra_args=(), timeout=900):
        seen["runs"].append((Path(weights).suffix, list(extra_args)))
        raise _Reached()

    monkeypatch.setitem(main.__globals__, "make_checkpoint", checkpoint)
    monkeypatch.setitem(main.__globals__, "make_export", export)
    monkeypatch.setitem(main.__globals__, "time_first_overlay", overlay)
    image = coco_sample_dir / "images" / "000000000785.jpg"

    def run(*options):
        seen["exports"].clear()
        seen["runs"].clear()
        with pytest.raises(_Reached):
            run_tool(main, ["--workdir", str(tmp_path / f"w{abs(hash(options))}"),
                            "--images", str(image), *map(str, options)])
        return seen["exports"][:], seen["runs"][0]

    base_exports, base_run = run()
    assert base_run[0] == ".keras"  # the first format of the default list
    exports, first = run("--formats", "tflite:int8")
    assert exports == [("tflite", "int8", [])] and first[0] == ".tflite"
    exports, _ = run("--formats", "onnx", "--export-args=--tolerance 1")
    assert exports == [("onnx", None, ["--tolerance", "1"])]
    _, first = run("--infer-args=--no-flip")
    assert first[1][-1] == "--no-flip" and "--no-flip" not in base_run[1]
    monkeypatch.setattr("pose.experiments.detector_benchmark.make_detector_file",
                        lambda workdir, fmt: (str(Path(workdir) / f"det.{fmt}"), 1))
    _, first = run("--detectors", "onnx", "--people", 3)
    assert first[1][0] == "--boxes" and first[1][1].endswith("boxes_3_people.json")
    assert base_run[1][1].endswith("person_detection_results_sample.json")


def test_the_pipeline_benchmark_passes_its_options_on(tmp_path, monkeypatch):
    """--image-size and --seed reach the generated set, --data-dir is reused when it
    holds one and generated into (under the output policy) when it does not, and
    --input-size, --heatmap-size, --batch-size and --epochs reach the timed datasets."""
    import numpy as np

    main = _tool("benchmark_pipeline")
    seen = {}

    def generate(root, num_train, num_val, seed, image_size):
        seen["generated"] = dict(root=root, num_train=num_train, seed=seed, size=image_size)
        annotations = Path(root) / "annotations"
        annotations.mkdir(parents=True, exist_ok=True)
        (annotations / "person_keypoints_train2017.json").write_text("{}")

    class Batch:
        def numpy(self):
            return np.zeros((1, 2, 2, 3), np.float32)

    def dataset(records, input_size, batch_size):
        seen["dataset"] = dict(input_size=input_size, batch_size=batch_size)
        return [Batch()]

    def build(records, codec, batch_size, **kwargs):
        seen["codec"] = (codec.input_size, codec.heatmap_size)

    def time_datasets(datasets, epochs):
        seen["epochs"] = epochs
        raise _Reached()

    for name, value in (("generate_coco", generate), ("opencv_dataset", dataset),
                        ("tf_dataset", dataset), ("build_dataset", build),
                        ("time_datasets", time_datasets),
                        ("load_train_records", lambda *a, **k: [])):
        monkeypatch.setitem(main.__globals__, name, value)

    def run(*options):
        seen.clear()
        with pytest.raises(_Reached):
            run_tool(main, ["--out", str(tmp_path / f"p{abs(hash(options))}.json"),
                            *map(str, options)])
        return dict(seen)

    base = run()
    assert base["generated"]["size"] == (640, 480) and base["epochs"] == 5
    assert run("--image-size", 320, 240)["generated"]["size"] == (320, 240)
    assert run("--images", 9)["generated"]["num_train"] == 9
    assert run("--seed", 3)["generated"]["seed"] == 3 != base["generated"]["seed"]
    assert run("--epochs", 2)["epochs"] == 2
    assert run("--batch-size", 4)["dataset"]["batch_size"] == 4
    assert run("--input-size", 96, 128)["codec"][0] == (96, 128)
    assert run("--heatmap-size", 24, 32)["codec"][1] == (24, 32) != base["codec"][1]
    data = tmp_path / "data"
    assert run("--data-dir", data)["generated"]["root"] == str(data)  # made there
    assert not data.exists()  # by a run that failed (the capture): removed again
    (data / "annotations").mkdir(parents=True)
    (data / "annotations" / "person_keypoints_train2017.json").write_text("{}")
    assert "generated" not in run("--data-dir", data)  # a data set there is reused
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("a user's file")
    assert run_tool(main, ["--out", str(tmp_path / "x.json"), "--data-dir", str(mine)]) == 2


def test_the_runtimes_benchmark_passes_its_options_on(tmp_path, monkeypatch, tiny_config):
    """--latency-config is the model that is built and timed, --latency-only skips the
    exports and AP of --weights, and the two calibration counts reach their crops."""
    import pose.apis.export as export_module
    import pose.engine.checkpoint as checkpoint_module
    import pose.experiments.runtime_benchmark as runtime_benchmark
    from pose.config import save_config

    main = _tool("benchmark")
    weights = tmp_path / "m.keras"
    weights.write_bytes(b"captured")
    save_config(tiny_config, tmp_path / "latency.yaml")
    seen = {"crops": [], "built": [], "evaluated": 0}
    network = SimpleNamespace(input_shape=(None, 64, 32, 3))

    def crops(annotations, images, size, count, udp=False):
        seen["crops"].append(count)

    def evaluate(model, config, paths, out_dir, threads=None):
        seen["evaluated"] += 1
        return {("keras", None): {"AP": 0.0, "dAP": None}}

    def time_variants(paths, rounds, repeats, threads):
        seen["timed"] = dict(rounds=rounds, repeats=repeats, threads=threads)
        raise _Reached()

    monkeypatch.setattr(checkpoint_module, "load_model", lambda path: (network, tiny_config))
    monkeypatch.setattr(checkpoint_module, "build_model",
                        lambda model_config: seen["built"].append(model_config.width))
    monkeypatch.setattr(checkpoint_module, "save_model", lambda *a, **k: None)
    monkeypatch.setattr(export_module, "calibration_crops", crops)
    monkeypatch.setattr(runtime_benchmark, "export_variants", lambda *a, **k: {})
    monkeypatch.setattr(runtime_benchmark, "evaluate_variants", evaluate)
    monkeypatch.setattr(runtime_benchmark, "time_variants", time_variants)

    def run(*options):
        seen.update(crops=[], built=[], evaluated=0)
        with pytest.raises(_Reached):
            run_tool(main, ["runtimes", "--weights", str(weights), "--workdir",
                            str(tmp_path / f"w{abs(hash(options))}"), "--out",
                            str(tmp_path / f"r{abs(hash(options))}.json"), *map(str, options)])
        return dict(seen)

    base = run()
    assert base["crops"] == [300, 64] and base["evaluated"] == 1 and base["built"] == [32]
    assert run("--calibration-count", 5)["crops"] == [5, 64]
    assert run("--latency-calibration-count", 6)["crops"] == [300, 6]
    assert run("--latency-only")["evaluated"] == 0
    assert run("--latency-config", tmp_path / "latency.yaml")["built"] == [
        tiny_config.model.width]
    assert run("--rounds", 3, "--repeats", 4)["timed"] == {"rounds": 3, "repeats": 4,
                                                           "threads": None}
    assert run("--threads", 2)["timed"]["threads"] == 2


def test_the_runtimes_benchmark_exports_and_times_only_the_variants_asked(tmp_path,
                                                                        monkeypatch,
                                                                        tiny_config):
    import pose.apis.export as export_module
    import pose.engine.checkpoint as checkpoint_module
    import pose.experiments.runtime_benchmark as runtime_benchmark

    main = _tool("benchmark")
    weights = tmp_path / "m.keras"
    weights.write_bytes(b"captured")
    exported = []

    def export_variants(model, config, folder, stem, crops, variants):
        exported.append((stem, list(variants)))
        return {}

    def time_variants(paths, rounds, repeats, threads):
        raise _Reached()

    network = SimpleNamespace(input_shape=(None, 64, 32, 3))
    monkeypatch.setattr(checkpoint_module, "load_model", lambda path: (network, tiny_config))
    monkeypatch.setattr(checkpoint_module, "build_model", lambda model_config: network)
    monkeypatch.setattr(checkpoint_module, "save_model", lambda *a, **k: None)
    monkeypatch.setattr(export_module, "calibration_crops", lambda *a, **k: None)
    monkeypatch.setattr(runtime_benchmark, "export_variants", export_variants)
    monkeypatch.setattr(runtime_benchmark, "evaluate_variants",
                        lambda *a, **k: {("keras", None): {"AP": 0.0, "dAP": None}})
    monkeypatch.setattr(runtime_benchmark, "time_variants", time_variants)

    def run(*options):
        exported.clear()
        with pytest.raises(_Reached):
            run_tool(main, ["runtimes", "--weights", str(weights), "--workdir",
                            str(tmp_path / f"w{abs(hash(options))}"), "--out",
                            str(tmp_path / f"r{abs(hash(options))}.json"), *options])
        return exported[:]

    everything = list(runtime_benchmark.parse_variants(None))
    asked = list(runtime_benchmark.parse_variants(["onnx"]))
    assert run() == [("accuracy", everything), ("latency", everything)]
    assert run("--variants", "onnx") == [("accuracy", asked), ("latency", asked)]
    assert asked != everything


def test_the_evaluation_benchmarks_measure_the_sizes_asked(tmp_path, monkeypatch):
    """eval-scale's and bootstrap's --images, and bootstrap's --resamples, reach the
    generated set and the resampling."""
    main = _tool("benchmark")
    seen = {}

    def scale(out_dir, num_images=5000, **kwargs):
        seen["scale"] = num_images
        raise _Reached()

    def bootstrap(out_dir, num_images=5000, num_resamples=1000, **kwargs):
        seen["bootstrap"] = (num_images, num_resamples)
        raise _Reached()

    monkeypatch.setitem(main.__globals__, "benchmark_evaluation_scale", scale)
    monkeypatch.setitem(main.__globals__, "benchmark_bootstrap", bootstrap)

    def run(*argv):
        seen.clear()
        with pytest.raises(_Reached):
            run_tool(main, [*map(str, argv), "--out", str(tmp_path / f"{len(seen)}.json")])
        return seen.popitem()[1]

    assert run("eval-scale") == 5000 and run("eval-scale", "--images", 12) == 12
    assert run("bootstrap") == (5000, 1000)
    assert run("bootstrap", "--images", 12) == (12, 1000)
    assert run("bootstrap", "--resamples", 7) == (5000, 7)


@pytest.mark.parametrize("option, value, attribute", [
    ("--detector-format", "yolov8", "detector_format"),
    ("--detector-preset", "yolox", "detector_preset"),
    ("--detector-size", ["320", "256"], "detector_size"),
    ("--detector-mean", ["1", "2", "3"], "detector_mean"),
    ("--detector-std", ["4", "5", "6"], "detector_std"),
    ("--detector-threshold", "0.6", "detector_threshold"),
    ("--person-class", "3", "person_class"),
    ("--detector-nms-iou", "0.4", "detector_nms_iou"),
    ("--detector-nms-classes", "all", "detector_nms_classes"),
    ("--max-people", "2", "max_people"),
])
def test_the_video_benchmark_hands_each_detector_option_to_the_detector(tmp_path, monkeypatch,
                                                                       option, value,
                                                                       attribute):
    """With --detector FILE the clip's boxes come from that detector, built from the
    options as tools/detect.py builds it (``detector_from_args``; what each option then
    does to the boxes: tests/tools/test_detector_options.py)."""
    import pose.apis.estimator as estimator
    import pose.experiments.video_benchmark as video_benchmark

    main = _tool("benchmark")
    built = []
    monkeypatch.setattr(video_benchmark, "four_people_clip",
                        lambda workdir, frames, size: (str(tmp_path / "c.mp4"), None, None))

    def benchmark(estimator_, clip_, boxes_, workdir, **kwargs):
        built.append(boxes_)
        raise _Reached()

    monkeypatch.setattr(video_benchmark, "benchmark_video", benchmark)
    monkeypatch.setattr("pose.apis.detector.detector_from_args",
                        lambda args, threads=None: SimpleNamespace(name="detector", args=args))
    monkeypatch.setattr(estimator, "load_network",
                        lambda *a, **k: (SimpleNamespace(description="stub"), None))
    monkeypatch.setattr("pose.config.resolve_config", lambda *a, **k: "config")
    monkeypatch.setattr(estimator.PoseEstimator, "from_config",
                        lambda model, config, **k: SimpleNamespace(flip=True))
    monkeypatch.setattr(estimator, "runtime_description", lambda model, threads: "stub")
    (tmp_path / "m.onnx").write_bytes(b"captured")
    (tmp_path / "det.onnx").write_bytes(b"captured")
    values = value if isinstance(value, list) else [value]

    def run(*options):
        built.clear()
        with pytest.raises(_Reached):
            run_tool(main, ["video", "--weights", str(tmp_path / "m.onnx"), "--workdir",
                            str(tmp_path / f"w{abs(hash(options))}"), "--out",
                            str(tmp_path / f"v{abs(hash(options))}.json"), *options])
        return built[0]

    source = run("--detector", str(tmp_path / "det.onnx"), option, *values)
    default = run("--detector", str(tmp_path / "det.onnx"))
    assert source.name == "detector" and source.args.detector == str(tmp_path / "det.onnx")
    got = getattr(source.args, attribute)
    if isinstance(value, list):
        assert [float(v) for v in got] == [float(v) for v in values]
    else:
        assert str(got) == value
    assert getattr(default.args, attribute) != got


def test_the_startup_benchmark_writes_its_rows_for_the_configs_and_repeats_asked(
        tmp_path, monkeypatch, coco_sample_dir):
    """--configs are the checkpoints made and timed, --repeats the rounds per row, and the
    rows go to --json (default: WORKDIR/startup.json), the scratch files to --workdir."""
    main = _tool("benchmark_startup")
    made = []

    def checkpoint(config, workdir):
        made.append(Path(config).name)
        return str(Path(workdir) / f"{Path(config).stem}.keras")

    def overlay(weights, inputs, out_dir, extra_args=(), timeout=900):
        return {"runtime": "stub", "first_overlay_s": 1.0, "exit_s": 2.0, "model_ready_s": 0.5,
                "images_per_s": 3.0, "people_per_s": 4.0, "box_ms_per_image": 0.1}

    monkeypatch.setitem(main.__globals__, "make_checkpoint", checkpoint)
    monkeypatch.setitem(main.__globals__, "time_first_overlay", overlay)
    image = coco_sample_dir / "images" / "000000000785.jpg"
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text("captured")

    def run(workdir, *options):
        made.clear()
        assert run_tool(main, ["--workdir", str(tmp_path / workdir), "--images", str(image),
                               "--formats", "keras", *map(str, options)]) == 0
        return made[:]

    assert run("w1", "--configs", tmp_path / "a.yaml") == ["a.yaml"]
    rows = json.loads((tmp_path / "w1" / "startup.json").read_text())["rows"]
    assert [(r["config"], len(r["runs"])) for r in rows] == [(str(tmp_path / "a.yaml"), 2)]
    assert run("w2", "--configs", tmp_path / "a.yaml", tmp_path / "b.yaml", "--repeats", 3,
               "--json", tmp_path / "rows.json") == ["a.yaml", "b.yaml"]
    rows = json.loads((tmp_path / "rows.json").read_text())["rows"]
    assert [len(r["runs"]) for r in rows] == [3, 3]
    assert not (tmp_path / "w2" / "startup.json").exists()


def test_the_detector_input_benchmark_times_the_images_and_size_asked(tmp_path, monkeypatch,
                                                                     coco_sample_dir):
    import pose.experiments.detector_benchmark as detector_benchmark

    main = _tool("benchmark")
    timed = []

    def time_input(image, size=640, repeats=50):
        timed.append((image.shape, size, repeats))
        return {"project_ms": 1.0, "ultralytics_ms": 2.0, "max_abs_difference": 0.0}

    monkeypatch.setattr(detector_benchmark, "time_detector_input", time_input)
    images = sorted((coco_sample_dir / "images").glob("*.jpg"))[:2]

    def run(*options):
        timed.clear()
        out = tmp_path / f"d{abs(hash(options))}.json"
        assert run_tool(main, ["detector-input", "--images", str(images[0]), "--out", str(out),
                               *map(str, options)]) == 0
        return timed[:], json.loads(out.read_text())

    base, written = run()
    assert [(size, repeats) for _, size, repeats in base] == [(640, 50)]
    assert written["size"] == 640 and len(written["rows"]) == 1
    assert run("--size", 416)[0][0][1] == 416
    assert run("--repeats", 5)[0][0][2] == 5
    both, written = run("--images", images[0], images[1])
    assert [shape for shape, _, _ in both] == [
        cv2.imread(str(p)).shape for p in images] and len(written["rows"]) == 2
