"""Tests of pose.apis.runtimes and the TensorFlow-free inference path of tools/infer.py:
LiteRT and ONNX Runtime networks, runtime choice, threads, precision, and a subprocess
run that must not import TensorFlow or Keras."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pose.apis.runtimes import (
    LiteRTNetwork,
    OnnxNetwork,
    RuntimeChoiceError,
    choose_runtime,
    default_threads,
    open_network,
)

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def exported(tiny_exports):
    """A tiny random model, its config, and its .tflite and .onnx with the config beside
    (made once per session: ``tests/shared_exports.py``)."""
    return (tiny_exports.model, tiny_exports.config,
            {fmt: tiny_exports.path(fmt) for fmt in ("tflite", "onnx")})


def test_choose_runtime(tmp_path):
    from pose.apis.runtimes import TORCH_SUFFIXES as RUNTIME_TORCH_SUFFIXES
    from pose.engine.pretrained import TORCH_SUFFIXES

    assert RUNTIME_TORCH_SUFFIXES == TORCH_SUFFIXES  # kept apart: pretrained imports Keras
    assert choose_runtime("m.tflite") == "litert"
    assert choose_runtime("m.onnx", "onnx") == "onnx"
    assert choose_runtime("run/best.keras") == "keras"
    assert choose_runtime("pose_hrnet_w32_256x192.pth") == "keras"  # converted on load
    (tmp_path / "saved_model.pb").write_bytes(b"")
    assert choose_runtime(tmp_path) == "keras"  # a SavedModel folder
    with pytest.raises(RuntimeChoiceError, match=r"is a folder but no SavedModel \(it holds no "
                                                 r"saved_model.pb\)"):
        choose_runtime(tmp_path / "..")
    with pytest.raises(RuntimeChoiceError, match=r"'onnx' cannot run 'm.tflite'.*--format onnx"):
        choose_runtime("m.tflite", "onnx")
    with pytest.raises(RuntimeChoiceError, match="'litert' cannot run 'm.keras'"):
        choose_runtime("m.keras", "litert")
    with pytest.raises(RuntimeChoiceError, match="cannot tell the format"):
        choose_runtime("m.pb")
    with pytest.raises(RuntimeChoiceError, match="unknown runtime"):
        choose_runtime("m.onnx", "tensorrt")


@pytest.mark.parametrize("fmt,cls", [("tflite", LiteRTNetwork), ("onnx", OnnxNetwork)])
def test_networks(exported, fmt, cls, tmp_path):
    model, _, paths = exported
    network = open_network(paths[fmt])
    assert isinstance(network, cls) and network.threads == default_threads()
    assert network.input_size == (64, 32) and network.precision == "float32"
    assert network.description.startswith(f"runtime {network.runtime} (")
    assert network.description.endswith(f"{default_threads()} thread"
                                        f"{'s' if default_threads() > 1 else ''}, "
                                        "precision float32")
    one = open_network(paths[fmt], threads=1)
    assert "1 thread," in one.description
    x = np.random.default_rng(0).standard_normal((3, 64, 32, 3)).astype(np.float32)
    want = np.asarray(model.predict_on_batch(x))
    # float32 summation-order differences grow with the activations: relative and absolute.
    np.testing.assert_allclose(one.predict_on_batch(x), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(network.predict_on_batch(x[:1]), want[:1], rtol=1e-4, atol=1e-4)

    with pytest.raises(ValueError, match="threads must be >= 1"):
        open_network(paths[fmt], threads=0)
    with pytest.raises(FileNotFoundError, match="absent"):
        cls(tmp_path / f"absent.{fmt}")
    garbage = tmp_path / f"garbage.{fmt}"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ValueError, match=f"garbage.{fmt}: not a readable"):
        cls(garbage)


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_estimator_on_an_export_matches_keras(exported, fmt):
    """``load_network`` of an export + ``PoseEstimator`` = the Keras path (flip test on)."""
    from pose.apis.estimator import PoseEstimator, load_network

    model, config, paths = exported
    network, loaded_config = load_network(paths[fmt])
    assert loaded_config == config and network.runtime == {"tflite": "litert"}.get(fmt, fmt)
    image = np.random.default_rng(3).integers(0, 255, (90, 70, 3), np.uint8)
    boxes = [[5, 5, 50, 70], [20, 10, 40, 60], [0, 0, 70, 90], [30, 30, 30, 50],
             [1, 2, 60, 80]]  # 5 boxes, batch 4: calls of 4 and 1 crops (x2 for the flip)
    want = PoseEstimator.from_config(model, config).predict_image(image, boxes)
    got = PoseEstimator.from_config(network, loaded_config).predict_image(image, boxes)
    assert len(got) == len(want) > 0
    np.testing.assert_allclose(got.keypoint_scores, want.keypoint_scores, atol=1e-4)
    assert np.abs(got.keypoints - want.keypoints).max() <= 0.5


def _imported_modules(stderr):
    """Top-level packages of every module in a ``python -X importtime`` report."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":  # the header line
                names.add(name.split(".")[0])
    return names


def _detector_file(fmt, folder):
    """A YOLOv8-layout detector file of ``fmt`` (128x128 input) with two planted people:
    pixels in the ONNX file, divided by the input size in the TFLite one (as Ultralytics
    exports them)."""
    from tests.pose.apis.detector_files import onnx_detector, tflite_detector, yolo_rows

    people = [[20, 10, 60, 120], [70, 5, 110, 100]]  # x1, y1, x2, y2 in the input
    rows = yolo_rows(people, [0, 0], [0.9, 0.8], 80, 336,
                     normalise=(128, 128) if fmt == "tflite" else None)
    if fmt == "tflite":
        return tflite_detector(folder / "yolov8.tflite", {"output0": rows.T[None]})
    return onnx_detector(folder / "yolov8.onnx", {"output0": rows.T[None]})


@pytest.mark.parametrize("with_detector", [False, True])
@pytest.mark.parametrize("fmt,runtime", [("tflite", "litert"), ("onnx", "onnx")])
def test_infer_on_an_export_never_imports_tensorflow(exported, fmt, runtime, with_detector,
                                                     tmp_path):
    """The real tools/infer.py on a .tflite/.onnx (with a detector file of the same format
    or not): every import it makes is listed by ``-X importtime``; neither TensorFlow nor
    Keras may be among them."""
    import cv2

    _, _, paths = exported
    image = cv2.GaussianBlur(np.random.default_rng(1).integers(0, 255, (120, 90, 3), np.uint8),
                             (5, 5), 0)
    cv2.imwrite(str(tmp_path / "photo.jpg"), image)
    out = tmp_path / "out"
    detector = ["--detector", str(_detector_file(fmt, tmp_path))] if with_detector else []
    run = subprocess.run([sys.executable, "-X", "importtime", str(REPO / "tools" / "infer.py"),
                          "--weights", str(paths[fmt]), str(tmp_path / "photo.jpg"), "--out",
                          str(out), "--threads", "1", "--quiet", *detector,
                          "--debug"],  # -X importtime writes to fd 2, which tools hide
                         capture_output=True, text=True, timeout=300, cwd=REPO,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert run.returncode == 0, run.stderr[-3000:]
    modules = _imported_modules(run.stderr)
    assert {"numpy", "cv2", "pose", "datasets"} <= modules  # the report is complete
    assert {"ai_edge_litert" if fmt == "tflite" else "onnxruntime"} <= modules
    assert not modules & {"tensorflow", "keras", "tf_keras", "tf2onnx"}, sorted(
        modules & {"tensorflow", "keras", "tf_keras", "tf2onnx"})
    first, second = run.stdout.splitlines()[:2]
    assert first.startswith(f"runtime {runtime} (") and first.endswith(
        "1 thread, precision float32"), first
    assert (out / "photo.jpg").is_file()
    people = json.loads((out / "predictions.json").read_text())
    assert len(people) == (2 if with_detector else 1)
    assert all(len(p["keypoints"]) == 17 * 3 for p in people)
    if with_detector:
        assert second.startswith(f"person boxes: detector {detector[1]}: layout yolov8 (")
        assert "input 128x128 float32" in second and "threshold 0.3" in second, second
        assert second.endswith("(given by --detector)") and f"runtime {runtime}" in second
        # the input (90x120) went in at 96x128, 16 columns from the left: x / (96/90) - 15
        np.testing.assert_allclose(sorted(p["box"] for p in people),
                                   [[3.75, 9.375, 37.5, 103.125], [50.625, 4.6875, 37.5, 89.0625]],
                                   atol=1.0)


def test_a_pose_model_as_detector_is_one_clear_error(exported, tmp_path):
    """The pose export passed as --detector: one line naming its input and output."""
    _, _, paths = exported
    run = subprocess.run([sys.executable, str(REPO / "tools" / "infer.py"), "--weights",
                          str(paths["onnx"]), "--detector", str(paths["tflite"]),
                          str(REPO / "tests" / "data" / "coco_sample" / "images"),
                          "--out", str(tmp_path / "out")], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert run.returncode == 2, run.stderr[-2000:]
    # LiteRT's own C++ notice ("INFO: Created TensorFlow Lite XNNPACK delegate") may come
    # first; the error is one line.
    lines = [line for line in run.stderr.strip().splitlines() if not line.startswith("INFO:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "not a detector file of a known layout" in lines[0]
    assert "(?, 64, 32, 3) float32" in lines[0] and "(?, 16, 8, 17) float32" in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_a_detector_as_pose_model_is_one_clear_error(tmp_path):
    """A detector's ONNX file (NCHW input, one (B, 84, 8400) output) given as --weights is
    refused with its input and output named, before any image is read."""
    import onnx
    from onnx import TensorProto, helper

    from pose.apis.estimator import load_network
    from pose.errors import CheckpointError

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["images"], ["pooled"], axes=[2, 3], keepdims=0),
         helper.make_node("Tile", ["pooled", "reps"], ["output0"])],
        "detector", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 84])],
        [helper.make_tensor("reps", TensorProto.INT64, [2], [1, 28])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, tmp_path / "yolo.onnx")
    with pytest.raises(CheckpointError) as error:
        load_network(tmp_path / "yolo.onnx")
    assert str(error.value) == (
        f"{tmp_path / 'yolo.onnx'}: not a pose model exported by tools/export.py: it takes "
        "images (1, 3, 8, 8) float32 and gives output0 (1, 84) float32, where a pose model "
        "takes (B, H, W, 3) crops and gives (B, h, w, K) heatmaps (a detector file goes to "
        "--detector)")


def test_infer_refuses_a_runtime_that_cannot_run_the_file(exported, tmp_path):
    _, _, paths = exported
    run = subprocess.run([sys.executable, str(REPO / "tools" / "infer.py"), "--weights",
                          str(paths["tflite"]), "--runtime", "onnx", str(tmp_path), "--out",
                          str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
                         cwd=REPO)
    assert run.returncode == 2
    assert "error: runtime 'onnx' cannot run" in run.stderr and "--format onnx" in run.stderr
    assert not (tmp_path / "out").exists()
