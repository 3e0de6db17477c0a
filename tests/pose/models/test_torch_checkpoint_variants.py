"""Checkpoints as other writers and machines make them (Python 2, a big-endian host, a bare
zip, empty storages, shared objects), and what the reader hands back: views of the file's
bytes, not copies."""

import subprocess
import sys
import textwrap

import ml_dtypes
import numpy as np
import pytest

from pose.models.torch_checkpoint import load_torch_checkpoint
from tests import checkpoint_files as w


def _base(array):
    """The object at the end of an array's chain of bases (as_strided, slices, frombuffer)."""
    while getattr(array, "base", None) is not None:
        array = array.base
    return array


@pytest.mark.parametrize("legacy", [False, True])
def test_a_big_endian_host_converts_little_endian_files(tmp_path, monkeypatch, legacy):
    # This host is little-endian: a big-endian one is simulated by its sys.byteorder.
    floats = np.array([1.5, -2.25, 3e-3], np.float32)
    shorts = np.array([1, -2, 300], np.int16)
    path = w.write(tmp_path / "le.pth", {"f": w.Tensor("0", 0, (3,), (1,)),
                                         "s": w.Tensor("1", 0, (3,), (1,))},
                   {"0": floats, "1": shorts}, legacy=legacy)
    monkeypatch.setattr(sys, "byteorder", "big")
    loaded = load_torch_checkpoint(path)
    monkeypatch.undo()
    # the values, in the host's (here: the real, little-endian) native order
    assert loaded["f"].tolist() == floats.tolist() and loaded["s"].tolist() == shorts.tolist()
    assert loaded["f"].dtype == np.float32 and loaded["s"].dtype == np.int16
    assert not loaded["f"].flags.writeable


@pytest.mark.parametrize("legacy", [False, True])
def test_arrays_are_views_of_the_files_bytes(tmp_path, legacy):
    # Data in the host's order (and 1-byte data in any order) are not copied: a 300 MB
    # checkpoint takes 300 MB. Big-endian data of wider types are converted once.
    storages = {"0": np.arange(4, dtype=np.float32), "1": np.arange(3, dtype=np.uint8)}
    tensors = {"f": w.Tensor("0", 1, (3,), (1,)), "b": w.Tensor("1", 0, (3,), (1,))}
    loaded = load_torch_checkpoint(w.write(tmp_path / "le.pth", tensors, storages,
                                           legacy=legacy))
    assert isinstance(_base(loaded["f"]), (bytes, memoryview))
    assert isinstance(_base(loaded["b"]), (bytes, memoryview))
    if not legacy:  # the zip format keeps the writer's order
        loaded = load_torch_checkpoint(w.write(tmp_path / "be.pth", tensors, storages,
                                               byteorder="big"))
        assert isinstance(_base(loaded["f"]), np.ndarray)  # converted
        assert isinstance(_base(loaded["b"]), bytes)
        assert loaded["f"].tolist() == [1, 2, 3] and loaded["b"].tolist() == [0, 1, 2]


def test_size_1_dimensions_keep_only_strides_that_fit(tmp_path):
    # torch leaves a size-1 dimension's stride as computed (possibly huge); it never
    # indexes, and the array keeps it only when it stays inside the storage.
    flat = np.arange(6, dtype=np.float32)
    path = w.write(tmp_path / "ones.pth", {
        "huge": w.Tensor("0", 5, (1, 1), (0, 2 ** 40)),
        "fits": w.Tensor("0", 0, (1, 2), (6, 1)),
        "long": w.Tensor("0", 0, (2, 1), (3, 7)),
    }, {"0": flat})
    loaded = load_torch_checkpoint(path)
    assert loaded["huge"].strides == (0, 0) and loaded["huge"].tolist() == [[5]]
    assert loaded["fits"].strides == (24, 4) and loaded["fits"].tolist() == [[0, 1]]
    assert loaded["long"].strides == (12, 0) and loaded["long"].tolist() == [[0], [3]]


def test_a_legacy_file_ending_with_an_empty_storage(tmp_path):
    # torch writes an empty tensor's storage as its 8-byte count 0 and no bytes: the file
    # then ends right after that count.
    path = w.write(tmp_path / "empty.pth", {"x": w.Tensor("0", 0, (2,), (1,)),
                                            "e": w.Tensor("1", 0, (0,), (1,))},
                   {"0": np.ones(2, np.float32), "1": np.zeros(0, np.float32)}, legacy=True)
    loaded = load_torch_checkpoint(path)
    assert loaded["x"].tolist() == [1, 1] and loaded["e"].shape == (0,)


def test_python_2_byte_strings_are_utf8_text(tmp_path):
    # A state dict pickled by Python 2 holds its keys as byte strings (SHORT_BINSTRING);
    # torch.load decodes them as UTF-8.
    key = "módulo.weight".encode()
    ops = b"}U" + bytes([len(key)]) + key + w.int_op(1) + b"s"
    path = w.write_zip_pickle(tmp_path / "py2.pth", ops, {})
    assert load_torch_checkpoint(path) == {"módulo.weight": 1}


@pytest.mark.parametrize("spelling", ["latin1", "latin-1"])
def test_protocol_2_bytes_in_either_latin1_spelling(tmp_path, spelling):
    ops = (w.global_op("_codecs", "encode") + w.tuple_op([w.str_op("a\xe9"), w.str_op(spelling)])
           + b"R")
    assert load_torch_checkpoint(w.write_zip_pickle(tmp_path / "b.pth", ops, {})) == b"a\xe9"


def test_a_zip_without_a_top_folder(tmp_path):
    # data.pkl, byteorder and data/ at the archive's root (no "<name>/" prefix)
    ops = w.dict_op("x", w.tensor_op(w.pid_op(), size=(2,), stride=(2,)))
    path = w.write_members(tmp_path / "root.pth", {
        "data.pkl": w.pickle_op(ops), "byteorder": b"big",
        "data/0": np.arange(4, dtype=">f4").tobytes()})
    assert load_torch_checkpoint(path)["x"].tolist() == [0, 2]


def test_objects_shared_in_the_pickle_stay_shared(tmp_path):
    # {"a": L, "b": L, T: 0, "t": T}: one list L, one tuple T (a key and a value)
    ops = (b"}(" + w.str_op("a") + b"]q\x01" + w.str_op("b") + b"h\x01"
           + b")\x85q\x02" + w.int_op(0) + w.str_op("t") + b"h\x02u")
    loaded = load_torch_checkpoint(w.write_zip_pickle(tmp_path / "s.pth", ops, {}))
    assert loaded["a"] == [] and loaded["a"] is loaded["b"]
    key = next(k for k in loaded if isinstance(k, tuple))
    assert key == ((),) and loaded[key] == 0 and loaded["t"] is key


def test_bfloat16_reads_in_a_process_that_never_imported_ml_dtypes(tmp_path):
    # Keras imports ml_dtypes, which registers "bfloat16" with NumPy; a tool that reads a
    # checkpoint before importing Keras must not depend on that.
    values = np.array([1.5, -2, 0.25], ml_dtypes.bfloat16)  # exact in bfloat16
    path = w.write(tmp_path / "bf.pth", {"x": w.Tensor("0", 0, (3,), (1,))}, {"0": values},
                   legacy=True)
    code = textwrap.dedent(f"""
        import sys
        from pose.models.torch_checkpoint import load_torch_checkpoint
        assert "ml_dtypes" not in sys.modules
        x = load_torch_checkpoint({str(path)!r})["x"]
        print(x.dtype.name, x.astype("float32").tolist())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["bfloat16", "[1.5,", "-2.0,", "0.25]"]
