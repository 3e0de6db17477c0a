"""Read PyTorch checkpoint files (``torch.save``) into NumPy arrays, safely, without torch.

Two serialization formats exist (PyTorch ``torch/serialization.py``):

* the zip archive (torch ≥ 1.6): ``<prefix>/data.pkl`` is the pickled object, each
  storage is a raw file ``<prefix>/data/<key>``, ``<prefix>/byteorder`` says ``little``
  or ``big`` (absent: little);
* the legacy stream (torch < 1.6, the 2019 HRNet model-zoo files): five pickles and raw
  bytes back to back: a magic number, the protocol version (1001), ``sys_info`` (byte
  order, type sizes), the object itself, the list of storage keys in the order their
  data follows; then, per key, an 8-byte little-endian element count and the raw bytes.

In both, a tensor is pickled as ``torch._utils._rebuild_tensor_v2(storage, offset, size,
stride, ...)`` where ``storage`` is a persistent id naming a typed storage. Several tensors
can share one storage at different offsets (views).

Unpickling runs whatever callable the file names, so this reader never resolves a global
that is not on a short allow-list (the tensor rebuild functions, the typed storages of the
common dtypes, ``collections.OrderedDict``, NumPy scalars of numeric dtypes, the
``_codecs.encode`` that protocol 2 uses for bytes, latin-1 only): anything else
raises ``UnsafeCheckpointError`` naming the global and the file before it can be called.
"""

import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

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


class CheckpointError(ValueError):
    """A file that is not a PyTorch checkpoint this reader understands."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint whose pickle names a global outside the allow-list."""


class _StorageType:
    """Stands for ``torch.FloatStorage`` & co. in the pickle: only its dtype matters."""

    def __init__(self, name):
        self.name = name
        self.dtype = _numpy_dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A flat typed buffer; ``data`` is filled when the bytes are read."""

    def __init__(self, dtype, numel):
        self.dtype = dtype
        self.numel = numel
        self.data = None


class _PendingTensor:
    """A tensor whose storage bytes may not be read yet (the legacy format)."""

    def __init__(self, storage, offset, size, stride):
        self.storage = storage
        self.offset = int(offset)
        self.size = tuple(int(s) for s in size)
        self.stride = tuple(int(s) for s in stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _PendingTensor(storage, storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _PendingTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


def _numpy_scalar(dtype, data):
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc" or not isinstance(
            data, bytes):
        raise UnsafeCheckpointError(f"NumPy scalar of dtype {dtype!r} is not allowed")
    return np.frombuffer(data, dtype=dtype)[0]


def _numpy_dtype_factory(name, align=False, copy=False):
    dtype = np.dtype(name)
    if dtype.kind not in "biufc":
        raise UnsafeCheckpointError(f"NumPy dtype {name!r} is not allowed")
    return np.dtype(name, align, copy)


def _latin1_bytes(text, encoding="utf-8"):
    """Pickle protocol 2 writes ``bytes`` as ``_codecs.encode(str, "latin1")``."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafeCheckpointError(f"_codecs.encode of {type(text).__name__} with "
                                    f"{encoding!r} is not allowed")
    return text.encode("latin1")


_ALLOWED_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    # NumPy scalars (an official training checkpoint's "perf" is a np.float64).
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): _numpy_dtype_factory,
    ("_codecs", "encode"): _latin1_bytes,
}


def _numpy_dtype(name):
    if name == "bfloat16":
        import ml_dtypes  # a Keras dependency; NumPy has no bfloat16 of its own

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only allow-listed globals; storages come through ``persistent_load``."""

    def __init__(self, file, path, storage_for_id):
        super().__init__(file, encoding="utf-8")
        self._path = path
        self._storage_for_id = storage_for_id

    def find_class(self, module, name):
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        raise UnsafeCheckpointError(
            f"{self._path}: refusing to load the global {module}.{name}: a checkpoint may "
            "hold only tensors, storages, OrderedDict, numbers and plain containers "
            "(this file could run code when unpickled)")

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise UnsafeCheckpointError(
                f"{self._path}: unsupported persistent id {pid!r:.80} (only storages)")
        return self._storage_for_id(pid)


def load_torch_checkpoint(path):
    """The object a ``torch.save`` file holds, with every tensor as a NumPy array.

    Args:
        path: str or PathLike, a ``.pth``/``.pt`` file in the zip or the legacy format.

    Returns:
        The unpickled object (usually a dict or ``OrderedDict`` of name → array). Arrays
        have the tensor's dtype, shape and strides; tensors sharing a storage are views of
        one read-only buffer.

    Raises:
        FileNotFoundError: naming the path.
        UnsafeCheckpointError: the pickle names a global outside the allow-list; nothing
            the file names is called.
        CheckpointError: any other malformed or unsupported content, naming the file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        if zipfile.is_zipfile(path):
            return _load_zip(path)
        with open(path, "rb") as f:
            return _load_legacy(f, path)
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError,
            AttributeError, IndexError, struct.error, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint: "
                              f"{type(e).__name__}: {e}") from None


def _load_zip(path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise CheckpointError(f"{path}: a zip checkpoint has exactly one data.pkl, "
                                  f"found {len(pickles)}")
        prefix = pickles[0][:-len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in names:
            byteorder = archive.read(prefix + "byteorder").decode("ascii").strip()
        if byteorder not in ("little", "big"):
            raise CheckpointError(f"{path}: unknown byte order {byteorder!r}")
        storages = {}

        def storage_for_id(pid):
            _, storage_type, key, _location, numel = pid
            _check_storage_type(storage_type, path)
            if key not in storages:
                storage = _Storage(storage_type.dtype, int(numel))
                raw = archive.read(f"{prefix}data/{key}")
                storage.data = _array_from_bytes(raw, storage, byteorder, path, key)
                storages[key] = storage
            return storages[key]

        unpickler = _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), path,
                                         storage_for_id)
        return _materialize(unpickler.load(), path)


def _load_legacy(f, path):
    def load(storage_for_id=None):
        return _RestrictedUnpickler(f, path, storage_for_id or _no_storage).load()

    def _no_storage(pid):
        raise CheckpointError(f"{path}: unexpected storage in the legacy header")

    if load() != _LEGACY_MAGIC:
        raise CheckpointError(f"{path}: neither a zip archive nor a legacy PyTorch file "
                              "(wrong magic number)")
    protocol = load()
    if protocol != _LEGACY_PROTOCOL:
        raise CheckpointError(f"{path}: legacy protocol {protocol!r} unsupported "
                              f"(expected {_LEGACY_PROTOCOL})")
    sys_info = load()
    byteorder = "little" if sys_info.get("little_endian", True) else "big"
    storages = {}
    views = []

    def storage_for_id(pid):
        _, storage_type, key, _location, numel, view_metadata = pid
        _check_storage_type(storage_type, path)
        if key not in storages:
            storages[key] = _Storage(storage_type.dtype, int(numel))
        if view_metadata is None:
            return storages[key]
        # Old torch pickled slices of a storage as (view key, element offset, size).
        view_key, offset, view_size = view_metadata
        view = _Storage(storage_type.dtype, int(view_size))
        views.append((view, storages[key], int(offset)))
        return view

    obj = load(storage_for_id)
    keys = load()
    for key in keys:
        if key not in storages:
            raise CheckpointError(f"{path}: storage {key!r} listed but never used")
        storage = storages[key]
        (numel,) = struct.unpack("<q" if byteorder == "little" else ">q", f.read(8))
        if numel != storage.numel:
            raise CheckpointError(f"{path}: storage {key!r} holds {numel} elements, the "
                                  f"pickle says {storage.numel}")
        raw = f.read(numel * storage.dtype.itemsize)
        storage.data = _array_from_bytes(raw, storage, byteorder, path, key)
    for view, base, offset in views:
        view.data = base.data[offset:offset + view.numel]
    return _materialize(obj, path)


def _check_storage_type(storage_type, path):
    if not isinstance(storage_type, _StorageType):
        raise CheckpointError(f"{path}: storage of unsupported type {storage_type!r:.80}")


def _array_from_bytes(raw, storage, byteorder, path, key):
    dtype = storage.dtype
    if len(raw) != storage.numel * dtype.itemsize:
        raise CheckpointError(f"{path}: storage {key!r} has {len(raw)} bytes, expected "
                              f"{storage.numel} x {dtype.itemsize}")
    if byteorder == "big" and dtype.itemsize > 1:
        return np.frombuffer(raw, dtype=dtype.newbyteorder(">")).astype(dtype)
    return np.frombuffer(raw, dtype=dtype)


def _materialize(obj, path):
    """Replace every pending tensor in nested containers by its NumPy array."""
    if isinstance(obj, _PendingTensor):
        return _tensor_array(obj, path)
    if isinstance(obj, dict):
        items = [(k, _materialize(v, path)) for k, v in obj.items()]
        return collections.OrderedDict(items) if isinstance(obj, collections.OrderedDict) \
            else dict(items)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialize(v, path) for v in obj)
    if isinstance(obj, (_Storage, _StorageType)):
        raise CheckpointError(f"{path}: a bare storage outside a tensor is unsupported")
    return obj


def _tensor_array(tensor, path):
    storage = tensor.storage
    if not isinstance(storage, _Storage) or storage.data is None:
        raise CheckpointError(f"{path}: tensor refers to a storage without data")
    if len(tensor.size) != len(tensor.stride):
        raise CheckpointError(f"{path}: tensor size {tensor.size} and stride {tensor.stride} "
                              "differ in length")
    if any(s < 0 for s in tensor.size + tensor.stride) or tensor.offset < 0:
        raise CheckpointError(f"{path}: negative tensor size, stride or offset")
    if 0 in tensor.size:
        return np.zeros(tensor.size, dtype=storage.dtype)
    last = tensor.offset + sum((n - 1) * s for n, s in zip(tensor.size, tensor.stride))
    if last >= storage.numel:
        raise CheckpointError(f"{path}: tensor of size {tensor.size}, stride {tensor.stride} "
                              f"at offset {tensor.offset} overruns its storage of "
                              f"{storage.numel} elements")
    itemsize = storage.dtype.itemsize
    return np.lib.stride_tricks.as_strided(
        storage.data[tensor.offset:], shape=tensor.size,
        strides=tuple(s * itemsize for s in tensor.stride), writeable=False)
