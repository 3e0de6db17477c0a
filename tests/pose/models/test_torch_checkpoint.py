"""The torch-free PyTorch checkpoint reader: both formats, dtypes, views, refusals."""

import os
import pickle
import struct
import sys
import zipfile

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


@pytest.mark.parametrize("native_count", [False, True])
def test_legacy_file_of_a_big_endian_machine(tmp_path, torch_checkpoint_writer, native_count):
    # torch's writeFileRaw stores a big-endian machine's data little-endian (sys_info says
    # little_endian False); torch <= 0.4 wrote the element count in native order.
    w = torch_checkpoint_writer
    values = np.array([1.5, -2.25, 3e-3, 7.0], np.float32)
    path = w.write(tmp_path / "be.pth", {"x": w.Tensor("0", 0, (2, 2), (2, 1))}, {"0": values},
                   legacy=True, byteorder="big", native_count=native_count)
    np.testing.assert_array_equal(load_torch_checkpoint(path)["x"], values.reshape(2, 2))


def test_legacy_storage_views_keep_their_offset(tmp_path, torch_checkpoint_writer):
    w = torch_checkpoint_writer
    flat = np.arange(10, dtype=np.float32)
    path = w.write(tmp_path / "view.pth", {
        "a": w.Tensor(w.View("0", "v", 6, 4), 1, (2,), (1,)),  # flat[6:10][1:3]
        "b": w.Tensor(w.View("0", "v", 6, 4), 0, (4,), (1,)),  # the same view, whole
        "c": w.Tensor(w.View("0", "u", 2, 3), 0, (3,), (1,)),
    }, {"0": flat}, legacy=True)
    loaded = load_torch_checkpoint(path)
    np.testing.assert_array_equal(loaded["a"], [7, 8])
    np.testing.assert_array_equal(loaded["b"], [6, 7, 8, 9])
    np.testing.assert_array_equal(loaded["c"], [2, 3, 4])


def _hostile(w, tmp_path, name, legacy=False):
    """Files whose numbers say more than their bytes hold, each → the expected message."""
    x4 = {"0": np.arange(4, dtype=np.float32)}
    t = w.Tensor
    if name == "offset_past_end":
        return w.write(tmp_path / "f.pth", {"x": t("0", 5, (0,), (1,))}, x4, legacy), "past the end"
    if name == "view_overruns":
        return w.write(tmp_path / "f.pth", {"x": t("0", 1, (2, 2), (2, 1))}, x4, legacy), \
            "overruns its storage"
    if name == "stride_zero_huge":
        return w.write(tmp_path / "f.pth", {"x": t("0", 0, (2 ** 40, 2 ** 20), (0, 0))}, x4,
                       legacy), "zero stride"
    if name == "overlapping_more_elements":
        return w.write(tmp_path / "f.pth", {"x": t("0", 0, (3, 2), (1, 1))}, x4, legacy), \
            "more elements than its storage"
    if name == "huge_size":
        return w.write(tmp_path / "f.pth", {"x": t("0", 0, (2 ** 63,), (1,))}, x4, legacy), \
            "more elements|overruns"
    if name == "legacy_view_past_end":
        return w.write(tmp_path / "f.pth", {"x": t(w.View("0", "v", 3, 4), 0, (1,), (1,))}, x4,
                       True), "runs past its storage"
    if name == "build_on_storage":
        # BUILD on the storage object: {"numel": 2**30} would widen the bounds if it worked.
        pid = (w.tuple_op([w.str_op("storage"), w.global_op("torch", "FloatStorage"),
                           w.str_op("0"), w.str_op("cpu"), w.int_op(4)]
                          + ([b"N"] if legacy else [])) + b"Q")
        build = pid + b"}" + w.str_op("numel") + w.int_op(2 ** 30) + b"sb0"
        return w.write(tmp_path / "f.pth", {"s": w.Raw(build), "x": t("0", 0, (4,), (1,))}, x4,
                       legacy), "BUILD"
    if name == "memo_index_2_33":
        return w.write(tmp_path / "f.pth", {"x": w.Raw(w.int_op(1) + b"r" + struct.pack(
            "<I", 2 ** 32 - 1))}, {}, legacy), "memo index"
    if name == "unicode_length_2_63":
        return w.write(tmp_path / "f.pth", {"x": w.Raw(b"\x8d" + struct.pack("<Q", 2 ** 63))}, {},
                       legacy), "corrupt or truncated pickle"
    if name == "deep_nesting":
        return w.write(tmp_path / "f.pth", {"x": w.Raw(b"]" * 100_000 + b"a" * 99_999)}, {},
                       legacy), "nested more than"
    if name == "cycle":
        return w.write(tmp_path / "f.pth", {"x": w.Raw(b"]\x94h\x00a")}, {}, legacy), \
            "nested more than"
    raise AssertionError(name)


HOSTILE = ["offset_past_end", "view_overruns", "stride_zero_huge", "overlapping_more_elements",
           "huge_size", "legacy_view_past_end", "build_on_storage", "memo_index_2_33",
           "unicode_length_2_63", "deep_nesting", "cycle"]


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("name", HOSTILE)
def test_numbers_that_say_more_than_the_bytes_hold(tmp_path, torch_checkpoint_writer, name,
                                                   legacy):
    path, message = _hostile(torch_checkpoint_writer, tmp_path, name, legacy)
    with pytest.raises(CheckpointError, match=rf"f\.pth: .*({message})"):
        load_torch_checkpoint(path)


def test_a_storage_shorter_than_declared(tmp_path, torch_checkpoint_writer):
    w = torch_checkpoint_writer
    path = w.write(tmp_path / "short.pth", {"x": w.Tensor("0", 0, (4,), (1,))},
                   {"0": np.zeros(4, np.float32)})
    body = zipfile.ZipFile(path).read("archive/data.pkl").replace(b"J\x04\x00\x00\x00tQ",
                                                                  b"J\x00\x00\x00\x01tQ")
    with zipfile.ZipFile(path, "w") as archive:  # the count says 2^24, 16 bytes follow
        archive.writestr("archive/data.pkl", body)
        archive.writestr("archive/data/0", np.zeros(4, np.float32).tobytes())
    with pytest.raises(CheckpointError, match=r"short\.pth: .*has 16 bytes, the pickle "
                                              r"declares 16777216 x 4"):
        load_torch_checkpoint(path)
    legacy = w.write(tmp_path / "short_legacy.pth", {"x": w.Tensor("0", 0, (4,), (1,))},
                     {"0": np.zeros(4, np.float32)}, legacy=True)
    legacy.write_bytes(legacy.read_bytes()[:-3])
    with pytest.raises(CheckpointError, match=r"short_legacy\.pth: .*truncated: storage '0' "
                                              r"needs 16 bytes, the file has 13 left"):
        load_torch_checkpoint(legacy)


def test_truncated_and_flipped_zip_archives(tmp_path, official_hrnet_dir):
    data = (official_hrnet_dir / "pose_hrnet_tiny.pth").read_bytes()
    truncated = tmp_path / "cut.pth"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pth: .*truncated or corrupt zip archive"):
        load_torch_checkpoint(truncated)
    # data.pkl's central directory record (its name follows 46 bytes of fields)
    central = data.rindex(b"pose_hrnet_tiny/data.pkl") - 46
    assert data[central:central + 4] == b"PK\x01\x02"
    for field, value, message in [(10, b"\x08", "compressed or encrypted"),  # method: deflate
                                  (8, b"\x01", "compressed or encrypted"),  # flags: encrypted
                                  (24, b"\xff\xff\xff\x7f", "stored bytes for 2147483647 "
                                                               "bytes")]:  # file size
        flipped = tmp_path / "flip.pth"
        flipped.write_bytes(data[:central + field] + value
                            + data[central + field + len(value):])
        with pytest.raises(CheckpointError, match=rf"flip\.pth: .*({message})"):
            load_torch_checkpoint(flipped)


def test_shared_containers_are_converted_once(tmp_path, torch_checkpoint_writer):
    # 60 levels of [previous, previous]: a tree walk would take 2^60 steps.
    w = torch_checkpoint_writer
    levels = w.Raw(b"]\x940" + b"0".join(b"(h%sh%sl\x94" % (bytes([i]), bytes([i]))
                                         for i in range(60)))
    path = w.write(tmp_path / "dag.pth", {"x": levels}, {})
    loaded = load_torch_checkpoint(path)["x"]
    assert len(loaded) == 2 and loaded[0] is loaded[1]


# Globals that run code or reach the file system when called; none may ever be allowed.
DANGEROUS = [("builtins", "eval"), ("builtins", "exec"), ("builtins", "open"),
             ("builtins", "getattr"), ("builtins", "__import__"), ("__builtin__", "eval"),
             ("os", "system"), ("posix", "system"), ("subprocess", "check_call"),
             ("pickle", "loads"), ("numpy", "load"), ("torch", "load"), ("copyreg",
                                                                         "_reconstructor")]


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("stack_global", [False, True])
@pytest.mark.parametrize("module,name", DANGEROUS)
def test_dangerous_globals_are_refused_before_running(tmp_path, torch_checkpoint_writer,
                                                      module, name, stack_global, legacy):
    w = torch_checkpoint_writer
    marker = tmp_path / "marker"
    script = f"open({str(marker)!r}, 'w')"
    args = {"eval": [w.str_op(script)], "exec": [w.str_op(script)],
            "open": [w.str_op(str(marker)), w.str_op("w")],
            "system": [w.str_op(f"touch {marker}")],
            "check_call": [w.tuple_op([w.str_op("touch"), w.str_op(str(marker))])],
            }.get(name, [w.str_op("x")])
    op = w.stack_global_op if stack_global else w.global_op
    path = w.write(tmp_path / "evil.pth", {"y": w.Raw(op(module, name) + w.tuple_op(args) + b"R")},
                   {}, legacy=legacy)
    with pytest.raises(UnsafeCheckpointError, match=rf"evil\.pth: refusing to load the global "
                                                    rf"{module}\.{name}"):
        load_torch_checkpoint(path)
    assert not marker.exists()


def _legacy_bytes(*pickles, tail=b""):
    return b"".join(p if isinstance(p, bytes) else pickle.dumps(p, protocol=2)
                    for p in pickles) + tail


SYS_INFO = {"protocol_version": 1001, "little_endian": True}


def _structure_case(w, tmp_path, name):
    """A file broken in its structure → the whole message expected (both formats)."""
    x = {"x": w.Tensor("0", 0, (2,), (1,))}
    zeros = {"0": np.zeros(2, np.float32)}
    path = tmp_path / "s.pth"
    if name == "wrong magic":
        path.write_bytes(_legacy_bytes(12345))
        return path, "neither a zip archive nor a legacy PyTorch file (wrong magic number)"
    if name == "wrong protocol":
        path.write_bytes(_legacy_bytes(0x1950A86A20F9469CFC6C, 1000))
        return path, "legacy protocol 1000 unsupported (expected 1001)"
    if name == "sys_info not a dict":
        path.write_bytes(_legacy_bytes(0x1950A86A20F9469CFC6C, 1001, [1]))
        return path, "legacy sys_info [1] is not a dict of flags"
    if name == "storage in the header":
        pid = (w.tuple_op([w.str_op("storage"), w.global_op("torch", "FloatStorage"),
                           w.str_op("0"), w.str_op("cpu"), w.int_op(1), b"N"]) + b"Q")
        path.write_bytes(_legacy_bytes(0x1950A86A20F9469CFC6C, 1001, b"\x80\x02" + pid + b"."))
        return path, "unexpected storage in the legacy header"
    if name == "keys not distinct":
        w.write(path, x, zeros, legacy=True)
        data = path.read_bytes()
        keys = pickle.dumps(["0"], protocol=2)
        path.write_bytes(data.replace(keys, pickle.dumps(["0", "0"], protocol=2)))
        return path, "legacy storage keys ['0', '0'] are not a list of distinct strings"
    if name == "key never used":
        w.write(path, x, dict(zeros), legacy=True)
        data = path.read_bytes()
        path.write_bytes(data.replace(pickle.dumps(["0"], protocol=2),
                                      pickle.dumps(["9"], protocol=2)))
        return path, "storage '9' listed but never used"
    if name == "count differs":
        w.write(path, x, zeros, legacy=True)
        data = path.read_bytes()
        path.write_bytes(data[:-16] + struct.pack("<q", 3) + data[-8:])
        return path, "storage '0' holds 3 elements, the pickle says 2"
    if name == "ends before a count":
        w.write(path, x, zeros, legacy=True)
        path.write_bytes(path.read_bytes()[:-13])
        return path, "truncated: the file ends before storage '0'"
    if name == "storage never given":
        w.write(path, x, zeros, legacy=True)
        data = path.read_bytes()
        path.write_bytes(data.replace(pickle.dumps(["0"], protocol=2),
                                      pickle.dumps([], protocol=2)))
        return path, "a tensor refers to storage '0', whose bytes the file never gives"
    if name == "view metadata":
        pid = (w.tuple_op([w.str_op("storage"), w.global_op("torch", "FloatStorage"),
                           w.str_op("0"), w.str_op("cpu"), w.int_op(2),
                           w.tuple_op([w.int_op(1), w.int_op(0), w.int_op(1)])]) + b"Q")
        w.write(path, {"y": w.Raw(pid)}, zeros, legacy=True)
        return path, "storage view (1, 0, 1) is not (key, offset, size)"
    if name == "storage id arity":
        pid = w.tuple_op([w.str_op("storage"), w.global_op("torch", "FloatStorage")]) + b"Q"
        w.write(path, {"y": w.Raw(pid)}, zeros, legacy=True)
        # (the storage type's repr holds an address)
        return path, "storage id ('storage', <*) is not (storage, type, key, location, numel, view)"
    raise AssertionError(name)


STRUCTURE = ["wrong magic", "wrong protocol", "sys_info not a dict", "storage in the header",
             "keys not distinct", "key never used", "count differs", "ends before a count",
             "storage never given", "view metadata", "storage id arity"]


@pytest.mark.parametrize("name", STRUCTURE)
def test_legacy_structure_errors_say_what_is_wrong(tmp_path, torch_checkpoint_writer, name):
    path, message = _structure_case(torch_checkpoint_writer, tmp_path, name)
    with pytest.raises(CheckpointError) as info:
        load_torch_checkpoint(path)
    assert not isinstance(info.value, UnsafeCheckpointError)
    prefix, _, suffix = f"{path}: not a readable PyTorch checkpoint: {message}".partition("*")
    assert str(info.value).startswith(prefix) and str(info.value).endswith(suffix), \
        str(info.value)
    assert suffix or str(info.value) == prefix


def test_tensor_and_view_messages_name_every_number(tmp_path, torch_checkpoint_writer):
    w = torch_checkpoint_writer
    path = w.write(tmp_path / "m.pth", {"x": w.Tensor("0", 1, (2, 2), (2, 1))},
                   {"0": np.zeros(4, np.float32)})
    with pytest.raises(CheckpointError) as info:
        load_torch_checkpoint(path)
    assert str(info.value) == (f"{path}: not a readable PyTorch checkpoint: tensor of size "
                               "(2, 2), stride (2, 1) at offset 1 in storage '0' of 4 elements: "
                               "overruns its storage")
    path = w.write(tmp_path / "z.pth", {"x": w.Tensor("0", 0, (3, 1), (0, 1))},
                   {"0": np.zeros(4, np.float32)})
    with pytest.raises(CheckpointError) as info:
        load_torch_checkpoint(path)
    assert str(info.value).endswith("tensor of size (3, 1), stride (0, 1) at offset 0 in "
                                    "storage '0' of 4 elements: a zero stride on a dimension "
                                    "longer than 1 (an expanded tensor) is unsupported")


def test_edge_layouts_that_torch_writes(tmp_path, torch_checkpoint_writer):
    # An empty tensor, a tensor ending exactly at its storage's end, size-1 dimensions with
    # zero and with huge strides (torch leaves them as computed), a scalar.
    w = torch_checkpoint_writer
    flat = np.arange(6, dtype=np.float32)
    path = w.write(tmp_path / "edge.pth", {
        "empty": w.Tensor("0", 6, (0, 3), (3, 1)),
        "tail": w.Tensor("0", 4, (2,), (1,)),
        "ones": w.Tensor("0", 5, (1, 1), (0, 2 ** 40)),
        "row": w.Tensor("0", 0, (1, 6), (6, 1)),
        "scalar": w.Tensor("0", 5, (), ()),
    }, {"0": flat}, legacy=True)
    loaded = load_torch_checkpoint(path)
    assert loaded["empty"].shape == (0, 3) and loaded["empty"].dtype == np.float32
    np.testing.assert_array_equal(loaded["tail"], [4, 5])
    np.testing.assert_array_equal(loaded["ones"], [[5]])
    np.testing.assert_array_equal(loaded["row"], [flat])
    assert loaded["row"].strides == (24, 4) and loaded["scalar"] == 5
    assert not loaded["tail"].flags.writeable


def test_old_rebuild_functions_and_parameters(tmp_path, torch_checkpoint_writer):
    # torch < 1.0 pickled tensors through _rebuild_tensor(storage, offset, size, stride);
    # nn.Parameter through _rebuild_parameter(tensor, requires_grad, hooks).
    w = torch_checkpoint_writer
    pid = (w.tuple_op([w.str_op("storage"), w.global_op("torch", "FloatStorage"), w.str_op("0"),
                       w.str_op("cpu"), w.int_op(6), b"N"]) + b"Q")
    old = (w.global_op("torch._utils", "_rebuild_tensor")
           + w.tuple_op([pid, w.int_op(2), w.tuple_op([w.int_op(2)]),
                         w.tuple_op([w.int_op(2)])]) + b"R")
    param = (w.global_op("torch._utils", "_rebuild_parameter")
             + w.tuple_op([old, b"\x88", b"N"]) + b"R")
    flat = np.arange(6, dtype=np.float32)
    path = w.write(tmp_path / "old.pth", {"t": w.Raw(old), "p": w.Raw(param)}, {"0": flat},
                   legacy=True)
    loaded = load_torch_checkpoint(path)
    np.testing.assert_array_equal(loaded["t"], [2, 4])
    np.testing.assert_array_equal(loaded["p"], [2, 4])
    bad = (w.global_op("torch._utils", "_rebuild_parameter")
           + w.tuple_op([w.str_op("x"), b"\x88", b"N"]) + b"R")
    path = w.write(tmp_path / "bad.pth", {"p": w.Raw(bad)}, {}, legacy=True)
    with pytest.raises(CheckpointError, match=r"bad\.pth: .*a parameter wraps a str, not a "
                                              r"tensor"):
        load_torch_checkpoint(path)


def _tensor_raw(w, offset_op, size_ops, stride_ops):
    pid = (w.tuple_op([w.str_op("storage"), w.global_op("torch", "FloatStorage"), w.str_op("0"),
                       w.str_op("cpu"), w.int_op(4)]) + b"Q")
    return w.Raw(w.global_op("torch._utils", "_rebuild_tensor_v2")
                 + w.tuple_op([pid, offset_op, w.tuple_op(size_ops), w.tuple_op(stride_ops),
                               b"\x89", b"N"]) + b"R")


@pytest.mark.parametrize("case,message", [
    ("bool offset", r"tensor storage offset True is not a non-negative integer"),
    ("negative size", r"tensor size entry -1 is not a non-negative integer"),
    ("65 dimensions", r"tensor size \(1, 1, 1, .*\) is not a tuple of at most 64 integers"),
    ("size not a tuple", r"tensor size 'ab' is not a tuple of at most 64 integers"),
    ("lengths differ", r"tensor size \(4,\) and stride \(1, 1\) differ in length"),
])
def test_tensor_arguments_are_checked(tmp_path, torch_checkpoint_writer, case, message):
    w = torch_checkpoint_writer
    one = w.int_op(1)
    args = {"bool offset": (b"\x88", [w.int_op(4)], [one]),
            "negative size": (w.int_op(0), [w.int_op(-1)], [one]),
            "65 dimensions": (w.int_op(0), [one] * 65, [one] * 65),
            "size not a tuple": (w.int_op(0), None, [one]),
            "lengths differ": (w.int_op(0), [w.int_op(4)], [one, one])}[case]
    raw = _tensor_raw(w, args[0], args[1] or [], args[2])
    if args[1] is None:  # a string where the size tuple goes
        raw = w.Raw(raw.data.replace(b"(t(J\x01", w.str_op("ab") + b"(J\x01", 1))
    path = w.write(tmp_path / "t.pth", {"x": raw}, {"0": np.zeros(4, np.float32)})
    with pytest.raises(CheckpointError, match=rf"t\.pth: .*{message}"):
        load_torch_checkpoint(path)


# NumPy's dtype state: (version, byte order, subarray, names, fields, elsize, alignment, flags)
PLAIN_STATE = [3, "<", None, None, None, -1, -1, 0]


@pytest.mark.parametrize("name,changes", [
    ("f8", {1: "!"}), ("f8", {2: ("f8", (2,))}), ("f8", {3: ("a",)}), ("f8", {5: 8}),
    ("f8", {6: 1}), ("f8", {7: None}), ("f8", {0: 9}), ("f8" * 5, None), ("O", None),
])
def test_numpy_dtypes_are_plain_numbers_only(tmp_path, torch_checkpoint_writer, name,
                                             changes):
    w = torch_checkpoint_writer
    dtype = w.global_op("numpy", "dtype") + w.tuple_op([w.str_op(name)]) + b"R"
    if changes is not None:
        state = list(PLAIN_STATE)
        for index, value in changes.items():
            state[index] = value
        dtype += pickle.dumps(tuple(state), protocol=2)[2:-1] + b"b"
    path = w.write(tmp_path / "d.pth", {"d": w.Raw(dtype + b"0N")}, {})
    with pytest.raises(UnsafeCheckpointError, match=r"d\.pth: NumPy dtype"):
        load_torch_checkpoint(path)


def test_big_endian_arrays_are_read_only_too(tmp_path, torch_checkpoint_writer):
    w = torch_checkpoint_writer
    path = w.write(tmp_path / "be.pth", {"x": w.Tensor("0", 0, (3,), (1,))},
                   {"0": np.arange(3, dtype=np.int16)}, byteorder="big")
    loaded = load_torch_checkpoint(path)["x"]
    np.testing.assert_array_equal(loaded, [0, 1, 2])
    assert not loaded.flags.writeable


@pytest.mark.parametrize("keys,message", [
    ('"0"', r"legacy storage keys '0' are not a list of distinct strings"),
    ("[0]", r"legacy storage keys \[0\] are not a list of distinct strings"),
])
def test_legacy_key_lists_are_checked(tmp_path, torch_checkpoint_writer, keys, message):
    w = torch_checkpoint_writer
    path = w.write(tmp_path / "k.pth", {"x": w.Tensor("0", 0, (2,), (1,))},
                   {"0": np.zeros(2, np.float32)}, legacy=True)
    data = path.read_bytes()
    path.write_bytes(data.replace(pickle.dumps(["0"], protocol=2),
                                  pickle.dumps(eval(keys), protocol=2)))
    with pytest.raises(CheckpointError, match=rf"k\.pth: .*{message}"):
        load_torch_checkpoint(path)
