"""PyTorch checkpoint files written without torch (for the checkpoint reader's tests and its
fuzz test; the ``torch_checkpoint_writer`` fixture hands out this module).

The byte layout restates torch/serialization.py and torch/_utils.py: a tensor pickles as
torch._utils._rebuild_tensor_v2(storage persistent id, offset, size, stride, False,
OrderedDict()); the zip format keeps storages in <prefix>/data/<key> in the writer's byte
order, named by <prefix>/byteorder; the legacy stream is magic, protocol, sys_info, object,
storage keys, then (int64 count, raw bytes) each, the bytes always little-endian (torch's
writeFileRaw converts on big-endian machines; torch <= 0.4 wrote the count in native order).
"""

import pickle
import struct
import zipfile

import numpy as np

TORCH_STORAGES = {"float32": "FloatStorage", "float64": "DoubleStorage",
                  "float16": "HalfStorage", "bfloat16": "BFloat16Storage",
                  "int64": "LongStorage", "int32": "IntStorage", "int16": "ShortStorage",
                  "int8": "CharStorage", "uint8": "ByteStorage", "bool": "BoolStorage"}
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def str_op(text):
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE


def int_op(value):
    return b"J" + struct.pack("<i", value)  # BININT


def long_op(value):
    """Any Python int (LONG1), e.g. beyond 32 bits."""
    data = value.to_bytes((value.bit_length() + 8) // 8 or 1, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data


def tuple_op(items):
    return b"(" + b"".join(items) + b"t"  # MARK ... TUPLE


def global_op(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"  # GLOBAL


def stack_global_op(module, name):
    return str_op(module) + str_op(name) + b"\x93"  # STACK_GLOBAL (protocol 4)


def pickle_op(ops):
    """A whole protocol-2 pickle of the opcodes ``ops`` (PROTO 2 ... STOP)."""
    return b"\x80\x02" + ops + b"."


def dict_op(name, ops):
    """``{name: <ops>}``."""
    return b"}" + str_op(name) + ops + b"s"


def pid_op(key=None, storage_type=None, numel=None, view=None, legacy=False, fields=None):
    """A storage's persistent id (BINPERSID) as torch pickles it, each field's opcodes
    replaceable (default: FloatStorage "0" of 4 elements; ``legacy`` adds the view field,
    ``None`` unless given); ``fields`` replaces them all."""
    if fields is None:
        fields = [str_op("storage"), storage_type or global_op("torch", "FloatStorage"),
                  key or str_op("0"), str_op("cpu"), int_op(4) if numel is None else numel]
        if legacy:
            fields.append(view or b"N")
    return tuple_op(fields) + b"Q"


def tensor_op(pid, offset=0, size=(4,), stride=(1,), function="_rebuild_tensor_v2"):
    """A tensor of the persistent id's storage, by ``torch._utils.<function>``."""
    args = [pid, int_op(offset), tuple_op([long_op(n) for n in size]),
            tuple_op([long_op(s) for s in stride])]
    if function == "_rebuild_tensor_v2":
        args += [b"\x89", b"N"]
    return global_op("torch._utils", function) + tuple_op(args) + b"R"


def dtype_op(name):
    """``numpy.dtype(name)`` (what NumPy pickles before a dtype's state)."""
    return global_op("numpy", "dtype") + tuple_op([str_op(name)]) + b"R"


def write_members(path, members):
    """A zip archive of exactly ``members`` (name → bytes), stored as torch stores them."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def write_zip_pickle(path, ops, storages):
    """A zip checkpoint whose data.pkl is the pickle of ``ops``, with ``storages`` (key →
    1-D little-endian NumPy array)."""
    members = {"archive/data.pkl": pickle_op(ops)}
    members.update({f"archive/data/{k}": v.tobytes() for k, v in storages.items()})
    return write_members(path, members)


def write_legacy_pickle(path, ops, storages, keys=None, sys_info=None):
    """A legacy checkpoint whose object is the pickle of ``ops``, with ``storages`` (key →
    1-D NumPy array) listed as ``keys`` (default: all), after ``sys_info``."""
    keys = list(storages) if keys is None else keys
    sys_info = {"protocol_version": 1001, "little_endian": True} if sys_info is None \
        else sys_info
    data = b"".join(pickle.dumps(p, protocol=2) for p in [LEGACY_MAGIC, 1001, sys_info])
    data += pickle_op(ops) + pickle.dumps(keys, protocol=2)
    for array in storages.values():
        data += struct.pack("<q", array.size) + array.astype(array.dtype.newbyteorder("<")
                                                              ).tobytes()
    path.write_bytes(data)
    return path


class Tensor:
    """A tensor in a written checkpoint: a view of ``storage`` (a key of ``storages``, or a
    ``View`` of one in the legacy format)."""

    def __init__(self, storage, offset, shape, stride):
        self.storage, self.offset, self.shape, self.stride = storage, offset, shape, stride


class View:
    """A legacy storage view (torch < 0.4): ``size`` elements of storage ``root`` from
    ``offset``, pickled as the persistent id's (view key, offset, size)."""

    def __init__(self, root, key, offset, size):
        self.root, self.key, self.offset, self.size = root, key, offset, size


class Raw:
    """Pickle opcodes written verbatim (e.g. a call of a forbidden global)."""

    def __init__(self, data):
        self.data = data


def _value(value, storage_pid):
    if isinstance(value, Tensor):
        return (global_op("torch._utils", "_rebuild_tensor_v2")
                + tuple_op([storage_pid(value.storage), int_op(value.offset),
                            tuple_op([long_op(n) for n in value.shape]),
                            tuple_op([long_op(s) for s in value.stride]), b"\x89",
                            global_op("collections", "OrderedDict") + b")R"]) + b"R")
    if isinstance(value, Raw):
        return value.data
    if isinstance(value, str):
        return str_op(value)
    if isinstance(value, int):
        return int_op(value)
    if isinstance(value, dict):
        return (global_op("collections", "OrderedDict") + b")R("
                + b"".join(str_op(k) + _value(v, storage_pid) for k, v in value.items())
                + b"u")
    raise TypeError(f"cannot pickle {value!r} as a torch checkpoint")


def write(path, obj, storages, legacy=False, byteorder="little", native_count=False):
    """Write ``obj`` (nested dicts of str/int/``Tensor``/``Raw``) with ``storages`` (key →
    1-D NumPy array) as ``torch.save`` would on a machine of ``byteorder``, zip or legacy.

    ``native_count``: legacy only, the element counts in the machine's byte order (torch
    <= 0.4); else little-endian as later versions write them."""
    def storage_pid(key):
        view = key if isinstance(key, View) else None
        root = view.root if view else key
        array = storages[root]
        fields = [str_op("storage"), global_op("torch", TORCH_STORAGES[array.dtype.name]),
                  str_op(root), str_op("cpu"), int_op(array.size)]
        if legacy:
            fields.append(tuple_op([str_op(view.key), int_op(view.offset), int_op(view.size)])
                          if view else b"N")
        return tuple_op(fields) + b"Q"  # BINPERSID

    body = b"\x80\x02" + _value(obj, storage_pid) + b"."
    order = "<" if byteorder == "little" else ">"

    def raw(array, order):
        return array.astype(array.dtype.newbyteorder(order)).tobytes()

    if legacy:
        with open(path, "wb") as f:
            f.write(pickle.dumps(LEGACY_MAGIC, protocol=2))
            f.write(pickle.dumps(1001, protocol=2))
            f.write(pickle.dumps({"protocol_version": 1001,
                                  "little_endian": byteorder == "little",
                                  "type_sizes": {"short": 2, "int": 4, "long": 4}},
                                 protocol=2))
            f.write(body)
            f.write(pickle.dumps(list(storages), protocol=2))
            for array in storages.values():
                f.write(struct.pack((order if native_count else "<") + "q", array.size))
                f.write(raw(array, "<"))
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", body)
            archive.writestr("archive/byteorder", byteorder)
            for key, array in storages.items():
                archive.writestr(f"archive/data/{key}", raw(array, order))
    return path


def write_state_dict(path, state, legacy=False):
    """Write a dict of name → NumPy array as a state dict (one storage per tensor)."""
    storages, tensors = {}, {}
    for i, (name, value) in enumerate(state.items()):
        value = np.ascontiguousarray(value)
        storages[str(i)] = value.ravel()
        tensors[name] = Tensor(str(i), 0, value.shape,
                               tuple(s // value.itemsize for s in value.strides))
    return write(path, tensors, storages, legacy=legacy)
