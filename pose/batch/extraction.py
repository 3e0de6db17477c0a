"""Batch pose extraction on Ray Data: the pipeline and the run.

    plan (driver: inputs in order → shards → tasks, ``pose.batch.plan``, into tasks.bin)
      → read and decode (the task's paths from a task-table actor; fused into the next
        stage's actors)
      → person boxes (an actor pool when a detector file runs; else inside the pose stage)
      → crop and estimate (an actor pool: one runtime per actor, ``threads`` each)
      → write (driver: a shard's Parquet file once all of its parts are in,
        ``pose.batch.shards``)

Exactly once: a shard is written by the driver alone, to a temporary name renamed when
complete, and only after every part of it came back; a re-run skips the shards whose
file exists. Ray retries what a lost worker or node was doing (tasks are re-run, actors
restarted), and the driver counts each part's rows once however often it ran (the
``part_rows`` markers decide: a part is done when that many markers came in, and a part
that comes in again after it is done is ignored).

The driver keeps nothing per input: it plans the tasks as a stream into ``tasks.bin`` (a
few integers each: where their lines are in ``inputs.txt``, their frames), the dataset is
one block per task number (``task_numbers``), and the read stage gets its paths from a
small actor on the driver's node that reads both files (``task_table``), so that the
paths never pass through the driver or its object store and ``--out`` need not be shared
storage. What remains per task is Ray Data's own (a read-task object, a block's stats:
~4 KiB; BENCHMARKS.md).

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

from pose.batch import plan, stages
from pose.batch.shards import (
    ERRORS,
    ERRORS_FILE,
    POSES,
    Counts,
    ShardWriter,
    merge_errors,
    shard_counts,
    write_coco_results,
)
from pose.errors import UserError
from pose.fileio import write_json

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
INPUTS = "inputs.txt"
TASKS = "tasks.bin"  # the plan of the running run's tasks (removed at its end)
OUTPUT_NAMES = [MANIFEST, INPUTS, POSES, ERRORS, ERRORS_FILE, TASKS]
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


def task_table(out_dir):
    """A ``plan.TaskTable`` of ``out_dir``'s ``inputs.txt`` and ``tasks.bin`` as a Ray
    actor pinned to this (the driver's) node, where the files are; restarted if it
    dies. No CPU of its own: it only reads a few bytes per task."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(),
                                          soft=False)
    actor = ray.remote(plan.TaskTable).options(
        num_cpus=0, max_concurrency=4, scheduling_strategy=node, max_restarts=-1,
        max_task_retries=-1)
    return actor.remote(os.path.join(os.path.abspath(out_dir), INPUTS),
                        os.path.join(os.path.abspath(out_dir), TASKS))


def task_numbers(tasks):
    """A Ray Data datasource of the numbers ``0 .. tasks - 1``, a block each: what
    ``ray.data.range(tasks, override_num_blocks=tasks)`` gives, with read tasks that
    pickle to ~0.4 KB (a reference to ``stages.task_block`` and the number) instead of
    ~3.9 KB. Ray Data ``ray.put``s every read task and keeps it for the whole run."""
    import functools

    from ray.data import Datasource, ReadTask
    from ray.data.block import BlockMetadata

    class TaskNumbers(Datasource):
        def estimate_inmemory_data_size(self):
            return 8 * tasks

        def get_read_tasks(self, parallelism, per_task_row_limit=None, data_context=None):
            return [ReadTask(functools.partial(stages.task_block, number),
                             BlockMetadata(num_rows=1, size_bytes=8, input_files=None,
                                           exec_stats=None))
                    for number in range(tasks)]

    return TaskNumbers()


def build_dataset(settings, tasks, table):
    """The Ray Data pipeline over ``tasks`` task numbers (one block each), their parts
    read from ``table`` (``task_table``)."""
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
    # one block (a task number) per task; nothing per task is put by this driver but Ray
    # Data's own read-task objects. Many more tasks than CPUs is the design here (small
    # retries, balance), not the mistake Ray Data's warnings about it assume; the
    # progress bars are off on purpose (the tool prints its own progress)
    for name in ("util", "logical.rules.set_read_parallelism", "progress"):
        logging.getLogger(f"ray.data._internal.{name}").setLevel(logging.ERROR)
    ds = ray.data.read_datasource(task_numbers(tasks), override_num_blocks=tasks)
    # Same CPUs as the actors after it: Ray Data fuses the read into their processes.
    ds = ds.map_batches(stages.read_tasks, batch_size=None, num_cpus=settings.threads,
                        fn_kwargs={"tasks": table,
                                   "exif_orientation": settings.exif_orientation},
                        batch_format="numpy")
    if detector:
        ds = ds.map_batches(stages.BoxStage, batch_size=None, compute=pool,
                            num_cpus=settings.threads, batch_format="numpy",
                            fn_constructor_args=(make_source,))
        make_source = None
    return ds.map_batches(stages.PoseStage, batch_size=None, compute=pool,
                          num_cpus=settings.threads, batch_format="numpy",
                          fn_constructor_args=(make_estimator, make_source))


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

    # the tasks, planned one shard at a time from inputs.txt into tasks.bin: the driver
    # keeps nothing per input or task (per shard: the numbers of those written before)
    tasks_file = os.path.join(out_dir, TASKS)
    tasks, shards = plan.write_tasks(os.path.join(out_dir, INPUTS), tasks_file,
                                     settings.shard_size, settings.images_per_task,
                                     settings.frames_per_task, skip=done)
    writer = ShardWriter(out_dir, settings.keypoint_names)
    pipeline_start = time.perf_counter()
    first_result = first_seen = None
    if tasks:
        import ray

        source = task_table(out_dir)
        ds = build_dataset(settings, tasks, source)
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
        if writer.written != shards:
            missing = [s for s in range(total) if not os.path.exists(writer.path(s))]
            raise RuntimeError(f"the pipeline ended with {len(missing)} shard(s) "
                               f"incomplete: {missing[:5]}")
        ray.kill(source)
    os.remove(tasks_file)
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
    merge_errors(out_dir)
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
