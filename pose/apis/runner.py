"""The inference run of ``tools/infer.py``: inputs → boxes → ``PoseEstimator`` → files.

Outputs (every file written to a temporary name in ``out_dir`` and renamed when complete):

- ``<name>.<ext>``: an overlay per image (same base name and extension; sub-folders of a
  folder input are kept).
- ``predictions.json``: COCO keypoint results of all images (``image_id``,
  ``category_id``, ``keypoints`` [x, y, s]·K, ``score``) plus ``file_name``, ``box``
  (x, y, w, h; not ``bbox``, which would change how pycocotools' ``loadRes`` computes
  areas), ``box_score`` and ``keypoint_scores``. ``image_id`` is, in order of preference,
  the detection entry's id matched by file name, the number of a COCO-style name
  (``000000000785.jpg`` → 785), else the input's position (1, 2, ...).
- ``summary.json``: the run report: counts of images and people, skipped files, images
  without a person box, and the person boxes dropped by reason (``clip_boxes``: outside
  the image, NaN, non-positive size; a detection file's malformed entries). A separate
  file, so that ``predictions.json`` stays a plain COCO results list that pycocotools'
  ``loadRes`` reads.
- ``<video stem>.mp4`` (mp4v) and ``<video stem>.jsonl``: the overlay video and one JSON
  line per frame ``{"frame", "time_s", "people": [...]}``; each person of a video carries
  a ``track_id`` (``pose.apis.tracking``: ids across frames, ``--smooth``,
  ``--detect-every``), and the overlay colours and labels people by it.

Every person box is clipped to its image first (``pose.apis.boxes.clip_boxes``).
"""

import contextlib
import dataclasses
import json
import os
import sys
import time

import cv2

from datasets.images import ImageDecodeError, read_image_rgb
from pose.apis.boxes import clip_boxes
from pose.apis.estimator import Frame
from pose.apis.inputs import ImageIds, InputError, image_id_from_name, open_video
from pose.apis.tracking import PoseTracker, track_video
from pose.checks import check_output_folder
from pose.fileio import atomic_path, finite_json, save_image, write_json
from pose.visualization import draw_pose


@dataclasses.dataclass
class InferenceReport:
    """What ``run_inference`` did: outputs, skipped files, counts and speed."""

    box_source: str
    overlays: list = dataclasses.field(default_factory=list)
    videos: list = dataclasses.field(default_factory=list)
    predictions_file: str = None
    skipped: list = dataclasses.field(default_factory=list)  # (path, reason)
    no_boxes: list = dataclasses.field(default_factory=list)  # images without a person box
    dropped_boxes: dict = dataclasses.field(default_factory=dict)  # reason -> count
    summary_file: str = None
    num_images: int = 0  # images and video frames estimated
    num_people: int = 0
    non_finite_people: int = 0  # people with NaN/infinite values, written as null
    seconds: float = 0.0
    first_output_seconds: float = None  # from the start of the run to the first overlay
    box_seconds: float = 0.0  # spent in the person-box source (a detector's share)
    tracking_seconds: float = 0.0  # of ``seconds``: matching people to tracks (videos)
    smoothing_seconds: float = 0.0  # of ``tracking_seconds``: the One-Euro filters

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
        if self.num_images and self.box_seconds >= 0.05:
            lines.append(f"person boxes took {self.box_seconds:.1f} s "
                         f"({1e3 * self.box_seconds / self.num_images:.0f} ms per image/frame)")
        if self.no_boxes:
            lines.append(f"{len(self.no_boxes)} image(s) had no person box: "
                         + ", ".join(self.no_boxes[:10])
                         + (" ..." if len(self.no_boxes) > 10 else ""))
        if self.dropped_boxes:
            lines.append(f"dropped {sum(self.dropped_boxes.values())} person box(es): "
                         + ", ".join(f"{k}={v}" for k, v in sorted(self.dropped_boxes.items())))
        if self.non_finite_people:
            lines.append(f"{self.non_finite_people} person(s) had NaN or infinite values, "
                         "written as null: the model's output is not finite (check the "
                         "weights)")
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} unreadable file(s):")
            lines.extend(f"  {path}: {reason}" for path, reason in self.skipped)
        return "\n".join(lines)

    def as_dict(self):
        """What ``summary.json`` holds."""
        return {"box_source": self.box_source, "box_seconds": round(self.box_seconds, 3),
                "images": self.num_images,
                "people": self.num_people, "non_finite_people": self.non_finite_people,
                "dropped_boxes": dict(self.dropped_boxes),
                "no_boxes": list(self.no_boxes),
                "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
                "predictions_file": self.predictions_file,
                "videos": [list(v) for v in self.videos]}

    def boxes_of(self, box_source, image, file_name=None, image_id=None):
        """``person_boxes`` timed (``box_seconds``, with the clipping), counting what the
        clipping drops."""
        start = time.perf_counter()
        boxes, scores, dropped = person_boxes(box_source, image, file_name=file_name,
                                              image_id=image_id)
        self.box_seconds += time.perf_counter() - start
        self._count_dropped(dropped)
        return boxes, scores

    def strict_records(self, records):
        """``records`` with non-finite numbers as null (strict JSON), counting the people
        that had any."""
        out = []
        for record in records:
            clean, count = finite_json(record)
            self.non_finite_people += count > 0
            out.append(clean)
        return out

    def checked_boxes(self, image, boxes, scores):
        """``clip_boxes`` on ``image``, counting what it drops."""
        h, w = image.shape[:2]
        boxes, scores, dropped = clip_boxes(boxes, scores, w, h)
        self._count_dropped(dropped)
        return boxes, scores

    def _count_dropped(self, dropped):
        for reason, count in dropped.items():
            self.dropped_boxes[reason] = self.dropped_boxes.get(reason, 0) + count


# The steps of one image or frame that every inference path takes in this order (this
# module's run, and the Ray Data stages of ``pose.batch``): read, person boxes, then
# ``PoseEstimator.iter_frames``. Shared, so that the paths give the same numbers.


def read_input_image(path, exif_orientation=True):
    """``(image RGB uint8, None)`` of an image file, or ``(None, reason)`` when it cannot
    be read (missing, unreadable, not an image): the run skips it and reports why."""
    try:
        return read_image_rgb(path, exif_orientation=exif_orientation), None
    except (OSError, ImageDecodeError) as exc:
        return None, str(exc).replace(os.fspath(path) + ": ", "")


def person_boxes(box_source, image, file_name=None, image_id=None):
    """The person boxes of ``image``: ``box_source(image, file_name, image_id)``, then
    ``clip_boxes`` against the image. Returns ``(boxes (M, 4) xywh, scores (M,),
    dropped)``, ``dropped`` the counts by reason of the boxes the clipping removed."""
    found = box_source(image, file_name=file_name, image_id=image_id)
    h, w = image.shape[:2]
    return clip_boxes(*found, w, h)


def video_frames(cap, start=0, stop=None):
    """``(index, RGB frame)`` of an open ``cv2.VideoCapture`` from frame ``start`` (a seek
    first, when > 0) up to ``stop`` (excluded; None: to the end).

    Raises:
        InputError: the seek to ``start`` did not land on that frame (a container or
            codec that OpenCV cannot seek in frame-exactly).
    """
    if start > 0:
        cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        where = int(cap.get(cv2.CAP_PROP_POS_FRAMES))
        if where != start:
            raise InputError(f"cannot seek to frame {start} (the video reader is at frame "
                             f"{where})")
    index = start
    while stop is None or index < stop:
        ok, bgr = cap.read()
        if not ok:
            break
        yield index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        index += 1


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


class Progress:
    """``images n/N`` on stderr, rewritten in place at most every half second (Keras'
    Progbar would import TensorFlow, which a LiteRT/ONNX run never loads). Only on a
    terminal, and erased when done: stderr keeps nothing but a possible ``error:`` line
    (the report on stdout has the counts)."""

    def __init__(self, target, verbose):
        isatty = getattr(sys.stderr, "isatty", None)
        self.enabled = bool(verbose) and callable(isatty) and isatty()
        self.target = target
        self.done = 0
        self.last = 0.0

    def add(self, n=1):
        if not self.enabled:
            return
        self.done += n
        now = time.perf_counter()
        final = self.target is not None and self.done >= self.target
        if final or now - self.last >= 0.5:
            self.last = now
            total = f"/{self.target}" if self.target else ""
            text = f"images {self.done}{total}"
            sys.stderr.write(f"\r{' ' * len(text)}\r" if final else f"\r{text}")
            sys.stderr.flush()


def run_inference(estimator, inputs, out_dir, box_source, threshold=0.3, box_threshold=0.5,
                  verbose=1, tracking=None, exif_orientation=True):
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
        tracking: ``pose.apis.tracking.TrackingParams`` for videos (matching, max age,
            ``smooth``, ``detect_every``); None takes the defaults. Default None.
        exif_orientation: bool, read photos upright (their EXIF orientation applied:
            keypoints, boxes and overlays in the displayed frame). Default True.

    Returns:
        ``InferenceReport``.

    Raises:
        OutputError: ``out_dir`` is a file, an input folder or the folder of an input, or
            cannot be written (checked before anything is written).
        InputError: a video that cannot be opened (likewise), or no input could be read
            (then nothing but unreadable-file checks happened: no output is written).
    """
    start = time.perf_counter()
    out_dir = os.fspath(out_dir)
    check_output_folder(out_dir, [item.path for item in inputs])
    report = InferenceReport(box_source=getattr(box_source, "name", type(box_source).__name__),
                             dropped_boxes=dict(getattr(box_source, "dropped", {})))
    images = [item for item in inputs if item.kind == "image"]
    videos = [item for item in inputs if item.kind == "video"]
    frame_counts = {}
    for item in videos:  # fail before writing anything
        cap, _, count = open_video(item.path)
        cap.release()
        frame_counts[item.path] = count
    names = _Names(out_dir)
    progress = Progress(len(images) + sum(frame_counts.values())
                         if all(frame_counts.values()) else None, verbose)
    meta = estimator.meta

    def draw(image, people):
        shown = people.box_scores >= box_threshold
        ids = None if people.track_ids is None else people.track_ids[shown]
        return draw_pose(image, people.keypoints[shown], people.keypoint_scores[shown], meta,
                         boxes=people.boxes[shown], box_scores=people.box_scores[shown],
                         threshold=threshold, track_ids=ids)

    def mark_first_output():
        if report.first_output_seconds is None:
            report.first_output_seconds = time.perf_counter() - start

    # ---- images: one stream, crops batched across images
    if images:
        report.predictions_file = _run_images(estimator, images, out_dir, names, box_source,
                                              draw, report, progress, mark_first_output,
                                              exif_orientation)

    # ---- videos: one stream per video, overlay video + JSON lines
    for item in videos:
        video_path, lines_path = _run_video(estimator, item, names, box_source, draw,
                                            report, progress, mark_first_output, tracking)
        report.videos.append((video_path, lines_path))
    report.seconds = time.perf_counter() - start
    if report.num_images == 0:
        skipped = "; ".join(f"{path}: {reason}" for path, reason in report.skipped[:3])
        raise InputError(f"nothing was processed: none of the {len(inputs)} input(s) could "
                         f"be read ({skipped}{' ...' if len(report.skipped) > 3 else ''})")
    report.summary_file = os.path.join(out_dir, "summary.json")
    write_json(report.as_dict(), report.summary_file)
    return report


def input_image_id(box_source, path, position):
    """The image id an input file asks for: the detection entry's id by file name, a
    COCO-style name's number, or its 1-based ``position`` among the inputs."""
    image_id = None
    if hasattr(box_source, "image_id_for"):
        image_id = box_source.image_id_for(path)
    if image_id is None:
        image_id = image_id_from_name(path)
    return position if image_id is None else image_id


def _run_images(estimator, images, out_dir, names, box_source, draw, report, progress,
                mark_first_output, exif_orientation=True):
    """The images of a run as one stream (crops batched across images): an overlay per
    image and ``predictions.json``, whose path is returned."""
    results = []
    ids = ImageIds()

    def image_frames():
        for position, item in enumerate(images, start=1):
            image, reason = read_input_image(item.path, exif_orientation)
            if image is None:
                report.skipped.append((item.path, reason))
                progress.add()
                continue
            image_id = ids.assign(input_image_id(box_source, item.path, position), item.path)
            boxes, scores = report.boxes_of(box_source, image, file_name=item.path,
                                            image_id=image_id)
            if len(boxes) == 0:
                report.no_boxes.append(item.path)
            yield Frame((item, image_id), image, boxes, scores)

    for frame, people in estimator.iter_frames(image_frames()):
        item, image_id = frame.key
        path = names.take(item.name, _overlay_ext(item.name))
        save_image(draw(frame.image, people), path)
        mark_first_output()
        report.overlays.append(path)
        for record in report.strict_records(people.records()):
            results.append({"image_id": image_id, "category_id": 1,
                            "file_name": item.name, **record})
        report.num_images += 1
        report.num_people += len(people)
        progress.add()
    if not report.num_images:
        return None  # nothing read: run_inference reports it, no empty results file
    predictions_file = os.path.join(out_dir, "predictions.json")
    write_json(results, predictions_file, indent=None)
    return predictions_file


def _run_video(estimator, item, names, box_source, draw, report, progress, mark_first_output,
               tracking=None):
    cap, fps, _ = open_video(item.path)
    tracker = PoseTracker(estimator.meta.sigmas_array, fps, tracking)
    stem = os.path.splitext(item.name)[0]
    video_path = names.take(stem + ".mp4")
    lines_path = names.take(stem + ".jsonl")
    writer = None
    with contextlib.ExitStack() as stack:
        stack.callback(cap.release)
        tmp_video = stack.enter_context(atomic_path(video_path))
        tmp_lines = stack.enter_context(atomic_path(lines_path))
        lines = stack.enter_context(open(tmp_lines, "w"))

        def timed_boxes(image, file_name=None, image_id=None):  # timed, clipped, counted
            return report.boxes_of(box_source, image, file_name=file_name, image_id=image_id)

        for frame, people in track_video(estimator, video_frames(cap), timed_boxes, tracker,
                                         check_boxes=lambda image, boxes, scores: (boxes,
                                                                                   scores)):
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
                                    "people": report.strict_records(people.records())},
                                   allow_nan=False) + "\n")
            report.num_images += 1
            report.num_people += len(people)
            progress.add()
        report.tracking_seconds += tracker.seconds
        report.smoothing_seconds += tracker.smooth_seconds
        if writer is None:
            raise InputError(f"video {item.path!r} has no readable frame")
        writer.release()  # flush before the rename
        lines.close()
    return video_path, lines_path
