"""Read PyTorch checkpoint files (``torch.save``) into NumPy arrays, safely, without torch.

Two serialization formats exist (PyTorch ``torch/serialization.py``):

* the zip archive (torch ≥ 1.6): ``<prefix>/data.pkl`` is the pickled object, each
  storage is a raw file ``<prefix>/data/<key>`` in the writer's byte order, which
  ``<prefix>/byteorder`` names (``little`` or ``big``; absent: little);
* the legacy stream (torch < 1.6, the 2019 HRNet model-zoo files): five pickles and raw
  bytes back to back: a magic number, the protocol version (1001), ``sys_info`` (byte
  order, type sizes), the object itself, the list of storage keys in the order their
  data follows; then, per key, an 8-byte element count and the raw bytes. torch's
  ``writeFileRaw`` converts a big-endian machine's data to little-endian, so the data are
  little-endian whatever ``sys_info`` says; the count is little-endian too, except from
  torch ≤ 0.4 on a big-endian machine, which wrote it in native order.

In both, a tensor is pickled as ``torch._utils._rebuild_tensor_v2(storage, offset, size,
stride, ...)`` where ``storage`` is a persistent id naming a typed storage. Several tensors
can share one storage at different offsets (views); torch < 0.4 could also pickle a
storage view ``(view key, offset, size)`` of a root storage.

Nothing the file names is called unless it is on the allow-list of
``pose.models.torch_pickle`` (``UnsafeCheckpointError`` otherwise). Nothing the file says is
trusted: every array is a view of the file's real bytes whose offset, size and strides are
checked against the length of that buffer (never against a count the pickle declares);
a zero stride is accepted only on a dimension of size 1 (torch writes other zero strides
only for ``expand()``-ed tensors, which no state dict holds and which would multiply
memory); a tensor holds at most as many elements as its storage; containers nest at most
``MAX_DEPTH`` deep; memo indices and lengths stay inside the pickle (``check_opcodes``).
Every failure on malformed content is a ``CheckpointError`` naming the file.
"""

import math
import os
import pickle
import struct
import sys
import zipfile
import zlib

import numpy as np

from pose import errors
from pose.models.torch_pickle import (
    Forbidden,
    Malformed,
    PendingTensor,
    Storage,
    StorageType,
    count,
    short_repr,
    unpickle,
)

MAX_DEPTH = 100  # nesting of containers in a checkpoint (a state dict is 2-4 deep)

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
# What a corrupt archive makes zipfile raise besides BadZipFile: a flipped compression
# method (NotImplementedError), encryption flag (RuntimeError), offsets (OSError, struct).
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError,
               ValueError, NotImplementedError, RuntimeError, OverflowError, struct.error)
# Anything else the pickle machinery raises on hostile input (wrong arity of a call,
# a memo miss, an unhashable key); never a reason for a traceback.
_PICKLE_ERRORS = (Malformed, pickle.UnpicklingError, EOFError, KeyError,
                  ValueError, TypeError, AttributeError, IndexError, OverflowError,
                  struct.error, RecursionError)


class CheckpointError(errors.CheckpointError):
    """A file that is not a PyTorch checkpoint this reader understands (a user error: the
    tools print it as one line)."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint whose pickle names a global outside the allow-list (or would alter the
    reader's own objects)."""


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
    with open(path, "rb") as f:
        head = f.read(2)
    try:
        if head == b"PK":  # a zip archive starts with a local header "PK\3\4"
            return _load_zip(path)
        with open(path, "rb") as f:
            return _load_legacy(f.read())
    except Forbidden as e:
        raise UnsafeCheckpointError(f"{path}: {e}") from None
    except _PICKLE_ERRORS as e:
        message = str(e) if isinstance(e, Malformed) else f"{type(e).__name__}: {str(e)[:200]}"
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint: {message}") from None


def _load_zip(path):
    file_size = os.path.getsize(path)
    try:
        archive = zipfile.ZipFile(path)
    except _ZIP_ERRORS as e:
        raise Malformed(f"truncated or corrupt zip archive ({short_repr(str(e))})") from None
    with archive:
        names = archive.namelist()
        pickles = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise Malformed(f"a zip checkpoint has exactly one data.pkl, found {len(pickles)}")
        prefix = pickles[0][:-len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in names:
            byteorder = _read_member(archive, prefix + "byteorder", file_size).decode(
                "ascii", "replace").strip()
        if byteorder not in ("little", "big"):
            raise Malformed(f"unknown byte order {short_repr(byteorder)}")
        storages = {}

        def storage_for_id(pid):
            if len(pid) != 5:
                raise Malformed(f"storage id {short_repr(pid)} is not (storage, type, key, "
                                "location, numel)")
            _, storage_type, key, _location, numel = pid
            storage = _known_storage(storages, storage_type, key, numel)
            if storage.data is None:
                raw = _read_member(archive, f"{prefix}data/{key}", file_size)
                storage.data = _array_from_bytes(raw, storage, byteorder)
            return storage

        obj, _ = unpickle(_read_member(archive, pickles[0], file_size), 0, storage_for_id)
        return _materialize(obj)


def _read_member(archive, name, file_size):
    """The bytes of an archive member, as torch writes them: stored (uncompressed), not
    encrypted, inside the file; a corrupt or truncated member is ``Malformed``."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise Malformed(f"the archive has no {short_repr(name)}") from None
    if info.flag_bits & 0x1 or info.compress_type != zipfile.ZIP_STORED:
        raise Malformed(f"archive member {name!r} is compressed or encrypted (torch writes "
                        "them stored); a corrupt header?")
    if info.compress_size != info.file_size:
        raise Malformed(f"archive member {name!r} declares {info.compress_size} stored bytes for "
                        f"{info.file_size} bytes (torch stores them as they are); a corrupt "
                        "header?")
    if info.header_offset + info.file_size > file_size:
        raise Malformed(f"archive member {name!r} declares {info.file_size} bytes past the end "
                        f"of the file ({file_size} bytes): truncated?")
    try:
        with archive.open(info) as member:
            data = member.read()
    except _ZIP_ERRORS as e:
        raise Malformed(f"archive member {name!r} is truncated or corrupt "
                        f"({short_repr(str(e))})") from None
    if len(data) != info.file_size:
        raise Malformed(f"archive member {name!r} is truncated")
    return data


def _known_storage(storages, storage_type, key, numel):
    """The storage ``key`` (created on first sight); the same key must always come with
    the same type and size."""
    if not isinstance(storage_type, StorageType):
        raise Malformed(f"storage of unsupported type {short_repr(storage_type)}")
    if not isinstance(key, str):
        raise Malformed(f"storage key {short_repr(key)} is not a string")
    numel = count(numel, f"element count of storage {key!r}")
    if key not in storages:
        storages[key] = Storage(key, storage_type.dtype, numel)
    storage = storages[key]
    if storage.dtype != storage_type.dtype or storage.numel != numel:
        raise Malformed(f"storage {key!r} declared twice: {storage.numel} x {storage.dtype}, "
                        f"then {numel} x {storage_type.dtype}")
    return storage


def _load_legacy(data):
    def no_storage(pid):
        raise Malformed("unexpected storage in the legacy header")

    magic, pos = unpickle(data, 0, no_storage)
    if not isinstance(magic, int) or magic != _LEGACY_MAGIC:
        raise Malformed("neither a zip archive nor a legacy PyTorch file (wrong magic number)")
    protocol, pos = unpickle(data, pos, no_storage)
    if protocol != _LEGACY_PROTOCOL:
        raise Malformed(f"legacy protocol {short_repr(protocol)} unsupported "
                        f"(expected {_LEGACY_PROTOCOL})")
    sys_info, pos = unpickle(data, pos, no_storage)
    if not isinstance(sys_info, dict) or not isinstance(sys_info.get("little_endian", True),
                                                        bool):
        raise Malformed(f"legacy sys_info {short_repr(sys_info)} is not a dict of flags")
    big_endian_writer = not sys_info.get("little_endian", True)
    storages, views = {}, {}

    def storage_for_id(pid):
        if len(pid) != 6:
            raise Malformed(f"storage id {short_repr(pid)} is not (storage, type, key, "
                            "location, numel, view)")
        _, storage_type, key, _location, numel, view_metadata = pid
        root = _known_storage(storages, storage_type, key, numel)
        if view_metadata is None:
            return root
        # torch < 0.4 pickled slices of a storage as (view key, element offset, size).
        if not isinstance(view_metadata, tuple) or len(view_metadata) != 3 \
                or not isinstance(view_metadata[0], str):
            raise Malformed(f"storage view {short_repr(view_metadata)} is not (key, offset, "
                            "size)")
        view_key = view_metadata[0]
        offset = count(view_metadata[1], f"offset of storage view {view_key!r}")
        size = count(view_metadata[2], f"size of storage view {view_key!r}")
        if offset + size > root.numel:
            raise Malformed(f"storage view {view_key!r} of {size} elements at {offset} runs past"
                            f" its storage {key!r} of {root.numel}")
        if view_key not in views:
            views[view_key] = (Storage(view_key, root.dtype, size), root, offset)
        view, known_root, known_offset = views[view_key]
        if (known_root, known_offset, view.numel) != (root, offset, size):
            raise Malformed(f"storage view {view_key!r} declared twice differently")
        return view

    obj, pos = unpickle(data, pos, storage_for_id)
    keys, pos = unpickle(data, pos, no_storage)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys) \
            or len(set(keys)) != len(keys):
        raise Malformed(f"legacy storage keys {short_repr(keys)} are not a list of distinct "
                        "strings")
    for key in keys:
        if key not in storages:
            raise Malformed(f"storage {short_repr(key)} listed but never used")
        storage = storages[key]
        if pos + 8 > len(data):
            raise Malformed(f"truncated: the file ends before storage {key!r}")
        numel = struct.unpack_from("<q", data, pos)[0]
        if big_endian_writer and numel != storage.numel:  # torch <= 0.4: native order
            numel = struct.unpack_from(">q", data, pos)[0]
        if numel != storage.numel:
            raise Malformed(f"storage {key!r} holds {numel} elements, the pickle says "
                            f"{storage.numel}")
        nbytes = numel * storage.dtype.itemsize
        pos += 8
        if pos + nbytes > len(data):
            raise Malformed(f"truncated: storage {key!r} needs {nbytes} bytes, the file has "
                            f"{len(data) - pos} left")
        storage.data = _array_from_bytes(memoryview(data)[pos:pos + nbytes], storage, "little")
        pos += nbytes
    for view, root, offset in views.values():
        if root.data is not None:
            view.data = root.data[offset:offset + view.numel]
    return _materialize(obj)


def _array_from_bytes(raw, storage, byteorder):
    """A read-only 1-D array of ``storage``'s dtype over ``raw`` (native byte order)."""
    dtype = storage.dtype
    if len(raw) != storage.numel * dtype.itemsize:
        raise Malformed(f"storage {storage.key!r} has {len(raw)} bytes, the pickle declares "
                        f"{storage.numel} x {dtype.itemsize}")
    if byteorder != sys.byteorder and dtype.itemsize > 1:
        order = "<" if byteorder == "little" else ">"
        array = np.frombuffer(raw, dtype=dtype.newbyteorder(order)).astype(dtype)
        array.flags.writeable = False
        return array
    return np.frombuffer(raw, dtype=dtype)


def _materialize(obj, depth=0, done=None):
    """Replace every pending tensor in nested containers by its NumPy array.

    Each container is converted once (a pickle can share one list many times over: a
    tree walk would take 2^depth steps); nesting deeper than ``MAX_DEPTH`` (a cycle, say)
    is ``Malformed``.
    """
    if depth > MAX_DEPTH:
        raise Malformed(f"containers nested more than {MAX_DEPTH} deep (or a cycle)")
    done = {} if done is None else done
    if id(obj) in done:
        return done[id(obj)][1]
    if isinstance(obj, PendingTensor):
        result = _tensor_array(obj)
    elif isinstance(obj, dict):
        result = type(obj)((_materialize(k, depth + 1, done), _materialize(v, depth + 1, done))
                           for k, v in obj.items())
    elif isinstance(obj, (list, tuple, set, frozenset)):
        result = type(obj)(_materialize(v, depth + 1, done) for v in obj)
    elif isinstance(obj, (str, bytes, bytearray, int, float, complex, type(None), np.generic)):
        return obj
    else:
        raise Malformed(f"a bare {type(obj).__name__.lstrip('_')} outside a tensor is "
                        "unsupported")
    done[id(obj)] = (obj, result)  # obj kept alive so that its id is not reused
    return result


def _tensor_array(tensor):
    """The tensor as a read-only view of its storage's real bytes, every index inside."""
    storage = tensor.storage
    data = storage.data
    if data is None:
        raise Malformed(f"a tensor refers to storage {storage.key!r}, whose bytes the file "
                        "never gives")
    available = data.size  # the real elements, not the pickle's count
    size, stride, offset = tensor.size, tensor.stride, tensor.offset
    where = (f"tensor of size {short_repr(size)}, stride {short_repr(stride)} at offset "
             f"{offset} in storage {storage.key!r} of {available} elements")
    if offset > available:
        raise Malformed(f"{where}: the offset is past the end")
    if 0 in size:
        try:
            return np.zeros(size, dtype=storage.dtype)
        except ValueError:
            raise Malformed(f"{where}: an empty tensor of impossible dimensions") from None
    if any(n > 1 and s == 0 for n, s in zip(size, stride)):
        raise Malformed(f"{where}: a zero stride on a dimension longer than 1 (an expanded "
                        "tensor) is unsupported")
    if math.prod(size) > available:
        raise Malformed(f"{where}: more elements than its storage holds")
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= available:
        raise Malformed(f"{where}: overruns its storage")
    # A stride on a dimension of size 1 is never used; keep it only when it fits.
    stride = tuple(s if n > 1 or s <= available else 0 for n, s in zip(size, stride))
    itemsize = storage.dtype.itemsize
    return np.lib.stride_tricks.as_strided(
        data[offset:], shape=size, strides=tuple(s * itemsize for s in stride),
        writeable=False)
