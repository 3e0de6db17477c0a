"""What the pose server does, without the web framework: the model and box source loaded
once, a bounded queue of work, one request's estimation, and a webcam stream's tracker.

Work runs in ``WorkQueue``'s worker thread(s) (one by default: the runtime uses every core
itself); the event loop only reads requests and writes answers. The queue admits at most
``capacity`` jobs (queued or running); beyond that a request is refused at once
(``QueueFull``: the server answers 503 with ``Retry-After``) before its body is read, so
memory stays bounded by ``capacity`` bodies whatever the number of clients. A job whose
request gave up (its time limit passed) while it waited is skipped; one already running
finishes and its result is dropped (a model call cannot be interrupted), and its slot is
freed only then, so the bound holds.

Estimation is ``tools/infer.py``'s: the image decoded as ``datasets.images.read_image_rgb``
decodes a file (EXIF orientation applied unless ``ignore_exif``), boxes from the box source
(or the request) clipped by ``pose.apis.boxes.clip_boxes``, ``PoseEstimator.iter_frames``,
``People.records`` with non-finite values as null: the same numbers as ``predictions.json``.
"""

import concurrent.futures
import dataclasses
import json
import math
import os
import queue
import threading
import time

import cv2
import numpy as np

from datasets.images import decode_image_rgb
from pose.apis.boxes import clip_boxes
from pose.apis.estimator import Frame, runtime_description, runtime_info
from pose.apis.smoothing import OneEuroParams
from pose.apis.tracking import PoseTracker, TrackingParams
from pose.errors import UserError
from pose.fileio import finite_json
from pose.visualization import SIDE_COLORS, draw_pose


class RequestError(UserError):
    """A request the server refuses (the message names the problem; ``status`` is the HTTP
    status: 400 bad input, 413 too large)."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


class QueueFull(Exception):
    """The work queue holds ``capacity`` jobs: come back in ``retry_after`` seconds."""

    def __init__(self, capacity, retry_after):
        super().__init__(f"the server is busy: {capacity} request(s) are queued or running; "
                         f"retry in {retry_after} s")
        self.retry_after = retry_after


class Ticket:
    """A slot of ``WorkQueue`` (``reserve``), freed once its job ran or was skipped, or by
    ``release`` when no job is submitted with it."""

    def __init__(self, work_queue):
        self._queue = work_queue
        self._released = False

    def release(self):
        with self._queue._lock:
            if not self._released:
                self._released = True
                self._queue._admitted -= 1


class WorkQueue:
    """A bounded queue of jobs run by ``workers`` threads, in arrival order.

    Args:
        capacity: int >= 1, most jobs admitted at once (queued + running).
        workers: int >= 1, threads running jobs. Default 1.
        retry_after: int, seconds a refused client is told to wait. Default 1.

    Example:
        >>> work = WorkQueue(8)
        >>> ticket = work.reserve()          # QueueFull when 8 are in
        >>> future = work.submit(ticket, estimate, image)
    """

    def __init__(self, capacity, workers=1, retry_after=1):
        if int(capacity) < 1 or int(workers) < 1:
            raise ValueError(f"capacity and workers must be >= 1, got {capacity}, {workers}")
        self.capacity = int(capacity)
        self.retry_after = int(retry_after)
        self._lock = threading.Lock()
        self._admitted = 0
        self.rejected = 0
        self.completed = 0
        self.skipped = 0
        self._jobs = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"pose-worker-{i}",
                                          daemon=True) for i in range(int(workers))]
        for thread in self._threads:
            thread.start()

    @property
    def admitted(self):
        """Jobs queued or running now (with reserved slots)."""
        return self._admitted

    def reserve(self):
        """A ``Ticket`` for one job, or ``QueueFull`` when ``capacity`` are admitted."""
        with self._lock:
            if self._admitted >= self.capacity:
                self.rejected += 1
                raise QueueFull(self.capacity, self.retry_after)
            self._admitted += 1
        return Ticket(self)

    def submit(self, ticket, fn, *args):
        """Run ``fn(*args)`` in a worker; a ``concurrent.futures.Future`` of its result
        (cancel it to skip the job if it has not started)."""
        future = concurrent.futures.Future()
        self._jobs.put((ticket, future, fn, args))
        return future

    def run(self, fn, *args):
        """``reserve`` + ``submit``."""
        return self.submit(self.reserve(), fn, *args)

    def _work(self):
        while True:
            ticket, future, fn, args = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                self.skipped += 1
                ticket.release()
                continue
            try:
                result, error = fn(*args), None
            except BaseException as exc:  # noqa: BLE001 (handed to the waiting request)
                result, error = None, exc
            # the slot is free before the waiting request hears of the result (a client
            # that got its answer finds the queue as it left it)
            ticket.release()
            self.completed += 1
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
            del ticket, future, fn, args, result, error  # drop the image before waiting

    def stats(self):
        return {"capacity": self.capacity, "admitted": self._admitted,
                "completed": self.completed, "rejected": self.rejected,
                "skipped": self.skipped}


def parse_boxes(text, where="boxes"):
    """Person boxes given with a request: JSON ``[[x, y, w, h], ...]`` or
    ``[[x, y, w, h, score], ...]`` in image pixels (score 1 when left out); ``(boxes (M, 4),
    scores (M,))``. ``RequestError`` naming ``where`` and the problem otherwise."""
    try:
        value = json.loads(text)
    except (ValueError, TypeError) as exc:
        raise RequestError(f"{where}: not JSON ({exc})") from None
    if not isinstance(value, list):
        raise RequestError(f"{where}: expected a list of [x, y, w, h] or [x, y, w, h, score] "
                           f"boxes, got {type(value).__name__}")
    if len(value) > 1000:
        raise RequestError(f"{where}: {len(value)} boxes, more than the 1000 a request may give")
    boxes, scores = [], []
    for i, box in enumerate(value):
        if (not isinstance(box, list) or len(box) not in (4, 5)
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                           for v in box)):
            raise RequestError(f"{where}: box {i} is {json.dumps(box)[:80]}, not 4 or 5 "
                               "numbers [x, y, w, h(, score)]")
        if not all(math.isfinite(v) for v in box):
            raise RequestError(f"{where}: box {i} holds a non-finite number")
        boxes.append([float(v) for v in box[:4]])
        scores.append(float(box[4]) if len(box) == 5 else 1.0)
    return np.array(boxes, np.float64).reshape(-1, 4), np.array(scores, np.float64)


def flag(value, where):
    """A request flag: ``1/true/yes/on`` or ``0/false/no/off/""`` (None: False)."""
    if value is None:
        return False
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise RequestError(f"{where} must be 1 or 0 (true or false), got {str(value)[:40]!r}")


@dataclasses.dataclass
class Estimate:
    """One image's result: its (upright) pixels, the people, and what the request cost."""

    image: np.ndarray
    people: object  # pose.apis.estimator.People
    exif_orientation: bool
    box_source: str
    dropped_boxes: dict
    decode_ms: float
    pose_ms: float


class PoseService:
    """The model and box source, loaded once, and what every request does with them.

    Args:
        estimator: ``pose.apis.estimator.PoseEstimator``.
        box_source: a person-box source of ``pose.apis.boxes``/``pose.apis.detector``.
        weights: str, the model file (reported by ``/v1/model``).
        threads: int or None, the runtime's threads (reported).
        threshold: float, keypoints scoring above are drawn (overlay, page). Default 0.3.
        box_threshold: float, people whose box score is at least this are drawn; all are
            in the JSON. Default 0.5.
        queue_size: int, ``WorkQueue`` capacity. Default 8.
        timeout: float, seconds a request may take (waiting included). Default 30.
        max_bytes: int, the largest request body (an image) accepted. Default 20 MiB.
        stream_max_age: float, seconds a webcam stream remembers a person it lost.
            Default 1.0.
        smooth: ``OneEuroParams`` of a webcam stream's smoothing; None takes the defaults.
    """

    def __init__(self, estimator, box_source, weights="", threads=None, threshold=0.3,
                 box_threshold=0.5, queue_size=8, timeout=30.0, max_bytes=20 << 20,
                 stream_max_age=1.0, smooth=None):
        self.estimator = estimator
        self.box_source = box_source
        self.meta = estimator.meta
        self.weights = os.fspath(weights)
        self.threads = threads
        self.threshold = float(threshold)
        self.box_threshold = float(box_threshold)
        self.timeout = float(timeout)
        self.max_bytes = int(max_bytes)
        self.work = WorkQueue(queue_size)
        self.stream_max_age = float(stream_max_age)
        self.smooth = smooth if smooth is not None else OneEuroParams()
        self.streams = {}  # id -> StreamSession, the open webcam connections
        self._next_stream = 0
        self._stream_lock = threading.Lock()
        self.started = time.time()

    # ------------------------------------------------------------------ what is served
    def model_info(self):
        """What ``GET /v1/model`` answers."""
        model = self.estimator.predictor.model if hasattr(
            self.estimator.predictor, "model") else None
        runtime = runtime_info(model) if model is not None else {}
        description = runtime_description(model, self.threads) if model is not None else ""
        w, h = self.estimator.codec.input_size
        return {"model_file": os.path.basename(self.weights.rstrip("/\\")),
                "input_size": [int(w), int(h)], **runtime,
                "runtime_description": description,
                "flip_test": bool(self.estimator.flip),
                "keypoints": list(self.meta.keypoint_names),
                "skeleton": [list(limb) for limb in self.meta.skeleton],
                **self.drawing(),
                "detector": getattr(self.box_source, "name", type(self.box_source).__name__),
                "limits": {"max_bytes": self.max_bytes, "queue": self.work.capacity,
                           "timeout_s": self.timeout}}

    def drawing(self):
        """How the page draws: sides and their RGB colours (``pose.visualization``), the
        thresholds."""
        return {"keypoint_sides": list(self.meta.keypoint_sides),
                "limb_sides": list(self.meta.limb_sides),
                "side_colors": {k: list(v) for k, v in SIDE_COLORS.items()},
                "threshold": self.threshold, "box_threshold": self.box_threshold}

    def health(self):
        return {"status": "ok", "queue": self.work.stats(), "open_streams": len(self.streams),
                "uptime_s": round(time.time() - self.started, 1)}

    # ------------------------------------------------------------------ one image
    def estimate(self, data, name="upload", boxes=None, box_scores=None,
                 exif_orientation=True):
        """Decode ``data`` (an image file's bytes) and estimate its people (a worker's job).

        Boxes: the request's (``boxes`` (M, 4) xywh, ``box_scores``) or the box source's;
        clipped to the image, what is dropped counted by reason."""
        start = time.perf_counter()
        image = decode_image_rgb(data, name, exif_orientation=exif_orientation)
        decoded = time.perf_counter()
        source = "request"
        if boxes is None:
            boxes, box_scores = self.box_source(image, file_name=None, image_id=None)
            source = getattr(self.box_source, "name", type(self.box_source).__name__)
        h, w = image.shape[:2]
        boxes, box_scores, dropped = clip_boxes(boxes, box_scores, w, h)
        ((_, people),) = list(self.estimator.iter_frames([Frame(None, image, boxes,
                                                                box_scores)]))
        end = time.perf_counter()
        return Estimate(image, people, exif_orientation, source, dropped,
                        1e3 * (decoded - start),
                        1e3 * (end - decoded))

    def people_json(self, people):
        """The people as JSON: box, box score, score, keypoints ``[[x, y, score], ...]``
        (``People.records``' rounding; non-finite values as null), track id if any."""
        out = []
        for record in people.records():
            record, _ = finite_json(record)
            flat = record.pop("keypoints")
            record.pop("keypoint_scores")
            record["keypoints"] = [flat[i:i + 3] for i in range(0, len(flat), 3)]
            out.append(record)
        return out

    def answer(self, result, total_ms=None, queue_ms=None):
        """The JSON answer of ``POST /v1/pose``; ``timing_ms``: ``decode`` and ``pose`` (the
        worker's job), ``queue`` (waiting for the worker) and ``total`` (from the request's
        arrival to the answer) when given."""
        h, w = result.image.shape[:2]
        timing = {"decode": round(result.decode_ms, 2), "pose": round(result.pose_ms, 2)}
        if queue_ms is not None:
            timing["queue"] = round(queue_ms, 2)
        if total_ms is not None:
            timing["total"] = round(total_ms, 2)
        return {"image": {"width": int(w), "height": int(h),
                          "exif_orientation": "applied" if result.exif_orientation
                          else "ignored"},
                "people": self.people_json(result.people),
                "keypoint_names": list(self.meta.keypoint_names),
                "skeleton": [list(limb) for limb in self.meta.skeleton],
                "box_source": result.box_source,
                "dropped_boxes": result.dropped_boxes,
                "timing_ms": timing}

    def overlay_png(self, result):
        """The drawn overlay as PNG bytes (``tools/infer.py``'s drawing)."""
        people = result.people
        shown = people.box_scores >= self.box_threshold
        ids = None if people.track_ids is None else people.track_ids[shown]
        drawn = draw_pose(result.image, people.keypoints[shown],
                          people.keypoint_scores[shown], self.meta,
                          boxes=people.boxes[shown], box_scores=people.box_scores[shown],
                          threshold=self.threshold, track_ids=ids)
        ok, png = cv2.imencode(".png", cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError("OpenCV could not encode the overlay as PNG")
        return png.tobytes()

    def warm_up(self):
        """One estimate on a blank image, so that the first request does not pay for the
        runtime's first call."""
        ok, jpeg = cv2.imencode(".jpg", np.zeros((64, 48, 3), np.uint8))
        self.estimate(jpeg.tobytes(), "warm-up")

    # ------------------------------------------------------------------ webcam streams
    def open_stream(self):
        """A ``StreamSession`` for a new webcam connection (``close`` it when it ends)."""
        with self._stream_lock:
            stream_id = self._next_stream
            self._next_stream += 1
            session = StreamSession(self, stream_id)
            self.streams[stream_id] = session
        return session

    def close_stream(self, session):
        with self._stream_lock:
            self.streams.pop(session.stream_id, None)


# A webcam frame message: an 8-byte little-endian float64 capture time (milliseconds, the
# page's performance.now()) followed by the frame's JPEG (or PNG) bytes.
FRAME_HEADER = 8


class StreamSession:
    """One webcam connection: its ``PoseTracker`` (ids per connection, One-Euro smoothing).

    The tracker's clock is the frames' capture times in milliseconds (``fps`` 1000, a
    frame's number is its capture time since the first frame), so smoothing follows the
    camera's real time steps, not the network's, and ``max_age`` is
    ``service.stream_max_age`` seconds of frames.
    """

    def __init__(self, service, stream_id):
        self.service = service
        self.stream_id = stream_id
        params = TrackingParams(max_age=max(1, int(round(service.stream_max_age * 1000))),
                                smooth=service.smooth)
        self.tracker = PoseTracker(service.meta.sigmas_array, 1000.0, params)
        self.first_ms = None
        self.last_frame = None
        self.frames = 0

    def frame_number(self, capture_ms):
        """The tracker's frame number of a capture time: milliseconds since the first
        frame, always after the previous frame's."""
        if not math.isfinite(capture_ms):
            raise RequestError("the frame's capture time is not a finite number")
        first = capture_ms if self.first_ms is None else self.first_ms
        number = int(round(capture_ms - first))
        if self.last_frame is not None and number <= self.last_frame:
            number = self.last_frame + 1
        return number

    def process(self, message):
        """A frame message → the JSON answer (a worker's job: frames of one connection are
        processed one at a time, in order). A bad frame changes nothing of the stream."""
        if len(message) <= FRAME_HEADER:
            raise RequestError(f"a frame message is an {FRAME_HEADER}-byte capture time "
                               f"and an image; got {len(message)} bytes")
        capture_ms = float(np.frombuffer(message[:FRAME_HEADER], "<f8")[0])
        number = self.frame_number(capture_ms)
        result = self.service.estimate(memoryview(message)[FRAME_HEADER:],
                                       f"frame {self.frames}")
        people = self.tracker.update(result.people, number)
        if self.first_ms is None:
            self.first_ms = capture_ms
        self.last_frame = number
        self.frames += 1
        h, w = result.image.shape[:2]
        return {"frame": self.frames - 1, "capture_ms": capture_ms,
                "image": {"width": int(w), "height": int(h)},
                "people": self.service.people_json(people),
                "timing_ms": {"decode": round(result.decode_ms, 2),
                              "pose": round(result.pose_ms, 2)}}

    def close(self):
        self.service.close_stream(self)
