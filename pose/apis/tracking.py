"""People across the frames of a video: track ids, One-Euro smoothing, detection every N.

The online top-down pose tracking of the PoseTrack baselines (Xiao et al., "Simple
Baselines for Human Pose Estimation and Tracking", ECCV 2018; HRNet's PoseTrack entry uses
the same pipeline) and of mmpose's / mmdeploy's pose trackers:

1. Matching. The people of each frame are matched to the live tracks by OKS (the
   dataset's sigmas, ``pose.evaluation.metrics.oks_iou``, keypoints scoring above
   ``keypoint_threshold`` in both poses, each person's box area as the OKS area) or by
   box IoU; the assignment that maximises the total similarity is solved by
   ``scipy.optimize.linear_sum_assignment`` and a pair below ``match_threshold`` is no
   match. A track missed for more than ``max_age`` frames in a row ends; an unmatched
   person starts a new track with the next id (0, 1, 2, ... per video, never reused).
2. Smoothing (``smooth``): a One-Euro filter (``pose.apis.smoothing``) per track on its
   keypoint coordinates, time from the video's frame rate. The tracker matches on the raw
   keypoints; the smoothed ones are what is written and drawn.
3. Detection every N frames (``detect_every``): the box source runs on frames 0, N, 2N,
   ...; on the frames between, each track seen in the previous frame gets its box from
   its previous keypoints: the extent of those scoring above ``keypoint_threshold``,
   enlarged by ``box_scale`` about its centre (Simple Baselines, section 3.1: the box of
   the propagated joints "extended by 15%"; mmdeploy's ``PoseTracker`` takes 1.25) and
   then, like every box, padded by the estimator's 1.25 before cropping. The person found
   in the box propagated from track T continues T: the box says who it is, so it is not
   matched again (matching a moving person to the pose of the frame before can fall below
   ``match_threshold`` and would start a new id for the same person). A person found in
   such a box whose mean keypoint score is below ``min_score`` is dropped (the track is
   then lost until a detector frame finds it again within ``max_age``); new people enter
   at the next detector frame.

The box source is any callable ``(image, file_name, image_id) -> (boxes (M, 4) xywh,
scores (M,))`` (``pose.apis.boxes``): a detection file, a detector, the whole image.
"""

import dataclasses
import time

import numpy as np

from pose.apis.boxes import clip_boxes
from pose.apis.estimator import Frame
from pose.apis.smoothing import OneEuroFilter, OneEuroParams
from pose.evaluation.metrics import oks_iou

METRICS = ("oks", "iou")


@dataclasses.dataclass(frozen=True)
class TrackingParams:
    """How people are followed through a video.

    Args:
        metric: "oks" (keypoint similarity with the dataset's sigmas) or "iou" (box
            overlap). Default "oks".
        match_threshold: float in [0, 1], the least similarity of a match (mmpose's
            tracking demo: 0.3 for both metrics). Default 0.3.
        max_age: int >= 0, frames a lost track is kept for; a person who comes back later
            gets a new id. Default 30 (one second at 30 fps).
        keypoint_threshold: float, keypoints scoring above count in OKS and define the
            box of ``detect_every``. Default 0.3.
        detect_every: int >= 1, run the box source on every N-th frame; between, boxes come
            from the tracks' keypoints. Default 1 (every frame).
        box_scale: float >= 1, enlargement of a keypoint extent into a box. Default 1.15
            (Simple Baselines' box propagation).
        min_score: float, on frames without detection a person whose mean keypoint score
            is below this is dropped. Default 0.3.
        smooth: ``OneEuroParams`` or None (no smoothing). Default None.
    """

    metric: str = "oks"
    match_threshold: float = 0.3
    max_age: int = 30
    keypoint_threshold: float = 0.3
    detect_every: int = 1
    box_scale: float = 1.15
    min_score: float = 0.3
    smooth: OneEuroParams = None

    def __post_init__(self):
        if self.metric not in METRICS:
            raise ValueError(f"tracking metric must be one of {METRICS}, got {self.metric!r}")
        if not 0.0 <= self.match_threshold <= 1.0:
            raise ValueError(f"match threshold must be in [0, 1], got {self.match_threshold!r}")
        if int(self.max_age) != self.max_age or self.max_age < 0:
            raise ValueError(f"max age must be a whole number of frames >= 0, "
                             f"got {self.max_age!r}")
        if int(self.detect_every) != self.detect_every or self.detect_every < 1:
            raise ValueError(f"detect every N frames needs a whole N >= 1, "
                             f"got {self.detect_every!r}")
        if not self.box_scale >= 1.0:
            raise ValueError(f"box scale must be >= 1, got {self.box_scale!r}")


def box_iou_matrix(a, b):
    """IoU (A, B) between ``x, y, w, h`` boxes ``a`` (A, 4) and ``b`` (B, 4)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum((a[:, 0] + a[:, 2])[:, None], (b[:, 0] + b[:, 2])[None, :])
    y2 = np.minimum((a[:, 1] + a[:, 3])[:, None], (b[:, 1] + b[:, 3])[None, :])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)  # (A, B)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def keypoint_box(keypoints, scores, threshold=0.3, scale=1.15):
    """The ``x, y, w, h`` box of the keypoints scoring above ``threshold``, enlarged by
    ``scale`` about its centre; None with fewer than two such keypoints."""
    keypoints = np.asarray(keypoints, np.float64).reshape(-1, 2)
    confident = (np.asarray(scores).reshape(-1) > threshold) & np.isfinite(keypoints).all(1)
    if confident.sum() < 2:
        return None
    points = keypoints[confident]
    low, high = points.min(axis=0), points.max(axis=0)
    center, half = (low + high) / 2.0, (high - low) / 2.0 * scale
    half = np.maximum(half, 1.0)  # a vertical or horizontal line of keypoints still crops
    return np.concatenate([center - half, 2.0 * half])


@dataclasses.dataclass
class _Track:
    track_id: int
    keypoints: np.ndarray  # (K, 2) raw
    keypoint_scores: np.ndarray  # (K,)
    box: np.ndarray  # (4,) xywh, the box the person was estimated in
    box_score: float
    last_frame: int
    smoother: OneEuroFilter = None
    # The person as last found in a box of the box source (a detector frame): what the
    # next detector frame is matched against too, since poses estimated in propagated
    # boxes drift with the network's errors (a still person must keep the id).
    detected: tuple = None  # (keypoints (K, 2), scores (K,), box (4,))


class PoseTracker:
    """Track ids (and smoothing) for the people of consecutive frames of one video.

    Args:
        sigmas: (K,) OKS sigmas of the dataset (``DatasetMeta.sigmas_array``).
        fps: float, the video's frame rate (the smoother's time step).
        params: ``TrackingParams``; None takes the defaults.

    Attributes:
        seconds: float, time spent in ``update`` (matching and smoothing).
        smooth_seconds: float, the part of it spent smoothing.

    Example:
        >>> tracker = PoseTracker(meta.sigmas_array, fps=30.0)
        >>> people = tracker.update(people, frame_index)   # people.track_ids set
    """

    def __init__(self, sigmas, fps, params=None):
        self.params = params if params is not None else TrackingParams()
        self.sigmas = np.asarray(sigmas, np.float64)
        self.fps = float(fps)
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {fps!r}")
        self.tracks = []
        self.next_id = 0
        self.frame = None
        self.seconds = 0.0
        self.smooth_seconds = 0.0
        from scipy.optimize import linear_sum_assignment  # here: only videos need scipy

        self._assign = linear_sum_assignment

    def similarity(self, people):
        """(tracks, people) similarity by the chosen metric: to each track's last pose, or
        to its pose at its last detector frame when that is closer."""
        states = [[(t.keypoints, t.keypoint_scores, t.box)] + (
            [t.detected] if t.detected is not None else []) for t in self.tracks]
        return np.stack([np.max([self._similarity(people, *state) for state in track],
                                axis=0) for track in states])

    def _similarity(self, people, keypoints, keypoint_scores, box):
        """(people,) similarity of one track state to each person."""
        p = self.params
        if p.metric == "iou":
            return box_iou_matrix(box[None], people.boxes)[0]
        detected = np.concatenate([people.keypoints, people.keypoint_scores[..., None]],
                                  axis=2)  # (P, K, 3)
        areas = people.boxes[:, 2] * people.boxes[:, 3]
        mine = np.concatenate([keypoints, keypoint_scores[:, None]], axis=1)  # (K, 3)
        return oks_iou(mine, detected, box[2] * box[3], areas, self.sigmas,
                       vis_threshold=p.keypoint_threshold)

    def update(self, people, frame, continuing=None):
        """Match ``people`` (``pose.apis.estimator.People``) of frame number ``frame`` to
        the tracks; returns them with ``track_ids`` set (and keypoints smoothed).

        ``continuing`` (P,) track ids, when each person was found in a box propagated from
        that track (``propagated_boxes``): they continue those tracks without matching."""
        start = time.perf_counter()
        p = self.params
        frame = int(frame)
        self.tracks = [t for t in self.tracks if frame - t.last_frame - 1 <= p.max_age]
        n = len(people)
        track_of = np.full(n, -1)
        if continuing is not None:
            position = {t.track_id: i for i, t in enumerate(self.tracks)}
            for i, track_id in enumerate(np.asarray(continuing).reshape(-1)):
                track_of[i] = position.get(int(track_id), -1)
        elif self.tracks and n:
            similarity = self.similarity(people)  # (T, P)
            rows, cols = self._assign(similarity, maximize=True)
            for r, c in zip(rows, cols):
                if similarity[r, c] >= p.match_threshold and similarity[r, c] > 0:
                    track_of[c] = r
        keypoints = np.array(people.keypoints, np.float64)
        ids = np.empty(n, np.int64)
        for i in range(n):
            kp, sc = people.keypoints[i], people.keypoint_scores[i]
            if track_of[i] >= 0:
                track = self.tracks[track_of[i]]
                if track.smoother is not None:
                    t0 = time.perf_counter()
                    keypoints[i] = track.smoother(kp, (frame - track.last_frame) / self.fps)
                    self.smooth_seconds += time.perf_counter() - t0
                track.keypoints, track.keypoint_scores = np.array(kp), np.array(sc)
                track.box, track.box_score = np.array(people.boxes[i]), float(
                    people.box_scores[i])
                track.last_frame = frame
            else:
                track = _Track(self.next_id, np.array(kp), np.array(sc),
                               np.array(people.boxes[i]), float(people.box_scores[i]), frame)
                if p.smooth is not None:
                    track.smoother = OneEuroFilter(kp, p.smooth)
                self.next_id += 1
                self.tracks.append(track)
            if continuing is None:  # found in a box of the box source
                track.detected = (track.keypoints, track.keypoint_scores, track.box)
            ids[i] = track.track_id
        self.frame = frame
        self.seconds += time.perf_counter() - start
        return dataclasses.replace(people, keypoints=keypoints, track_ids=ids)

    def propagated_boxes(self, width=None, height=None):
        """Boxes (M, 4), box scores (M,) and track ids (M,) for the next frame from the
        keypoints of the tracks seen in the last frame (see the module's docstring); with
        the image's ``width`` and ``height``, clipped to it (a box with no area inside is
        left out, with its id)."""
        p = self.params
        boxes, scores, ids = [], [], []
        for t in self.tracks:
            if t.last_frame != self.frame:
                continue
            box = keypoint_box(t.keypoints, t.keypoint_scores, p.keypoint_threshold,
                               p.box_scale)
            if box is not None and width is not None:
                clipped, _, _ = clip_boxes(box[None], [t.box_score], width, height)
                box = clipped[0] if len(clipped) else None
            if box is not None:
                boxes.append(box)
                scores.append(t.box_score)
                ids.append(t.track_id)
        return (np.array(boxes, np.float64).reshape(-1, 4), np.array(scores, np.float64),
                np.array(ids, np.int64))


def track_video(estimator, images, box_source, tracker, check_boxes=None):
    """Pose estimation with tracking over the frames of one video.

    Args:
        estimator: ``PoseEstimator`` (or anything with its ``iter_frames``).
        images: iterable of ``(frame index, (H, W, 3) uint8 RGB image)`` in order.
        box_source: callable ``(image, file_name=None, image_id=index) -> (boxes, scores)``.
        tracker: a fresh ``PoseTracker`` for this video (its ``params.detect_every``).
        check_boxes: callable ``(image, boxes, scores) -> (boxes, scores)`` applied to the
            box source's boxes (the runner's clipping that counts what it drops); None
            clips silently. Default None.

    Yields:
        ``(Frame, People)`` per frame, ``People.track_ids`` set. With ``detect_every`` 1
        the crops of consecutive frames are batched together; otherwise each frame's
        boxes depend on the previous frame's keypoints, so frames run one at a time.
    """
    def clip(image, boxes, scores):
        h, w = image.shape[:2]
        return clip_boxes(boxes, scores, w, h)[:2]

    check = check_boxes or clip

    def detected(index, image):
        boxes, scores = check(image, *box_source(image, file_name=None, image_id=index))
        return Frame(index, image, boxes, scores)

    every = tracker.params.detect_every
    if every == 1:
        frames = (detected(index, image) for index, image in images)
        for frame, people in estimator.iter_frames(frames):
            yield frame, tracker.update(people, frame.key)
        return
    for index, image in images:
        propagated = index % every != 0 and tracker.frame is not None
        continuing = None
        if propagated:
            height, width = image.shape[:2]
            boxes, scores, continuing = tracker.propagated_boxes(width, height)
            frame = Frame(index, image, boxes, scores)
        else:
            frame = detected(index, image)
        ((frame, people),) = estimator.iter_frames([frame])
        if propagated:
            # each person carries the box it was found in (OKS-NMS may drop and reorder)
            box_of_track = {tuple(box): track_id for box, track_id
                            in zip(np.asarray(frame.boxes).reshape(-1, 4), continuing)}
            continuing = np.array([box_of_track[tuple(box)] for box in people.boxes],
                                  np.int64)
            confident = people.keypoint_scores.mean(axis=1) >= tracker.params.min_score
            people, continuing = people.subset(confident), continuing[confident]
        yield frame, tracker.update(people, index, continuing=continuing)
