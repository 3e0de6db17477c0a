"""Official HRNet checkpoints → HRNet: layouts, architecture from the file, exact outputs."""

import gzip
import json

import numpy as np
import pytest

from pose.models.conversion import (
    PretrainedCheckpoint,
    assign_weights,
    describe_architecture,
    infer_architecture,
    keras_weight_path,
    load_pretrained_into,
    read_pretrained,
)
from pose.models.hrnet import HRNet
from pose.models.torch_checkpoint import CheckpointError, load_torch_checkpoint

TINY_ARCHITECTURE = dict(width=6, num_keypoints=17, stage_modules=(1, 1, 2), stage1_blocks=4,
                         stem_width=64, num_blocks=4,
                         stage_blocks=((1, 1), (2, 2, 2), (1, 1, 1, 1)))  # fixture README
LAYOUTS = {"pose_hrnet_tiny.pth": "official-pose", "pose_hrnet_tiny_legacy.pth": "official-pose",
           "checkpoint_dataparallel.pth": "official-training", "mmpose_style_tiny.pth": "mmpose",
           "imagenet_style_tiny.pth": "imagenet-classification"}


@pytest.fixture(scope="module")
def tiny_pose(official_hrnet_dir):
    return read_pretrained(official_hrnet_dir / "pose_hrnet_tiny.pth")


@pytest.fixture(scope="module")
def tiny_model(official_hrnet_dir, tiny_pose):
    """The tiny official network at the reference input size (W 64, H 96), converted."""
    model = HRNet(input_size=(64, 96), psa_placement="none", **tiny_pose.architecture())
    load_pretrained_into(model, tiny_pose)
    return model


@pytest.fixture(scope="module")
def scratch_model(tiny_pose):
    """A network of the tiny official architecture for the refusal tests, built once: they
    read its weight shapes, and what a partial assignment writes into it is never read."""
    return HRNet(input_size=(64, 96), psa_placement="none", **tiny_pose.architecture())


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_every_layout_is_recognised_with_the_same_weights(official_hrnet_dir, tiny_pose, name):
    checkpoint = read_pretrained(official_hrnet_dir / name)
    assert checkpoint.layout == LAYOUTS[name]
    assert checkpoint.counters == 79  # num_batches_tracked of every BatchNorm
    backbone = {k: v for k, v in tiny_pose.state_dict.items() if not k.startswith("final_layer")}
    expected = tiny_pose.state_dict if name != "imagenet_style_tiny.pth" else backbone
    assert checkpoint.state_dict.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_array_equal(checkpoint.state_dict[key], value, err_msg=key)
    architecture = checkpoint.architecture()
    if name == "imagenet_style_tiny.pth":
        assert architecture == dict(TINY_ARCHITECTURE, num_keypoints=None)
    else:
        assert architecture == TINY_ARCHITECTURE


def test_tiny_official_output_is_reproduced(official_hrnet_dir, tiny_model):
    reference = np.load(official_hrnet_dir / "io.npz")
    output = np.asarray(tiny_model(reference["input_nhwc"], training=False))
    # Fixture README: a float32 forward agrees with the float64 official output to 1e-3.
    assert np.abs(output - reference["output_nhwc_fp64"]).max() <= 1e-3
    assert reference["output_nhwc_fp64"].std() > 5  # the comparison is not between zeros


def test_imagenet_checkpoint_loads_its_backbone_and_lists_the_head(official_hrnet_dir,
                                                                    tiny_pose):
    path = official_hrnet_dir / "imagenet_style_tiny.pth"
    content = load_torch_checkpoint(path)
    head = [k for k in content if k.startswith(("incre_modules.", "downsamp_modules.",
                                                 "final_layer.", "classifier."))]
    checkpoint = read_pretrained(path)
    assert sorted(checkpoint.skipped) == sorted(head) and "classifier.weight" in head
    model = HRNet(input_size=(64, 96), psa_placement="none",
                  **dict(checkpoint.architecture(), num_keypoints=17))
    report = load_pretrained_into(model, checkpoint)
    assert report.fresh == ["final_layer/kernel", "final_layer/bias"]
    np.testing.assert_array_equal(
        model.get_layer("stage4_m1_fuse_0_3_bn").moving_variance.numpy(),
        tiny_pose.state_dict["stage4.1.fuse_layers.0.3.1.running_var"])


def test_imagenet_multi_scale_fusion_of_the_last_module_is_skipped(tmp_path, tiny_pose,
                                                                   torch_checkpoint_writer):
    # HRNet-Image-Classification's last stage-4 module keeps all four outputs; the pose
    # network only the first. Those extra fusion tensors belong to the classifier.
    w = torch_checkpoint_writer
    state = {k: v for k, v in tiny_pose.state_dict.items() if not k.startswith("final_layer")}
    state["stage4.1.fuse_layers.1.0.0.0.weight"] = np.ones((12, 6, 3, 3), np.float32)
    state["classifier.weight"] = np.ones((10, 4), np.float32)
    storages = {str(i): np.ascontiguousarray(v).ravel() for i, v in enumerate(state.values())}
    tensors = {k: w.Tensor(str(i), 0, v.shape, tuple(s // v.itemsize for s in
                                                     np.ascontiguousarray(v).strides))
               for i, (k, v) in enumerate(state.items())}
    checkpoint = read_pretrained(w.write(tmp_path / "cls.pth", tensors, storages))
    assert checkpoint.layout == "imagenet-classification"
    assert sorted(checkpoint.skipped) == ["classifier.weight",
                                          "stage4.1.fuse_layers.1.0.0.0.weight"]


@pytest.mark.parametrize("manifest", ["w32_256x192", "w48_256x192"])
def test_full_official_key_manifests_map_onto_hrnet(official_hrnet_dir, built_hrnet, manifest):
    keys = json.loads(gzip.decompress(
        (official_hrnet_dir / "official_keys.json.gz").read_bytes()))[manifest]
    # Only shapes matter: zero-strided stand-ins cost no memory.
    state_dict = {k: np.broadcast_to(np.float32(0), shape) for k, shape in keys.items()
                  if not k.endswith("num_batches_tracked")}
    architecture = infer_architecture(state_dict)
    width = int(manifest[1:3])
    assert architecture == dict(width=width, num_keypoints=17, stage_modules=(1, 4, 3),
                                stage1_blocks=4, stem_width=64, num_blocks=4, stage_blocks=None)
    model = built_hrnet(psa_placement="none", **architecture)  # built, never run
    model_shapes = {v.path: tuple(v.shape) for v in model.weights}
    mapped = {}
    for key, shape in state_dict.items():
        path = keras_weight_path(key)
        assert path not in mapped, f"{key} and {mapped.get(path)} both map to {path}"
        mapped[path] = key
        expected = (shape.shape[2], shape.shape[3], shape.shape[1], shape.shape[0]) \
            if shape.ndim == 4 else shape.shape
        assert model_shapes[path] == expected, key
    assert set(mapped) == set(model_shapes)  # every Keras weight receives one tensor


def test_unknown_missing_and_mismatched_tensors_are_errors(tiny_pose, scratch_model):
    model = scratch_model
    with pytest.raises(CheckpointError, match="stage2.0.branches.0.0.conv3.weight"):
        keras_weight_path("stage2.0.branches.0.0.conv3.weight", "x.pth")
    unknown = {"stage2.0.branches.0.0.conv3.weight": np.ones((6, 6, 1, 1), np.float32)}
    with pytest.raises(CheckpointError) as error:  # a checkpoint made by hand names its file
        PretrainedCheckpoint("x.pth", "official-pose", unknown, (), 0).keras_weights()
    assert str(error.value) == ("x.pth: tensor 'stage2.0.branches.0.0.conv3.weight' has no "
                                "counterpart in HRNet")
    missing = {k: v for k, v in tiny_pose.state_dict.items() if k != "bn1.running_var"}
    with pytest.raises(CheckpointError, match=r"x\.pth: 1 Keras weights have no tensor: "
                                              r"stem_bn1/moving_variance"):
        load_pretrained_into(model, PretrainedCheckpoint("x.pth", "official-pose", missing,
                                                         (), 0))
    mismatched = dict(tiny_pose.state_dict, **{"bn1.weight": np.zeros(3, np.float32)})
    with pytest.raises(CheckpointError, match=r"stem_bn1/gamma: \(3,\) in x\.pth, \(64,\)"):
        load_pretrained_into(model, PretrainedCheckpoint("x.pth", "official-pose", mismatched,
                                                         (), 0))


def test_partial_assignment_lists_what_it_left(tiny_pose, caplog):
    model = HRNet(input_size=(64, 96), psa_placement="branch",
                  **dict(tiny_pose.architecture(), num_keypoints=5))
    with caplog.at_level("INFO", logger="pose.models.conversion"):
        report = assign_weights(model, tiny_pose.keras_weights(), "x.pth", allow_partial=True)
    # 476 keys in the fixture (its README) - 79 counters = 397 tensors, 2 of them mismatched.
    assert caplog.messages == [f"x.pth: 395 weights loaded, 0 skipped, 2 shape mismatches, "
                               f"{len(report.fresh)} left fresh"]
    assert report.mismatched == ["final_layer/kernel: (1, 1, 6, 17) in x.pth, (1, 1, 6, 5) in "
                                 "the model", "final_layer/bias: (17,) in x.pth, (5,) in the model"]
    assert report.fresh and all("_psa" in p for p in report.fresh)
    assert report.skipped == [] and len(report.loaded) == len(tiny_pose.state_dict) - 2
    assert report.loaded == [v.path for v in model.weights  # by path, in the model's order
                             if "_psa" not in v.path and not v.path.startswith("final_layer/")]
    with pytest.raises(ValueError, match="final_layer/kernel"):
        assign_weights(model, tiny_pose.keras_weights(), "x.pth")


def test_mmpose_0x_keypoint_head_prefix(tmp_path, official_hrnet_dir, tiny_pose,
                                        torch_checkpoint_writer):
    content = load_torch_checkpoint(official_hrnet_dir / "mmpose_style_tiny.pth")["state_dict"]
    renamed = {k.replace("head.", "keypoint_head.", 1) if k.startswith("head.") else k: v
               for k, v in content.items()}
    assert "keypoint_head.final_layer.weight" in renamed
    path = _nested_state_dict(torch_checkpoint_writer, tmp_path / "mmpose0.pth", renamed)
    checkpoint = read_pretrained(path)
    assert checkpoint.layout == "mmpose"
    assert checkpoint.state_dict.keys() == tiny_pose.state_dict.keys()
    for key in ("final_layer.weight", "final_layer.bias"):
        np.testing.assert_array_equal(checkpoint.state_dict[key], tiny_pose.state_dict[key])


def _nested_state_dict(w, path, state):
    """``{"meta": ..., "state_dict": state}`` as mmpose saves it."""
    storages, tensors = {}, {}
    for i, (name, value) in enumerate(state.items()):
        value = np.ascontiguousarray(value)
        storages[str(i)] = value.ravel()
        tensors[name] = w.Tensor(str(i), 0, value.shape,
                                 tuple(s // value.itemsize for s in value.strides))
    return w.write(path, {"meta": {"mmpose_version": "0.29.0"}, "state_dict": tensors},
                   storages)


def test_unknown_tensors_are_refused_not_dropped(tmp_path, tiny_pose, scratch_model,
                                                 torch_checkpoint_writer):
    state = dict(tiny_pose.state_dict, **{"stage2.0.branches.0.0.conv3.weight":
                                          np.ones((6, 6, 1, 1), np.float32)})
    path = torch_checkpoint_writer.write_state_dict(tmp_path / "extra.pth", state)
    with pytest.raises(CheckpointError, match=r"extra\.pth: 1 tensors .* no counterpart in "
                                              r"HRNet: stage2\.0\.branches\.0\.0\.conv3\.weight"):
        read_pretrained(path)
    # A name with a rule but no layer in this network (a fifth branch) is refused too.
    model = scratch_model
    extra = dict(tiny_pose.state_dict, **{"stage4.1.fuse_layers.0.4.1.bias":
                                          np.ones(6, np.float32),
                                          "stage4.1.fuse_layers.0.4.1.weight":
                                          np.ones(6, np.float32)})
    with pytest.raises(CheckpointError) as error:
        load_pretrained_into(model, PretrainedCheckpoint("x.pth", "official-pose", extra, (), 0))
    assert str(error.value) == ("x.pth: 2 tensors have no Keras weight: "
                                "stage4_m1_fuse_0_4_bn/beta, stage4_m1_fuse_0_4_bn/gamma")


def test_weights_of_the_right_size_but_another_shape_are_refused(tiny_pose, scratch_model):
    model = scratch_model
    final = tiny_pose.state_dict["final_layer.weight"]  # (17, 6, 1, 1)
    swapped = dict(tiny_pose.state_dict, **{"final_layer.weight": final.reshape(6, 17, 1, 1)})
    with pytest.raises(CheckpointError, match=r"final_layer/kernel: \(1, 1, 17, 6\) in x\.pth, "
                                              r"\(1, 1, 6, 17\) in the model"):
        load_pretrained_into(model, PretrainedCheckpoint("x.pth", "official-pose", swapped, (),
                                                         0))
    report = assign_weights(model, PretrainedCheckpoint("x.pth", "official-pose", swapped, (),
                                                        0).keras_weights(), "x.pth",
                            allow_partial=True)
    assert report.mismatched == ["final_layer/kernel: (1, 1, 17, 6) in x.pth, (1, 1, 6, 17) in "
                                 "the model"]


def test_block_counts_are_checked_in_every_module(tiny_pose):
    # stage 4 has two modules of one block per branch; give the second module's branch 0 a
    # second block: no HRNet has per-module block counts.
    state = dict(tiny_pose.state_dict)
    for key, value in tiny_pose.state_dict.items():
        if key.startswith("stage4.1.branches.0.0."):
            state[key.replace("stage4.1.branches.0.0.", "stage4.1.branches.0.1.")] = value
    with pytest.raises(CheckpointError, match=r"x\.pth: stage 4 branch 0 has different block "
                                              r"counts per module: \[1, 2\]"):
        infer_architecture(state, "x.pth")


def test_non_finite_weights_are_refused_with_their_names(tmp_path, tiny_pose,
                                                         torch_checkpoint_writer):
    bias = tiny_pose.state_dict["final_layer.bias"].copy()
    bias[3] = np.nan
    mean = tiny_pose.state_dict["bn1.running_mean"].copy()
    mean[0] = -np.inf
    state = dict(tiny_pose.state_dict, **{"final_layer.bias": bias, "bn1.running_mean": mean})
    path = torch_checkpoint_writer.write_state_dict(tmp_path / "nan.pth", state, legacy=True)
    with pytest.raises(CheckpointError, match=r"nan\.pth: 2 tensors hold NaN or inf: "
                                              r"bn1\.running_mean, final_layer\.bias"):
        read_pretrained(path)
    allowed = read_pretrained(path, allow_non_finite=True)
    assert np.isnan(allowed.state_dict["final_layer.bias"][3])


def test_describe_architecture_says_what_the_file_holds():
    # The line tools/convert.py prints about the network a checkpoint holds.
    assert describe_architecture(TINY_ARCHITECTURE) == (
        "HRNet-W6, stem 64, 4 bottlenecks, stage modules (1, 1, 2), blocks per branch "
        "((1, 1), (2, 2, 2), (1, 1, 1, 1)), 17 keypoint heatmaps")
    w32_backbone = dict(width=32, num_keypoints=None, stage_modules=[1, 4, 3], stage1_blocks=4,
                        stem_width=64, num_blocks=4, stage_blocks=None)
    assert describe_architecture(w32_backbone) == (
        "HRNet-W32, stem 64, 4 bottlenecks, stage modules (1, 4, 3), 4 blocks per branch, "
        "no keypoint heatmaps")


def _tensor_dict(w, storages, state):
    """``{name: Tensor}`` for ``w.write``, each array its own storage in ``storages``."""
    tensors = {}
    for name, value in state.items():
        value = np.ascontiguousarray(value)
        storages[str(len(storages))] = value.ravel()
        tensors[name] = w.Tensor(str(len(storages) - 1), 0, value.shape,
                                 tuple(s // value.itemsize for s in value.strides))
    return tensors


_ONE = np.ones((2, 2), np.float32)


@pytest.mark.parametrize("make, message", [
    (lambda t: 3, "expected a dict of tensors, got int"),
    (lambda t: {"meta": {"epoch": 1}, **t({"conv1.weight": _ONE})},
     "not a state dict (entries that are not tensors: meta)"),
    (lambda t: {"meta": {"epoch": 1}, "state_dict": t({"conv1.weight": _ONE})},
     "a 'state_dict' entry with neither 'backbone.' keys (mmpose) nor training entries (epoch, "
     "optimizer)"),
    (lambda t: t({"conv1.weight": _ONE}),
     "no HRNet layout recognised (no conv1.weight / stage2.0.branches.0.0.conv1.weight)"),
    (lambda t: {"state_dict": t({"backbone.conv1.weight": _ONE, "neck.fc.weight": _ONE})},
     "mmpose tensor 'neck.fc.weight' is neither backbone. nor head."),
    (lambda t: {"state_dict": t({"backbone.conv1.weight": _ONE, "head.deconv.weight": _ONE})},
     "mmpose head tensor 'head.deconv.weight' is not a 1x1 final layer (only the heatmap head "
     "is supported)"),
])
def test_files_of_no_known_layout_say_what_they_hold(tmp_path, torch_checkpoint_writer, make,
                                                     message):
    storages = {}
    content = make(lambda state: _tensor_dict(torch_checkpoint_writer, storages, state))
    path = torch_checkpoint_writer.write(tmp_path / "odd.pth", content, storages)
    with pytest.raises(CheckpointError) as error:
        read_pretrained(path)
    assert str(error.value) == f"{path}: {message}"


def test_convert_tool_refuses_non_finite_weights_unless_allowed(tmp_path, tiny_pose,
                                                               torch_checkpoint_writer, capsys):
    """tools/convert.py: NaN weights are one error line and nothing written; with
    --allow-non-finite the file is converted."""
    import runpy
    from pathlib import Path

    from pose.errors import run_tool

    bias = tiny_pose.state_dict["final_layer.bias"].copy()
    bias[3] = np.nan
    path = torch_checkpoint_writer.write_state_dict(
        tmp_path / "nan_64x96.pth", dict(tiny_pose.state_dict, **{"final_layer.bias": bias}),
        legacy=True)
    main = runpy.run_path(str(Path(__file__).parents[3] / "tools" / "convert.py"),
                          run_name="tool")["main"]
    out = tmp_path / "nan.keras"
    assert run_tool(main, [str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1 tensors hold NaN or inf: final_layer.bias" in err[0], err
    assert not out.exists()
    assert run_tool(main, [str(path), "--out", str(out), "--allow-non-finite"]) == 0
    assert out.is_file()
