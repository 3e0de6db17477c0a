"""Each option of tools/test.py, tools/export.py, tools/convert.py and tools/train.py
reaches what it configures (issue 30): each tool runs in this process with its work
captured at the call that takes the options, with and without each option, in
milliseconds. What the work then does with those values is tested where the work lives
(tests/pose/evaluation, tests/pose/apis/test_export.py, tests/pose/models,
tests/pose/engine/test_training.py) and end to end in tests/tools/test_export_chain.py."""

import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

from pose.errors import run_tool

ROOT = Path(__file__).resolve().parents[2]


class _Reached(BaseException):
    """The tool handed its work to the captured call."""


def _main(tool):
    return runpy.run_path(str(ROOT / "tools" / f"{tool}.py"), run_name="tool")["main"]


@pytest.fixture
def evaluate(tmp_path, monkeypatch):
    """``handed(*options)``: what tools/test.py hands to loading, the config and the
    evaluation."""
    main = _main("test")
    calls = {}

    def load_network(path, threads=None, input_size=None):
        calls["load"] = {"path": Path(path).name, "threads": threads, "input_size": input_size}
        return SimpleNamespace(), "saved config"

    def resolve_config(config, saved, overrides, source=None):
        calls["config"] = {"config": config and Path(config).name, "overrides": overrides}
        return "config"

    def evaluate_config(model, config, **kwargs):
        calls["evaluate"] = kwargs
        raise _Reached()

    monkeypatch.setitem(main.__globals__, "load_network", load_network)
    monkeypatch.setitem(main.__globals__, "runtime_description", lambda model, threads: "")
    monkeypatch.setitem(main.__globals__, "resolve_config", resolve_config)
    monkeypatch.setitem(main.__globals__, "evaluate_config", evaluate_config)
    for name in ("a.keras", "b.keras", "c.yaml", "ann.json", "dets.json"):
        (tmp_path / name).write_text("captured")
    (tmp_path / "images").mkdir()
    monkeypatch.chdir(tmp_path)

    def handed(*options):
        calls.clear()
        with pytest.raises(_Reached):
            run_tool(main, ["--weights", "a.keras", "--out", f"e{abs(hash(options))}",
                            *map(str, options)])
        return dict(calls)

    return handed


@pytest.mark.parametrize("options, where, key, value", [
    (["--weights", "b.keras"], "load", "path", "b.keras"),
    (["--threads", 3], "load", "threads", 3),
    (["--input-size", 96, 128], "load", "input_size", [96, 128]),
    (["--config", "c.yaml"], "config", "config", "c.yaml"),
    (["--set", "test.flip_test=false"], "config", "overrides", ["test.flip_test=false"]),
    (["--gt-boxes"], "evaluate", "use_gt_boxes", True),
    (["--boxes", "dets.json"], "evaluate", "detections", "dets.json"),
    (["--no-flip"], "evaluate", "flip_test", False),
    (["--annotations", "ann.json"], "evaluate", "annotation_file", "ann.json"),
    (["--images", "images"], "evaluate", "image_dir", "images"),
    (["--out", "elsewhere"], "evaluate", "out_dir", "elsewhere"),
])
def test_each_test_option_reaches_what_it_configures(evaluate, options, where, key, value):
    with_option = evaluate(*options)[where][key]
    without = evaluate()[where][key]
    assert with_option == value != without


@pytest.fixture
def export(tmp_path, monkeypatch):
    """``handed(*options)``: what tools/export.py hands to loading, calibration and the
    export (the parity check after it is not reached)."""
    import pose.apis.export as export_module
    import pose.engine.pretrained as pretrained

    main = _main("export")
    calls = {}
    network = SimpleNamespace(input_shape=(None, 64, 32, 3))
    config = SimpleNamespace(data=SimpleNamespace(
        resolve=lambda p: str(tmp_path / p), train_annotations="train.json",
        train_images="train", encoding="msra"))

    def load(path, input_size=None):
        calls["load"] = {"path": Path(path).name, "input_size": input_size}
        return network, config

    def crops(annotations, images, size, count, udp=False):
        calls["calibration"] = {"annotations": Path(annotations).name,
                                "images": Path(images).name, "count": count}
        return ["crop"] * count

    def export_model(model, out, fmt, quantize=None, calibration=None, float_ops=()):
        calls["export"] = {"out": Path(out).name, "format": fmt, "quantize": quantize,
                           "float_ops": tuple(float_ops)}
        raise _Reached()

    monkeypatch.setattr(pretrained, "load_any_checkpoint", load)
    monkeypatch.setattr(export_module, "calibration_crops", crops)
    monkeypatch.setattr(export_module, "export_model", export_model)
    monkeypatch.setattr(export_module, "check_export", lambda fmt, quantize: None)
    for name in ("a.keras", "b.keras", "train.json", "calib.json"):
        (tmp_path / name).write_text("captured")
    (tmp_path / "train").mkdir()
    (tmp_path / "calib").mkdir()
    monkeypatch.chdir(tmp_path)

    def handed(*options):
        calls.clear()
        with pytest.raises(_Reached):
            run_tool(main, ["--weights", "a.keras", "--format", "tflite",
                            "--out", f"m{abs(hash(options))}.tflite", *map(str, options)])
        return dict(calls)

    return handed


def test_each_export_option_reaches_the_export(export):
    base = export()
    assert base["load"] == {"path": "a.keras", "input_size": None}
    assert base["export"]["format"] == "tflite" and base["export"]["quantize"] is None
    assert "calibration" not in base  # float32: no calibration crops
    assert export("--weights", "b.keras")["load"]["path"] == "b.keras"
    assert export("--input-size", 96, 128)["load"]["input_size"] == [96, 128]
    onnx = export("--format", "onnx", "--out", "m.onnx")["export"]
    assert (onnx["format"], onnx["out"]) == ("onnx", "m.onnx")
    int8 = export("--quantize", "int8")
    assert int8["export"]["quantize"] == "int8"
    assert int8["calibration"] == {"annotations": "train.json", "images": "train",
                                   "count": 300}
    assert export("--quantize", "int8", "--calibration-count", 7)["calibration"]["count"] == 7
    calibrated = export("--quantize", "int8", "--calibration", "calib.json",
                        "--calibration-images", "calib")["calibration"]
    assert (calibrated["annotations"], calibrated["images"]) == ("calib.json", "calib")
    assert export("--quantize", "int8", "--float-ops", "SOFTMAX")["export"]["float_ops"] == (
        "SOFTMAX",) != int8["export"]["float_ops"]


def test_each_convert_option_reaches_the_conversion(tmp_path, monkeypatch):
    import pose.engine.pretrained as pretrained

    main = _main("convert")
    seen = {}

    def convert(checkpoint, out, input_size=None, reference=None, allow_non_finite=False):
        seen.update(checkpoint=Path(checkpoint).name, out=Path(out).name,
                    input_size=input_size, reference=reference and Path(reference).name,
                    allow_non_finite=allow_non_finite)
        raise _Reached()

    monkeypatch.setattr(pretrained, "convert_checkpoint", convert)
    for name in ("a.pth", "b.pth", "ref.npz"):
        (tmp_path / name).write_text("captured")
    monkeypatch.chdir(tmp_path)

    def run(checkpoint="a.pth", *options):
        seen.clear()
        with pytest.raises(_Reached):
            run_tool(main, [checkpoint, "--out", f"c{abs(hash(options))}.keras",
                            *map(str, options)])
        return dict(seen)

    base = run()
    assert base == {"checkpoint": "a.pth", "out": base["out"], "input_size": None,
                    "reference": None, "allow_non_finite": False}
    assert run("b.pth")["checkpoint"] == "b.pth"
    assert run("a.pth", "--out", "mine.keras")["out"] == "mine.keras"
    assert run("a.pth", "--input-size", 96, 128)["input_size"] == [96, 128]
    assert run("a.pth", "--check", "ref.npz")["reference"] == "ref.npz"
    assert run("a.pth", "--allow-non-finite")["allow_non_finite"] is True


@pytest.mark.parametrize("options, key, value", [
    (["--config", "other.yaml"], "source", "other.yaml"),
    (["--set", "train.lr=0.5"], "overrides", ["train.lr=0.5"]),
    (["--workdir", "elsewhere"], "workdir", "elsewhere"),
    (["--strategy", "mirrored"], "strategy", "mirrored"),
    (["--no-validate"], "validate", False),
    (["--force"], "force", True),
])
def test_each_train_option_reaches_the_trainer(tmp_path, monkeypatch, options, key, value):
    main = _main("train")
    seen = {}

    def load_config(path, overrides):
        seen.update(overrides=list(overrides))
        return "config"

    def train(config, workdir, strategy, validate, force, source):
        seen.update(workdir=workdir, strategy=strategy, validate=validate, force=force,
                    source=Path(source).name)
        raise _Reached()

    monkeypatch.setitem(main.__globals__, "load_config", load_config)
    monkeypatch.setitem(main.__globals__, "train", train)
    for name in ("tiny.yaml", "other.yaml"):
        (tmp_path / name).write_text("captured")
    monkeypatch.chdir(tmp_path)

    def run(*extra):
        seen.clear()
        with pytest.raises(_Reached):
            run_tool(main, ["--config", "tiny.yaml", "--workdir", "run", *extra])
        return dict(seen)

    assert run(*options)[key] == value != run()[key]


@pytest.mark.parametrize("rms, code", [(0.25, 0), (float.fromhex("0x1.0000000000001p-2"), 1)])
def test_a_quantized_export_at_exactly_its_tolerance_passes(tmp_path, monkeypatch, capsys,
                                                            rms, code):
    """--tolerance is the largest relative RMS that passes: an export at exactly 0.25 is
    OK (exit 0), one a float step above it FAILED (exit 1). The export and its parity are
    captured; the verdict is the tool's."""
    import pose.apis.export as export_module
    import pose.engine.pretrained as pretrained

    network = SimpleNamespace(input_shape=(None, 64, 32, 3), output_shape=(None, 16, 8, 17))
    monkeypatch.setattr(pretrained, "load_any_checkpoint",
                        lambda path, input_size=None: (network, None))
    monkeypatch.setattr(export_module, "check_export", lambda fmt, quantize: None)

    def export_model(model, out, fmt, **kwargs):
        Path(out).write_bytes(b"exported")
        return str(out)

    monkeypatch.setattr(export_module, "export_model", export_model)
    monkeypatch.setattr(export_module, "parity", lambda *args, **kwargs: {
        "relative_rms": rms, "max_abs_diff": 0.1, "max_abs_output": 1.0})
    monkeypatch.setattr("pose.apis.cpu_features.cpu_flags", lambda: ["avx512_vnni"])
    (tmp_path / "a.keras").write_text("captured")
    assert run_tool(_main("export"), [
        "--weights", str(tmp_path / "a.keras"), "--format", "tflite", "--quantize", "dynamic",
        "--out", str(tmp_path / "m.tflite"), "--tolerance", "0.25"]) == code
    assert f"(tolerance 0.25: {'OK' if code == 0 else 'FAILED'})" in capsys.readouterr().out
