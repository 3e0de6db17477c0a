"""The torch-free PyTorch checkpoint reader: both formats, dtypes, views, refusals."""

import os
import sys

import ml_dtypes
import numpy as np
import pytest

from pose.models.torch_checkpoint import (
    CheckpointError,
    UnsafeCheckpointError,
    load_torch_checkpoint,
)


def test_reads_without_torch(official_hrnet_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # any "import torch" now fails
    state_dict = load_torch_checkpoint(official_hrnet_dir / "pose_hrnet_tiny.pth")
    assert state_dict["final_layer.weight"].shape == (17, 6, 1, 1)


def test_zip_and_legacy_files_hold_identical_arrays(official_hrnet_dir):
    zipped = load_torch_checkpoint(official_hrnet_dir / "pose_hrnet_tiny.pth")
    legacy = load_torch_checkpoint(official_hrnet_dir / "pose_hrnet_tiny_legacy.pth")
    assert list(zipped) == list(legacy) and len(zipped) == 476  # README: 476 keys
    for key, value in zipped.items():
        other = legacy[key]
        assert value.dtype == other.dtype and value.shape == other.shape, key
        np.testing.assert_array_equal(value, other, err_msg=key)
    assert zipped["conv1.weight"].shape == (64, 3, 3, 3)  # OIHW
    assert zipped["conv1.weight"].dtype == np.float32
    assert zipped["bn1.num_batches_tracked"].dtype == np.int64
    assert zipped["bn1.num_batches_tracked"].shape == ()
    params = sum(v.size for k, v in zipped.items()
                 if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert params == 556_439  # the fixture README's parameter count


def test_training_checkpoint_entries_come_back_as_python_values(official_hrnet_dir):
    content = load_torch_checkpoint(official_hrnet_dir / "checkpoint_dataparallel.pth")
    assert {"epoch", "state_dict", "best_state_dict", "optimizer"} <= set(content)
    assert isinstance(content["epoch"], int)
    assert all(k.startswith("module.") for k in content["state_dict"])


@pytest.mark.parametrize("legacy", [False, True])
def test_views_into_one_shared_storage(tmp_path, torch_checkpoint_writer, legacy):
    w = torch_checkpoint_writer
    flat = np.arange(12, dtype=np.float32)
    path = w.write(tmp_path / "views.pth", {
        "whole": w.Tensor("0", 0, (3, 4), (4, 1)),
        "tail_transposed": w.Tensor("0", 6, (3, 2), (1, 3)),  # t[6:].view(2, 3).t()
        "column": w.Tensor("0", 1, (3,), (4,)),
    }, {"0": flat}, legacy=legacy)
    loaded = load_torch_checkpoint(path)
    np.testing.assert_array_equal(loaded["whole"], flat.reshape(3, 4))
    np.testing.assert_array_equal(loaded["tail_transposed"], flat[6:].reshape(2, 3).T)
    np.testing.assert_array_equal(loaded["column"], [1, 5, 9])
    assert loaded["tail_transposed"].strides == (4, 12)  # torch strides × itemsize
    assert np.shares_memory(loaded["whole"], loaded["tail_transposed"])
    assert not loaded["whole"].flags.writeable


# Every storage dtype in both byte orders, but big-endian bfloat16: no torch build we know
# writes it.
@pytest.mark.parametrize("dtype,byteorder", [
    (dtype, byteorder)
    for dtype in ["float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8",
                  "bool"]
    for byteorder in ["little", "big"] if (dtype, byteorder) != ("bfloat16", "big")])
def test_storage_dtypes_and_byte_orders(tmp_path, torch_checkpoint_writer, dtype, byteorder):
    w = torch_checkpoint_writer
    np_dtype = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
    values = (np.arange(6) - 2).astype(np_dtype) if dtype != "bool" else \
        np.array([True, False, True, True, False, False])
    path = w.write(tmp_path / "t.pth", {"x": w.Tensor("k", 0, (2, 3), (3, 1))},
                   {"k": values}, byteorder=byteorder)
    loaded = load_torch_checkpoint(path)["x"]
    assert loaded.dtype == np_dtype
    np.testing.assert_array_equal(loaded, values.reshape(2, 3))


def test_malicious_official_fixture_is_refused_without_running(official_hrnet_dir,
                                                               monkeypatch):
    calls = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a))
    path = official_hrnet_dir / "malicious.pth"
    with pytest.raises(UnsafeCheckpointError, match=r"malicious\.pth.*posix\.system"):
        load_torch_checkpoint(path)
    assert calls == []


@pytest.mark.parametrize("legacy", [False, True])
def test_a_forbidden_global_runs_nothing(tmp_path, torch_checkpoint_writer, legacy):
    w = torch_checkpoint_writer
    marker = tmp_path / "marker"
    # builtins.open(marker, "w") would create the marker file if it were ever called.
    call = w.Raw(w.global_op("builtins", "open")
                 + w.tuple_op([w.str_op(str(marker)), w.str_op("w")]) + b"R")
    path = w.write(tmp_path / "evil.pth", {"x": w.Tensor("0", 0, (1,), (1,)), "y": call},
                   {"0": np.zeros(1, np.float32)}, legacy=legacy)
    with pytest.raises(UnsafeCheckpointError, match=r"evil\.pth.*builtins\.open"):
        load_torch_checkpoint(path)
    assert not marker.exists()


def test_unreadable_files_name_the_file(tmp_path, torch_checkpoint_writer):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="junk.pth"):
        load_torch_checkpoint(junk)
    w = torch_checkpoint_writer
    overrun = w.write(tmp_path / "overrun.pth", {"x": w.Tensor("0", 2, (3,), (1,))},
                      {"0": np.zeros(4, np.float32)})
    with pytest.raises(CheckpointError, match=r"overrun\.pth.*overruns its storage"):
        load_torch_checkpoint(overrun)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_torch_checkpoint(tmp_path / "missing.pth")


def test_numpy_scalars_of_a_training_checkpoint(tmp_path, torch_checkpoint_writer):
    # The official training checkpoint's "perf" is the np.float64 AP of COCOeval; torch
    # pickles with protocol 2, which writes its bytes through _codecs.encode.
    import pickle

    w = torch_checkpoint_writer

    def embedded(value):
        return w.Raw(pickle.dumps(value, protocol=2)[2:-1])  # without PROTO and STOP

    path = w.write(tmp_path / "perf.pth", {"perf": embedded(np.float64(0.731)),
                                           "step": embedded(np.int64(7))}, {})
    loaded = load_torch_checkpoint(path)
    assert loaded["perf"] == 0.731 and loaded["perf"].dtype == np.float64
    assert loaded["step"] == 7
    evil = w.write(tmp_path / "obj.pth", {"x": embedded(np.array([None], object)[0:1])}, {})
    with pytest.raises(UnsafeCheckpointError, match=r"obj\.pth.*numpy"):
        load_torch_checkpoint(evil)
