"""Run an exported network without TensorFlow: LiteRT for ``.tflite``, ONNX Runtime for ``.onnx``.

Both wrap the file in an object with ``predict_on_batch`` (crops ``(B, H, W, 3)`` float32 →
heatmaps ``(B, H/4, W/4, K)`` float32, any ``B``), the interface of
``pose.evaluation.predictor.Predictor`` and ``pose.apis.estimator.PoseEstimator``. This
module and everything it imports are NumPy only, so that ``tools/infer.py --weights
model.tflite`` (or ``.onnx``) starts without TensorFlow or Keras (~3 s of imports, plus
rebuilding and tracing the graph for a ``.keras`` checkpoint).

Which runtime runs which file (``--runtime`` of ``tools/infer.py``):

=============== ================================================
format          runtime
=============== ================================================
``.keras``      ``keras`` (TensorFlow)
``.pth``        ``keras`` (converted to Keras on load)
SavedModel      ``keras`` (TensorFlow's ``tf.saved_model.load``)
``.tflite``     ``litert`` (``ai-edge-litert``, XNNPACK on CPU)
``.onnx``       ``onnx`` (ONNX Runtime, CPU execution provider)
=============== ================================================

``auto`` picks the runtime of the format; any other choice must match it (a file is not
converted on the fly: ``tools/export.py`` does that once).

Threads default to the core count (``os.cpu_count()``): LiteRT's ``num_threads``, ONNX
Runtime's ``intra_op_num_threads`` (inter-op 1: the graph is one chain of convolutions).

Example:
    >>> net = open_network("export/hrnet_w32.tflite", threads=2)
    >>> net.description
    'runtime litert (ai-edge-litert 2.3.0), 2 threads, precision int8'
    >>> heatmaps = net.predict_on_batch(crops)
"""

import dataclasses
import importlib.metadata
import os

import numpy as np

from pose.errors import CheckpointError

RUNTIMES = ("auto", "keras", "litert", "onnx")
# The runtime of each format (see the table above).
FORMAT_RUNTIME = {"keras": "keras", "pth": "keras", "saved_model": "keras", "tflite": "litert",
                  "onnx": "onnx"}
# PyTorch HRNet checkpoints (pose.engine.pretrained.TORCH_SUFFIXES, which imports Keras).
TORCH_SUFFIXES = (".pth", ".pt", ".pth.tar")


class ModelNotFoundError(CheckpointError, FileNotFoundError):
    """An exported model file that does not exist (a user error, and a FileNotFoundError)."""


class RuntimeChoiceError(ValueError):
    """A runtime that cannot run the given file, or a file of no known format."""


def model_format(path):
    """``keras``, ``pth``, ``saved_model``, ``tflite`` or ``onnx`` from ``path``; None if
    unknown."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return "saved_model"
    if path.lower().endswith(TORCH_SUFFIXES):
        return "pth"
    for suffix, fmt in ((".keras", "keras"), (".tflite", "tflite"), (".onnx", "onnx")):
        if path.lower().endswith(suffix):
            return fmt
    return None


def choose_runtime(path, runtime="auto"):
    """The runtime that runs ``path``: ``runtime`` itself, checked, or the format's.

    Raises:
        RuntimeChoiceError: unknown format, unknown runtime, or one that cannot run it.
    """
    fmt = model_format(path)
    if fmt is None:
        raise RuntimeChoiceError(f"cannot tell the format of {os.fspath(path)!r}: expected a "
                                 ".keras or .pth checkpoint, a SavedModel folder, .tflite "
                                 "or .onnx")
    if fmt == "saved_model" and not any(
            os.path.isfile(os.path.join(path, name))
            for name in ("saved_model.pb", "saved_model.pbtxt")):
        raise RuntimeChoiceError(f"{os.fspath(path)} is a folder but no SavedModel (it holds "
                                 "no saved_model.pb): give a checkpoint or an exported file")
    if runtime not in RUNTIMES:
        raise RuntimeChoiceError(f"unknown runtime {runtime!r}; choose one of "
                                 f"{', '.join(RUNTIMES)}")
    wanted = FORMAT_RUNTIME[fmt]
    if runtime not in ("auto", wanted):
        hint = ("" if runtime == "keras" else
                f": export it with tools/export.py --format "
                f"{'tflite' if runtime == 'litert' else 'onnx'} first")
        raise RuntimeChoiceError(f"runtime {runtime!r} cannot run {os.fspath(path)!r} "
                                 f"({fmt}, which runs on {wanted!r}){hint}")
    return wanted


def default_threads():
    """The core count (at least 1): the thread count the runtimes use unless told."""
    return os.cpu_count() or 1


def _threads(threads):
    threads = default_threads() if threads is None else int(threads)
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    return threads


def _version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """One input or output of a network file, as its runtime reports it.

    Attributes:
        name: the tensor's name in the file.
        shape: tuple with an int per fixed dimension and None per dynamic one.
        dtype: ``numpy.dtype``.
        quantization: ``(scale, zero_point)`` of a quantized TFLite tensor, else None.
        index: the LiteRT tensor index (None for ONNX).
    """

    name: str
    shape: tuple
    dtype: np.dtype
    quantization: tuple = None
    index: int = None

    def __str__(self):
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name} ({dims}) {np.dtype(self.dtype).name}"


class _Network:
    """What the LiteRT and ONNX Runtime networks share: a description and float32 input.

    ``inputs``/``outputs`` list every tensor (``TensorInfo``) and ``run_outputs`` runs the
    file on one input of its own dtype and returns every output: what a detector file,
    with several outputs and a uint8 input, needs (``pose.apis.detector``)."""

    runtime = None
    package = None

    @property
    def description(self):
        """``runtime NAME (package version), N threads, precision P``: what runs the model."""
        return (f"runtime {self.runtime} ({self.package} {_version(self.package)}), "
                f"{self.threads} thread{'s' if self.threads != 1 else ''}, "
                f"precision {self.precision}")

    def predict_on_batch(self, x):
        """(B, H, W, 3) float32 → (B, H/4, W/4, K) float32 heatmaps."""
        return np.asarray(self._run(np.ascontiguousarray(x, np.float32)), np.float32)


class LiteRTNetwork(_Network):
    """A ``.tflite`` file run by LiteRT's interpreter (XNNPACK delegate on CPU).

    The batch dimension is resized to each call's batch (the export keeps it dynamic);
    re-allocation happens only when the batch size changes.

    Args:
        path: the ``.tflite`` file.
        threads: int, interpreter threads; None: the core count. Default None.
    """

    runtime = "litert"
    package = "ai-edge-litert"

    def __init__(self, path, threads=None):
        from ai_edge_litert.interpreter import Interpreter

        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise ModelNotFoundError(f"TFLite model not found: {self.path}")
        self.threads = _threads(threads)
        try:
            self._interpreter = Interpreter(model_path=self.path, num_threads=self.threads)
        except ValueError as exc:  # LiteRT's message for a file that is not a model
            raise CheckpointError(f"{self.path}: not a readable TFLite model ({exc})") from None
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self.input_size = tuple(int(v) for v in self._input["shape"][1:3])  # (H, W)
        self.precision = tflite_precision(self._interpreter)
        self._batch = None
        self.inputs = [_tflite_info(d) for d in self._interpreter.get_input_details()]
        self.outputs = [_tflite_info(d) for d in self._interpreter.get_output_details()]
        self._shape = None

    def run_outputs(self, x):
        """Every output (in ``outputs`` order) for ``x`` given to the first input as is
        (its dtype and shape; the input is resized when the shape changes)."""
        interp = self._interpreter
        if self._shape != x.shape:
            interp.resize_tensor_input(self._input["index"], list(x.shape), strict=False)
            interp.allocate_tensors()
            self._shape, self._batch = x.shape, None
        interp.set_tensor(self._input["index"], np.ascontiguousarray(x))
        interp.invoke()
        return [interp.get_tensor(t.index).copy() for t in self.outputs]

    def op_outputs(self, op_name):
        """The output tensor indices of the first op named ``op_name`` (e.g. the custom
        ``TFLite_Detection_PostProcess``), or None where the graph has no such op."""
        for op in self._interpreter._get_ops_details():  # noqa: SLF001 (no public listing)
            if op["op_name"] == op_name:
                return [int(i) for i in op["outputs"]]
        return None

    def _run(self, x):
        interp = self._interpreter
        if self._batch != len(x):
            interp.resize_tensor_input(self._input["index"], list(x.shape), strict=False)
            interp.allocate_tensors()
            self._batch, self._shape = len(x), None
        interp.set_tensor(self._input["index"], x)
        interp.invoke()
        return interp.get_tensor(self._output["index"]).copy()


def _tflite_info(detail):
    signature = detail.get("shape_signature", detail["shape"])
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return TensorInfo(detail["name"], tuple(None if d < 0 else int(d) for d in signature),
                      np.dtype(detail["dtype"]),
                      (float(scale), int(zero_point)) if scale else None, int(detail["index"]))


def tflite_precision(interpreter):
    """``float32``, ``float16`` (weights), ``dynamic`` (int8 weights, float activations) or
    ``int8`` (int8 weights and activations) of a loaded TFLite model, read from its tensors.

    float16 weights appear as float16 constants; int8 activations as int8 tensors that are
    not constants (no buffer data: ``quantization`` with a scale but produced by an op).
    Tells the modes of ``pose.apis.export.export_model`` apart; other mixes are named by
    the narrowest weight type.
    """
    tensors = interpreter.get_tensor_details()
    dtypes = {np.dtype(t["dtype"]) for t in tensors}
    if np.dtype(np.int8) not in dtypes:
        return "float16" if np.dtype(np.float16) in dtypes else "float32"
    # int8 activations: the output of some op is int8. Conv outputs of a fully quantized
    # model are int8; a dynamic-range model keeps them float32.
    ops = interpreter._get_ops_details()  # noqa: SLF001 (the only way to list op outputs)
    by_index = {t["index"]: np.dtype(t["dtype"]) for t in tensors}
    for op in ops:
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D") and any(
                by_index.get(i) == np.dtype(np.int8) for i in op["outputs"]):
            return "int8"
    return "dynamic"


class OnnxNetwork(_Network):
    """An ``.onnx`` file run by ONNX Runtime's CPU execution provider.

    Args:
        path: the ``.onnx`` file (batch dimension dynamic, as ``tools/export.py`` writes it).
        threads: int, intra-op threads; None: the core count. Default None.
    """

    runtime = "onnx"
    package = "onnxruntime"

    def __init__(self, path, threads=None):
        import onnxruntime

        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise ModelNotFoundError(f"ONNX model not found: {self.path}")
        self.threads = _threads(threads)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: no graph-optimizer notices on stderr
        try:
            self._session = onnxruntime.InferenceSession(
                self.path, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise CheckpointError(f"{self.path}: not a readable ONNX model ({exc})") from None
        inp = self._session.get_inputs()[0]
        self._input_name = inp.name
        self.input_size = tuple(inp.shape[1:3])  # (H, W)
        self.precision = onnx_precision(self._session)
        self.inputs = [_onnx_info(t) for t in self._session.get_inputs()]
        self.outputs = [_onnx_info(t) for t in self._session.get_outputs()]

    def _run(self, x):
        return self._session.run(None, {self._input_name: x})[0]

    def run_outputs(self, x):
        """Every output (in ``outputs`` order) for ``x`` given to the first input as is."""
        return self._session.run(None, {self._input_name: np.ascontiguousarray(x)})

    def op_outputs(self, op_name):
        """None: ONNX Runtime does not list a graph's ops (see ``LiteRTNetwork``)."""
        return None


# ONNX element types as ONNX Runtime names them (``NodeArg.type``).
_ONNX_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
                "tensor(double)": np.float64, "tensor(uint8)": np.uint8,
                "tensor(int8)": np.int8, "tensor(int32)": np.int32, "tensor(int64)": np.int64,
                "tensor(bool)": np.bool_}


def _onnx_info(arg):
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in (arg.shape or ()))
    return TensorInfo(arg.name, shape, np.dtype(_ONNX_DTYPES.get(arg.type, np.float32)))


def onnx_precision(session):
    """``float32``, ``dynamic`` or ``int8`` of an ONNX Runtime session, from the model's
    metadata (``precision``, written by ``pose.apis.export.export_model``); ``unknown``
    for a file from elsewhere (the session does not expose the graph to inspect)."""
    props = session.get_modelmeta().custom_metadata_map
    return props.get("precision", "unknown")


def open_network(path, runtime="auto", threads=None):
    """A LiteRT or ONNX Runtime network for ``path`` (``.tflite`` / ``.onnx``).

    Raises:
        RuntimeChoiceError: ``path`` is not a ``.tflite``/``.onnx`` file, or ``runtime``
            cannot run it (``.keras`` and SavedModel go through
            ``pose.apis.estimator.load_network``, which needs TensorFlow).
    """
    chosen = choose_runtime(path, runtime)
    if chosen == "litert":
        return LiteRTNetwork(path, threads)
    if chosen == "onnx":
        return OnnxNetwork(path, threads)
    raise RuntimeChoiceError(f"{os.fspath(path)!r} needs TensorFlow (runtime 'keras'); "
                             "open it with pose.apis.estimator.load_network")
