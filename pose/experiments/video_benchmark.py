"""Frames per second of video inference: detection on every frame vs every N-th frame,
and what tracking and smoothing cost (``tools/benchmark.py video``).

A generated clip (``datasets.synthetic.clips``: four people walking, two of them
crossing) goes through ``run_inference`` as ``tools/infer.py`` runs it (decode, boxes,
crops, network, decoding, tracking, overlay video, JSON lines), once per variant in one
process after a warm-up, the variants interleaved over ``rounds`` so that load changes on a
shared machine spread over all of them; each variant's best round is reported. Besides
the wall-clock frames per second, the process's CPU time per frame (all its threads) is
reported: on a machine shared with other work it is much less disturbed than the wall
clock. The tracker's own timers give the time spent matching and smoothing.

The box source is whatever the caller passes (``pose.apis.boxes``: a detection file by
default, the clip's true boxes). A box source's own cost is timed per call and reported,
so that a detector's share of a frame shows next to the pose network's.
"""

import dataclasses
import logging
import os
import time

from datasets.synthetic.clips import ClipPerson, render_clip
from pose.apis.inputs import collect_inputs
from pose.apis.runner import run_inference
from pose.apis.smoothing import OneEuroParams
from pose.apis.tracking import TrackingParams
from pose.fileio import write_json

logger = logging.getLogger(__name__)

# (label, detect every N frames, smoothing)
VARIANTS = (("detect every frame", 1, False), ("detect every frame + smooth", 1, True),
            ("detect every 5", 5, False), ("detect every 5 + smooth", 5, True))


def four_people_clip(workdir, num_frames=40, size=(1280, 720), fps=25.0, seed=0):
    """A generated clip of four people (two crossing, one walking away, one standing) and
    its true boxes as a COCO detection file; ``(clip path, detection file, truth)``."""
    w, h = size
    people = [ClipPerson((0.15 * w, 0.62 * h), (0.006 * w, 0), 0.55 * h),
              ClipPerson((0.85 * w, 0.64 * h), (-0.006 * w, 0.0005 * h), 0.52 * h),
              ClipPerson((0.45 * w, 0.45 * h), (0.002 * w, -0.001 * h), 0.35 * h),
              ClipPerson((0.62 * w, 0.50 * h), (0, 0), 0.42 * h)]
    clip = os.path.join(workdir, f"four_people_{w}x{h}_{num_frames}.avi")
    detections = os.path.splitext(clip)[0] + "_boxes.json"
    truth = render_clip(clip, people, num_frames, size=size, fps=fps, seed=seed)
    write_json(truth.detections(), detections)
    return clip, detections, truth


class TimedBoxes:
    """A box source that counts and times the calls of another."""

    def __init__(self, source):
        self.source = source
        self.name = getattr(source, "name", type(source).__name__)
        self.calls = 0
        self.seconds = 0.0

    def __call__(self, image, file_name=None, image_id=None):
        start = time.perf_counter()
        try:
            return self.source(image, file_name=file_name, image_id=image_id)
        finally:
            self.calls += 1
            self.seconds += time.perf_counter() - start


def benchmark_video(estimator, clip, box_source, workdir, rounds=2, variants=VARIANTS,
                    warmup_frames=3, min_score=0.0, keypoint_threshold=0.0):
    """Run ``clip`` through ``run_inference`` per variant; a dict per variant (best round).

    Args:
        estimator: ``PoseEstimator``.
        clip: the video file.
        box_source: a ``pose.apis.boxes`` box source.
        workdir: where the outputs go (overwritten per run).
        rounds: int, runs of every variant, interleaved. Default 2.
        variants: ``(label, detect_every, smooth)`` tuples. Default ``VARIANTS``.
        warmup_frames: int, frames run first (untimed) so that no variant pays the
            runtime's first calls. Default 3.
        min_score, keypoint_threshold: ``TrackingParams``'; the defaults 0 keep every
            person between detections whatever the scores, so that every variant
            estimates the same people, as a trained model that keeps finding them would
            (the benchmark's random-weight models score near 0: with ``tools/infer.py``'s
            0.3 they would lose everybody on the first frame without detection and do
            less work). Default 0.0.
    """
    for i, image in zip(range(warmup_frames), _frames(clip)):
        boxes, scores = box_source(image, file_name=None, image_id=i)
        estimator.predict_image(image, boxes, scores)
    runs = {label: [] for label, _, _ in variants}
    inputs = collect_inputs([clip])
    for round_index in range(rounds):
        for label, every, smooth in variants:
            params = TrackingParams(detect_every=every,
                                    smooth=OneEuroParams() if smooth else None,
                                    min_score=min_score,
                                    keypoint_threshold=keypoint_threshold)
            timed = TimedBoxes(box_source)
            calls_before = estimator.model_calls
            out = os.path.join(workdir, "out_" + label.replace(" ", "_").replace("+", "p"))
            cpu_before = time.process_time()
            report = run_inference(estimator, inputs, out, timed, verbose=0, tracking=params)
            cpu = time.process_time() - cpu_before
            frames = report.num_images
            result = {"frames": frames, "seconds": report.seconds,
                      "fps": frames / report.seconds, "cpu_s_per_frame": cpu / frames,
                      "people": report.num_people,
                      "box_calls": timed.calls, "box_ms_per_call":
                          timed.seconds / max(timed.calls, 1) * 1e3,
                      "model_calls": estimator.model_calls - calls_before,
                      "tracking_ms_per_frame": report.tracking_seconds / frames * 1e3,
                      "smoothing_ms_per_frame": report.smoothing_seconds / frames * 1e3}
            runs[label].append(result)
            logger.info("  round %d: %s: %.2f frames/s (%d box-source calls, tracking "
                        "%.2f ms/frame)", round_index + 1, label, result["fps"],
                        timed.calls, result["tracking_ms_per_frame"])
    return {label: dict(max(results, key=lambda r: r["fps"]),
                        cpu_s_per_frame=min(r["cpu_s_per_frame"] for r in results),
                        rounds=results)
            for label, results in runs.items()}


def _frames(clip):
    import cv2

    cap = cv2.VideoCapture(os.fspath(clip))
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


def variant_rows(results):
    """Table rows: frames/s, its ratio to detection on every frame, the box source's and
    the network's calls, tracking cost."""
    base = next(iter(results.values()))["fps"]
    base_cpu = next(iter(results.values()))["cpu_s_per_frame"]
    return [dataclasses.asdict(_Row(label, r["fps"], r["fps"] / base, r["cpu_s_per_frame"],
                                    base_cpu / r["cpu_s_per_frame"], r["box_calls"],
                                    r["box_ms_per_call"], r["model_calls"],
                                    r["tracking_ms_per_frame"],
                                    r["smoothing_ms_per_frame"], r["people"]))
            for label, r in results.items()]


@dataclasses.dataclass
class _Row:
    variant: str
    fps: float
    ratio: float
    cpu_s: float
    cpu_ratio: float
    box_calls: int
    box_ms: float
    model_calls: int
    tracking_ms: float
    smoothing_ms: float
    people: int


COLUMNS = [("variant", "variant", "{}"), ("fps", "frames/s", "{:.2f}"),
           ("ratio", "× every frame", "{:.2f}"), ("cpu_s", "CPU s/frame", "{:.2f}"),
           ("cpu_ratio", "frames per CPU-s × every frame", "{:.2f}"),
           ("box_calls", "box-source calls", "{}"),
           ("box_ms", "box source (ms/call)", "{:.2f}"),
           ("model_calls", "network calls", "{}"),
           ("tracking_ms", "tracking (ms/frame)", "{:.2f}"),
           ("smoothing_ms", "of it smoothing (ms/frame)", "{:.2f}"),
           ("people", "people found", "{}")]
