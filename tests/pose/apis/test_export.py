"""Tests of pose.apis.export and tools/export.py: SavedModel/TFLite parity, ONNX without deps."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pose.apis.export import ExportedModel, ExportError, export_model, missing_dependencies, parity
from pose.models.hrnet import HRNet

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def model(tiny_hrnet, randomized):
    # He-normal weights give outputs ~1, so that a parity of 1e-4 means something.
    return randomized(HRNet(psa_placement="branch", **tiny_hrnet), seed=1)


@pytest.fixture(scope="module")
def saved_model(model, tmp_path_factory):
    return export_model(model, tmp_path_factory.mktemp("export") / "sm", "saved_model")


def test_saved_model_parity_and_predictor(model, saved_model):
    check = parity(model, saved_model, "saved_model", batch_size=3)
    assert check["max_abs_output"] > 0.5, "outputs too small for the check to mean anything"
    assert check["max_abs_diff"] <= 1e-4, check

    # The exported network drops into the Predictor (decoding stays in Python).
    from datasets.metadata import DatasetMeta
    from pose.codec import HeatmapCodec
    from pose.evaluation.predictor import Predictor

    codec = HeatmapCodec((32, 64), (8, 16))
    flip = DatasetMeta.coco().flip_index_array
    crops = np.random.default_rng(2).standard_normal((2, 64, 32, 3)).astype(np.float32)
    center, scale = np.full((2, 2), 50.0), np.full((2, 2), 80.0)
    want = Predictor(model, codec, flip).predict(crops, center, scale)
    got = Predictor(ExportedModel(saved_model), codec, flip).predict(crops, center, scale)
    np.testing.assert_allclose(got[0], want[0], atol=1e-3)
    np.testing.assert_allclose(got[1], want[1], atol=1e-4)


def test_parity_detects_a_different_model(model, saved_model, tiny_hrnet, randomized):
    other = randomized(HRNet(psa_placement="branch", **tiny_hrnet), seed=2)
    assert parity(other, saved_model, "saved_model")["max_abs_diff"] > 1e-2


def test_tflite_parity(model, tmp_path, tiny_hrnet):
    path = export_model(model, tmp_path / "model.tflite", "tflite")
    assert os.path.isfile(path) and os.listdir(tmp_path) == ["model.tflite"]
    check = parity(model, path, "tflite", batch_size=2)  # the batch is resized to 2
    assert check["max_abs_diff"] <= 1e-4, check
    assert ExportedModel(path).predict_on_batch(
        np.zeros((1, 64, 32, 3), np.float32)).shape == (1, 16, 8, 17)

    # tools/infer.py --weights model.tflite: the export with its config beside it
    from pose.apis.estimator import PoseEstimator, load_network
    from pose.config import Config, ModelConfig, save_config
    from pose.engine.checkpoint import config_path_for

    config = Config(model=ModelConfig(psa_placement="branch", **tiny_hrnet))
    save_config(config, config_path_for(path))
    exported, loaded_config = load_network(path)
    assert loaded_config == config
    image = np.random.default_rng(3).integers(0, 255, (90, 70, 3), np.uint8)
    boxes = [[5, 5, 50, 70], [20, 10, 40, 60], [0, 0, 70, 90]]
    want = PoseEstimator.from_config(model, config).predict_image(image, boxes)
    got = PoseEstimator.from_config(exported, loaded_config).predict_image(image, boxes)
    np.testing.assert_allclose(got.keypoint_scores, want.keypoint_scores, atol=1e-4)
    np.testing.assert_allclose(got.keypoints, want.keypoints, atol=1e-2)


def test_onnx_without_optional_packages(model, tmp_path):
    missing = missing_dependencies("onnx")
    if not missing:
        pytest.skip("tf2onnx and onnxruntime are installed here")
    with pytest.raises(ExportError, match=missing[0]):
        export_model(model, tmp_path / "m.onnx", "onnx")
    assert os.listdir(tmp_path) == []
    run = subprocess.run([sys.executable, str(REPO / "tools" / "export.py"), "--weights",
                          str(tmp_path / "absent.keras"), "--format", "onnx", "--out",
                          str(tmp_path / "m.onnx")], capture_output=True, text=True,
                         timeout=60, cwd=REPO)
    assert run.returncode == 2
    assert f"pip install {' '.join(missing)}" in run.stderr
    with pytest.raises(ExportError, match="unknown export format"):
        export_model(model, tmp_path / "m.x", "coreml")
