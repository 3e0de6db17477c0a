"""Export the network (image crops → heatmaps) to SavedModel, TFLite or ONNX, optionally
quantized, with a parity check.

Only the network is exported: a float32 batch of ImageNet-normalized RGB crops
``(B, H, W, 3)`` (``datasets.transforms.normalize_image``; ``H, W`` the config's
``model.input_size``) to heatmaps ``(B, H/4, W/4, K)``, the batch dimension dynamic in
every format. Cropping, the flip test, decoding (``pose.codec.HeatmapCodec.decode``) and
the mapping back to the image (``pose.evaluation.predictor.crop_to_image``) stay in
Python: ``ExportedModel`` below (or ``pose.apis.runtimes.open_network``, which needs no
TensorFlow) has the ``predict_on_batch`` that ``pose.evaluation.predictor.Predictor``
calls.

- ``saved_model``: Keras 3 ``model.export(path, format="tf_saved_model")``, a folder with
  the ``serve`` endpoint; runs on TensorFlow.
- ``tflite``: ``tf.lite.TFLiteConverter.from_saved_model`` of that SavedModel; runs on
  LiteRT (``ai-edge-litert``).
- ``onnx``: Keras 3 ``model.export(path, format="onnx")`` (tf2onnx) at opset
  ``ONNX_OPSET``; runs on ONNX Runtime. Needs the ``onnx`` extra
  (``pip install .[onnx]``: tf2onnx, onnx, onnxruntime).

Quantization (``quantize=``; ``QUANTIZATION_SUPPORT`` says which format takes which):

- ``float16``: weights stored as float16 (TFLite only); LiteRT computes in float32.
- ``dynamic``: int8 weights, activations quantized on the fly per batch (no calibration
  data). TFLite: the converter's dynamic-range mode; ONNX: ONNX Runtime's
  ``quantize_dynamic``.
- ``int8``: int8 weights and activations, activation ranges calibrated on
  ``calibration`` crops (``calibration_crops``: real crops from the evaluation data
  pipeline). Inputs and outputs stay float32, so the file is a drop-in replacement.
  TFLite: integer conversion with a representative dataset, every op in int8 except
  ``INT8_FLOAT_OPS`` (the PSA softmax; ``float_ops=`` to choose, ``()`` for all-int8);
  ONNX: ONNX Runtime's ``quantize_static`` (QDQ, per-channel weights).

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

from pose.apis.runtimes import open_network
from pose.checks import OutputError, check_output_file, check_output_folder
from pose.config import config_path_for
from pose.errors import UserError
from pose.fileio import atomic_directory, atomic_path, write_bytes

FORMATS = ("saved_model", "tflite", "onnx")
QUANTIZATIONS = ("float16", "dynamic", "int8")
# Which quantization each format supports, and why not where it does not.
QUANTIZATION_SUPPORT = {"saved_model": (), "tflite": QUANTIZATIONS, "onnx": ("dynamic", "int8")}
_UNSUPPORTED_WHY = {
    "saved_model": "a SavedModel runs on TensorFlow, which has no quantized kernels for "
                   "it; use --format tflite or onnx",
    "onnx": "ONNX Runtime's CPU execution provider has no float16 convolution kernels on "
            "x86 (every layer would be cast back to float32); use --format tflite "
            "--quantize float16",
}
# TFLite ops that int8 exports keep in float32: the exponentials and divisions of the PSA
# softmaxes (EXP, DIV; SOFTMAX where Keras' own is used). The spatial softmax of the
# channel branch gives ~1/(H·W) weights with a few peaks, which int8's 256 levels, scaled
# to the peak, mostly round to zero. With these few small ops in float32 the int8 AP drop
# on the demo model is 0.1-0.3 points instead of 1.3-3.3 over three calibration sets
# (BENCHMARKS.md, "Runtimes and quantization"). REDUCE_MAX and SUM cannot be listed
# usefully: the converter keeps REDUCE_MAX at its input's scale whatever the list says.
INT8_FLOAT_OPS = ("EXP", "DIV", "SOFTMAX")
ONNX_OPSET = 17  # checked with onnxruntime 1.32 (see README)
# The optional packages each format needs beyond TensorFlow/Keras, by import name → pip name.
OPTIONAL_DEPENDENCIES = {"onnx": {"tf2onnx": "tf2onnx", "onnxruntime": "onnxruntime",
                                  "onnx": "onnx"}}


class ExportError(UserError):
    """An export that cannot be done here (a missing optional package, an unknown format,
    a quantization the format cannot run)."""


def missing_dependencies(fmt):
    """pip names of the optional packages ``fmt`` needs that are not installed."""
    needed = OPTIONAL_DEPENDENCIES.get(fmt, {})
    return [pip for module, pip in needed.items() if importlib.util.find_spec(module) is None]


def check_export(fmt, quantize=None):
    """Raise ``ExportError`` unless ``fmt`` with ``quantize`` can be exported here."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    missing = missing_dependencies(fmt)
    if missing:
        raise ExportError(f"{fmt} export needs the optional package(s) {', '.join(missing)}, "
                          f"which are not installed: pip install {' '.join(missing)}")
    if quantize is not None:
        if quantize not in QUANTIZATIONS:
            raise ExportError(f"unknown quantization {quantize!r}; choose one of "
                              f"{', '.join(QUANTIZATIONS)}")
        if quantize not in QUANTIZATION_SUPPORT[fmt]:
            raise ExportError(f"{fmt} export cannot be quantized to {quantize}: "
                              f"{_UNSUPPORTED_WHY[fmt]}")


def check_export_output(path, fmt, inputs=()):
    """Refuse ``path`` as the export of format ``fmt`` before anything is loaded.

    A ``.tflite``/``.onnx`` export is a file: not an input (``--weights``), not an existing
    folder. A SavedModel is a folder that replaces ``path`` whole, so ``path`` may not be a
    file, nor an existing folder other than an earlier SavedModel (its contents would be
    deleted), nor hold an input. The config written beside the export (``config_path_for``)
    may not be an input either.

    Raises:
        OutputError: naming ``--out`` and what is wrong.
    """
    path = os.fspath(path)
    inputs = [os.fspath(p) for p in inputs if p is not None]
    if fmt == "saved_model":
        check_output_folder(path, inputs)
        if (os.path.isdir(path) and os.listdir(path)
                and not os.path.isfile(os.path.join(path, "saved_model.pb"))):
            raise OutputError(f"--out {path} is a folder that is not a SavedModel; a "
                              "SavedModel export replaces the whole folder: choose a new "
                              "or empty folder")
    else:
        check_output_file(path, inputs)
    check_output_file(config_path_for(path), inputs)


def _quietly(fn, *args, **kwargs):
    """Run ``fn`` with Keras' export chatter (it prints the endpoint signature) kept short."""
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def _input_signature(model):
    """One float32 crops input with a dynamic batch dimension."""
    import tensorflow as tf

    return [tf.TensorSpec((None,) + tuple(model.input_shape[1:]), tf.float32, name="crops")]


def export_model(model, path, fmt, quantize=None, calibration=None,
                 float_ops=INT8_FLOAT_OPS):
    """Export ``model`` (image crops → heatmaps) to ``path`` in format ``fmt``.

    Args:
        model: the Keras heatmap model.
        path: destination: a folder for ``saved_model``, a file for ``tflite``
            (``.tflite``) and ``onnx`` (``.onnx``).
        fmt: "saved_model", "tflite" or "onnx".
        quantize: None (float32), "float16", "dynamic" or "int8" (see the module notes).
            Default None.
        calibration: float32 crops (N, H, W, 3), normalized as the model's input, that
            calibrate the activation ranges of ``int8`` (``calibration_crops``). Default None.
        float_ops: TFLite op names (``"EXP"``, ``"DIV"``, ...) that a TFLite ``int8``
            export keeps in float32 (LiteRT's selective quantization); ``()``: every op
            in int8. Default ``INT8_FLOAT_OPS``.

    Returns:
        str, ``path``.

    Raises:
        ExportError: unknown format or quantization, a quantization the format cannot
            run, ``int8`` without calibration crops, or the optional packages of ``onnx``
            are missing.
    """
    check_export(fmt, quantize)
    if quantize == "int8" and (calibration is None or len(calibration) == 0):
        raise ExportError("int8 quantization needs calibration crops (calibration_crops)")
    path = os.path.abspath(os.fspath(path))
    if fmt == "saved_model":
        with atomic_directory(path) as tmp:
            _quietly(model.export, tmp, format="tf_saved_model", verbose=False)
    elif fmt == "tflite":
        write_bytes(_tflite_bytes(model, quantize, calibration, float_ops), path)
    else:
        with atomic_path(path, suffix=".onnx") as tmp:
            _export_onnx(model, tmp, quantize, calibration)
    return path


def _tflite_bytes(model, quantize, calibration, float_ops=()):
    """The TFLite flatbuffer of ``model`` (via a scratch SavedModel), quantized as asked;
    an ``int8`` one keeps ``float_ops`` in float32."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as scratch:
        _quietly(model.export, scratch, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(scratch)
        if quantize is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        elif quantize == "int8":
            converter.representative_dataset = lambda: ([crop[None]] for crop in calibration)
            if float_ops:
                return _selectively_quantized(converter, calibration, float_ops)
            # Every op in int8: the conversion fails rather than leaving float islands.
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        return converter.convert()


def _selectively_quantized(converter, calibration, float_ops):
    """int8 flatbuffer with the ops named ``float_ops`` left in float32, through TFLite's
    quantization debugger (calibrates once on the converter's representative dataset;
    its own debug dataset is only used by ``run()``, which is not called here)."""
    import warnings

    import tensorflow as tf

    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=list(float_ops))
    with warnings.catch_warnings():  # the debugger's own tf.lite.Interpreter deprecation
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter,
            debug_dataset=lambda: ([crop[None]] for crop in calibration[:1]),
            debug_options=options)
        return debugger.get_nondebug_quantized_model()


def _export_onnx(model, path, quantize, calibration):
    """Keras' ONNX export at ``ONNX_OPSET`` to ``path``, then ONNX Runtime's quantization;
    the precision is recorded in the model's metadata (``pose.apis.runtimes``)."""
    import onnx

    with tempfile.TemporaryDirectory() as scratch:
        float_path = os.path.join(scratch, "float32.onnx")
        _quietly(model.export, float_path, format="onnx", verbose=False,
                 input_signature=_input_signature(model), opset_version=ONNX_OPSET)
        result = float_path
        if quantize is not None:
            result = os.path.join(scratch, f"{quantize}.onnx")
            _quantize_onnx(float_path, result, quantize, calibration, scratch)
        proto = onnx.load(result)
        entry = proto.metadata_props.add()
        entry.key, entry.value = "precision", quantize or "float32"
        onnx.save(proto, path)


def _quantize_onnx(src, dst, quantize, calibration, scratch):
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = os.path.join(scratch, "prepared.onnx")
    quant_pre_process(src, prepared, skip_symbolic_shape=True)
    if quantize == "dynamic":
        quantize_dynamic(prepared, dst, weight_type=QuantType.QUInt8)
        return

    class Crops(CalibrationDataReader):
        def __init__(self):
            self.items = iter(calibration)

        def get_next(self):
            crop = next(self.items, None)
            return None if crop is None else {"crops": crop[None].astype(np.float32)}

    quantize_static(prepared, dst, Crops(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def calibration_crops(annotation_file, image_dir, input_size, count=300, seed=0, udp=False):
    """Real crops for ``int8`` calibration: ``count`` ground-truth person boxes drawn at
    random from ``annotation_file``, through the evaluation data pipeline
    (``datasets.pipeline.build_eval_dataset``: the crops the model sees at test time).

    Args:
        annotation_file: COCO keypoint annotations.
        image_dir: their images.
        input_size: ``(w, h)`` of the model input.
        count: int, crops wanted (fewer if the file has fewer people). Default 300.
        seed: int, which boxes. Default 0.
        udp: bool, the UDP warp (``codec.encoding == "udp"``). Default False.

    Returns:
        float32 (N, h, w, 3) normalized crops.
    """
    from datasets.coco import load_eval_records
    from datasets.pipeline import build_eval_dataset

    if not os.path.isdir(image_dir):  # checked as training checks its data
        raise ExportError(f"calibration images folder not found: {image_dir} (the images of "
                          f"{annotation_file})")
    records = load_eval_records(annotation_file, image_dir, input_size)  # load_coco's checks
    if len(records) == 0:
        raise ExportError(f"{annotation_file}: no person with keypoints to calibrate on")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(records), min(int(count), len(records)), replace=False))
    dataset = build_eval_dataset(records.subset(pick), input_size, batch_size=32, udp=udp)
    crops = [images.numpy() for images, _ in dataset]  # unreadable images are skipped
    if not crops:
        raise ExportError(f"{image_dir}: none of the calibration images could be read")
    return np.concatenate(crops)


class ExportedModel:
    """An exported network with ``predict_on_batch``, usable by ``Predictor``
    (``pose.evaluation.predictor``): SavedModel on TensorFlow, ``.tflite`` and ``.onnx``
    through ``pose.apis.runtimes`` (LiteRT, ONNX Runtime).

    Args:
        path: the exported SavedModel folder, ``.tflite`` or ``.onnx`` file.
        fmt: the format; None guesses it from the path (folder → saved_model). Default None.
        threads: int, runtime threads for ``.tflite``/``.onnx``; None: the core count.
    """

    def __init__(self, path, fmt=None, threads=None):
        from pose.apis.runtimes import model_format

        path = os.fspath(path)
        fmt = fmt or model_format(path)
        if fmt not in FORMATS:
            raise ExportError(f"cannot tell the format of {path!r}; pass fmt=")
        check_export(fmt)
        if not os.path.exists(path):
            raise FileNotFoundError(f"exported model not found: {path}")
        self.path, self.format = path, fmt
        if fmt == "saved_model":
            import tensorflow as tf

            loaded = tf.saved_model.load(path)
            self._run = lambda x: loaded.serve(x).numpy()
            self.precision = "float32"
        else:
            network = open_network(path, threads=threads)
            self._run = network.predict_on_batch
            self.precision = network.precision

    def predict_on_batch(self, x):
        """(B, H, W, 3) float32 → (B, H/4, W/4, K) float32 heatmaps."""
        return np.asarray(self._run(np.ascontiguousarray(x, np.float32)))


def parity(model, path, fmt=None, batch_size=2, seed=0, x=None):
    """Compare ``model`` and its export on one input.

    The input is ``x`` when given (e.g. real crops), else ``batch_size`` crops of
    standard-normal values (the scale of normalized images) at the model's input size.
    The output scale is reported too: a freshly initialized HRNet (final layer std 0.001)
    outputs ~1e-11, where any export "agrees"; judge the difference against it.

    Returns:
        dict: ``max_abs_diff`` (max |keras(x) - exported(x)|), ``max_abs_output``
        (max |keras(x)|), ``relative`` (their ratio) and ``relative_rms`` (RMS of the
        difference / RMS of the Keras output: ~1.4 for two unrelated models, the measure
        for quantized exports).
    """
    if x is None:
        h, w = model.input_shape[1:3]
        x = np.random.default_rng(seed).standard_normal((batch_size, h, w, 3))
    x = np.asarray(x, np.float32)
    expected = np.asarray(model.predict_on_batch(x), np.float64)
    got = ExportedModel(path, fmt).predict_on_batch(x)
    if got.shape != expected.shape:
        raise AssertionError(f"exported output shape {got.shape} != Keras {expected.shape}")
    diff = got.astype(np.float64) - expected
    max_diff = float(np.max(np.abs(diff)))
    scale = float(np.max(np.abs(expected)))
    rms = float(np.sqrt(np.mean(expected ** 2)))
    return {"max_abs_diff": max_diff, "max_abs_output": scale,
            "relative": _ratio(max_diff, scale),
            "relative_rms": _ratio(float(np.sqrt(np.mean(diff ** 2))), rms)}


FLOAT32_PARITY_TOLERANCE = 1e-4


def parity_bound(check, tolerance=FLOAT32_PARITY_TOLERANCE):
    """The largest acceptable max |keras - export| of a float32 export's ``parity`` check:
    ``tolerance × max(1, max |keras output|)``.

    Relative to the output's scale because float32 rounding is: a converted official
    checkpoint's heatmaps reach ~55 on a random input, and a correct export then differs
    by ~7e-4 (relative 1.3e-5), which an absolute 1e-4 would refuse. The ``max(1, ...)``
    keeps outputs near 0 (a fresh network) to an absolute bound.
    """
    return tolerance * max(1.0, check["max_abs_output"])


def _ratio(a, b):
    return a / b if b > 0 else float("inf") if a > 0 else 0.0
