"""Top-down pose estimation of whole images: crops of person boxes batched across images,
the evaluation ``Predictor``, then rescoring and OKS-NMS per image.

    image + person boxes ──crop (box_to_center_scale + one affine warp)──▶ crops,
    batched ACROSS images ──Predictor (flip test, decode, un-warp)──▶ image keypoints
    ──rescore + OKS-NMS per image (pose.evaluation.metrics)──▶ ``People``

The crop, the ``Predictor``, the rescoring and the OKS-NMS are the ones evaluation uses
(``pose.evaluation.evaluator``), so the keypoints found here are what ``tools/test.py``
scores.

Batching: crops from consecutive images (or video frames) fill batches of ``batch_size``
crops, and results come back in input order. The network runs through ONE ``tf.function``
traced with a dynamic batch dimension (``batching="dynamic"``, the default), so every
batch size reuses the same trace and nothing is padded; the crops of the first image go
through at once, so its overlay appears without waiting for a full batch (padding one
image's boxes to a fixed batch costs more compute than the real crops; see BENCHMARKS.md).
``batching="padded"`` keeps the fixed-shape alternative (every batch zero-padded to
``batch_size``, Keras' ``predict_on_batch``).
"""

import dataclasses
import logging
import os
import threading

import numpy as np

from datasets.metadata import DatasetMeta, MetadataError
from datasets.transforms import crop_boxes, normalize_image
from pose.checks import positive
from pose.codec import codec_for_model
from pose.config import TestConfig
from pose.errors import CheckpointError
from pose.evaluation.metrics import rescore_and_nms
from pose.evaluation.predictor import Predictor

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class People:
    """The people found in one image, after rescoring and OKS-NMS (highest score first)."""

    keypoints: np.ndarray  # (P, K, 2) image pixels
    keypoint_scores: np.ndarray  # (P, K)
    scores: np.ndarray  # (P,) box score × mean confident keypoint score
    boxes: np.ndarray  # (P, 4) x, y, w, h
    box_scores: np.ndarray  # (P,)
    track_ids: np.ndarray = None  # (P,) int, video only (``pose.apis.tracking``)

    def __len__(self):
        return len(self.scores)

    def subset(self, keep):
        """The people selected by ``keep`` (a boolean mask or indices), in order."""
        values = (getattr(self, f.name) for f in dataclasses.fields(self))
        return People(*(None if v is None else np.asarray(v)[keep] for v in values))

    def records(self):
        """One JSON-friendly dict per person (keypoints as COCO's flat [x, y, s]·K)."""
        out = []
        for i in range(len(self)):
            flat = []
            for (x, y), score in zip(self.keypoints[i], self.keypoint_scores[i]):
                flat += [round(float(x), 3), round(float(y), 3), float(score)]
            out.append({
                "keypoints": flat,
                "score": float(self.scores[i]),
                "box": [round(float(v), 2) for v in self.boxes[i]],
                "box_score": float(self.box_scores[i]),
                "keypoint_scores": [float(v) for v in self.keypoint_scores[i]],
            })
            if self.track_ids is not None:
                out[-1]["track_id"] = int(self.track_ids[i])
        return out


@dataclasses.dataclass
class Frame:
    """An image to estimate poses on: ``image`` (H, W, 3) uint8 RGB, person ``boxes``
    (M, 4) xywh with ``box_scores`` (M,); ``key`` is handed back untouched."""

    key: object
    image: np.ndarray
    boxes: np.ndarray
    box_scores: np.ndarray


class DynamicBatchModel:
    """``predict_on_batch`` through one ``tf.function`` traced for any batch size.

    Keras' own ``predict_on_batch`` traces per input shape (and, with
    ``reduce_retracing``, once more for a relaxed shape); tracing a W32 HRNet costs
    seconds, so a run that meets several batch sizes would pay it several times.

    With ``background=True`` the graph is traced here, then instantiated in a thread (a
    first call on one blank crop: TensorFlow builds the executor and kernels then,
    whatever the batch); the first ``predict_on_batch`` waits for it. Called before the
    weights load (``load_network``), the instantiation, which runs in TensorFlow's C++
    without the GIL, overlaps with the loading (Python). The trace itself stays in the
    caller's thread: it is Python too, and would only share the GIL with the loading.
    The weights may change under the thread: its output is discarded, and the graph reads
    the variables at every call.

    Args:
        model: a Keras model with a fixed input size (its batch dimension is left free).
        background: bool, trace now and instantiate in a thread. Default False.
    """

    def __init__(self, model, background=False):
        import tensorflow as tf

        self.model = model
        spec = tf.TensorSpec((None,) + tuple(model.input_shape[1:]), tf.float32)
        self._call = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        self._thread = None
        self._thread_error = None
        if background:
            self._call.get_concrete_function()  # the trace
            # Not a daemon: interpreter shutdown waits for it (killing a thread inside
            # TensorFlow's C++ aborts the process).
            self._thread = threading.Thread(target=self._prepare, name="instantiate-graph")
            self._thread.start()

    @property
    def input_shape(self):
        return self.model.input_shape

    @property
    def output_shape(self):
        return self.model.output_shape

    @property
    def dtype_policy(self):
        return self.model.dtype_policy

    def _prepare(self):
        try:
            self._call(np.zeros((1,) + tuple(self.model.input_shape[1:]), np.float32))
        except Exception as exc:  # noqa: BLE001 (re-raised by the first predict_on_batch)
            self._thread_error = exc

    def predict_on_batch(self, x):
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            if self._thread_error is not None:
                raise self._thread_error
        return self._call(np.asarray(x, np.float32)).numpy()


def set_tensorflow_threads(intra_op, inter_op):
    """Size TensorFlow's thread pools; safe to call again.

    TensorFlow fixes its pools when it first runs anything and raises ``RuntimeError`` on
    any later change, so a second model loaded in one process (a test, a server, a notebook
    that built a model first) would crash here. A repeated call with the sizes already in
    force does nothing; other sizes once the pools are running are logged and left as they
    are (they apply to a fresh process).
    """
    import tensorflow as tf

    pools = tf.config.threading
    wanted = (intra_op, inter_op)
    current = (pools.get_intra_op_parallelism_threads(),
               pools.get_inter_op_parallelism_threads())
    if current == wanted:
        return
    try:
        pools.set_intra_op_parallelism_threads(intra_op)
        pools.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:
        logger.warning("TensorFlow is already running with %s intra-op and %s inter-op "
                       "threads (0: its default); %s and %s apply to a fresh process only",
                       current[0], current[1], intra_op, inter_op)


def load_network(path, runtime="auto", threads=None, input_size=None, optimize_graph=True,
                 trace_ahead=False):
    """A network for ``PoseEstimator`` and its config: a ``.keras`` checkpoint, a PyTorch
    HRNet checkpoint (``.pth``, converted on the fly; ``input_size`` as
    ``pose.engine.pretrained.model_from_torch_checkpoint``), or an export of
    ``tools/export.py`` (SavedModel folder, ``.tflite``, ``.onnx``).

    A ``.tflite`` runs on LiteRT and an ``.onnx`` on ONNX Runtime
    (``pose.apis.runtimes``): neither imports TensorFlow or Keras, nor rebuilds or traces
    the graph, which is most of the start-up time (``tools/benchmark_startup.py``). A
    ``.keras`` checkpoint and a SavedModel run on TensorFlow. The config is the
    ``NAME.yaml`` beside either (``tools/export.py`` writes it), or None.

    Args:
        path: the checkpoint or export.
        runtime: "auto" (the format's runtime), "keras", "litert" or "onnx"; checked
            against the format (``pose.apis.runtimes.choose_runtime``). Default "auto".
        threads: int, the runtime's threads; None: the core count (TensorFlow's default
            for ``keras``). For ``keras`` a number sets TensorFlow's intra- and inter-op
            pools, which is process-wide. Default None.
        input_size: ``(w, h)`` of a ``.pth`` model; None: from its file name. Default None.
        optimize_graph: bool; False turns TensorFlow's graph optimizer (Grappler) off,
            process-wide, for the ``keras`` runtime. On HRNet it costs ~1.6 s of CPU at
            the first call of a W32 (once per traced graph) and changes neither the
            steady-state speed nor the heatmaps beyond float rounding (~2e-7); without it
            the graph runs the ops as written, as eager Keras does (BENCHMARKS.md,
            "Start-up of inference"). ``tools/infer.py`` passes False. Default True.
        trace_ahead: bool; for a ``.keras`` checkpoint, return a ``DynamicBatchModel``
            whose graph is traced as soon as the network is built and instantiated in a
            thread while the weights load (what ``PoseEstimator`` would do at its first
            call anyway). ``tools/infer.py`` passes True. Default False.

    Returns:
        ``(model, config)``; ``model`` has ``predict_on_batch`` (a Keras model, or with
        ``trace_ahead`` a ``DynamicBatchModel`` of it), and ``runtime_description`` tells
        what runs it.
    """
    from pose.apis.runtimes import choose_runtime, open_network
    from pose.config import config_path_for, load_config

    path = os.fspath(path)
    chosen = choose_runtime(path, runtime)
    if chosen == "keras" and threads is not None:
        set_tensorflow_threads(int(threads), int(threads))
    if chosen == "keras" and not optimize_graph:
        import tensorflow as tf

        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    if chosen == "keras" and not os.path.isdir(path):  # .keras, .pth
        from pose.engine.pretrained import load_any_checkpoint

        traced = []
        on_built = ((lambda net: traced.append(DynamicBatchModel(net, background=True)))
                    if trace_ahead else None)
        model, config = load_any_checkpoint(path, input_size=input_size, on_built=on_built)
        return (traced[0] if traced else model), config
    if not os.path.exists(path):
        raise CheckpointError(f"model not found: {path}")
    if chosen == "keras":
        from pose.apis.export import ExportedModel

        model = ExportedModel(path.rstrip("/\\"), "saved_model")
    else:
        model = open_network(path, chosen, threads)
        _check_pose_network(model, path)
    config_path = config_path_for(path)
    return model, load_config(config_path) if os.path.isfile(config_path) else None


def _check_pose_network(network, path):
    """Refuse a ``.tflite``/``.onnx`` file that is no pose model of ``tools/export.py`` (one
    (B, H, W, 3) input, one (B, h, w, K) heatmap output): a detector given as --weights."""
    inputs, outputs = network.inputs, network.outputs
    shape = inputs[0].shape if len(inputs) == 1 else None
    if (shape is None or len(shape) != 4 or shape[3] not in (3, None) or len(outputs) != 1
            or len(outputs[0].shape) != 4):
        raise CheckpointError(
            f"{path}: not a pose model exported by tools/export.py: it takes "
            f"{', '.join(map(str, inputs))} and gives {', '.join(map(str, outputs))}, where a "
            "pose model takes (B, H, W, 3) crops and gives (B, h, w, K) heatmaps (a detector "
            "file goes to --detector)")


def runtime_info(model):
    """``{"runtime", "package", "precision"}`` of a ``load_network`` model: what
    ``metrics.json`` records of the model that was evaluated."""
    if hasattr(model, "description"):  # pose.apis.runtimes networks
        return {"runtime": model.runtime, "package": model.package,
                "precision": model.precision}
    precision = getattr(model, "precision", None) or getattr(
        getattr(model, "dtype_policy", None), "name", "float32")
    return {"runtime": "keras", "package": "tensorflow", "precision": precision}


def runtime_description(model, threads=None):
    """``runtime NAME (package version), N threads, precision P`` of a ``load_network``
    model (the first line of ``tools/infer.py``)."""
    if hasattr(model, "description"):  # pose.apis.runtimes networks
        return model.description
    import tensorflow as tf

    from pose.apis.runtimes import default_threads

    n = threads or tf.config.threading.get_intra_op_parallelism_threads() or default_threads()
    precision = getattr(model, "precision", None) or getattr(
        getattr(model, "dtype_policy", None), "name", "float32")
    return (f"runtime keras (TensorFlow {tf.__version__}), {n} thread{'s' if n != 1 else ''}, "
            f"precision {precision}")


class PoseEstimator:
    """Top-down pose estimation of many images at once, batched across images.

    Args:
        model: heatmap model (crops (B, H, W, 3) → heatmaps (B, H_hm, W_hm, K)).
        codec: the model's ``HeatmapCodec`` (``pose.codec.codec_for_model``).
        meta: ``DatasetMeta`` (flip pairs, OKS sigmas); None takes COCO's (K = 17).
        test_cfg: ``pose.config.TestConfig``: flip test and shift, batch size, rescoring
            and OKS-NMS; None takes the defaults (HRNet's). Default None.
        flip: bool, flip test; None takes ``test_cfg.flip_test``. Default None.
        batch_size: int, crops per model call (doubled by the flip test); None takes
            ``test_cfg.batch_size``. Default None.
        padding: float, box enlargement before cropping (as evaluation). Default 1.25.
        batching: "dynamic" (one trace with a dynamic batch dimension, no padding, first
            image flushed at once) or "padded" (every batch zero-padded to ``batch_size``,
            ``predict_on_batch``). Default "dynamic".
        max_pending: int, most images held while a batch fills. Default 16.

    Example:
        >>> codec = codec_for_model(model, config.data.sigma, config.data.encoding,
        ...                         config.test.decoding)
        >>> estimator = PoseEstimator(model, codec, DatasetMeta.coco(), config.test)
        >>> people = estimator.predict_image(image, boxes, box_scores)
    """

    def __init__(self, model, codec, meta=None, test_cfg=None, flip=None, batch_size=None,
                 padding=1.25, batching="dynamic", max_pending=16):
        self.test_cfg = test_cfg if test_cfg is not None else TestConfig()
        self.meta = meta if meta is not None else DatasetMeta.coco()
        output = getattr(model, "output_shape", None)
        if output is not None and output[-1] != self.meta.num_keypoints:
            raise MetadataError(f"the model predicts {output[-1]} keypoints but the metadata "
                                f"has {self.meta.num_keypoints}; pass meta= (or a config "
                                "that describes the dataset)")
        self.codec = codec
        self.flip = self.test_cfg.flip_test if flip is None else bool(flip)
        # 0 is a mistake, not "the default" (None is)
        self.batch_size = positive(self.test_cfg.batch_size if batch_size is None
                                   else batch_size, "batch_size")
        self.padding = float(padding)
        if batching not in ("dynamic", "padded"):
            raise ValueError(f"batching must be 'dynamic' or 'padded', got {batching!r}")
        self.batching = batching
        network = model
        if isinstance(model, DynamicBatchModel):  # load_network(..., trace_ahead=True)
            network = model if batching == "dynamic" else model.model
        elif batching == "dynamic" and hasattr(model, "input_shape"):
            network = DynamicBatchModel(model)
        self.predictor = Predictor(network, self.codec,
                                   flip_index=self.meta.flip_index_array if self.flip else None,
                                   shift_heatmap=self.test_cfg.shift_heatmap)
        self.udp = self.codec.encoding == "udp"
        self.max_pending = max(1, int(max_pending))
        self.model_calls = 0

    @classmethod
    def from_config(cls, model, config, **kwargs):
        """The estimator of an experiment config: codec from the model and ``data``/``test``,
        the dataset metadata of ``data`` (``DatasetMeta.from_config``: what training saved
        in the checkpoint's config, or its preset; COCO's for a 17-keypoint model without
        either), ``test``; ``kwargs`` as the constructor."""
        codec = codec_for_model(model, sigma=config.data.sigma, encoding=config.data.encoding,
                                decoding=config.test.decoding,
                                input_size=config.model.input_size)
        meta = DatasetMeta.from_config(config.data, num_keypoints=config.model.num_keypoints)
        return cls(model, codec, meta, config.test, **kwargs)

    def crops(self, image, boxes):
        """uint8 crops (M, h, w, 3) of ``boxes`` and their centres and scales (M, 2)."""
        return crop_boxes(image, boxes, self.codec.input_size, self.padding, self.udp)

    def _predict_batch(self, crops, center, scale):
        """Predictor on ``crops`` (zero-padded to ``batch_size`` with ``batching="padded"``)."""
        n = len(crops)
        pad = self.batch_size - n if self.batching == "padded" else 0
        x = normalize_image(crops)
        if pad > 0:
            x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], np.float32)])
            center = np.concatenate([center, np.zeros((pad, 2), center.dtype)])
            scale = np.concatenate([scale, np.ones((pad, 2), scale.dtype)])
        keypoints, scores = self.predictor.predict(x, center, scale)
        self.model_calls += 1
        return keypoints[:n], scores[:n]

    def postprocess(self, keypoints, keypoint_scores, boxes, box_scores, scale):
        """Rescoring and OKS-NMS of one image's instances (evaluation's ``rescore_and_nms``)."""
        test = self.test_cfg
        areas = np.prod(np.asarray(scale, np.float64).reshape(-1, 2), axis=1)
        keep, scores = rescore_and_nms(
            keypoints, keypoint_scores, box_scores, areas, self.meta.sigmas_array,
            score_threshold=test.keypoint_score_threshold,
            nms_threshold=test.oks_nms_threshold, soft_nms=test.soft_nms)
        return People(np.asarray(keypoints, np.float64)[keep],
                      np.asarray(keypoint_scores, np.float64)[keep], scores[keep],
                      np.asarray(boxes, np.float64)[keep], np.asarray(box_scores)[keep])

    def iter_frames(self, frames):
        """Yield ``(frame, People)`` for every ``Frame`` in order, crops batched across frames.

        A frame is yielded as soon as all of its crops have been through the model. At
        most ``max_pending`` frames wait for a batch to fill (then a partial batch runs),
        which bounds the memory that large photos with one box each would take.
        """
        pending = []  # [frame, crops, center, scale, keypoints list, scores list]
        queue = []  # (pending entry, crop index) waiting for the model

        def run(count):
            nonlocal queue
            part, queue = queue[:count], queue[count:]
            crops = np.stack([e[1][i] for e, i in part])
            center = np.stack([e[2][i] for e, i in part])
            scale = np.stack([e[3][i] for e, i in part])
            keypoints, scores = self._predict_batch(crops, center, scale)
            for (entry, i), kp, sc in zip(part, keypoints, scores):
                entry[4][i] = kp
                entry[5][i] = sc

        def finished():
            while pending and all(k is not None for k in pending[0][4]):
                frame, _, _, scale, kps, scs = pending.pop(0)
                k = self.meta.num_keypoints
                kp = np.stack(kps) if kps else np.zeros((0, k, 2))
                sc = np.stack(scs) if scs else np.zeros((0, k))
                yield frame, self.postprocess(kp, sc, frame.boxes, frame.box_scores, scale)

        first = True
        for frame in frames:
            frame.boxes = np.asarray(frame.boxes, np.float64).reshape(-1, 4)
            frame.box_scores = np.asarray(frame.box_scores, np.float64).reshape(-1)
            crops, center, scale = self.crops(frame.image, frame.boxes)
            entry = [frame, crops, center, scale, [None] * len(crops), [None] * len(crops)]
            pending.append(entry)
            queue.extend((entry, i) for i in range(len(crops)))
            while len(queue) >= self.batch_size:
                run(self.batch_size)
            if queue and ((first and self.batching == "dynamic")
                          or len(pending) >= self.max_pending):
                run(len(queue))  # the first image at once: a quick first result
            first = False
            yield from finished()
        while queue:
            run(self.batch_size)
        yield from finished()

    def predict_image(self, image, boxes, box_scores=None):
        """``People`` of one RGB image with the given person boxes (xywh)."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        scores = np.ones(len(boxes)) if box_scores is None else box_scores
        ((_, people),) = list(self.iter_frames([Frame(None, image, boxes, scores)]))
        return people
