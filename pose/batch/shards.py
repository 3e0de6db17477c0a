"""The driver's side of an extraction: the shards it writes from the pose stage's result
tables (``ShardWriter``: a shard's Parquet file once all of its parts are in, each part
counted once however often it ran) and the files made from the shards at the end
(``errors.parquet``, the COCO results).
"""

import dataclasses
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq

from pose.batch import plan, stages
from pose.fileio import atomic_path

POSES = "poses"
ERRORS = "errors"
ERRORS_FILE = "errors.parquet"
ERROR_GROUP_ROWS = 1024  # rows per row group of errors.parquet (merge_errors)


@dataclasses.dataclass
class Counts:
    images: int = 0
    frames: int = 0
    people: int = 0
    errors: int = 0
    dropped_boxes: int = 0

    def add(self, other):
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


class ShardWriter:
    """The driver's side: counts each part's markers, buffers people per shard, and
    writes a shard when all of its parts are in (atomically, errors first)."""

    def __init__(self, out_dir, keypoint_names):
        self.out_dir = out_dir
        self.keypoint_names = keypoint_names
        # per shard in flight, dropped once it is written: the driver's state does not
        # grow with the number of inputs or shards (a written shard is known by its file:
        # the late copies of its parts are ignored)
        self.expected = {}  # shard → number of parts (its rows say)
        self.parts = {}  # (input, range) → [part_rows, markers seen]
        self.done_parts = {}  # shard → parts complete
        self.finished = {}  # shard → {(input, range) complete}: later copies are ignored
        self.people = {}  # shard → [tables]
        self.markers = {}  # shard → [marker tables]
        self.written = 0
        self.seen = 0
        self.counts = Counts()
        self.stage_seconds = {"read": 0.0, "boxes": 0.0, "pose": 0.0}

    def add(self, table):
        """One result table of the pose stage."""
        if table.num_rows == 0:
            return
        table = table.cast(stages.RESULT_SCHEMA)
        keys = list(zip(table.column("input").to_pylist(), table.column("range").to_pylist()))
        shard_col = table.column("shard").to_pylist()
        written = {shard for shard in set(shard_col) if shard not in self.expected
                   and os.path.exists(self.path(shard))}
        fresh = [shard not in written and key not in self.finished.get(shard, ())
                 for shard, key in zip(shard_col, keys)]  # a late copy: ignored
        if not all(fresh):
            table = table.filter(pa.array(fresh, pa.bool_()))
            keys = [key for key, keep in zip(keys, fresh) if keep]
            shard_col = [shard for shard, keep in zip(shard_col, fresh) if keep]
        is_marker = table.column("marker")
        for shard in set(shard_col):
            part = table.filter(pa.array([s == shard for s in shard_col], pa.bool_()))
            self.people.setdefault(shard, []).append(part.filter(_not(part["marker"])))
            self.markers.setdefault(shard, []).append(part.filter(part["marker"]))
        part_rows = table.column("part_rows").to_pylist()
        shard_parts = table.column("shard_parts").to_pylist()
        frames = table.column("frame").to_pylist()
        read = [e is None and w is not None for e, w in
                zip(table.column("error").to_pylist(), table.column("width").to_pylist())]
        completed = []
        for row, marker in enumerate(is_marker.to_pylist()):
            if not marker:
                continue
            self.expected.setdefault(shard_col[row], shard_parts[row])
            state = self.parts.setdefault(keys[row], [part_rows[row], set()])
            if frames[row] not in state[1]:
                self.seen += read[row]  # images/frames in so far (progress, rates)
            state[1].add(frames[row])  # a frame seen twice (a retried task) counts once
            finished = self.finished.setdefault(shard_col[row], set())
            if len(state[1]) >= state[0] and keys[row] not in finished:
                finished.add(keys[row])
                del self.parts[keys[row]]
                completed.append(shard_col[row])
        for shard in completed:
            self.done_parts[shard] = self.done_parts.get(shard, 0) + 1
            if self.done_parts[shard] == self.expected[shard]:
                self._write(shard)
                del self.finished[shard], self.done_parts[shard], self.expected[shard]

    def path(self, shard):
        return os.path.join(self.out_dir, POSES, plan.SHARD_NAME.format(shard))

    def _write(self, shard):
        people = _dedup(pa.concat_tables(self.people.pop(shard)),
                        ["input", "range", "frame", "person"])
        markers = _dedup(pa.concat_tables(self.markers.pop(shard)),
                         ["input", "range", "frame"])
        errors = markers.filter(_is_valid(markers.column("error")))
        read = [(f, w) for f, w, e in zip(markers.column("frame").to_pylist(),
                                          markers.column("width").to_pylist(),
                                          markers.column("error").to_pylist())
                if e is None and w is not None]  # not the marker of a range past the end
        counts = Counts(
            images=sum(1 for f, _ in read if f is None),
            frames=sum(1 for f, _ in read if f is not None),
            people=people.num_rows, errors=errors.num_rows,
            dropped_boxes=sum(v or 0 for v in markers.column("dropped_boxes").to_pylist()))
        for stage, column in (("read", "read_s"), ("boxes", "box_s"), ("pose", "pose_s")):
            self.stage_seconds[stage] += sum(v or 0.0 for v in
                                             markers.column(column).to_pylist())
        name = plan.SHARD_NAME.format(shard)
        error_path = os.path.join(self.out_dir, ERRORS, name)
        if errors.num_rows:
            table = errors.rename_columns(
                ["reason" if n == "error" else n for n in errors.column_names])
            video = [plan.is_video(s) for s in table.column("source").to_pylist()]
            table = table.set_column(  # an image has no frames; a range's -1 is its end
                table.schema.get_field_index("frame_start"), "frame_start",
                pa.array([s if v else None for s, v in
                          zip(table.column("frame_start").to_pylist(), video)], pa.int64()))
            table = table.set_column(
                table.schema.get_field_index("frame_stop"), "frame_stop",
                pa.array([s if v and s >= 0 else None for s, v in
                          zip(table.column("frame_stop").to_pylist(), video)], pa.int64()))
            _write_parquet(table.select(stages.ERROR_FIELDS).cast(stages.ERROR_SCHEMA),
                           error_path)
        elif os.path.exists(error_path):  # an earlier attempt's, when the file was missing
            os.remove(error_path)
        schema = stages.people_schema(self.keypoint_names,
                                      {"shard": shard, **dataclasses.asdict(counts)})
        people = people.sort_by([("input", "ascending"), ("frame", "ascending"),
                                 ("person", "ascending")])
        _write_parquet(people.select(stages.PEOPLE_FIELDS).cast(schema), self.path(shard))
        self.written += 1
        self.counts.add(counts)


def _not(mask):
    import pyarrow.compute as pc

    return pc.invert(mask)


def _is_valid(column):
    import pyarrow.compute as pc

    return pc.is_valid(column)


def _dedup(table, keys):
    """``table`` without repeated rows of the same ``keys`` (a part that ran twice)."""
    seen, keep = set(), []
    columns = [table.column(k).to_pylist() for k in keys]
    for row in zip(*columns):
        keep.append(row not in seen)
        seen.add(row)
    return table.filter(pa.array(keep, pa.bool_())) if not all(keep) else table


def _write_parquet(table, path):
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def shard_counts(path):
    """The ``Counts`` a shard file records in its schema metadata."""
    metadata = pq.read_schema(path).metadata or {}
    saved = json.loads(metadata.get(b"psa_pose", b"{}"))
    return Counts(**{f.name: int(saved.get(f.name, 0)) for f in dataclasses.fields(Counts)})


def _read_parquet(path):
    """A Parquet file's table, read through ``ParquetFile`` (``pq.read_table`` goes through
    the datasets machinery: ~35 MB of the driver's memory, and more per file)."""
    with pq.ParquetFile(path) as f:
        return f.read(use_threads=False)


def merge_errors(out_dir, group_rows=ERROR_GROUP_ROWS):
    """``errors.parquet``: the shards' error files in shard order (each sorted), one
    shard at a time: inputs are numbered in shard order, so the whole file is sorted.

    Row groups of about ``group_rows`` rows: the Parquet writer keeps every row group's
    metadata until it writes the footer (~9 KiB each, so one group per shard grew the
    driver by ~35 MB at 3,907 shards), while much larger groups cost Arrow's memory
    pool a constant ~20 MB more (BENCHMARKS.md)."""
    folder = os.path.join(out_dir, ERRORS)
    with atomic_path(os.path.join(out_dir, ERRORS_FILE)) as tmp:
        with pq.ParquetWriter(tmp, stages.ERROR_SCHEMA) as f:
            group, rows = [], 0
            for name in sorted(os.listdir(folder)):
                if name.endswith(".parquet"):
                    table = _read_parquet(os.path.join(folder, name))
                    group.append(table.cast(stages.ERROR_SCHEMA).sort_by(
                        [("input", "ascending"), ("frame_start", "ascending")]))
                    rows += table.num_rows
                    if rows >= group_rows:
                        f.write_table(pa.concat_tables(group))
                        group, rows = [], 0
            if group:
                f.write_table(pa.concat_tables(group))


def write_coco_results(out_dir, path):
    """The COCO keypoint results of the images (not video frames), in input order: as
    ``tools/infer.py``'s ``predictions.json`` (``image_id`` made unique per file as it
    does, keypoints ``[x, y, s]·K`` with x, y rounded to 3 decimals), written as a stream."""
    from pose.apis.inputs import ImageIds

    ids = ImageIds()
    folder = os.path.join(out_dir, POSES)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write("[")
        first = True
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".parquet"):
                continue
            rows = _read_parquet(os.path.join(folder, name)).to_pylist()
            for row in rows:
                if row["frame"] is not None:
                    continue
                keypoints = []
                for x, y, s in zip(row["keypoints_x"], row["keypoints_y"],
                                   row["keypoints_score"]):
                    keypoints += [round(x, 3), round(y, 3), s]
                record = {"image_id": ids.assign(row["image_id"], row["source"]),
                          "category_id": 1, "file_name": os.path.basename(row["source"]),
                          "keypoints": keypoints, "score": row["score"],
                          "box": [round(v, 2) for v in row["box"]],
                          "box_score": row["box_score"],
                          "keypoint_scores": row["keypoints_score"]}
                f.write(("" if first else ",") + json.dumps(record, allow_nan=True))
                first = False
        f.write("]")
