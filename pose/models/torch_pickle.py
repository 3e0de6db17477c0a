"""The restricted unpickler of the PyTorch checkpoint reader: what a pickle may name, and
the bounds its opcodes must keep before the C unpickler sees them.

Unpickling runs whatever callable the pickle names, so ``find_class`` resolves only a short
allow-list (``_ALLOWED_GLOBALS``: the tensor rebuild functions, the typed storages of the
common dtypes, ``collections.OrderedDict``, NumPy scalars of numeric dtypes, the
``_codecs.encode`` that protocol 2 uses for bytes, latin-1 only); anything else is refused
before it can be called, whichever opcode names it (``GLOBAL``, ``STACK_GLOBAL``, ``INST``,
the ``EXT`` codes through ``copyreg``). The reader's own objects refuse ``BUILD`` (a pickle
could otherwise rewrite a storage's element count or dtype after it was checked).

The C unpickler trusts the numbers in the stream: a memo index of 2^33 makes it allocate
2^34 slots. ``check_opcodes`` walks the opcodes first (``pickletools.genops``, which also
refuses lengths that run past the data) and bounds memo indices by the number of opcodes
seen and frame lengths by the bytes left.

Errors here are ``Malformed`` / ``Forbidden`` without the file's name;
``pose.models.torch_checkpoint`` turns them into its ``CheckpointError`` /
``UnsafeCheckpointError`` naming the file.
"""

import collections
import io
import pickle
import pickletools
import reprlib

import numpy as np

MAX_NDIM = 64  # NumPy's limit on an array's dimensions

_STORAGE_DTYPES = {
    "DoubleStorage": "float64",
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
}
_MEMO_PUTS = ("PUT", "BINPUT", "LONG_BINPUT")

_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60


def short_repr(value):
    """A bounded ``repr`` (a pickle's values may be huge or deeply nested)."""
    return _short.repr(value)


class Malformed(Exception):
    """Content that breaks the format (the reader adds the file's name)."""


class Forbidden(Exception):
    """Content that asks for something the reader never does (call a global, BUILD)."""


class _Sealed:
    """The reader's own objects: a pickle ``BUILD`` on one is refused."""

    __slots__ = ()

    def __setstate__(self, state):
        raise Forbidden(f"a pickle BUILD on a {type(self).__name__.lstrip('_')} is not allowed")


class StorageType(_Sealed):
    """Stands for ``torch.FloatStorage`` & co. in the pickle: only its dtype matters."""

    __slots__ = ("name", "dtype")

    def __init__(self, name):
        self.name = name
        self.dtype = numpy_dtype(_STORAGE_DTYPES[name])


class Storage(_Sealed):
    """A flat typed buffer: ``numel`` as the pickle declares it; ``data`` (a read-only 1-D
    array over the file's real bytes) once they are read."""

    __slots__ = ("key", "dtype", "numel", "data")

    def __init__(self, key, dtype, numel):
        self.key, self.dtype, self.numel, self.data = key, dtype, numel, None


class PendingTensor(_Sealed):
    """A tensor as pickled: its storage (whose bytes may not be read yet), offset, size and
    stride in elements, each checked to be a non-negative int."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, offset, size, stride):
        if not isinstance(storage, Storage):
            raise Malformed(f"a tensor's storage is a {type(storage).__name__}, not a storage")
        self.storage = storage
        self.offset = count(offset, "tensor storage offset")
        self.size = _dims(size, "size")
        self.stride = _dims(stride, "stride")
        if len(self.size) != len(self.stride):
            raise Malformed(f"tensor size {short_repr(self.size)} and stride "
                            f"{short_repr(self.stride)} differ in length")


def count(value, what):
    """``value`` when it is a non-negative int (not a bool), else ``Malformed``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise Malformed(f"{what} {short_repr(value)} is not a non-negative integer")
    return value


def _dims(values, what):
    if not isinstance(values, (tuple, list)) or len(values) > MAX_NDIM:
        raise Malformed(f"tensor {what} {short_repr(values)} is not a tuple of at most "
                        f"{MAX_NDIM} integers")
    return tuple(count(v, f"tensor {what} entry") for v in values)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return PendingTensor(storage, storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return PendingTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    if not isinstance(data, PendingTensor):
        raise Malformed(f"a parameter wraps a {type(data).__name__}, not a tensor")
    return data


class DtypeSpec(_Sealed):
    """What ``numpy.dtype(name)`` gives a pickle: a numeric dtype whose byte order the
    following ``BUILD`` may set (NumPy's state tuple of a plain dtype, nothing else)."""

    __slots__ = ("dtype",)

    def __init__(self, name, align=False, copy=False):
        if not isinstance(name, str) or len(name) > 8:
            raise Forbidden(f"NumPy dtype {short_repr(name)} is not allowed")
        dtype = np.dtype(name)
        if dtype.kind not in "biufc":
            raise Forbidden(f"NumPy dtype {name!r} is not allowed")
        self.dtype = dtype

    def __setstate__(self, state):
        # (version, byte order, subarray, names, fields, elsize, alignment, flags)
        if not (isinstance(state, tuple) and len(state) == 8 and state[0] in (3, 4)
                and state[1] in ("<", ">", "|", "=") and state[2:5] == (None,) * 3
                and state[5:7] == (-1, -1) and isinstance(state[7], int)):
            raise Forbidden(f"NumPy dtype state {short_repr(state)} is not allowed")
        if state[1] in "<>":
            self.dtype = self.dtype.newbyteorder(state[1])


def _numpy_scalar(dtype, data):
    if not isinstance(dtype, DtypeSpec):
        raise Forbidden(f"NumPy scalar of {short_repr(dtype)} is not allowed")
    if not isinstance(data, bytes):
        raise Forbidden(f"NumPy scalar of {dtype.dtype} from {type(data).__name__} is not "
                        "allowed (torch writes its bytes)")
    if len(data) != dtype.dtype.itemsize:
        raise Malformed(f"NumPy scalar of {dtype.dtype} with {len(data)} bytes")
    return np.frombuffer(data, dtype=dtype.dtype)[0]


def _latin1_bytes(text, encoding="utf-8"):
    """Pickle protocol 2 writes ``bytes`` as ``_codecs.encode(str, "latin1")``."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise Forbidden(f"_codecs.encode of {type(text).__name__} with "
                        f"{short_repr(encoding)} is not allowed")
    return text.encode("latin1")


# Widening this list is a security decision: each entry is callable by any file.
_ALLOWED_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    # NumPy scalars (an official training checkpoint's "perf" is a np.float64).
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): DtypeSpec,
    ("_codecs", "encode"): _latin1_bytes,
}


def numpy_dtype(name):
    if name == "bfloat16":
        import ml_dtypes  # a Keras dependency; NumPy has no bfloat16 of its own

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only allow-listed globals; storages come through ``persistent_load``."""

    def __init__(self, file, storage_for_id):
        super().__init__(file, encoding="utf-8")
        self._storage_for_id = storage_for_id

    def find_class(self, module, name):
        if module == "torch" and name in _STORAGE_DTYPES:
            return StorageType(name)
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        raise Forbidden(
            f"refusing to load the global {module:.100}.{name:.100}: a checkpoint may hold "
            "only tensors, storages, OrderedDict, numbers and plain containers (this file "
            "could run code when unpickled)")

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise Forbidden(f"unsupported persistent id {short_repr(pid)} (only storages)")
        return self._storage_for_id(pid)


def check_opcodes(data, start=0):
    """Walk the pickle in ``data`` from ``start`` to its ``STOP``; return the end offset.

    Raises ``Malformed`` for an unknown opcode, an argument that runs past the data, a
    memo index beyond the opcodes seen so far (a pickler numbers its memo entries 0, 1,
    ...), a frame longer than the bytes left, or no ``STOP``.
    """
    stream = io.BytesIO(data)
    stream.seek(start)
    seen = 0
    try:
        for opcode, arg, pos in pickletools.genops(stream):
            seen += 1
            if opcode.name in _MEMO_PUTS and not 0 <= arg < seen:
                raise Malformed(f"pickle memo index {arg} at byte {pos} (only {seen} opcodes "
                                "so far)")
            # FRAME at pos: the opcode, its 8-byte length, then the frame's bytes
            if opcode.name == "FRAME" and arg > len(data) - pos - 9:
                raise Malformed(f"pickle frame of {arg} bytes at byte {pos} runs past the end")
    except ValueError as e:  # genops: unknown opcode, truncated argument, no STOP
        raise Malformed(f"corrupt or truncated pickle: {short_repr(str(e))}") from None
    return stream.tell()


def unpickle(data, start, storage_for_id):
    """``(object, end offset)`` of the pickle at ``data[start:]``, checked first."""
    end = check_opcodes(data, start)
    stream = io.BytesIO(data)
    stream.seek(start)
    return RestrictedUnpickler(stream, storage_for_id).load(), end
