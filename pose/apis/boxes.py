"""Person box sources for top-down inference: a detections JSON, OpenCV's HOG detector, or
the whole image (a detector file: ``pose.apis.detector.DetectorBoxes``).

Every source is a callable ``(image, file_name, image_id) -> (boxes (M, 4) xywh, scores
(M,))`` with a ``name`` that the run reports. ``clip_boxes`` checks what a source gives
against the image (the run reports what it dropped, and why).
"""

import os

import cv2
import numpy as np

from datasets.coco import load_detections
from pose.apis.inputs import InputError

HOG_HELP = ('this OpenCV build has no cv2.HOGDescriptor (OpenCV 5 wheels dropped it); '
            'pass a person detector file instead (--detector FILE.onnx|FILE.tflite: '
            'RTMDet/YOLOX end2end, YOLOv5/8/11, EfficientDet-Lite; README: person '
            'detectors), --boxes DET.json (COCO detection results) or --whole-image; or '
            'install an OpenCV 4 wheel for the HOG person detector: '
            'pip install "opencv-python-headless<5"')


def clip_boxes(boxes, scores, width, height):
    """Clip ``x, y, w, h`` boxes to a ``width`` x ``height`` image; drop the unusable.

    A box with a NaN/infinite value or a non-positive width or height is dropped
    (``"not_finite"``, ``"non_positive_size"``), so is one with no area inside the image
    (``"outside_image"``); the others are cut to the image.

    Returns:
        ``(boxes (M', 4) float64, scores (M',), dropped)`` with ``dropped`` a dict of
        counts by reason (only non-zero reasons).
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    finite = np.isfinite(boxes).all(axis=1) & np.isfinite(scores)
    positive = np.zeros(len(boxes), bool)
    positive[finite] = (boxes[finite, 2] > 0) & (boxes[finite, 3] > 0)
    safe = np.where(finite[:, None], boxes, 0.0)
    x1 = np.clip(safe[:, 0], 0.0, width)
    y1 = np.clip(safe[:, 1], 0.0, height)
    x2 = np.clip(safe[:, 0] + safe[:, 2], 0.0, width)
    y2 = np.clip(safe[:, 1] + safe[:, 3], 0.0, height)
    inside = (x2 > x1) & (y2 > y1)
    keep = finite & positive & inside
    dropped = {"not_finite": int((~finite).sum()),
               "non_positive_size": int((finite & ~positive).sum()),
               "outside_image": int((finite & positive & ~inside).sum())}
    clipped = np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)[keep]  # (M', 4) xywh
    return clipped, scores[keep], {k: v for k, v in dropped.items() if v}


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

    Attributes:
        dropped: counts of entries dropped when the file was read, by reason
            (``malformed``, ``not_finite``, ``non_positive_size``).
    """

    def __init__(self, path, score_threshold=0.0, category_id=1):
        self.path = os.fspath(path)
        self.name = f"detections {self.path}"
        self.by_id, self.by_name, self.id_by_name = {}, {}, {}
        self.dropped = {}
        for d in load_detections(self.path):  # AnnotationError naming the file
            if d.get("category_id", category_id) != category_id:
                continue
            if float(d["score"]) < score_threshold:
                continue
            box = d["bbox"]
            reason = None
            if (not isinstance(box, list) or len(box) != 4
                    or not all(isinstance(v, (int, float)) for v in box)):
                reason = "malformed"
            elif not np.all(np.isfinite(box)) or not np.isfinite(float(d["score"])):
                reason = "not_finite"
            elif box[2] <= 0 or box[3] <= 0:
                reason = "non_positive_size"
            if reason:
                self.dropped[reason] = self.dropped.get(reason, 0) + 1
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
