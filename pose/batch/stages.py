"""The Ray Data stages of an extraction: read → person boxes → crop and estimate.

Each stage is a plain function or class over a batch (a dict of columns), so it runs (and
is tested) without Ray. The steps are ``tools/infer.py``'s own library functions in the
same order (``pose.apis.runner``: ``read_input_image``, ``video_frames``,
``input_image_id``, ``person_boxes``; ``PoseEstimator.iter_frames``), which is why the
keypoints are infer.py's.

Every part (an image, or a frame range of a video) comes out of the pose stage as one
marker row per image or frame it yielded (``part_rows`` of them; one row with the reason
when it could not be read, or none of its frames exist) plus one row per person. The
driver counts the markers to know when a part is complete, and the parts (``shard_parts``
of them) to know when a shard is.
"""

import json
import os
import time

import numpy as np
import pyarrow as pa

from pose.apis.inputs import InputError, open_video
from pose.apis.runner import input_image_id, person_boxes, read_input_image, video_frames

NO_IMAGE = np.zeros((0, 0, 3), np.uint8)

# What the pose stage returns: markers (marker=True: one per image/frame/unreadable part)
# and people (marker=False).
RESULT_SCHEMA = pa.schema([
    ("shard", pa.int64()), ("input", pa.int64()), ("range", pa.int32()),
    ("part_rows", pa.int32()), ("shard_parts", pa.int32()), ("marker", pa.bool_()),
    ("source", pa.string()),
    ("frame", pa.int64()), ("image_id", pa.int64()), ("width", pa.int32()),
    ("height", pa.int32()), ("person", pa.int32()), ("box", pa.list_(pa.float64())),
    ("box_score", pa.float64()), ("score", pa.float64()),
    ("keypoints_x", pa.list_(pa.float64())), ("keypoints_y", pa.list_(pa.float64())),
    ("keypoints_score", pa.list_(pa.float64())), ("error", pa.string()),
    ("frame_start", pa.int64()), ("frame_stop", pa.int64()),
    ("dropped_boxes", pa.int32()), ("read_s", pa.float64()), ("box_s", pa.float64()),
    ("pose_s", pa.float64()),
])

# One row per person in the Parquet shards.
PEOPLE_FIELDS = ["input", "source", "frame", "image_id", "width", "height", "person", "box",
                 "box_score", "score", "keypoints_x", "keypoints_y", "keypoints_score"]
ERROR_FIELDS = ["input", "source", "frame_start", "frame_stop", "reason"]


def people_schema(keypoint_names, extra=None):
    """The Parquet schema of the shards: ``PEOPLE_FIELDS`` with the keypoint names (and
    ``extra``) in the schema metadata (JSON)."""
    fields = [RESULT_SCHEMA.field(name) for name in PEOPLE_FIELDS]
    metadata = {b"keypoint_names": json.dumps(list(keypoint_names)).encode()}
    if extra:
        metadata[b"psa_pose"] = json.dumps(extra).encode()
    return pa.schema(fields, metadata=metadata)


ERROR_SCHEMA = pa.schema([("input", pa.int64()), ("source", pa.string()),
                          ("frame_start", pa.int64()), ("frame_stop", pa.int64()),
                          ("reason", pa.string())])


def task_block(number):
    """The block of one task of the dataset: its task number (``id``)."""
    return [pa.table({"id": pa.array([number], pa.int64())})]


def read_tasks(batch, tasks, exif_orientation=True):
    """Read stage: the parts of the batch's tasks (``batch["id"]``: task numbers, as
    ``task_block`` gives them) from the run's task table (an actor handle of a
    ``pose.batch.plan.TaskTable``), read by ``read_parts``."""
    import ray

    parts = ray.get(tasks.parts.remote([int(n) for n in batch["id"]]))
    return read_parts(parts, exif_orientation)


def read_parts(batch, exif_orientation=True):
    """Decode parts (``pose.batch.plan.PART_COLUMNS``) into one row per image or video
    frame; an unreadable part becomes one row with its ``error``."""
    out = {k: [] for k in ("shard", "input", "range", "part_rows", "shard_parts", "source",
                           "frame", "image", "error", "frame_start", "frame_stop",
                           "read_s")}

    def emit(rows, seconds, **common):
        for row in rows:
            for key, value in {**common, **row}.items():
                out[key].append(value)
            out["part_rows"].append(len(rows))
            out["read_s"].append(seconds / len(rows))

    for i in range(len(batch["input"])):
        start_time = time.perf_counter()
        path = str(batch["path"][i])
        common = dict(shard=int(batch["shard"][i]), input=int(batch["input"][i]),
                      range=int(batch["range"][i]),
                      shard_parts=int(batch["shard_parts"][i]), source=path,
                      frame_start=int(batch["start"][i]), frame_stop=int(batch["stop"][i]))
        if not batch["video"][i]:
            image, reason = read_input_image(path, exif_orientation)
            rows = [dict(frame=-1, image=NO_IMAGE if image is None else image,
                         error=reason or "")]
        else:
            rows = _read_range(path, common["frame_start"], common["frame_stop"])
        emit(rows, time.perf_counter() - start_time, **common)
    return {key: (values if key == "image" else np.asarray(values))
            for key, values in out.items()}


def _read_range(path, start, stop):
    """Rows of frames ``[start, stop)`` of a video (stop -1: to its end)."""
    try:
        cap, _, _ = open_video(path)
    except InputError as exc:
        return [dict(frame=-1, image=NO_IMAGE, error=_reason(exc, path))]
    try:
        rows = [dict(frame=index, image=frame, error="")
                for index, frame in video_frames(cap, start, None if stop < 0 else stop)]
    except InputError as exc:
        return [dict(frame=-1, image=NO_IMAGE, error=_reason(exc, path))]
    finally:
        cap.release()
    if not rows and start == 0:
        return [dict(frame=-1, image=NO_IMAGE, error="the video has no readable frame")]
    # a range past the last frame (the file's frame count was high): a marker, no error
    return rows or [dict(frame=-1, image=NO_IMAGE, error="")]


def _reason(exc, path):
    return str(exc).replace(f"{path!r}", "").replace(path, "").strip(" :") or str(exc)


class BoxStage:
    """Person-box stage: ``person_boxes`` of every image with the run's box source (built
    once per actor by ``make_source``, e.g. a detector file's runtime).

    Adds ``image_id`` (images: ``input_image_id`` with the 1-based input position;
    frames: the frame index, as ``tools/infer.py`` asks a box source for a video frame),
    ``boxes`` (M, 4), ``box_scores`` (M,), ``dropped_boxes`` and ``box_s``.
    """

    def __init__(self, make_source):
        self.source = make_source()

    def __call__(self, batch):
        n = len(batch["input"])
        ids, boxes, scores, dropped, seconds = [], [], [], [], []
        for i in range(n):
            image = batch["image"][i]
            frame = int(batch["frame"][i])
            path = str(batch["source"][i])
            image_id = (frame if frame >= 0
                        else input_image_id(self.source, path, int(batch["input"][i]) + 1))
            ids.append(image_id)
            if batch["error"][i] or image.size == 0:
                boxes.append(np.zeros((0, 4)))
                scores.append(np.zeros(0))
                dropped.append(0)
                seconds.append(0.0)
                continue
            start = time.perf_counter()
            found, found_scores, why = person_boxes(
                self.source, image, file_name=None if frame >= 0 else path,
                image_id=image_id)
            seconds.append(time.perf_counter() - start)
            boxes.append(np.asarray(found, np.float64).reshape(-1, 4))
            scores.append(np.asarray(found_scores, np.float64).reshape(-1))
            dropped.append(sum(why.values()))
        return {**batch, "image_id": np.asarray(ids, np.int64), "boxes": boxes,
                "box_scores": scores, "dropped_boxes": np.asarray(dropped, np.int32),
                "box_s": np.asarray(seconds)}


class PoseStage:
    """Crop-and-estimate stage (one runtime per actor): ``PoseEstimator.iter_frames`` over
    the batch's images, crops batched across them; returns a ``RESULT_SCHEMA`` table.

    Args:
        make_estimator: callable returning the ``PoseEstimator`` (loads the network).
        make_source: callable returning the box source when boxes come with this stage
            (no detector stage); None when the batch has them already.
    """

    def __init__(self, make_estimator, make_source=None):
        self.boxes = BoxStage(make_source) if make_source is not None else None
        self.estimator = make_estimator()

    def __call__(self, batch):
        from pose.apis.estimator import Frame

        if self.boxes is not None:
            batch = self.boxes(batch)
        n = len(batch["input"])
        rows = {name: [] for name in RESULT_SCHEMA.names}

        def marker(i, image, error=None, pose_s=0.0):
            h, w = image.shape[:2]
            self._row(rows, batch, i, marker=True, width=w or None, height=h or None,
                      error=error or None, pose_s=pose_s)

        frames = []
        for i in range(n):
            image = batch["image"][i]
            if batch["error"][i] or image.size == 0:
                marker(i, image, str(batch["error"][i]))
                continue
            frames.append(Frame(i, image, batch["boxes"][i], batch["box_scores"][i]))
        start = time.perf_counter()
        results = list(self.estimator.iter_frames(frames))
        pose_s = (time.perf_counter() - start) / max(1, len(results))
        for frame, people in results:
            i = frame.key
            h, w = frame.image.shape[:2]
            marker(i, frame.image, pose_s=pose_s)
            for p in range(len(people)):
                self._row(rows, batch, i, marker=False, width=w, height=h, person=p,
                          box=people.boxes[p].tolist(),
                          box_score=float(people.box_scores[p]),
                          score=float(people.scores[p]),
                          keypoints_x=people.keypoints[p, :, 0].tolist(),
                          keypoints_y=people.keypoints[p, :, 1].tolist(),
                          keypoints_score=people.keypoint_scores[p].tolist())
        return pa.table(rows, schema=RESULT_SCHEMA)

    @staticmethod
    def _row(rows, batch, i, marker, **values):
        frame = int(batch["frame"][i])
        common = dict(shard=int(batch["shard"][i]), input=int(batch["input"][i]),
                      range=int(batch["range"][i]), part_rows=int(batch["part_rows"][i]),
                      shard_parts=int(batch["shard_parts"][i]), marker=marker,
                      source=str(batch["source"][i]),
                      frame=frame if frame >= 0 else None,
                      image_id=int(batch["image_id"][i]),
                      frame_start=int(batch["frame_start"][i]),
                      frame_stop=int(batch["frame_stop"][i]))
        if marker:
            common.update(dropped_boxes=int(batch["dropped_boxes"][i]),
                          read_s=float(batch["read_s"][i]), box_s=float(batch["box_s"][i]))
        for name in RESULT_SCHEMA.names:
            rows[name].append({**common, **values}.get(name))


def make_box_source(spec):
    """The box source of a run from its JSON-able ``spec``: ``{"kind": "whole"}``,
    ``{"kind": "boxes", "file": DET.json}`` or ``{"kind": "detector", "file", "threads",
    **DetectorBoxes options}``."""
    from pose.apis.boxes import DetectionBoxes, WholeImageBoxes

    kind = spec["kind"]
    if kind == "whole":
        return WholeImageBoxes()
    if kind == "boxes":
        return DetectionBoxes(spec["file"])
    if kind == "detector":
        from pose.apis.detector import DetectorBoxes

        options = {k: v for k, v in spec.items() if k not in ("kind", "file")}
        return DetectorBoxes(spec["file"], **options)
    raise ValueError(f"unknown box source {kind!r}")


def make_estimator(spec):
    """The ``PoseEstimator`` of a run from its JSON-able ``spec`` (``load_network`` with
    ``weights``, ``runtime``, ``threads``, ``input_size``; the config as
    ``tools/infer.py`` resolves it; ``flip``, ``batch_size``, ``batching``)."""
    from pose.apis.estimator import PoseEstimator, load_network
    from pose.config import resolve_config

    model, saved = load_network(spec["weights"], spec["runtime"], spec["threads"],
                                input_size=spec["input_size"], optimize_graph=False,
                                trace_ahead=spec["batching"] == "dynamic")
    config = resolve_config(spec["config"], saved, spec["overrides"], source=spec["weights"])
    return PoseEstimator.from_config(model, config, flip=spec["flip"],
                                     batch_size=spec["batch_size"], batching=spec["batching"])


def worker_environment():
    """Quiet TensorFlow start-up in workers that load a .keras model (an explicit setting
    wins)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
