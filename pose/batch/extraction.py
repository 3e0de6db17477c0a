"""Batch pose extraction on Ray Data: the pipeline and the driver that writes the shards.

    plan (driver: inputs in order → shards → parts, ``pose.batch.plan``)
      → read and decode (tasks, fused into the next stage's actors)
      → person boxes (an actor pool when a detector file runs; else inside the pose stage)
      → crop and estimate (an actor pool: one runtime per actor, ``threads`` each)
      → write (driver: a shard's Parquet file once all of its parts are in)

Exactly once: a shard is written by the driver alone, to a temporary name renamed when
complete, and only after every part of it came back; a re-run skips the shards whose
file exists. Ray retries what a lost worker or node was doing (tasks are re-run, actors
restarted), and the driver counts each part's rows once however often it ran (a part's
rows are all in one result batch of the task that read it... or, for a video range, the
``part_rows`` markers decide: a part is done when that many markers came in, and a
part that comes in again after it is done is ignored).

Outputs in ``out_dir``:

- ``poses/part-NNNNNN.parquet``: one row per person (``stages.PEOPLE_FIELDS``; keypoint
  names and the shard's counts in the schema metadata).
- ``errors/part-NNNNNN.parquet`` (shards with unreadable inputs) and, at the end of a run
  that finished every shard, ``errors.parquet``: ``input, source, frame_start,
  frame_stop, reason`` of every input (or video range) that could not be read.
- ``inputs.txt`` (the ordered inputs: input ``i`` is line ``i + 1``) and
  ``manifest.json`` (what the output is made of, counts, versions, runs).
- ``coco_results``: the COCO keypoint results of the images, when asked for.
"""

import dataclasses
import importlib.metadata
import json
import logging
import os
import socket
import time

import pyarrow as pa
import pyarrow.parquet as pq

from pose.batch import plan, stages
from pose.errors import UserError
from pose.fileio import atomic_path, write_json

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
INPUTS = "inputs.txt"
POSES = "poses"
ERRORS = "errors"
ERRORS_FILE = "errors.parquet"
OUTPUT_NAMES = [MANIFEST, INPUTS, POSES, ERRORS, ERRORS_FILE]
CONNECT_TIMEOUT_S = 5.0


class ClusterError(UserError):
    """Ray cannot be reached or cannot run the pipeline."""


@dataclasses.dataclass
class Settings:
    """How to run an extraction (the output's identity is ``identity()``)."""

    pose: dict  # the spec of ``stages.make_estimator``
    boxes: dict  # the spec of ``stages.make_box_source``
    keypoint_names: list
    exif_orientation: bool = True
    shard_size: int = 256
    frames_per_task: int = 32
    images_per_task: int = 8
    threads: int = 1
    actors: int = None  # per actor pool; None: autoscale from 1 to CPUs // threads
    digests: dict = dataclasses.field(default_factory=dict)  # file → sha256

    def identity(self, corpus):
        """What the output depends on: a re-run must agree on all of it."""
        pose = {k: self.pose[k] for k in ("runtime", "input_size", "config", "overrides",
                                          "flip")}
        pose["weights"] = os.path.abspath(self.pose["weights"])
        pose["weights_digest"] = self.digests.get("weights")
        pose["config_digest"] = self.digests.get("config")
        boxes = {k: v for k, v in self.boxes.items() if k != "threads"}
        if "file" in boxes:
            boxes["file"] = os.path.abspath(boxes["file"])
            boxes["file_digest"] = self.digests.get("boxes")
        return {"inputs": {"count": corpus.count, "sha256": corpus.digest()},
                "model": pose, "boxes": boxes, "exif_orientation": self.exif_orientation,
                "shard_size": self.shard_size, "frames_per_task": self.frames_per_task}


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


@dataclasses.dataclass
class ExtractionReport:
    """What a run did."""

    out_dir: str
    inputs: int
    shards: int
    shards_written: int = 0
    shards_kept: int = 0
    counts: Counts = dataclasses.field(default_factory=Counts)  # all shards, earlier too
    run_counts: Counts = dataclasses.field(default_factory=Counts)  # this run's shards
    stage_seconds: dict = dataclasses.field(default_factory=dict)  # this run, summed
    seconds: float = 0.0
    pipeline_seconds: float = 0.0
    first_result_seconds: float = None  # pipeline start → the first result batch
    steady_images: int = 0  # images/frames that came in after the first result batch
    coco_results: str = None

    @property
    def images_per_second(self):
        done = self.run_counts.images + self.run_counts.frames
        return done / self.pipeline_seconds if self.pipeline_seconds > 0 else 0.0

    @property
    def steady_images_per_second(self):
        """The rate after the first result batch: Ray's start-up (workers, actors, the
        model loads) left out."""
        if self.first_result_seconds is None:
            return 0.0
        seconds = self.pipeline_seconds - self.first_result_seconds
        return self.steady_images / seconds if seconds > 0 else 0.0

    def summary(self):
        c = self.counts
        lines = [f"{self.inputs} input(s) in {self.shards} shard(s): {self.shards_written} "
                 f"written now, {self.shards_kept} kept from an earlier run",
                 f"{c.images} image(s), {c.frames} video frame(s), {c.people} people"]
        if self.shards_written:
            lines.append(f"this run: {self.run_counts.images + self.run_counts.frames} "
                         f"images/frames in {self.pipeline_seconds:.1f} s "
                         f"({self.images_per_second:.2f}/s); after the first result "
                         f"({self.first_result_seconds or 0:.1f} s) "
                         f"{self.steady_images_per_second:.2f}/s; stage seconds summed over "
                         "workers: " + ", ".join(f"{k} {v:.1f}"
                                                 for k, v in self.stage_seconds.items()))
        if c.errors:
            lines.append(f"{c.errors} input(s) could not be read: see "
                         f"{os.path.join(self.out_dir, ERRORS_FILE)}")
        if c.dropped_boxes:
            lines.append(f"dropped {c.dropped_boxes} person box(es) outside the image or "
                         "malformed")
        return "\n".join(lines)


# --------------------------------------------------------------------------- Ray


def _address_text(address):
    return address if address else os.environ.get("RAY_ADDRESS")


def check_address(address):
    """A ``host:port`` that nothing answers at is a ``ClusterError`` within
    ``CONNECT_TIMEOUT_S`` (Ray itself would retry for a long while)."""
    if not address or address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ClusterError(f"Ray address {address!r} is not HOST:PORT")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise ClusterError(f"no Ray cluster answers at {address} ({exc.strerror or exc}); "
                           "start one with `ray start --head --port PORT` or leave out "
                           "--address to run on this machine") from None


def connect(address=None, num_cpus=None, object_store_memory=None):
    """``ray.init``: the cluster at ``address`` (or ``RAY_ADDRESS``), else a local Ray
    started on this machine (``num_cpus``, ``object_store_memory`` its size). Returns
    whether a local Ray was started (the caller shuts it down)."""
    import ray

    target = _address_text(address)
    check_address(target)
    if target and (num_cpus or object_store_memory):
        raise ClusterError("--num-cpus and --object-store-memory size a local Ray; a "
                           f"cluster ({target}) has its own")
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.WARNING)
    kwargs = dict(log_to_driver=False, logging_level=logging.WARNING,
                  configure_logging=False)
    if not target:
        kwargs.update(include_dashboard=False, num_cpus=num_cpus,
                      object_store_memory=object_store_memory)
    try:
        # "local": a Ray of its own, never another one that runs on this machine
        ray.init(address=address or ("local" if not target else None), **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"cannot connect to Ray at {target or 'a new local Ray'}: "
                           f"{str(exc).splitlines()[0] if str(exc) else exc}") from None
    return not target


def _cluster_cpus():
    import ray

    return int(ray.cluster_resources().get("CPU", 0))


def build_dataset(settings, blocks):
    """The Ray Data pipeline over ``blocks`` (``pyarrow.Table`` refs of parts)."""
    import functools

    import ray.data

    for name in ("ray", "ray.data"):  # after Ray Data's own logging set-up (at import)
        logging.getLogger(name).setLevel(logging.WARNING)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.execution_options.preserve_order = False
    cpus = _cluster_cpus()
    detector = settings.boxes["kind"] == "detector"
    stages_with_actors = 2 if detector else 1
    if cpus < settings.threads * stages_with_actors:
        raise ClusterError(
            f"the Ray cluster has {cpus} CPU(s) and the pipeline needs at least "
            f"{settings.threads * stages_with_actors} ({stages_with_actors} actor pool(s) of "
            f"--threads {settings.threads}); lower --threads")
    most = settings.actors or max(1, cpus // (settings.threads * stages_with_actors))
    pool = (ray.data.ActorPoolStrategy(size=settings.actors) if settings.actors
            else ray.data.ActorPoolStrategy(min_size=1, max_size=most))
    make_source = functools.partial(stages.make_box_source, settings.boxes)
    make_estimator = functools.partial(stages.make_estimator, settings.pose)
    ds = ray.data.from_arrow_refs(blocks)
    # Same CPUs as the actors after it: Ray Data fuses the read into their processes.
    ds = ds.map_batches(stages.read_parts, batch_size=None, num_cpus=settings.threads,
                        fn_kwargs={"exif_orientation": settings.exif_orientation},
                        batch_format="numpy")
    if detector:
        ds = ds.map_batches(stages.BoxStage, batch_size=None, compute=pool,
                            num_cpus=settings.threads, batch_format="numpy",
                            fn_constructor_args=(make_source,))
        make_source = None
    return ds.map_batches(stages.PoseStage, batch_size=None, compute=pool,
                          num_cpus=settings.threads, batch_format="numpy",
                          fn_constructor_args=(make_estimator, make_source))


def _block_table(parts):
    return pa.table({"shard": [p.shard for p in parts], "input": [p.input for p in parts],
                     "range": pa.array([p.range for p in parts], pa.int32()),
                     "path": [p.path for p in parts], "video": [p.video for p in parts],
                     "start": [p.start for p in parts], "stop": [p.stop for p in parts]})


# --------------------------------------------------------------------------- shards


class ShardWriter:
    """The driver's side: counts each part's markers, buffers people per shard, and
    writes a shard when all of its parts are in (atomically, errors first)."""

    def __init__(self, out_dir, keypoint_names, expected_parts):
        self.out_dir = out_dir
        self.keypoint_names = keypoint_names
        self.expected = dict(expected_parts)  # shard → number of parts
        # per shard, dropped once it is written: the driver's state does not grow with
        # the number of inputs, only with the shards in flight
        self.parts = {}  # (input, range) → [part_rows, markers seen]
        self.done_parts = {}  # shard → parts complete
        self.finished = {}  # shard → {(input, range) complete}: later copies are ignored
        self.written_shards = set()  # and every copy of a part of these
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
        fresh = [shard not in self.written_shards and key not in self.finished.get(shard, ())
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
        frames = table.column("frame").to_pylist()
        read = [e is None and w is not None for e, w in
                zip(table.column("error").to_pylist(), table.column("width").to_pylist())]
        completed = []
        for row, marker in enumerate(is_marker.to_pylist()):
            if not marker:
                continue
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
                self.written_shards.add(shard)

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
        _write_parquet(people.select(stages.PEOPLE_FIELDS).cast(schema),
                       os.path.join(self.out_dir, POSES, name))
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


# --------------------------------------------------------------------------- the run


def read_manifest(out_dir):
    try:
        with open(os.path.join(out_dir, MANIFEST), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def check_resume(out_dir, settings, corpus):
    """Refuse to write into ``out_dir`` when an earlier run there had other inputs, model,
    boxes or flags: a ``UserError`` naming the first difference."""
    manifest = read_manifest(out_dir)
    if manifest is None:
        if os.path.isdir(os.path.join(out_dir, POSES)):
            raise UserError(f"{out_dir} holds shards but no readable {MANIFEST}: it cannot be "
                            "resumed safely; choose a new --out")
        return
    before = manifest.get("identity", {})
    now = settings.identity(corpus)
    difference = plan.first_difference(before, now)
    if difference is None:
        return
    if difference.startswith("inputs"):
        where = plan.first_input_difference(os.path.join(out_dir, INPUTS), corpus)
        difference = f"{difference}{'; ' + where if where else ''}"
    raise UserError(f"{out_dir} was made by another extraction ({difference}); re-run the "
                    "same command to resume it, or choose a new --out")


def _versions():
    out = {}
    for name in ("psa-pose", "ray", "pyarrow", "numpy", "opencv-python-headless",
                 "onnxruntime", "ai-edge-litert", "tensorflow"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def _write_inputs(out_dir, corpus):
    path = os.path.join(out_dir, INPUTS)
    if not os.path.exists(path):  # else the same inputs (check_resume compared digests)
        plan.write_inputs(corpus, path)


def run_extraction(settings, corpus, out_dir, command=None, coco_results=None,
                   progress=None):
    """Extract the poses of ``corpus`` into ``out_dir`` on the connected Ray (``connect``).

    Args:
        settings: ``Settings``.
        corpus: ``plan.Corpus``.
        out_dir: the output folder (``check_resume`` passed; created).
        command: the command line, for the manifest.
        coco_results: path of the COCO results JSON to write at the end, or None.
        progress: callable(text) for a line every few seconds, or None.

    Returns:
        ``ExtractionReport``.
    """
    start = time.perf_counter()
    os.makedirs(os.path.join(out_dir, POSES), exist_ok=True)
    os.makedirs(os.path.join(out_dir, ERRORS), exist_ok=True)
    _write_inputs(out_dir, corpus)
    total = plan.shard_count(corpus.count, settings.shard_size)
    for folder in (POSES, ERRORS):  # what a killed run was writing
        for name in os.listdir(os.path.join(out_dir, folder)):
            if name.startswith(".tmp-"):
                os.remove(os.path.join(out_dir, folder, name))
    done = {int(name[5:-8]) for name in os.listdir(os.path.join(out_dir, POSES))
            if name.startswith("part-") and name.endswith(".parquet")}
    manifest = read_manifest(out_dir) or {"runs": []}
    manifest.update(tool="tools/extract.py", identity=settings.identity(corpus),
                    inputs={"named": corpus.sources, "count": corpus.count,
                            "listed": corpus.listed, "file": INPUTS},
                    shards={"count": total, "size": settings.shard_size},
                    packages=_versions())
    write_json(manifest, os.path.join(out_dir, MANIFEST))

    import ray

    blocks, expected = [], {}
    # the shards' paths, one shard at a time from inputs.txt: what the driver keeps is
    # per shard and per task (the object references of the blocks), not per input
    for shard, first, paths in plan.iter_shards(os.path.join(out_dir, INPUTS),
                                                settings.shard_size, skip=done):
        parts = plan.shard_parts(paths, shard, first, settings.frames_per_task)
        expected[shard] = len(parts)
        for block in plan.blocks_of(parts, settings.images_per_task):
            blocks.append(ray.put(_block_table(block)))
    writer = ShardWriter(out_dir, settings.keypoint_names, expected)
    pipeline_start = time.perf_counter()
    first_result = first_seen = None
    if blocks:
        ds = build_dataset(settings, blocks)
        last = time.perf_counter()
        for table in ds.iter_batches(batch_size=None, batch_format="pyarrow",
                                     prefetch_batches=1):
            writer.add(table)
            if first_result is None:
                first_result, first_seen = time.perf_counter() - pipeline_start, writer.seen
            if progress and time.perf_counter() - last > 5:
                last = time.perf_counter()
                progress(f"shards {len(done) + writer.written}/{total}, "
                         f"{writer.counts.images + writer.counts.frames} images/frames, "
                         f"{writer.counts.people} people")
        missing = sorted(set(expected) - writer.written_shards)
        if missing:
            raise RuntimeError(f"the pipeline ended with shards {missing[:5]} incomplete")
    report = ExtractionReport(out_dir, corpus.count, total, writer.written, len(done))
    report.pipeline_seconds = time.perf_counter() - pipeline_start
    if first_result is not None:
        report.first_result_seconds = first_result
        report.steady_images = writer.seen - first_seen
    report.run_counts = writer.counts
    report.stage_seconds = {k: round(v, 3) for k, v in writer.stage_seconds.items()}
    for shard in range(total):
        report.counts.add(shard_counts(os.path.join(out_dir, POSES,
                                                    plan.SHARD_NAME.format(shard))))
    _merge_errors(out_dir)
    if coco_results:
        write_coco_results(out_dir, coco_results)
        report.coco_results = coco_results
    report.seconds = time.perf_counter() - start
    manifest["runs"].append({"command": command, "started": time.strftime(
        "%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - report.seconds)),
        "wall_seconds": round(report.seconds, 3),
        "pipeline_seconds": round(report.pipeline_seconds, 3),
        "first_result_seconds": (round(report.first_result_seconds, 3)
                                 if report.first_result_seconds is not None else None),
        "steady_images_per_second": round(report.steady_images_per_second, 3),
        "shards_written": report.shards_written, "shards_kept": report.shards_kept,
        "stage_seconds": report.stage_seconds, "counts": dataclasses.asdict(writer.counts)})
    manifest.update(counts=dataclasses.asdict(report.counts),
                    wall_seconds=round(sum(r["wall_seconds"] for r in manifest["runs"]), 3),
                    complete=True)
    write_json(manifest, os.path.join(out_dir, MANIFEST))
    return report


def _merge_errors(out_dir):
    """``errors.parquet``: the shards' error files in shard order (each sorted), one
    shard at a time: inputs are numbered in shard order, so the whole file is sorted."""
    folder = os.path.join(out_dir, ERRORS)
    with atomic_path(os.path.join(out_dir, ERRORS_FILE)) as tmp:
        with pq.ParquetWriter(tmp, stages.ERROR_SCHEMA) as f:
            for name in sorted(os.listdir(folder)):
                if name.endswith(".parquet"):
                    table = pq.read_table(os.path.join(folder, name)).cast(stages.ERROR_SCHEMA)
                    f.write_table(table.sort_by([("input", "ascending"),
                                                 ("frame_start", "ascending")]))


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
            rows = pq.read_table(os.path.join(folder, name)).to_pylist()
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
