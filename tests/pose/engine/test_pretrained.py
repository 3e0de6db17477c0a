"""Pretrained weights: converted files, .pth models, and training started from a checkpoint."""

import dataclasses
import json

import keras
import numpy as np
import pytest

from pose.config import ModelConfig
from pose.engine.checkpoint import build_model, load_model, save_model
from pose.engine.pretrained import (
    convert_checkpoint,
    initialize_from,
    input_size_from_name,
    load_any_checkpoint,
)
from pose.engine.training import train
from pose.errors import UserError
from pose.models.torch_checkpoint import CheckpointError, load_torch_checkpoint

TINY_OFFICIAL = dict(width=6, num_keypoints=17, stage_modules=(1, 1, 2), stage1_blocks=4,
                     stem_width=64, stage_blocks=((1, 1), (2, 2, 2), (1, 1, 1, 1)))
PROBE = ("stage3_m0_b1_block1_conv1/kernel", "stage3.0.branches.1.1.conv1.weight")


def _probe_kernel(official_hrnet_dir):
    state = load_torch_checkpoint(official_hrnet_dir / "pose_hrnet_tiny.pth")
    return np.transpose(state[PROBE[1]], (2, 3, 1, 0))  # OIHW → HWIO


def _weight(model, path):
    (variable,) = [v for v in model.weights if v.path == path]
    return keras.ops.convert_to_numpy(variable)


def test_input_size_from_official_file_names():
    assert input_size_from_name("models/pose_hrnet_w32_256x192.pth") == (192, 256)
    assert input_size_from_name("pose_hrnet_w48_384x288.pth") == (288, 384)
    assert input_size_from_name("hrnet_w32-36af842e.pth") is None


def test_converted_file_reloads_and_matches_the_reference(official_hrnet_dir, tmp_path):
    out = tmp_path / "tiny.keras"
    report = convert_checkpoint(official_hrnet_dir / "pose_hrnet_tiny_legacy.pth", out,
                                input_size=(64, 96), reference=official_hrnet_dir / "io.npz")
    assert (report.layout, report.loaded, report.skipped, report.missing) == \
        ("official-pose", 397, [], [])
    assert report.counters == 79 and report.max_abs_diff <= 1e-3
    model, config = load_model(out)
    assert config.model == ModelConfig(input_size=(64, 96), psa_placement="none",
                                       **TINY_OFFICIAL)
    reference = np.load(official_hrnet_dir / "io.npz")
    output = keras.ops.convert_to_numpy(model(reference["input_nhwc"], training=False))
    assert np.abs(output - reference["output_nhwc_fp64"]).max() <= 1e-3


def test_pth_loads_directly_and_imagenet_files_are_not_pose_models(official_hrnet_dir):
    model, config = load_any_checkpoint(official_hrnet_dir / "mmpose_style_tiny.pth")
    assert config.model.input_size == (192, 256)  # the default: no size in the name
    assert tuple(model.input_shape) == (None, 256, 192, 3)
    np.testing.assert_array_equal(_weight(model, PROBE[0]), _probe_kernel(official_hrnet_dir))
    with pytest.raises(CheckpointError, match="no pose head; use it as train.init_weights"):
        load_any_checkpoint(official_hrnet_dir / "imagenet_style_tiny.pth")


def test_initialize_keeps_psa_fresh_and_checks_shapes(official_hrnet_dir, tmp_path):
    config = ModelConfig(input_size=(64, 96), psa_placement="block", psa_mode="sequential",
                         **TINY_OFFICIAL)
    model = build_model(config)
    psa_before = {v.path: keras.ops.convert_to_numpy(v) for v in model.weights
                  if "_psa/" in v.path}
    report = initialize_from(model, official_hrnet_dir / "imagenet_style_tiny.pth")
    assert psa_before and sorted(report.fresh) == sorted(
        list(psa_before) + ["final_layer/kernel", "final_layer/bias"])
    assert len(report.loaded) == 395 and len(report.skipped) == 22
    assert all(name.endswith("(classification head)") for name in report.skipped)
    np.testing.assert_array_equal(_weight(model, PROBE[0]), _probe_kernel(official_hrnet_dir))
    for path, value in psa_before.items():
        np.testing.assert_array_equal(_weight(model, path), value)

    # A .keras source works the same way.
    save_model(model, tmp_path / "start.keras")
    other = build_model(config)
    again = initialize_from(other, tmp_path / "start.keras")
    assert again.fresh == [] and again.skipped == []
    for variable in other.weights:
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable),
                                      _weight(model, variable.path), err_msg=variable.path)

    wider = build_model(dataclasses.replace(config, width=8, stage_blocks=None))
    with pytest.raises(ValueError, match=r"shape mismatch for stage2_m0_b0_block0_conv1/kernel"
                                         r"|shape mismatch for transition1_b0_conv/kernel"):
        initialize_from(wider, official_hrnet_dir / "pose_hrnet_tiny.pth")
    partial = initialize_from(wider, official_hrnet_dir / "pose_hrnet_tiny.pth",
                              allow_partial=True)
    assert partial.mismatched and "stem_conv1/kernel" in partial.loaded


def test_missing_init_weights_say_where_to_get_them(tmp_path, tiny_config):
    config = dataclasses.replace(tiny_config, train=dataclasses.replace(
        tiny_config.train, init_weights=str(tmp_path / "hrnet_w32-36af842e.pth")))
    with pytest.raises(FileNotFoundError, match=r"hrnet_w32-36af842e\.pth not found.*"
                                                r"HRNet-Image-Classification.*"
                                                r"train\.init_weights=null") as raised:
        train(config, str(tmp_path / "run"), verbose=0)
    assert isinstance(raised.value, UserError)  # one line from the tools, not a traceback
    assert not (tmp_path / "run").exists()  # failed before anything was written


def test_training_starts_from_the_checkpoint_with_fresh_psa(official_hrnet_dir, tmp_path,
                                                            tiny_config, monkeypatch):
    # The model that train() hands to fit(), captured there: tracing a training step of
    # this 700-layer network would take minutes on two loaded cores and add nothing.
    started = []
    monkeypatch.setattr(keras.Model, "fit", lambda model, *a, **k: started.append(
        {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}))
    config = dataclasses.replace(
        tiny_config,
        model=ModelConfig(input_size=(32, 64), psa_placement="branch", **TINY_OFFICIAL),
        train=dataclasses.replace(tiny_config.train,
                                  init_weights=str(official_hrnet_dir / "pose_hrnet_tiny.pth")))
    workdir = tmp_path / "run"
    train(config, str(workdir), verbose=0, validate=False)
    report = json.loads((workdir / "init_weights.json").read_text())
    assert report["source"].endswith("pose_hrnet_tiny.pth")
    assert len(report["loaded"]) == 397 and report["skipped"] == [] == report["mismatched"]
    assert report["fresh"] and all("_psa/" in path for path in report["fresh"])
    assert report["optimizer"].startswith("the optimizer starts fresh: train.init_weights "
                                          "carries the network's weights only")
    (weights,) = started
    np.testing.assert_array_equal(weights[PROBE[0]], _probe_kernel(official_hrnet_dir))
    keras.utils.set_random_seed(config.train.seed)  # as train() does before building
    fresh = build_model(config.model)
    for path in report["fresh"]:
        np.testing.assert_array_equal(weights[path], _weight(fresh, path), err_msg=path)
