"""Generated video clips: synthetic figures moved along planted straight paths.

For tests and benchmarks of video inference (tracking, smoothing, detection every N
frames): each person is one posed figure (``figures.make_figure``) translated frame by
frame, drawn over one cluttered background, so where everybody is in every frame is
known exactly (``ClipTruth``).

Example::

    truth = render_clip("clip.avi", [ClipPerson((100, 200), (3, 0), 150),
                                     ClipPerson((500, 210), (-3, 0), 140)],
                        num_frames=60, size=(640, 360))
    truth.keypoints[10, 1]          # (17, 2) of the second person in frame 10
"""

from __future__ import annotations

import dataclasses
import os

import cv2
import numpy as np

from datasets.synthetic.figures import make_figure
from datasets.synthetic.rendering import draw_op, person_palette, render_background
from pose.fileio import atomic_path


@dataclasses.dataclass(frozen=True)
class ClipPerson:
    """One person of a clip.

    Args:
        start: (x, y) pelvis position in frame 0, pixels.
        velocity: (vx, vy) pixels per frame.
        height: float, standing height in pixels.
        frames: (first, last) frames (inclusive) the person is in the scene; None: all.
    """

    start: tuple
    velocity: tuple
    height: float
    frames: tuple = None

    def present(self, frame):
        return self.frames is None or self.frames[0] <= frame <= self.frames[1]


@dataclasses.dataclass
class ClipTruth:
    """Where everybody is: ``keypoints`` (F, P, 17, 2), ``boxes`` (F, P, 4) x, y, w, h of
    the drawn figure, ``present`` (F, P) bool (in the scene and at least partly inside
    the image), ``fps``."""

    keypoints: np.ndarray
    boxes: np.ndarray
    present: np.ndarray
    fps: float

    def detections(self, score=1.0):
        """COCO detection results of the people present: ``image_id`` = frame index (as
        ``pose.apis.boxes.DetectionBoxes`` matches video frames)."""
        return [{"image_id": int(f), "category_id": 1, "score": float(score),
                 "bbox": [round(float(v), 3) for v in self.boxes[f, p]]}
                for f, p in zip(*np.nonzero(self.present))]


def render_clip(path, people, num_frames, size=(320, 240), fps=25.0, seed=0, fourcc="MJPG"):
    """Write a clip of ``people`` moving along their paths and return its ``ClipTruth``.

    Args:
        path: the video file (written atomically; ``.avi`` for MJPG, ``.mp4`` for mp4v).
        people: list of ``ClipPerson``.
        num_frames: int, frames to write.
        size: (width, height) in pixels. Default (320, 240).
        fps: float, the clip's frame rate. Default 25.
        seed: int, the figures' poses, colours and the background. Default 0.
        fourcc: str, OpenCV's codec code. Default "MJPG".
    """
    width, height = size
    rng = np.random.default_rng(seed)
    background = render_background(rng, width, height)  # BGR
    figures = [make_figure(rng, float(p.height), "person") for p in people]
    palettes = [person_palette(rng) for _ in people]
    n = len(people)
    keypoints = np.zeros((num_frames, n, 17, 2))
    boxes = np.zeros((num_frames, n, 4))
    present = np.zeros((num_frames, n), bool)
    with atomic_path(path) as tmp:
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*fourcc), float(fps),
                                 (width, height))
        if not writer.isOpened():
            raise OSError(f"OpenCV cannot write a {fourcc} video to {os.fspath(path)}")
        try:
            for f in range(num_frames):
                image = background.copy()
                for i, (person, figure) in enumerate(zip(people, figures)):
                    figure.place(np.add(person.start, np.multiply(person.velocity, f)))
                    keypoints[f, i] = figure.points
                    x0, y0, x1, y1 = figure.extent
                    boxes[f, i] = (x0, y0, x1 - x0, y1 - y0)
                    inside = x1 > 0 and y1 > 0 and x0 < width and y0 < height
                    present[f, i] = person.present(f) and inside
                    if present[f, i]:
                        for op in figure.ops:
                            draw_op(image, op, palettes[i][op[3]], True)
                writer.write(image)
        finally:
            writer.release()
    return ClipTruth(keypoints, boxes, present, float(fps))
