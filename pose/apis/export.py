"""Export the network (image crops → heatmaps) to SavedModel, TFLite or ONNX, with a parity check.

Only the network is exported: a float32 batch of ImageNet-normalized RGB crops
``(B, H, W, 3)`` (``datasets.transforms.normalize_image``; ``H, W`` the config's
``model.input_size``) to heatmaps ``(B, H/4, W/4, K)``. Cropping, the flip test, decoding
(``pose.codec.HeatmapCodec.decode``) and the mapping back to the image
(``pose.evaluation.predictor.crop_to_image``) stay in Python: wrap the exported function in anything
with a ``predict_on_batch`` and hand it to ``pose.evaluation.predictor.Predictor``
(``ExportedModel`` below does that for SavedModel and TFLite).

- ``saved_model``: Keras 3 ``model.export(path, format="tf_saved_model")``, a folder with
  the ``serve`` endpoint (batch dimension dynamic).
- ``tflite``: ``tf.lite.TFLiteConverter.from_saved_model`` of that SavedModel, float32, no
  quantization or other optimization.
- ``onnx``: Keras 3 ``model.export(path, format="onnx")``; needs the optional packages
  ``tf2onnx`` (export) and ``onnxruntime`` (parity check), which the project does not
  install.

Every format is written under a temporary name beside ``path`` and renamed when complete.

Example:
    >>> export_model(model, "export/hrnet_w32", "saved_model")
    >>> parity(model, "export/hrnet_w32", "saved_model")["max_abs_diff"]
    3.1e-06
"""

import contextlib
import importlib.util
import os
import tempfile

import numpy as np

from pose.errors import UserError
from pose.fileio import atomic_directory, atomic_path, write_bytes

FORMATS = ("saved_model", "tflite", "onnx")
# The optional packages each format needs beyond TensorFlow/Keras, by import name → pip name.
OPTIONAL_DEPENDENCIES = {"onnx": {"tf2onnx": "tf2onnx", "onnxruntime": "onnxruntime",
                                  "onnx": "onnx"}}


class ExportError(UserError):
    """An export that cannot be done here (a missing optional package, an unknown format)."""


def missing_dependencies(fmt):
    """pip names of the optional packages ``fmt`` needs that are not installed."""
    needed = OPTIONAL_DEPENDENCIES.get(fmt, {})
    return [pip for module, pip in needed.items() if importlib.util.find_spec(module) is None]


def _check_format(fmt):
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    missing = missing_dependencies(fmt)
    if missing:
        raise ExportError(f"{fmt} export needs the optional package(s) {', '.join(missing)}, "
                          f"which are not installed: pip install {' '.join(missing)}")


def _quietly(fn, *args, **kwargs):
    """Run ``fn`` with Keras' export chatter (it prints the endpoint signature) kept short."""
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def export_model(model, path, fmt):
    """Export ``model`` (image crops → heatmaps) to ``path`` in format ``fmt``.

    Args:
        model: the Keras heatmap model.
        path: destination: a folder for ``saved_model``, a file for ``tflite``
            (``.tflite``) and ``onnx`` (``.onnx``).
        fmt: "saved_model", "tflite" or "onnx".

    Returns:
        str, ``path``.

    Raises:
        ExportError: unknown format, or the optional packages of ``onnx`` are missing.
    """
    _check_format(fmt)
    path = os.path.abspath(os.fspath(path))
    if fmt == "saved_model":
        with atomic_directory(path) as tmp:
            _quietly(model.export, tmp, format="tf_saved_model", verbose=False)
    elif fmt == "tflite":
        import tensorflow as tf

        with tempfile.TemporaryDirectory() as scratch:
            _quietly(model.export, scratch, format="tf_saved_model", verbose=False)
            converter = tf.lite.TFLiteConverter.from_saved_model(scratch)
            converter.optimizations = []  # float32, no quantization
            write_bytes(converter.convert(), path)
    else:
        with atomic_path(path, suffix=".onnx") as tmp:
            _quietly(model.export, tmp, format="onnx", verbose=False)
    return path


def _tflite_interpreter(path):
    """LiteRT's interpreter where installed, else ``tf.lite.Interpreter`` (deprecated in
    TF 2.20+ in favour of LiteRT, still present in 2.21; its warning is silenced)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import warnings

        import tensorflow as tf

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return tf.lite.Interpreter(model_path=path)
    return Interpreter(model_path=path)


class ExportedModel:
    """An exported network with ``predict_on_batch``, usable by ``Predictor``
    (``pose.evaluation.predictor``).

    Args:
        path: the exported SavedModel folder, ``.tflite`` or ``.onnx`` file.
        fmt: the format; None guesses it from the path (folder → saved_model). Default None.
    """

    def __init__(self, path, fmt=None):
        path = os.fspath(path)
        if fmt is None:
            fmt = ("saved_model" if os.path.isdir(path) else
                   "tflite" if path.endswith(".tflite") else
                   "onnx" if path.endswith(".onnx") else None)
        if fmt is None:
            raise ExportError(f"cannot tell the format of {path!r}; pass fmt=")
        _check_format(fmt)
        if not os.path.exists(path):
            raise FileNotFoundError(f"exported model not found: {path}")
        self.path, self.format = path, fmt
        if fmt == "saved_model":
            import tensorflow as tf

            self._loaded = tf.saved_model.load(path)
            self._run = lambda x: self._loaded.serve(x).numpy()
        elif fmt == "tflite":
            self._interpreter = _tflite_interpreter(path)
            self._batch = None
            self._run = self._run_tflite
        else:
            import onnxruntime

            session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name
            self._run = lambda x: session.run(None, {name: x})[0]

    def _run_tflite(self, x):
        interp = self._interpreter
        inp = interp.get_input_details()[0]
        if self._batch != len(x):
            interp.resize_tensor_input(inp["index"], list(x.shape), strict=False)
            interp.allocate_tensors()
            self._batch = len(x)
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        return interp.get_tensor(interp.get_output_details()[0]["index"]).copy()

    def predict_on_batch(self, x):
        """(B, H, W, 3) float32 → (B, H/4, W/4, K) float32 heatmaps."""
        return np.asarray(self._run(np.ascontiguousarray(x, np.float32)))


def parity(model, path, fmt=None, batch_size=2, seed=0):
    """Compare ``model`` and its export on a random input.

    The input is ``batch_size`` crops of standard-normal values (the scale of normalized
    images) at the model's input size. The output scale is reported too: a freshly
    initialized HRNet (final layer std 0.001) outputs ~1e-11, where any export "agrees";
    judge the difference against it.

    Returns:
        dict: ``max_abs_diff`` (max |keras(x) - exported(x)|), ``max_abs_output``
        (max |keras(x)|) and ``relative`` (their ratio).
    """
    h, w = model.input_shape[1:3]
    x = np.random.default_rng(seed).standard_normal((batch_size, h, w, 3)).astype(np.float32)
    expected = np.asarray(model.predict_on_batch(x), np.float64)
    got = ExportedModel(path, fmt).predict_on_batch(x)
    if got.shape != expected.shape:
        raise AssertionError(f"exported output shape {got.shape} != Keras {expected.shape}")
    diff = float(np.max(np.abs(got.astype(np.float64) - expected)))
    scale = float(np.max(np.abs(expected)))
    return {"max_abs_diff": diff, "max_abs_output": scale,
            "relative": diff / scale if scale > 0 else float("inf") if diff > 0 else 0.0}
