"""COCO person keypoints: annotation files → per-person records.

Records are a struct of NumPy arrays (``PoseRecords``), one row per person instance, which
is what the tf.data pipeline indexes on its hot path.

Conventions:

- ``box`` is COCO's ``(x, y, w, h)``. Ground-truth boxes are sanitized as HRNet's
  ``_load_coco_keypoint_annotation_kernal`` does: ``x1 = max(0, x)``,
  ``x2 = min(W - 1, x1 + max(0, w - 1))`` (same for y), kept when ``area > 0`` and
  ``x2 > x1`` and ``y2 > y1`` (strict, as mmpose: a zero-width box is dropped), and stored
  as ``(x1, y1, x2 - x1, y2 - y1)``. Note HRNet's quirk, kept: ``x2`` starts from the
  clipped ``x1``, so a box sticking out on the left/top is shifted in rather than cut.
  Detection boxes are kept as the detector wrote them
  (as HRNet), dropping only ``w <= 0`` or ``h <= 0``.
- ``center``/``scale``: the box padded to the model's aspect ratio (input w / h), then
  ×``padding`` (1.25); ``scale`` is the crop region's ``(w, h)`` in **pixels** (mmpose 1.x),
  HRNet's ``scale`` times 200. See ``datasets.transforms``.
- ``keypoints``: (N, K, 3) float32 ``(x, y, v)`` with COCO's visibility ``v`` ∈ {0, 1, 2}
  as stored (visible means ``v > 0``); zeros for detection records.
- ``score``: 1.0 for ground-truth boxes, the detector's score otherwise.

Bad input: a missing or malformed annotation file raises ``AnnotationError`` (a
``pose.errors.UserError``, which the tools print as one line) naming the file and the
problem. Annotations without ``area`` get one (``fill_missing_areas``, as mmpose).
Annotations that point to an unknown image or whose keypoints have the wrong length are
dropped, counted in ``LoadReport`` and logged.
Missing image files are skipped and counted (``missing_images="skip"``) or raise
``FileNotFoundError`` (``"error"``). Corrupt images are the pipeline's business:
``datasets.images.read_image_rgb`` raises ``ImageDecodeError`` and the pipeline skips and
counts the sample.
"""

import contextlib
import io
import json
import logging
import os
from dataclasses import dataclass, field

import numpy as np

from datasets.transforms import box_to_center_scale
from pose.errors import UserError

logger = logging.getLogger(__name__)

_MAX_LISTED_PATHS = 20


class AnnotationError(UserError):
    """A COCO annotation or detection file is missing or malformed (the message names it)."""


# --------------------------------------------------------------------------- annotations


def _read_json(path, what):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise AnnotationError(f"{what} file {path!r} does not exist")
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise AnnotationError(
            f"{what} file {path!r} is not valid JSON: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno}") from exc
    except (UnicodeDecodeError, OSError) as exc:
        raise AnnotationError(f"{what} file {path!r} cannot be read: {exc}") from exc


def _is_number(value):
    """A JSON number (not a string such as "12", not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_id(path, where, key, value, seen=None):
    """An id is a JSON integer (pycocotools indexes and results refer to it); ``seen``,
    when given, collects the ids so far and refuses a repeated one."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise AnnotationError(
            f"annotation file {path!r}: {where} has {key} {value!r} "
            f"({type(value).__name__}); expected an integer")
    if seen is not None:
        if value in seen:
            raise AnnotationError(
                f"annotation file {path!r}: {where} repeats {key} {value}; ids must be unique")
        seen.add(value)


def load_coco(annotation_file):
    """Load a COCO keypoint annotation file into a ``pycocotools.coco.COCO`` object.

    The file is checked before pycocotools indexes it: it must be a JSON object with
    ``images``, ``annotations`` and ``categories`` lists, every image with ``id``,
    ``file_name``, ``width`` and ``height``; image and annotation ids unique integers
    (an annotation of an unknown image is skipped and counted later), keypoints and boxes
    finite numbers (Python's JSON reader accepts ``NaN``, which COCOeval would score as a
    perfect match) and its ``area``, when given, finite and >= 0.

    Raises:
        AnnotationError: naming the file and what is wrong.
    """
    from pycocotools.coco import COCO

    path = os.fspath(annotation_file)
    data = _read_json(path, "annotation")
    if not isinstance(data, dict):
        raise AnnotationError(
            f"annotation file {path!r} holds a JSON {type(data).__name__}, expected an object "
            "with 'images', 'annotations' and 'categories'")
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise AnnotationError(f"annotation file {path!r} has no {key!r} key")
        if not isinstance(data[key], list):
            raise AnnotationError(
                f"annotation file {path!r}: {key!r} is a {type(data[key]).__name__}, "
                "expected a list")
    image_ids = set()
    for i, img in enumerate(data["images"]):
        missing = [k for k in ("id", "file_name", "width", "height")
                   if not isinstance(img, dict) or k not in img]
        if missing:
            raise AnnotationError(
                f"annotation file {path!r}: images[{i}] lacks {', '.join(missing)}")
        _check_id(path, f"images[{i}]", "id", img["id"], image_ids)
    annotation_ids = set()
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or "id" not in ann or "image_id" not in ann:
            raise AnnotationError(
                f"annotation file {path!r}: annotations[{i}] lacks 'id' or 'image_id'")
        where = f"annotations[{i}]"
        _check_id(path, where, "id", ann["id"], annotation_ids)
        _check_id(path, where, "image_id", ann["image_id"])
        for key in ("keypoints", "bbox"):  # pycocotools computes with them as numbers
            values = ann.get(key, [])
            if not isinstance(values, list) or not all(_is_number(v) for v in values):
                raise AnnotationError(
                    f"annotation file {path!r}: {where} (id {ann['id']!r}) has "
                    f"{key} that are not a list of numbers: {str(values)[:80]}")
            if not np.isfinite(np.asarray(values, np.float64)).all():
                raise AnnotationError(
                    f"annotation file {path!r}: {where} (id {ann['id']!r}) has {key} that "
                    f"are not finite (NaN or infinity): {str(values)[:80]}")
        if "area" in ann and not (_is_number(ann["area"]) and np.isfinite(ann["area"])
                                  and ann["area"] >= 0):
            raise AnnotationError(
                f"annotation file {path!r}: {where} (id {ann['id']!r}) has area "
                f"{ann['area']!r}; expected a finite number >= 0")
    filled = fill_missing_areas(data["annotations"])
    if filled:
        logger.info("%s: %d annotations have no 'area'; filled in from the box (0.53 x box "
                    "area, as mmpose) or the keypoints' extent", path, filled)
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco.createIndex()
    coco.annotation_file = path
    return coco


# COCO's segment area is on average 0.53 of its box area: mmpose 1.x fills a missing
# ``area`` with ``max(1, 0.53 * box area)`` (BaseCocoStyleDataset.parse_data_info).
AREA_PER_BOX_AREA = 0.53


def fill_missing_areas(annotations):
    """Give every annotation without ``area`` one, in place; returns how many were filled.

    CrowdPose and other COCO-format releases omit ``area``, which COCOeval needs (it sets
    the OKS scale and the small/medium/large ranges). As mmpose: ``max(1, 0.53 · w · h)``
    of the ``bbox``; without a usable box, the same of the labelled keypoints' extent.
    """
    filled = 0
    for ann in annotations:
        if "area" in ann:
            continue
        box = ann.get("bbox")
        if isinstance(box, list) and len(box) == 4 and all(
                isinstance(v, (int, float)) for v in box):
            w, h = max(0.0, float(box[2])), max(0.0, float(box[3]))
        else:
            kpts = np.asarray(ann.get("keypoints") or [], np.float64)
            kpts = kpts.reshape(-1, 3) if kpts.size % 3 == 0 else np.zeros((0, 3))
            labelled = kpts[kpts[:, 2] > 0, :2]
            w, h = (np.ptp(labelled, axis=0) if len(labelled) else (0.0, 0.0))
        ann["area"] = max(1.0, AREA_PER_BOX_AREA * float(w) * float(h))
        filled += 1
    return filled


def find_keypoint_category(coco, source="COCO object"):
    """The person category (the one named ``person`` with keypoints, else the only one
    with keypoints) of a COCO object.

    Raises:
        AnnotationError: there is no category with keypoints, or several and none is
            named ``person``.
    """
    cats = [c for c in coco.dataset.get("categories", []) if c.get("keypoints")]
    persons = [c for c in cats if c.get("name") == "person"]
    if persons:
        return persons[0]
    if len(cats) == 1:
        return cats[0]
    if not cats:
        raise AnnotationError(f"{source}: no person category with keypoints")
    raise AnnotationError(
        f"{source}: several keypoint categories ({[c.get('name') for c in cats]}) and none "
        "named 'person'")


def _as_coco(annotation_file_or_coco):
    if isinstance(annotation_file_or_coco, (str, os.PathLike)):
        coco = load_coco(annotation_file_or_coco)
        return coco, os.fspath(annotation_file_or_coco)
    coco = annotation_file_or_coco
    return coco, getattr(coco, "annotation_file", "COCO object")


@dataclass(frozen=True)
class LoadReport:
    """What the loader kept and dropped, with the reason (counts of annotations/boxes)."""

    source: str
    num_images: int = 0
    num_candidates: int = 0
    num_records: int = 0
    crowd: int = 0
    no_keypoints: int = 0
    invalid_box: int = 0  # not 4 finite numbers of positive size; a detection's bad score too
    unknown_image: int = 0  # an image_id the annotation file lacks (or no id at all)
    bad_keypoints: int = 0
    not_person: int = 0
    below_threshold: int = 0
    missing_images: int = 0  # records dropped because their image file is missing
    missing_image_files: int = 0  # distinct missing image files
    missing_image_paths: tuple = ()

    @property
    def dropped(self):
        """Counts of dropped candidates by reason (only non-zero reasons)."""
        keys = ("crowd", "no_keypoints", "invalid_box", "unknown_image", "bad_keypoints",
                "not_person", "below_threshold", "missing_images")
        return {k: getattr(self, k) for k in keys if getattr(self, k)}

    def summary(self):
        dropped = ", ".join(f"{k}={v}" for k, v in self.dropped.items()) or "none"
        return (f"{self.source}: {self.num_records} records from {self.num_candidates} "
                f"candidates on {self.num_images} images; dropped: {dropped}")


@dataclass(frozen=True, eq=False)
class PoseRecords:
    """One row per person instance (struct of arrays, N rows).

    Attributes:
        image_paths: (N,) str, full path of the image file.
        image_ids: (N,) int64, COCO image id.
        annotation_ids: (N,) int64, COCO annotation id (-1 for detections).
        boxes: (N, 4) float32 ``x, y, w, h`` (sanitized for ground truth).
        centers: (N, 2) float32 crop centre, pixels.
        scales: (N, 2) float32 crop region ``(w, h)`` in pixels (HRNet's scale × 200).
        keypoints: (N, K, 3) float32 ``x, y, v`` (v in {0, 1, 2}).
        areas: (N,) float32 (COCO's segment area; box area for detections).
        scores: (N,) float32, 1.0 for ground truth, detector score otherwise.
        image_sizes: (N, 2) int32 ``(width, height)`` from the annotation file.
        report: ``LoadReport``.
    """

    image_paths: np.ndarray
    image_ids: np.ndarray
    annotation_ids: np.ndarray
    boxes: np.ndarray
    centers: np.ndarray
    scales: np.ndarray
    keypoints: np.ndarray
    areas: np.ndarray
    scores: np.ndarray
    image_sizes: np.ndarray
    report: LoadReport = field(default=None)

    _ARRAYS = ("image_paths", "image_ids", "annotation_ids", "boxes", "centers", "scales",
               "keypoints", "areas", "scores", "image_sizes")

    def __post_init__(self):
        n = len(self.image_ids)
        for name in self._ARRAYS:
            if len(getattr(self, name)) != n:
                raise ValueError(f"PoseRecords.{name} has {len(getattr(self, name))} rows, "
                                 f"expected {n}")

    def __len__(self):
        return len(self.image_ids)

    @property
    def num_keypoints(self):
        return self.keypoints.shape[1]

    def subset(self, indices):
        """The records at ``indices`` (an index array or boolean mask), same report."""
        return PoseRecords(**{k: getattr(self, k)[indices] for k in self._ARRAYS},
                           report=self.report)

    def record(self, i):
        """Row ``i`` as a dict of scalars/arrays (for inspection and tests)."""
        return {k: getattr(self, k)[i] for k in self._ARRAYS}


MISSING_IMAGE_POLICIES = ("skip", "error", "unchecked")


def _check_missing_images(paths, missing_images, source):
    if missing_images not in MISSING_IMAGE_POLICIES:
        raise ValueError(f"missing_images must be one of {MISSING_IMAGE_POLICIES}, "
                         f"got {missing_images!r}")
    if missing_images == "unchecked":  # annotation-only work: never look at the files
        return np.ones(len(paths), bool), (), 0
    unique = np.unique(paths) if len(paths) else np.array([], str)
    missing = {p for p in unique.tolist() if not os.path.isfile(p)}
    if missing and missing_images == "error":
        listed = sorted(missing)[:_MAX_LISTED_PATHS]
        raise FileNotFoundError(
            f"{source}: {len(missing)} image files are missing, e.g. {listed}")
    keep = np.array([p not in missing for p in paths.tolist()], bool)
    return keep, tuple(sorted(missing)[:_MAX_LISTED_PATHS]), len(missing)


def _build(coco, source, image_dir, rows, input_size, padding, missing_images, counts):
    """rows: list of (image_id, ann_id, box, keypoints (K,3), area, score)."""
    k = len(find_keypoint_category(coco, source)["keypoints"])
    n = len(rows)
    image_ids = np.array([r[0] for r in rows], np.int64)
    imgs = [coco.imgs[i] for i in image_ids.tolist()]
    paths = np.array([os.path.join(os.fspath(image_dir), im["file_name"]) for im in imgs],
                     dtype=str)
    boxes = np.array([r[2] for r in rows], np.float32).reshape(n, 4)
    keypoints = np.array([r[3] for r in rows], np.float32).reshape(n, k, 3)
    aspect_ratio = float(input_size[0]) / float(input_size[1])
    centers, scales = box_to_center_scale(boxes, aspect_ratio, padding)
    keep, missing_paths, num_missing = _check_missing_images(paths, missing_images, source)
    records = PoseRecords(
        image_paths=paths,
        image_ids=image_ids,
        annotation_ids=np.array([r[1] for r in rows], np.int64),
        boxes=boxes,
        centers=centers.reshape(n, 2),
        scales=scales.reshape(n, 2),
        keypoints=keypoints,
        areas=np.array([r[4] for r in rows], np.float32),
        scores=np.array([r[5] for r in rows], np.float32),
        image_sizes=np.array([[im["width"], im["height"]] for im in imgs], np.int32).reshape(n, 2),
    ).subset(keep)
    counts["missing_images"] = int((~keep).sum())
    report = LoadReport(source=source, num_images=len(coco.imgs), num_records=len(records),
                        missing_image_files=num_missing, missing_image_paths=missing_paths,
                        **counts)
    problems = ("invalid_box", "unknown_image", "bad_keypoints", "missing_images")
    if any(getattr(report, k) for k in problems):
        logger.warning("%s", report.summary())
    else:
        logger.info("%s", report.summary())
    if missing_paths:
        logger.warning("missing image files, e.g. %s", list(missing_paths[:5]))
    return PoseRecords(**{a: getattr(records, a) for a in PoseRecords._ARRAYS}, report=report)


def _gt_rows(coco, source, skip_crowd, min_keypoints):
    category = find_keypoint_category(coco, source)
    k = len(category["keypoints"])
    ann_ids = coco.getAnnIds(catIds=[category["id"]], iscrowd=None)
    anns = coco.loadAnns(ann_ids)
    counts = dict(num_candidates=len(anns), crowd=0, no_keypoints=0, invalid_box=0,
                  unknown_image=0, bad_keypoints=0)
    order = {img_id: i for i, img_id in enumerate(coco.getImgIds())}
    rows = []
    for ann in anns:
        img = coco.imgs.get(ann["image_id"])
        if img is None:
            counts["unknown_image"] += 1
            continue
        kpts = ann.get("keypoints")
        if not isinstance(kpts, list) or len(kpts) != 3 * k:
            counts["bad_keypoints"] += 1
            continue
        if skip_crowd and ann.get("iscrowd", 0):
            counts["crowd"] += 1
            continue
        kpts = np.asarray(kpts, np.float32).reshape(k, 3)
        num_kpts = ann.get("num_keypoints", int((kpts[:, 2] > 0).sum()))
        if num_kpts < min_keypoints or (min_keypoints > 0 and kpts.max() <= 0):
            counts["no_keypoints"] += 1
            continue
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            counts["invalid_box"] += 1
            continue
        x, y, w, h = (float(v) for v in bbox)
        x1, y1 = max(0.0, x), max(0.0, y)
        x2 = min(img["width"] - 1.0, x1 + max(0.0, w - 1.0))
        y2 = min(img["height"] - 1.0, y1 + max(0.0, h - 1.0))
        if not (ann.get("area", 1.0) > 0 and x2 > x1 and y2 > y1):
            counts["invalid_box"] += 1
            continue
        rows.append((ann["image_id"], ann["id"], (x1, y1, x2 - x1, y2 - y1), kpts,
                     float(ann.get("area", (x2 - x1) * (y2 - y1))), 1.0))
    rows.sort(key=lambda r: order[r[0]])  # image order of the file, then annotation order
    return rows, counts


def load_train_records(annotation_file, image_dir, input_size, padding=1.25,
                       missing_images="skip"):
    """Training records: one per non-crowd person annotation with at least one keypoint.

    Args:
        annotation_file: path of ``person_keypoints_*.json`` or a ``COCO`` object.
        image_dir: folder of the images (``file_name`` is joined to it).
        input_size: ``(w, h)`` of the model input (sets the crop aspect ratio).
        padding: float, box enlargement, default 1.25.
        missing_images: ``"skip"`` (default; counted in the report), ``"error"``, or
            ``"unchecked"`` (no file look-ups, for annotation-only work such as timing
            post-processing).

    Returns:
        ``PoseRecords`` with ``.report``.
    """
    coco, source = _as_coco(annotation_file)
    rows, counts = _gt_rows(coco, source, skip_crowd=True, min_keypoints=1)
    return _build(coco, source, image_dir, rows, input_size, padding, missing_images, counts)


def load_detections(detection_file):
    """Read a COCO detection-results JSON (a list of ``image_id/category_id/bbox/score``).

    Raises:
        AnnotationError: naming the file and what is wrong.
    """
    path = os.fspath(detection_file)
    dets = _read_json(path, "detection")
    if not isinstance(dets, list):
        raise AnnotationError(
            f"detection file {path!r} holds a JSON {type(dets).__name__}, expected a list of "
            "{'image_id', 'category_id', 'bbox', 'score'} objects")
    for i, d in enumerate(dets):
        if not isinstance(d, dict) or any(k not in d for k in ("image_id", "bbox", "score")):
            raise AnnotationError(
                f"detection file {path!r}: entry {i} lacks 'image_id', 'bbox' or 'score'")
    return dets


def load_eval_records(annotation_file, image_dir, input_size, detections=None,
                      score_threshold=0.0, padding=1.25, missing_images="skip"):
    """Evaluation records from ground-truth boxes or from person detections.

    With ``detections=None`` the boxes are the ground truth, filtered as for training
    (HRNet's ``use_gt_bbox``). Otherwise every person detection (``category_id`` of the
    person category) with ``score >= score_threshold`` (HRNet's ``IMAGE_THRE``, default 0.0)
    on an image of the annotation file becomes a record with zero keypoints.

    Args:
        annotation_file: path or ``COCO`` object (images and person category).
        image_dir: image folder.
        input_size: ``(w, h)`` model input.
        detections: ``None``, a detection-results JSON path, or the loaded list.
        score_threshold: float, default 0.0.
        padding: float, default 1.25.
        missing_images: ``"skip"``, ``"error"`` or ``"unchecked"`` (see
            ``load_train_records``).

    Returns:
        ``PoseRecords`` with ``.report``.
    """
    coco, source = _as_coco(annotation_file)
    if detections is None:
        rows, counts = _gt_rows(coco, source, skip_crowd=True, min_keypoints=1)
        return _build(coco, source, image_dir, rows, input_size, padding, missing_images,
                      counts)
    det_source = "detections"
    if isinstance(detections, (str, os.PathLike)):
        det_source = os.fspath(detections)
        detections = load_detections(detections)
    category = find_keypoint_category(coco, source)
    k = len(category["keypoints"])
    counts = dict(num_candidates=len(detections), not_person=0, below_threshold=0,
                  unknown_image=0, invalid_box=0)
    order = {img_id: i for i, img_id in enumerate(coco.getImgIds())}
    zeros = np.zeros((k, 3), np.float32)
    rows = []
    for det in detections:
        if det.get("category_id", category["id"]) != category["id"]:
            counts["not_person"] += 1
            continue
        score, box, image_id = det["score"], det["bbox"], det["image_id"]
        if not _is_number(score) or not np.isfinite(score):  # a string, NaN: no ranking
            counts["invalid_box"] += 1
            continue
        if score < score_threshold:
            counts["below_threshold"] += 1
            continue
        if not _is_number(image_id) or image_id not in coco.imgs:  # also lists, strings
            counts["unknown_image"] += 1
            continue
        if (not isinstance(box, list) or len(box) != 4 or not all(_is_number(v) for v in box)
                or not np.all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0):
            counts["invalid_box"] += 1
            continue
        rows.append((image_id, -1, tuple(float(v) for v in box), zeros,
                     float(box[2]) * float(box[3]), float(score)))
    rows.sort(key=lambda r: order[r[0]])  # stable: detector order within an image
    return _build(coco, f"{source} + {det_source}", image_dir, rows, input_size, padding,
                  missing_images, counts)
