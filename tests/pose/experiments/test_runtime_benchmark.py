"""The runtime × precision benchmark's variant selection (``tools/benchmark.py runtimes``)."""

import pytest

from pose.experiments.runtime_benchmark import VARIANTS, parse_variants


def test_variants_are_chosen_by_name_with_the_keras_baseline_first():
    assert parse_variants(None) == VARIANTS
    assert parse_variants(["tflite:int8", "onnx"]) == (("keras", None), ("onnx", None),
                                                       ("tflite", "int8"))
    assert parse_variants(["keras"]) == (("keras", None),)
    with pytest.raises(ValueError, match="tflite:int4"):
        parse_variants(["tflite:int4"])


def test_each_export_gets_its_ap_difference_with_a_paired_interval(
        tiny_config, tiny_exports, tmp_path, monkeypatch):
    """``evaluate_variants``: the Keras model's AP, and for an export its AP, the difference
    to Keras and the paired 95% interval of the images; the float32 ONNX export scores the
    Keras model's AP (to 0.002), inside its own interval. The export call of
    ``export_variants`` is answered with the session's .onnx of the same model
    (``tiny_exports``; ``export_model`` itself: tests/pose/apis/test_export.py)."""
    import shutil

    import numpy as np

    import pose.apis.export as export_module
    from pose.experiments.runtime_benchmark import evaluate_variants, export_variants

    model = tiny_exports.model
    asked = []

    def shared_export(network, path, fmt, quantize=None, calibration=None, float_ops=()):
        asked.append((path, fmt, quantize, calibration))
        assert all(np.array_equal(a, b) for a, b in zip(network.get_weights(),
                                                          model.get_weights()))
        shutil.copyfile(tiny_exports.path(fmt, quantize), path)
        return path

    monkeypatch.setattr(export_module, "export_model", shared_export)
    assert tiny_exports.config.model == tiny_config.model
    paths = export_variants(model, tiny_config, tmp_path, "m", None, [("onnx", None)])
    assert asked == [(str(tmp_path / "m.onnx"), "onnx", None, None)]
    assert paths == {("onnx", None): str(tmp_path / "m.onnx")}
    assert (tmp_path / "m.yaml").is_file()
    results = evaluate_variants(model, tiny_config, paths, tmp_path / "evaluation",
                                num_resamples=200)
    keras, onnx = results[("keras", None)], results[("onnx", None)]
    assert keras["dAP"] is None and keras["dAP_low"] is None
    assert abs(onnx["AP"] - keras["AP"]) <= 0.002
    assert onnx["dAP"] == pytest.approx(onnx["AP"] - keras["AP"], abs=1e-9)
    assert onnx["dAP_low"] <= onnx["dAP"] <= onnx["dAP_high"]
    for run in ("keras_float32", "onnx_float32"):
        assert (tmp_path / "evaluation" / run / "keypoints_results.json").is_file()


def test_the_models_of_the_runtime_benchmark_are_named_by_what_tells_them_apart():
    import runpy
    from pathlib import Path

    tool = runpy.run_path(str(Path(__file__).parents[3] / "tools" / "benchmark.py"),
                          run_name="benchmark")
    short = tool["_short_labels"]
    assert short(["work/demo/comparison/none/seed0/last.keras",
                  "work/demo/comparison/parallel/seed0/last.keras"]) == ["none", "parallel"]
    assert short(["run/a.keras", "run/b.keras"]) == ["a.keras", "b.keras"]
    assert short(["w/none/best.keras", "w/none/last.keras"]) == ["best.keras", "last.keras"]
    assert short(["m.keras"]) == ["m.keras"]
