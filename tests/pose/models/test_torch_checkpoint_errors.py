"""The checkpoint reader's errors, whole (they are its user interface: the file's name, then
what is wrong with it), and its limits, each exactly at the limit (loads) and one past
(refused)."""

import pickle
import struct
import zipfile

import numpy as np
import pytest

from pose.models.torch_checkpoint import (
    CheckpointError,
    UnsafeCheckpointError,
    load_torch_checkpoint,
)
from tests import checkpoint_files as w

UNREADABLE = "not a readable PyTorch checkpoint: "
FLOAT4 = {"0": np.arange(4, dtype=np.float32)}


def _zip_checkpoint(path, ops, storages=FLOAT4):
    return w.write_zip_pickle(path, ops, storages)


def _legacy_checkpoint(path, ops, storages=FLOAT4, keys=None, sys_info=None):
    return w.write_legacy_pickle(path, ops, storages, keys, sys_info)


def _view_tensor(offset=0, length=1, view=None):
    """A tensor of all of view "v" (``length`` elements at ``offset`` of storage "0"), or of
    the view field ``view``, in a legacy file."""
    view = view or w.tuple_op([w.str_op("v"), w.int_op(offset), w.int_op(length)])
    return w.tensor_op(w.pid_op(view=view, legacy=True), size=(length,))


def _with_byteorder(path, byteorder):
    w.write_members(path, {"archive/data.pkl": w.pickle_op(b"N"), "archive/byteorder": byteorder})


# Each case: a file broken in one way -> (exception class, the message after "<file>: ").
# A "*" in a message stands for a part that is not ours (the zip library's own words).
def _case(tmp_path, name):  # noqa: C901 (a table of cases)
    path = tmp_path / "c.pth"
    zip_file = _zip_checkpoint
    legacy = _legacy_checkpoint
    tensor = w.tensor_op(w.pid_op())
    legacy_tensor = w.tensor_op(w.pid_op(legacy=True))
    if name == "no data.pkl":
        w.write_members(path, {"archive/byteorder": b"little"})
        return CheckpointError, UNREADABLE + "a zip checkpoint has exactly one data.pkl, found 0"
    if name == "two data.pkl":
        w.write_members(path, {"a/data.pkl": w.pickle_op(b"N"), "b/data.pkl": w.pickle_op(b"N")})
        return CheckpointError, UNREADABLE + "a zip checkpoint has exactly one data.pkl, found 2"
    if name == "unknown byte order":
        _with_byteorder(path, b"middle")
        return CheckpointError, UNREADABLE + "unknown byte order 'middle'"
    if name == "byte order not ascii":
        _with_byteorder(path, b"\xfflittle")
        return CheckpointError, UNREADABLE + "unknown byte order '\ufffdlittle'"
    if name == "long byte order":  # a hostile value is quoted in at most 60 characters
        _with_byteorder(path, b"b" * 100)
        # reprlib: 28 characters of the repr, "...", its last 29 ("'" + 100 b + "'")
        return CheckpointError, UNREADABLE + "unknown byte order '" + "b" * 27 + "..." \
            + "b" * 28 + "'"
    if name == "zip storage id arity":
        zip_file(path, w.dict_op("x", w.pid_op(fields=[w.str_op("storage"), w.str_op("0")])))
        return CheckpointError, UNREADABLE + "storage id ('storage', '0') is not (storage, " \
            "type, key, location, numel)"
    if name == "storage member missing":
        zip_file(path, w.dict_op("x", tensor), storages={})
        return CheckpointError, UNREADABLE + "the archive has no 'archive/data/0'"
    if name == "storage type not a storage":
        zip_file(path, w.dict_op("x", w.tensor_op(w.pid_op(storage_type=w.str_op("FloatStorage")))))
        return CheckpointError, UNREADABLE + "storage of unsupported type 'FloatStorage'"
    if name == "storage key not a string":
        zip_file(path, w.dict_op("x", w.tensor_op(w.pid_op(key=w.int_op(0)))))
        return CheckpointError, UNREADABLE + "storage key 0 is not a string"
    if name == "negative element count":
        zip_file(path, w.dict_op("x", w.tensor_op(w.pid_op(numel=w.int_op(-1)))))
        return CheckpointError, UNREADABLE + "element count of storage '0' -1 is not a " \
            "non-negative integer"
    if name == "storage size declared twice":
        zip_file(path, b"(" + tensor + w.tensor_op(w.pid_op(numel=w.int_op(3)), size=(3,)) + b"t")
        return CheckpointError, UNREADABLE + "storage '0' declared twice: 4 x float32, then " \
            "3 x float32"
    if name == "storage type declared twice":
        zip_file(path, b"(" + tensor + w.tensor_op(w.pid_op(storage_type=w.global_op(
            "torch", "IntStorage"))) + b"t")
        return CheckpointError, UNREADABLE + "storage '0' declared twice: 4 x float32, then " \
            "4 x int32"
    if name == "persistent id not a storage":
        zip_file(path, w.tuple_op([w.str_op("weights")]) + b"Q")
        return UnsafeCheckpointError, "unsupported persistent id ('weights',) (only storages)"
    if name == "persistent id a string":
        zip_file(path, w.str_op("storage") + b"Q")
        return UnsafeCheckpointError, "unsupported persistent id 'storage' (only storages)"
    if name == "persistent id empty":
        zip_file(path, b")Q")
        return UnsafeCheckpointError, "unsupported persistent id () (only storages)"
    if name == "bare storage":
        zip_file(path, w.dict_op("x", w.pid_op()))
        return CheckpointError, UNREADABLE + "a bare Storage outside a tensor is unsupported"
    if name == "bare storage type":
        zip_file(path, w.dict_op("x", w.global_op("torch", "FloatStorage")))
        return CheckpointError, UNREADABLE + "a bare StorageType outside a tensor is " \
            "unsupported"
    if name == "bare function":
        zip_file(path, w.dict_op("x", w.global_op("torch._utils", "_rebuild_tensor")))
        return CheckpointError, UNREADABLE + "a bare function outside a tensor is unsupported"
    if name == "tensor of a string":
        zip_file(path, w.dict_op("x", w.tensor_op(w.str_op("0"))))
        return CheckpointError, UNREADABLE + "a tensor's storage is a str, not a storage"
    if name == "BUILD on a storage type":
        zip_file(path, w.global_op("torch", "FloatStorage") + b"}b")
        return UnsafeCheckpointError, "a pickle BUILD on a StorageType is not allowed"
    if name == "BUILD on a tensor":
        zip_file(path, tensor + b"}b")
        return UnsafeCheckpointError, "a pickle BUILD on a PendingTensor is not allowed"
    if name == "offset past the end":
        zip_file(path, w.dict_op("x", w.tensor_op(w.pid_op(), offset=5, size=(0,))))
        return CheckpointError, UNREADABLE + "tensor of size (0,), stride (1,) at offset 5 " \
            "in storage '0' of 4 elements: the offset is past the end"
    if name == "more elements than the storage":
        zip_file(path, w.dict_op("x", w.tensor_op(w.pid_op(), size=(3, 2), stride=(1, 1))))
        return CheckpointError, UNREADABLE + "tensor of size (3, 2), stride (1, 1) at offset " \
            "0 in storage '0' of 4 elements: more elements than its storage holds"
    if name == "empty tensor of impossible dimensions":
        zip_file(path, w.dict_op("x", w.tensor_op(w.pid_op(), size=(0, 2 ** 62, 2 ** 62),
                                                  stride=(1,) * 3)))
        return CheckpointError, UNREADABLE + "tensor of size (0, 4611686018427387904, " \
            "4611686018427387904), stride (1, 1, 1) at offset 0 in storage '0' of 4 elements: " \
            "an empty tensor of impossible dimensions"
    if name == "refused global":
        zip_file(path, w.global_op("builtins", "eval") + b")R")
        return UnsafeCheckpointError, "refusing to load the global builtins.eval: a " \
            "checkpoint may hold only tensors, storages, OrderedDict, numbers and plain " \
            "containers (this file could run code when unpickled)"
    if name == "refused global, long names":  # each name quoted in 100 characters at most
        zip_file(path, w.global_op("m" * 150, "n" * 150))
        return UnsafeCheckpointError, f"refusing to load the global {'m' * 100}.{'n' * 100}: " \
            "a checkpoint may hold only tensors, storages, OrderedDict, numbers and plain " \
            "containers (this file could run code when unpickled)"
    if name == "codecs.encode of utf-8":
        zip_file(path, w.global_op("_codecs", "encode") + w.tuple_op([w.str_op("ab")]) + b"R")
        return UnsafeCheckpointError, "_codecs.encode of str with 'utf-8' is not allowed"
    if name == "codecs.encode of an int":
        zip_file(path, w.global_op("_codecs", "encode")
                 + w.tuple_op([w.int_op(7), w.str_op("latin1")]) + b"R")
        return UnsafeCheckpointError, "_codecs.encode of int with 'latin1' is not allowed"
    if name == "numpy scalar of a string":
        zip_file(path, w.global_op("numpy.core.multiarray", "scalar")
                 + w.tuple_op([w.str_op("f8"), b"C\x08" + bytes(8)]) + b"R")
        return UnsafeCheckpointError, "NumPy scalar of 'f8' is not allowed"
    if name == "numpy scalar of text":
        zip_file(path, w.global_op("numpy.core.multiarray", "scalar")
                 + w.tuple_op([w.dtype_op("f8"), w.str_op("12345678")]) + b"R")
        return UnsafeCheckpointError, "NumPy scalar of float64 from str is not allowed " \
            "(torch writes its bytes)"
    if name == "numpy scalar of 3 bytes":
        zip_file(path, w.global_op("numpy.core.multiarray", "scalar")
                 + w.tuple_op([w.dtype_op("f8"), b"C\x03abc"]) + b"R")
        return CheckpointError, UNREADABLE + "NumPy scalar of float64 with 3 bytes"
    if name == "numpy dtype of an int":
        zip_file(path, w.global_op("numpy", "dtype") + w.tuple_op([w.int_op(8)]) + b"R")
        return UnsafeCheckpointError, "NumPy dtype 8 is not allowed"
    if name == "numpy dtype too long":
        zip_file(path, w.dtype_op("complex64"))
        return UnsafeCheckpointError, "NumPy dtype 'complex64' is not allowed"
    if name == "numpy dtype of objects":
        zip_file(path, w.dtype_op("O"))
        return UnsafeCheckpointError, "NumPy dtype 'O' is not allowed"
    if name == "numpy dtype state":
        state = (3, "!", None, None, None, -1, -1, 0)
        zip_file(path, w.dtype_op("f8") + pickle.dumps(state, protocol=2)[2:-1] + b"b")
        # reprlib quotes the first 6 items of a tuple
        return UnsafeCheckpointError, "NumPy dtype state (3, '!', None, None, None, -1, ...) " \
            "is not allowed"
    if name == "memo index past the opcodes":  # PROTO, EMPTY_LIST, BINPUT 3
        w.write_members(path, {"archive/data.pkl": b"\x80\x02]q\x03."})
        return CheckpointError, UNREADABLE + "pickle memo index 3 at byte 3 (only 3 opcodes " \
            "so far)"
    if name == "corrupt pickle":
        w.write_members(path, {"archive/data.pkl": b"\x80\x02]"})
        return CheckpointError, UNREADABLE + "corrupt or truncated pickle: 'pickle exhausted " \
            "before seeing STOP'"
    if name == "call with a wrong argument":  # an error of Python's, with its type
        zip_file(path, w.global_op("collections", "OrderedDict") + w.tuple_op([w.int_op(5)])
                 + b"R")
        return CheckpointError, UNREADABLE + "TypeError: 'int' object is not iterable"
    if name == "long error of the pickle machinery":  # cut at 200 characters
        # BUILD on a list with the slot state {300 x: 1}: setattr fails, naming the attribute
        zip_file(path, b"]" + pickle.dumps((None, {"x" * 300: 1}), protocol=2)[2:-1] + b"b")
        return CheckpointError, UNREADABLE + "AttributeError: " + (
            "'list' object has no attribute '" + "x" * 300)[:200]
    if name == "legacy sys_info flag not a bool":
        legacy(path, b"N", storages={}, sys_info={"little_endian": 1})
        return CheckpointError, UNREADABLE + "legacy sys_info {'little_endian': 1} is not a " \
            "dict of flags"
    if name == "legacy view offset negative":
        legacy(path, w.dict_op("x", _view_tensor(-1, 1)))
        return CheckpointError, UNREADABLE + "offset of storage view 'v' -1 is not a " \
            "non-negative integer"
    if name == "legacy view size a string":
        view = w.tuple_op([w.str_op("v"), w.int_op(0), w.str_op("1")])
        legacy(path, w.dict_op("x", _view_tensor(view=view)))
        return CheckpointError, UNREADABLE + "size of storage view 'v' '1' is not a " \
            "non-negative integer"
    if name == "legacy view past its storage":
        legacy(path, w.dict_op("x", _view_tensor(3, 2)))
        return CheckpointError, UNREADABLE + "storage view 'v' of 2 elements at 3 runs past " \
            "its storage '0' of 4"
    if name in ("legacy view of two lengths", "legacy view of two offsets"):
        second = _view_tensor(0, 3) if name.endswith("lengths") else _view_tensor(1, 2)
        legacy(path, b"(" + _view_tensor(0, 2) + second + b"t")
        return CheckpointError, UNREADABLE + "storage view 'v' declared twice differently"
    if name == "legacy view key not a string":
        view = w.tuple_op([w.int_op(5), w.int_op(0), w.int_op(1)])
        legacy(path, w.dict_op("x", _view_tensor(view=view)))
        return CheckpointError, UNREADABLE + "storage view (5, 0, 1) is not (key, offset, size)"
    if name == "legacy view of two fields":
        view = w.tuple_op([w.str_op("v"), w.int_op(0)])
        legacy(path, w.dict_op("x", _view_tensor(view=view)))
        return CheckpointError, UNREADABLE + "storage view ('v', 0) is not (key, offset, size)"
    if name == "legacy view a list":
        view = b"]" + w.tuple_op([w.str_op("v"), w.int_op(0), w.int_op(1)])[:-1] + b"e"
        legacy(path, w.dict_op("x", _view_tensor(view=view)))
        return CheckpointError, UNREADABLE + "storage view ['v', 0, 1] is not (key, offset, " \
            "size)"
    if name == "legacy sys_info without a byte order":
        # no little_endian flag: a little-endian writer; the count is shown as written
        legacy(path, w.dict_op("x", legacy_tensor), sys_info={"protocol_version": 1001})
        data = path.read_bytes()
        path.write_bytes(data[:-24] + struct.pack("<q", 5) + data[-16:])
        return CheckpointError, UNREADABLE + "storage '0' holds 5 elements, the pickle says 4"
    if name == "legacy negative count":
        legacy(path, w.dict_op("x", legacy_tensor))
        data = path.read_bytes()
        path.write_bytes(data[:-24] + struct.pack("<q", -1) + data[-16:])
        return CheckpointError, UNREADABLE + "storage '0' holds -1 elements, the pickle says 4"
    if name == "legacy negative count, big-endian writer":
        legacy(path, w.dict_op("x", legacy_tensor), sys_info={"little_endian": False})
        data = path.read_bytes()
        path.write_bytes(data[:-24] + struct.pack(">q", -1) + data[-16:])
        return CheckpointError, UNREADABLE + "storage '0' holds -1 elements, the pickle says 4"
    if name in ("storage in the magic", "storage in the protocol", "storage in the key list"):
        header = [pickle.dumps(p, protocol=2) for p in [w.LEGACY_MAGIC, 1001, {}, None, []]]
        index = {"magic": 0, "protocol": 1, "key list": 4}[name.split(" in the ")[1]]
        header[index] = w.pickle_op(w.pid_op(legacy=True))
        path.write_bytes(b"".join(header))
        return CheckpointError, UNREADABLE + "unexpected storage in the legacy header"
    if name == "tensor overruns a legacy view":
        view = w.tuple_op([w.str_op("v"), w.int_op(1), w.int_op(2)])
        legacy(path, w.dict_op("x", w.tensor_op(w.pid_op(view=view, legacy=True), size=(3,))))
        return CheckpointError, UNREADABLE + "tensor of size (3,), stride (1,) at offset 0 in " \
            "storage 'v' of 2 elements: more elements than its storage holds"
    if name == "negative stride":
        zip_file(path, w.dict_op("x", w.tensor_op(w.pid_op(), stride=(-1,))))
        return CheckpointError, UNREADABLE + "tensor stride entry -1 is not a non-negative " \
            "integer"
    if name == "persistent id a list":
        zip_file(path, b"]" + w.str_op("storage") + b"aQ")
        return UnsafeCheckpointError, "unsupported persistent id ['storage'] (only storages)"
    if name == "truncated zip":
        zip_file(path, w.dict_op("x", tensor))
        path.write_bytes(path.read_bytes()[:-30])
        return CheckpointError, UNREADABLE + "truncated or corrupt zip archive ('File is not " \
            "a zip file')"
    if name == "compressed member":
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("archive/data.pkl", w.pickle_op(b"N"))
        return CheckpointError, UNREADABLE + "archive member 'archive/data.pkl' is compressed " \
            "or encrypted (torch writes them stored); a corrupt header?"
    if name == "member sizes differ":
        _member_sizes(path, 16, 8)
        return CheckpointError, UNREADABLE + "archive member 'archive/data/0' declares 16 " \
            "stored bytes for 8 bytes (torch stores them as they are); a corrupt header?"
    if name == "member past the end":
        size, end = _member_sizes(path, 1, 1)
        _member_sizes(path, size + 1, size + 1)
        return CheckpointError, UNREADABLE + f"archive member 'archive/data/0' declares " \
            f"{size + 1} bytes past the end of the file ({end} bytes): truncated?"
    if name == "member up to the end of the file":  # inside the file by the central record
        size, _ = _member_sizes(path, 1, 1)
        _member_sizes(path, size, size)
        return CheckpointError, UNREADABLE + "archive member 'archive/data/0' is truncated or " \
            "corrupt (*)"
    if name == "member of a wrong checksum":
        _member_sizes(path, 17, 17)
        return CheckpointError, UNREADABLE + "archive member 'archive/data/0' is truncated or " \
            "corrupt (\"Bad CRC-32 for file 'archive/data/0'\")"
    raise AssertionError(name)


def _member_sizes(path, stored, size):
    """Write a zip checkpoint of one 4 x float32 storage whose central directory says the
    storage member holds ``stored`` bytes stored for ``size`` bytes; return the size that
    reaches from the member's local header to the end of the file, and the file's size."""
    _zip_checkpoint(path, w.dict_op("x", w.tensor_op(w.pid_op())))
    data = bytearray(path.read_bytes())
    central = data.rindex(b"archive/data/0") - 46  # a central record's name follows 46 bytes
    assert data[central:central + 4] == b"PK\x01\x02"
    struct.pack_into("<II", data, central + 20, stored, size)
    path.write_bytes(bytes(data))
    header_offset = struct.unpack_from("<I", data, central + 42)[0]
    return len(data) - header_offset, len(data)


CASES = [
    "no data.pkl", "two data.pkl", "unknown byte order", "byte order not ascii",
    "long byte order", "zip storage id arity", "storage member missing",
    "storage type not a storage", "storage key not a string", "negative element count",
    "storage size declared twice", "storage type declared twice", "persistent id not a storage",
    "persistent id a string", "persistent id empty", "bare storage", "bare storage type",
    "bare function", "tensor of a string", "BUILD on a storage type", "BUILD on a tensor",
    "offset past the end", "more elements than the storage",
    "empty tensor of impossible dimensions", "refused global", "refused global, long names",
    "codecs.encode of utf-8", "codecs.encode of an int", "numpy scalar of a string",
    "numpy scalar of text", "numpy scalar of 3 bytes", "numpy dtype of an int",
    "numpy dtype too long", "numpy dtype of objects", "numpy dtype state",
    "memo index past the opcodes", "corrupt pickle", "call with a wrong argument",
    "long error of the pickle machinery", "legacy sys_info flag not a bool",
    "legacy view offset negative", "legacy view size a string", "legacy view past its storage",
    "legacy view of two lengths", "legacy view of two offsets", "legacy view key not a string",
    "legacy view of two fields", "legacy view a list", "legacy sys_info without a byte order",
    "legacy negative count", "legacy negative count, big-endian writer", "storage in the magic",
    "storage in the protocol", "storage in the key list", "tensor overruns a legacy view",
    "negative stride", "persistent id a list", "truncated zip", "compressed member",
    "member sizes differ", "member past the end", "member up to the end of the file",
    "member of a wrong checksum",
]


@pytest.mark.parametrize("name", CASES)
def test_each_error_names_the_file_and_what_is_wrong(tmp_path, name):
    error, message = _case(tmp_path, name)
    path = tmp_path / "c.pth"
    with pytest.raises(CheckpointError) as info:
        load_torch_checkpoint(path)
    assert type(info.value) is error
    prefix, _, suffix = f"{path}: {message}".partition("*")
    assert str(info.value).startswith(prefix) and str(info.value).endswith(suffix), \
        str(info.value)
    assert suffix or str(info.value) == prefix, str(info.value)


def _load(tmp_path, ops, storages=None):
    return load_torch_checkpoint(w.write_zip_pickle(tmp_path / "l.pth", ops, storages or {}))


def _refused(tmp_path, ops, message, storages=None, error=CheckpointError):
    with pytest.raises(error) as info:
        _load(tmp_path, ops, storages)
    assert type(info.value) is error and str(info.value) == f"{tmp_path / 'l.pth'}: {message}"


def _nested_lists(n):  # n lists, each holding the next
    return b"]" * n + b"a" * (n - 1)


def _nested_dicts(n):  # n dicts {"k": {"k": ... {"k": 0}}}
    return (b"}" + w.str_op("k")) * n + w.int_op(0) + b"s" * n


def _tuple_key(n):  # {((...(),...),): 0}, the key n tuples deep
    return b"}" + b")" + b"\x85" * (n - 1) + w.int_op(0) + b"s"


def test_containers_nest_at_most_100_levels_below_the_top(tmp_path):
    deep = "containers nested more than 100 deep (or a cycle)"
    loaded = _load(tmp_path, _nested_lists(101))  # the innermost list 100 levels down
    for _ in range(100):
        assert len(loaded) == 1
        loaded = loaded[0]
    assert loaded == []
    _refused(tmp_path, _nested_lists(102), UNREADABLE + deep)
    loaded = _load(tmp_path, _nested_dicts(100))  # the innermost key and value 100 down
    for _ in range(99):
        loaded = loaded["k"]
    assert loaded == {"k": 0}
    _refused(tmp_path, _nested_dicts(101), UNREADABLE + deep)
    loaded = _load(tmp_path, _tuple_key(100))
    key = next(iter(loaded))
    for _ in range(99):
        key = key[0]
    assert key == () and list(loaded.values()) == [0]
    _refused(tmp_path, _tuple_key(101), UNREADABLE + deep)


def test_tensors_have_at_most_64_dimensions(tmp_path):
    ones = w.tensor_op(w.pid_op(), size=(1,) * 64, stride=(1,) * 64)
    loaded = _load(tmp_path, w.dict_op("x", ones), FLOAT4)["x"]
    assert loaded.shape == (1,) * 64 and loaded.item() == 0
    ones = w.tensor_op(w.pid_op(), size=(1,) * 65, stride=(1,) * 65)
    with pytest.raises(CheckpointError, match="is not a tuple of at most 64 integers"):
        _load(tmp_path, w.dict_op("x", ones), FLOAT4)


def test_a_zero_stride_only_on_dimensions_of_size_1(tmp_path):
    one = w.tensor_op(w.pid_op(), offset=3, size=(1, 1), stride=(0, 0))
    assert _load(tmp_path, w.dict_op("x", one), FLOAT4)["x"].tolist() == [[3]]
    two = w.tensor_op(w.pid_op(), size=(2,), stride=(0,))
    _refused(tmp_path, w.dict_op("x", two), UNREADABLE + "tensor of size (2,), stride (0,) at "
             "offset 0 in storage '0' of 4 elements: a zero stride on a dimension longer than 1 "
             "(an expanded tensor) is unsupported", FLOAT4)


def _scalar(dtype, data, state=None):
    """numpy's pickle of a scalar: scalar(dtype(name) [BUILD state], data bytes)."""
    dtype_ops = w.dtype_op(dtype)
    if state is not None:
        dtype_ops += pickle.dumps(state, protocol=2)[2:-1] + b"b"
    return (w.global_op("numpy._core.multiarray", "scalar")
            + w.tuple_op([dtype_ops, b"C" + bytes([len(data)]) + data]) + b"R")


def test_numpy_dtype_names_of_at_most_8_characters(tmp_path):
    value = _load(tmp_path, _scalar("longlong", struct.pack("<q", -5)))
    assert value == -5 and value.dtype == np.int64
    _refused(tmp_path, _scalar("complex64", bytes(8)),
             "NumPy dtype 'complex64' is not allowed", error=UnsafeCheckpointError)


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("order,name,data,expected", [
    ("<", "f8", struct.pack("<d", 1.5), 1.5), (">", "f8", struct.pack(">d", 1.5), 1.5),
    ("=", "f8", np.float64(1.5).tobytes(), 1.5), ("|", "i1", b"\xfd", -3)],
    ids=["little", "big", "native", "no order"])
def test_numpy_dtype_states_numpy_writes(tmp_path, version, order, name, data, expected):
    # NumPy's dtype state: (version, byte order, subarray, names, fields, elsize, alignment,
    # flags); np.dtype.__setstate__ takes versions 3 and 4 of this 8-tuple.
    state = (version, order, None, None, None, -1, -1, 0)
    value = _load(tmp_path, _scalar(name, data, state))
    assert value == expected  # (a NumPy scalar is in native order whatever its data's)


@pytest.mark.parametrize("version", [2, 5])
def test_numpy_dtype_states_of_other_versions_are_refused(tmp_path, version):
    state = (version, "<", None, None, None, -1, -1, 0)
    _refused(tmp_path, _scalar("f8", bytes(8), state), f"NumPy dtype state ({version}, '<', "
             "None, None, None, -1, ...) is not allowed", error=UnsafeCheckpointError)


@pytest.mark.parametrize("put", [
    lambda i: b"p%d\n" % i, lambda i: b"q" + bytes([i]), lambda i: b"r" + struct.pack("<I", i)],
    ids=["PUT", "BINPUT", "LONG_BINPUT"])
def test_memo_indices_stay_below_the_count_of_opcodes(tmp_path, put):
    # PROTO, EMPTY_LIST, PUT: the third opcode may name memo entries 0 to 2
    path = w.write_members(tmp_path / "l.pth", {"archive/data.pkl": b"\x80\x02]" + put(2) + b"."})
    assert load_torch_checkpoint(path) == []
    path.write_bytes(b"")
    w.write_members(path, {"archive/data.pkl": b"\x80\x02]" + put(3) + b"."})
    with pytest.raises(CheckpointError) as info:
        load_torch_checkpoint(path)
    assert str(info.value) == f"{path}: {UNREADABLE}pickle memo index 3 at byte 3 (only 3 " \
        "opcodes so far)"


def test_pickle_frames_end_inside_the_file(tmp_path):
    data = pickle.dumps({"a": [1, 2]}, protocol=4)  # PROTO 4, FRAME n (the rest), ...
    assert data[2:3] == b"\x95" and struct.unpack_from("<Q", data, 3)[0] == len(data) - 11
    path = w.write_members(tmp_path / "f.pth", {"archive/data.pkl": data})
    assert load_torch_checkpoint(path) == {"a": [1, 2]}
    longer = data[:3] + struct.pack("<Q", len(data) - 10) + data[11:]
    path.write_bytes(b"")
    w.write_members(path, {"archive/data.pkl": longer})
    with pytest.raises(CheckpointError) as info:
        load_torch_checkpoint(path)
    assert str(info.value) == f"{path}: {UNREADABLE}pickle frame of {len(data) - 10} bytes at " \
        "byte 2 runs past the end"
