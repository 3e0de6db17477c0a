"""Pose inference on the user's own images, folders and videos (what ``tools/infer.py`` runs).

    inputs (files, folders, globs, videos) ──collect_inputs──▶ InputFile list
    image/frame ──BoxSource (detections JSON | HOG | whole image)──▶ person boxes
    boxes ──crop (box_to_center_scale + one affine warp)──▶ crops, batched ACROSS images
    crops ──Predictor (flip test, decode, un-warp), one traced function──▶ image keypoints
    ──rescore + OKS-NMS per image (pose.evaluation)──▶ people ──visualize.draw_pose──▶ overlays

The crop, the ``Predictor``, the rescoring and the OKS-NMS are the ones evaluation uses
(``pose.evaluator``), so the keypoints written here are what ``tools/test.py`` scores.

Batching: crops from consecutive images (or video frames) fill batches of ``batch_size``
crops, and results come back in input order. The network runs through ONE ``tf.function``
traced with a dynamic batch dimension (``batching="dynamic"``, the default), so every
batch size reuses the same trace and nothing is padded; the crops of the first image go
through at once, so its overlay appears without waiting for a full batch. Measured on
this project's 2 shared CPU cores, W32 256×192 (``tools/benchmark_startup.py``): padding
one image's 22 boxes to a fixed batch of 32 (64 crops with the flip test) costs ~10 s
of compute against ~7.5 s for the 44 real crops, and a lone whole-image box padded to 32
costs ~10 s against 0.4 s. ``batching="padded"`` keeps the fixed-shape alternative (every
batch zero-padded to ``batch_size``, Keras' ``predict_on_batch``).

Outputs (every file written to a temporary name in ``out_dir`` and renamed when complete):

- ``<name>.<ext>``: an overlay per image (same base name and extension; sub-folders of a
  folder input are kept).
- ``predictions.json``: COCO keypoint results of all images (``image_id``,
  ``category_id``, ``keypoints`` [x, y, s]·K, ``score``) plus ``file_name``, ``box``
  (x, y, w, h; not ``bbox``, which would change how pycocotools' ``loadRes`` computes
  areas), ``box_score`` and ``keypoint_scores``. ``image_id`` is, in order of preference,
  the detection entry's id matched by file name, the number of a COCO-style name
  (``000000000785.jpg`` → 785), else the input's position (1, 2, ...).
- ``<video stem>.mp4`` (mp4v) and ``<video stem>.jsonl``: the overlay video and one JSON
  line per frame ``{"frame", "time_s", "people": [...]}``.

Bad input: a missing path or a glob matching nothing raises ``InputError`` naming it, as
does a folder without images or videos and a video that cannot be opened; an image that
cannot be decoded is skipped and listed in the report.
"""

import contextlib
import dataclasses
import glob
import json
import os
import re
import time

import cv2
import numpy as np

from datasets.coco import ImageDecodeError, load_detections, read_image_rgb
from datasets.metadata import DatasetMeta
from datasets.transforms import (box_to_center_scale, get_affine_transform, normalize_image,
                                 warp_image)
from pose.evaluation import oks_nms, rescore_instances, soft_oks_nms
from pose.predictor import Predictor
from pose.visualize import atomic_path, draw_pose, save_image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".tif", ".tiff",
                    ".webp", ".jp2", ".pbm", ".pgm", ".ppm", ".pnm", ".pxm", ".sr", ".ras",
                    ".exr", ".hdr", ".pic", ".avif")
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg",
                    ".wmv", ".flv", ".3gp", ".ts", ".mts")
HOG_HELP = ('this OpenCV build has no cv2.HOGDescriptor (OpenCV 5 wheels dropped it); '
            'install an OpenCV 4 wheel for the HOG person detector: '
            'pip install "opencv-python-headless<5"; or pass --boxes DET.json '
            '(COCO detection results) or --whole-image')


class InputError(ValueError):
    """An input the user named cannot be used (missing path, empty folder, bad video)."""


# --------------------------------------------------------------------------- inputs


@dataclasses.dataclass(frozen=True)
class InputFile:
    """One input: ``path`` on disk, ``kind`` ("image" | "video"), ``name`` for the outputs
    (the base name, or the path relative to a folder input)."""

    path: str
    kind: str
    name: str


def _kind(path):
    return "video" if os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS else "image"


def _folder_files(folder, recursive):
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            ext = os.path.splitext(f)[1].lower()
            if not f.startswith(".") and ext in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS:
                full = os.path.join(root, f)
                found.append(InputFile(full, _kind(f), os.path.relpath(full, folder)))
        if not recursive:
            break
    return found


def collect_inputs(inputs, recursive=False):
    """Expand files, folders and glob patterns into an ordered list of ``InputFile``.

    A folder contributes its image and video files (by extension, hidden files left out),
    sorted, with sub-folders when ``recursive``. A named file is taken whatever its
    extension (an undecodable one is skipped later). Duplicates are dropped.

    Raises:
        InputError: a path that does not exist (naming it), a pattern matching nothing,
            or a folder with no image or video in it.
    """
    items, seen = [], set()
    for raw in inputs:
        raw = os.fspath(raw)
        if os.path.isdir(raw):
            found = _folder_files(raw, recursive)
            if not found:
                hint = "" if recursive else " (pass --recursive to search sub-folders)"
                raise InputError(f"folder {raw!r} holds no image or video files{hint}; "
                                 f"image extensions: {' '.join(IMAGE_EXTENSIONS)}")
        elif os.path.isfile(raw):
            found = [InputFile(raw, _kind(raw), os.path.basename(raw))]
        elif glob.has_magic(raw):
            matches = sorted(glob.glob(raw, recursive=recursive))
            found = []
            for m in matches:
                if os.path.isdir(m):
                    found.extend(_folder_files(m, recursive))
                elif os.path.isfile(m):
                    found.append(InputFile(m, _kind(m), os.path.basename(m)))
            if not found:
                raise InputError(f"pattern {raw!r} matches no file")
        else:
            raise InputError(f"input not found: {raw!r} (no such file or folder)")
        for item in found:
            key = os.path.realpath(item.path)
            if key not in seen:
                seen.add(key)
                items.append(item)
    return items


# --------------------------------------------------------------------------- boxes


class WholeImageBoxes:
    """One person box covering the whole image (score 1)."""

    name = "whole image"

    def __call__(self, image, file_name=None, image_id=None):
        h, w = image.shape[:2]
        return np.array([[0.0, 0.0, float(w), float(h)]]), np.ones(1)


class DetectionBoxes:
    """Person boxes from a COCO detection-results JSON.

    An image matches the entries whose ``file_name`` (base name) is its base name, when
    the file carries ``file_name``; otherwise those whose ``image_id`` is its id (a
    COCO-style numeric name; for a video, the 0-based frame index).

    Args:
        path: the JSON file (``[{"image_id", "bbox", "score", "category_id"?, "file_name"?}]``).
        score_threshold: float, boxes scoring below are dropped. Default 0.0.
        category_id: int, the person category; entries of other categories are dropped
            (entries without ``category_id`` are kept). Default 1.
    """

    def __init__(self, path, score_threshold=0.0, category_id=1):
        self.path = os.fspath(path)
        self.name = f"detections {self.path}"
        self.by_id, self.by_name, self.id_by_name = {}, {}, {}
        for d in load_detections(self.path):  # AnnotationError naming the file
            if d.get("category_id", category_id) != category_id:
                continue
            if float(d["score"]) < score_threshold:
                continue
            box = d["bbox"]
            if len(box) != 4 or not np.all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
                continue
            entry = (tuple(float(v) for v in box), float(d["score"]))
            if "file_name" in d:
                name = os.path.basename(str(d["file_name"]))
                self.by_name.setdefault(name, []).append(entry)
                self.id_by_name.setdefault(name, d["image_id"])
            else:
                self.by_id.setdefault(d["image_id"], []).append(entry)

    def image_id_for(self, file_name):
        """The ``image_id`` the detection file gives ``file_name``, or None."""
        return self.id_by_name.get(os.path.basename(file_name))

    def __call__(self, image, file_name=None, image_id=None):
        entries = None
        if file_name is not None:
            entries = self.by_name.get(os.path.basename(file_name))
        if entries is None and image_id is not None:
            entries = self.by_id.get(image_id)
        if not entries:
            return np.zeros((0, 4)), np.zeros(0)
        return (np.array([e[0] for e in entries], np.float64),
                np.array([e[1] for e in entries], np.float64))


class HogBoxes:
    """OpenCV's HOG + linear SVM people detector (Dalal & Triggs, CVPR 2005).

    Images are searched at up to 800 pixels on the long side; scores are the SVM margins
    squashed by a logistic function. Raises ``InputError`` with install advice where
    ``cv2.HOGDescriptor`` does not exist (OpenCV 5).
    """

    name = "HOG people detector"

    def __init__(self, max_side=800):
        if not hasattr(cv2, "HOGDescriptor"):
            raise InputError(HOG_HELP)
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.max_side = max_side

    def __call__(self, image, file_name=None, image_id=None):
        h, w = image.shape[:2]
        zoom = min(1.0, self.max_side / max(h, w))
        small = image if zoom == 1.0 else cv2.resize(image, (round(w * zoom), round(h * zoom)),
                                                     interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        rects, weights = self.hog.detectMultiScale(grey, winStride=(8, 8), padding=(8, 8),
                                                   scale=1.05)
        if len(rects) == 0:
            return np.zeros((0, 4)), np.zeros(0)
        boxes = np.asarray(rects, np.float64).reshape(-1, 4) / zoom
        scores = 1.0 / (1.0 + np.exp(-np.asarray(weights, np.float64).reshape(-1)))
        return boxes, scores


# --------------------------------------------------------------------------- estimator


@dataclasses.dataclass
class People:
    """The people found in one image, after rescoring and OKS-NMS (highest score first)."""

    keypoints: np.ndarray  # (P, K, 2) image pixels
    keypoint_scores: np.ndarray  # (P, K)
    scores: np.ndarray  # (P,) box score × mean confident keypoint score
    boxes: np.ndarray  # (P, 4) x, y, w, h
    box_scores: np.ndarray  # (P,)

    def __len__(self):
        return len(self.scores)

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

    Args:
        model: a Keras model with a fixed input size (its batch dimension is left free).
    """

    def __init__(self, model):
        import tensorflow as tf

        self.model = model
        spec = tf.TensorSpec((None,) + tuple(model.input_shape[1:]), tf.float32)
        self._call = tf.function(lambda x: model(x, training=False), input_signature=[spec])

    def predict_on_batch(self, x):
        return self._call(np.asarray(x, np.float32)).numpy()


def load_network(path):
    """A network for ``PoseEstimator`` and its config: a ``.keras`` checkpoint, or an export
    of ``tools/export.py`` (SavedModel folder, ``.tflite``, ``.onnx``).

    An export skips rebuilding the Keras model and tracing it, which is most of the
    start-up time (W32 on 2 CPU cores, first overlay: ~25 s from a ``.keras``, ~14 s from
    a ``.tflite``; ``tools/benchmark_startup.py``). The config is the ``NAME.yaml`` beside
    either (``tools/export.py`` writes it), or None.

    Returns:
        ``(model, config)``; ``model`` has ``predict_on_batch``.
    """
    from pose.checkpoint import config_path_for, load_model
    from pose.config import load_config

    path = os.fspath(path)
    if path.endswith(".keras"):
        return load_model(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model not found: {path}")
    from pose.export import ExportedModel

    model = ExportedModel(path.rstrip("/\\") if os.path.isdir(path) else path)
    config_path = config_path_for(path.rstrip("/\\"))
    return model, load_config(config_path) if os.path.isfile(config_path) else None


class PoseEstimator:
    """Top-down pose estimation of many images at once, batched across images.

    Args:
        model: heatmap model (crops (B, H, W, 3) → heatmaps (B, H/4, W/4, K)).
        config: ``pose.config.Config``: codec (``model.input_size``, ``data``), flip shift,
            rescoring and OKS-NMS (``test``).
        meta: ``DatasetMeta``; default COCO's (K must then be 17).
        flip: bool, flip test; None takes ``config.test.flip_test``. Default None.
        batch_size: int, crops per model call (doubled by the flip test); None takes
            ``config.test.batch_size``. Default None.
        padding: float, box enlargement before cropping (as evaluation). Default 1.25.
        batching: "dynamic" (one trace with a dynamic batch dimension, no padding, first
            image flushed at once) or "padded" (every batch zero-padded to ``batch_size``,
            ``predict_on_batch``). Default "dynamic".
        max_pending: int, most images held while a batch fills. Default 16.

    Example:
        >>> estimator = PoseEstimator(model, config)
        >>> people = estimator.predict_image(image, boxes, box_scores)
    """

    def __init__(self, model, config, meta=None, flip=None, batch_size=None, padding=1.25,
                 batching="dynamic", max_pending=16):
        from pose.evaluator import make_codec  # imports TensorFlow: only when a model is used

        self.config = config
        if meta is None:
            meta = DatasetMeta.coco()
            if config.data.oks_sigmas is not None:
                meta = DatasetMeta(meta.keypoint_names, meta.skeleton, config.data.oks_sigmas)
        self.meta = meta
        if self.meta.num_keypoints != config.model.num_keypoints:
            raise ValueError(f"the model predicts {config.model.num_keypoints} keypoints but "
                             f"the metadata has {self.meta.num_keypoints}; pass meta=")
        self.codec = make_codec(config)
        self.flip = config.test.flip_test if flip is None else bool(flip)
        self.batch_size = int(batch_size or config.test.batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        self.padding = float(padding)
        if batching not in ("dynamic", "padded"):
            raise ValueError(f"batching must be 'dynamic' or 'padded', got {batching!r}")
        self.batching = batching
        network = model
        if batching == "dynamic" and hasattr(model, "input_shape"):
            network = DynamicBatchModel(model)
        self.predictor = Predictor(network, self.codec,
                                   flip_index=self.meta.flip_index_array if self.flip else None,
                                   shift_heatmap=config.test.shift_heatmap)
        self.udp = self.codec.encoding == "udp"
        w, h = self.codec.input_size
        self.aspect_ratio = w / h
        self.max_pending = max(1, int(max_pending))
        self.model_calls = 0

    def crops(self, image, boxes):
        """uint8 crops (M, h, w, 3) of ``boxes`` and their centres and scales (M, 2)."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        center, scale = box_to_center_scale(boxes, self.aspect_ratio, self.padding)
        w, h = self.codec.input_size
        crops = np.empty((len(boxes), h, w, 3), np.uint8)
        for i in range(len(boxes)):
            matrix = get_affine_transform(center[i], scale[i], 0.0, (w, h), udp=self.udp)
            crops[i] = warp_image(image, matrix, (w, h))
        return crops, center, scale

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
        """Rescoring and OKS-NMS of one image's instances (as ``postprocess_predictions``)."""
        test = self.config.test
        scores = rescore_instances(box_scores, keypoint_scores, test.keypoint_score_threshold)
        if len(scores) == 0:
            keep = np.zeros(0, np.int64)
        else:
            full = np.concatenate([keypoints, keypoint_scores[..., None]], axis=2)
            areas = np.prod(np.asarray(scale, np.float64), axis=1)
            nms = soft_oks_nms if test.soft_nms else oks_nms
            keep = nms(full, scores, areas, self.meta.sigmas_array,
                       threshold=test.oks_nms_threshold)
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


# --------------------------------------------------------------------------- the run


@dataclasses.dataclass
class InferenceReport:
    """What ``run_inference`` did: outputs, skipped files, counts and speed."""

    box_source: str
    overlays: list = dataclasses.field(default_factory=list)
    videos: list = dataclasses.field(default_factory=list)
    predictions_file: str = None
    skipped: list = dataclasses.field(default_factory=list)  # (path, reason)
    no_boxes: list = dataclasses.field(default_factory=list)  # images without a person box
    num_images: int = 0  # images and video frames estimated
    num_people: int = 0
    seconds: float = 0.0
    first_output_seconds: float = None  # from the start of the run to the first overlay

    @property
    def images_per_second(self):
        return self.num_images / self.seconds if self.seconds > 0 else 0.0

    @property
    def people_per_second(self):
        return self.num_people / self.seconds if self.seconds > 0 else 0.0

    def summary(self):
        lines = [f"{self.num_images} images/frames, {self.num_people} people in "
                 f"{self.seconds:.1f} s: {self.images_per_second:.2f} images/s, "
                 f"{self.people_per_second:.2f} people/s"]
        if self.no_boxes:
            lines.append(f"{len(self.no_boxes)} image(s) had no person box: "
                         + ", ".join(self.no_boxes[:10])
                         + (" ..." if len(self.no_boxes) > 10 else ""))
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} unreadable file(s):")
            lines.extend(f"  {path}: {reason}" for path, reason in self.skipped)
        return "\n".join(lines)


_NUMERIC_NAME = re.compile(r"^0*(\d+)$")


def image_id_from_name(file_name):
    """The COCO image id of a COCO-style file name (``000000000785.jpg`` → 785), or None."""
    match = _NUMERIC_NAME.match(os.path.splitext(os.path.basename(file_name))[0])
    return int(match.group(1)) if match and len(match.group(1)) < 16 else None


class _Names:
    """Output paths in ``out_dir``, unique within a run (``a.jpg``, ``a_1.jpg``, ...)."""

    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.used = set()

    def take(self, name, ext=None):
        root, old_ext = os.path.splitext(name)
        ext = old_ext if ext is None else ext
        candidate, n = root + ext, 0
        while os.path.normcase(candidate) in self.used:
            n += 1
            candidate = f"{root}_{n}{ext}"
        self.used.add(os.path.normcase(candidate))
        return os.path.join(self.out_dir, candidate)


def _overlay_ext(name):
    ext = os.path.splitext(name)[1].lower()
    return ext if ext in (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp") else ".png"


def open_video(path):
    """``cv2.VideoCapture`` of ``path`` with its fps, size and frame count; ``InputError``
    when it cannot be opened or has no readable frame."""
    cap = cv2.VideoCapture(os.fspath(path))
    if not cap.isOpened():
        cap.release()
        raise InputError(f"cannot open video {os.fspath(path)!r} (not a video, corrupt, or "
                         "a codec this OpenCV build lacks)")
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = fps if np.isfinite(fps) and 0 < fps < 1000 else 25.0
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    return cap, fps, max(count, 0)


class _Progress:
    def __init__(self, target, verbose):
        self.bar = None
        if verbose:
            import keras

            self.bar = keras.utils.Progbar(target or None, unit_name="image")

    def add(self, n=1):
        if self.bar is not None:
            self.bar.add(n)


def run_inference(estimator, inputs, out_dir, box_source, threshold=0.3, box_threshold=0.5,
                  verbose=1):
    """Estimate poses on ``inputs`` and write overlays, ``predictions.json`` and video files.

    Args:
        estimator: ``PoseEstimator``.
        inputs: list of ``InputFile`` (``collect_inputs``).
        out_dir: output folder (created).
        box_source: ``WholeImageBoxes``, ``DetectionBoxes`` or ``HogBoxes`` (any callable
            ``(image, file_name, image_id) -> (boxes (M, 4) xywh, scores (M,))``).
        threshold: float, keypoints scoring above are drawn. Default 0.3.
        box_threshold: float, people whose box score is below are written to the JSON but
            not drawn (detector files list many weak boxes). Default 0.5.
        verbose: 0 silent, 1 progress bar.

    Returns:
        ``InferenceReport``.

    Raises:
        InputError: a video that cannot be opened (checked before anything is written).
    """
    start = time.perf_counter()
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    report = InferenceReport(box_source=getattr(box_source, "name", type(box_source).__name__))
    images = [item for item in inputs if item.kind == "image"]
    videos = [item for item in inputs if item.kind == "video"]
    frame_counts = {}
    for item in videos:  # fail before writing anything
        cap, _, count = open_video(item.path)
        cap.release()
        frame_counts[item.path] = count
    names = _Names(out_dir)
    progress = _Progress(len(images) + sum(frame_counts.values())
                         if all(frame_counts.values()) else None, verbose)
    meta = estimator.meta

    def draw(image, people):
        shown = people.box_scores >= box_threshold
        return draw_pose(image, people.keypoints[shown], people.keypoint_scores[shown], meta,
                         boxes=people.boxes[shown], box_scores=people.box_scores[shown],
                         threshold=threshold)

    def mark_first_output():
        if report.first_output_seconds is None:
            report.first_output_seconds = time.perf_counter() - start

    # ---- images: one stream, crops batched across images
    results = []

    def image_frames():
        for position, item in enumerate(images, start=1):
            try:
                image = read_image_rgb(item.path)
            except (OSError, ImageDecodeError) as exc:
                report.skipped.append((item.path, str(exc).replace(item.path + ": ", "")))
                progress.add()
                continue
            image_id = None
            if hasattr(box_source, "image_id_for"):
                image_id = box_source.image_id_for(item.path)
            if image_id is None:
                image_id = image_id_from_name(item.path)
            if image_id is None:
                image_id = position
            boxes, scores = box_source(image, file_name=item.path, image_id=image_id)
            if len(boxes) == 0:
                report.no_boxes.append(item.path)
            yield Frame((item, image_id), image, boxes, scores)

    for frame, people in estimator.iter_frames(image_frames()):
        item, image_id = frame.key
        path = names.take(item.name, _overlay_ext(item.name))
        save_image(draw(frame.image, people), path)
        mark_first_output()
        report.overlays.append(path)
        for record in people.records():
            results.append({"image_id": image_id, "category_id": 1,
                            "file_name": item.name, **record})
        report.num_images += 1
        report.num_people += len(people)
        progress.add()
    if images:
        report.predictions_file = os.path.join(out_dir, "predictions.json")
        with atomic_path(report.predictions_file) as tmp, open(tmp, "w") as f:
            json.dump(results, f)

    # ---- videos: one stream per video, overlay video + JSON lines
    for item in videos:
        video_path, lines_path = _run_video(estimator, item, names, box_source, draw,
                                            report, progress, mark_first_output)
        report.videos.append((video_path, lines_path))
    report.seconds = time.perf_counter() - start
    return report


def _run_video(estimator, item, names, box_source, draw, report, progress, mark_first_output):
    cap, fps, _ = open_video(item.path)
    stem = os.path.splitext(item.name)[0]
    video_path = names.take(stem + ".mp4")
    lines_path = names.take(stem + ".jsonl")
    writer = None
    with contextlib.ExitStack() as stack:
        stack.callback(cap.release)
        tmp_video = stack.enter_context(atomic_path(video_path))
        tmp_lines = stack.enter_context(atomic_path(lines_path))
        lines = stack.enter_context(open(tmp_lines, "w"))

        def frames():
            index = 0
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                boxes, scores = box_source(image, file_name=None, image_id=index)
                yield Frame(index, image, boxes, scores)
                index += 1

        for frame, people in estimator.iter_frames(frames()):
            overlay = draw(frame.image, people)
            if writer is None:
                h, w = overlay.shape[:2]
                writer = cv2.VideoWriter(tmp_video, cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                         (w, h))
                stack.callback(writer.release)
                if not writer.isOpened():
                    raise OSError(f"OpenCV cannot write an mp4v video to {tmp_video}")
            writer.write(cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
            mark_first_output()
            lines.write(json.dumps({"frame": int(frame.key),
                                    "time_s": round(frame.key / fps, 4),
                                    "people": people.records()}) + "\n")
            report.num_images += 1
            report.num_people += len(people)
            progress.add()
        if writer is None:
            raise InputError(f"video {item.path!r} has no readable frame")
        writer.release()  # flush before the rename
        lines.close()
    return video_path, lines_path


def write_json(data, path):
    """Write JSON atomically (temporary file + rename)."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(data, f, indent=2)
    return os.fspath(path)


__all__ = ["InputError", "InputFile", "collect_inputs", "WholeImageBoxes", "DetectionBoxes",
           "HogBoxes", "People", "Frame", "PoseEstimator", "InferenceReport", "run_inference",
           "image_id_from_name", "open_video", "write_json", "IMAGE_EXTENSIONS",
           "VIDEO_EXTENSIONS", "HOG_HELP"]
