"""The plan of an extraction: the ordered inputs, their shards and parts, and the manifest
that makes a re-run resume the same work (no Ray here).

Inputs are what ``tools/infer.py`` takes (files, folders, glob patterns; ``collect_inputs``)
followed by the lines of input lists (one path per line; blank lines and lines starting
with ``#`` skipped; a relative path is relative to the list's folder). Every input gets
its place ``i`` in that order, and shard ``i // shard_size``: the shards are a function of
the input list alone, so a re-run of the same command finds the same shards, keeps those
already written and redoes only the others.

Each shard is cut into parts: images, and frame ranges of ``frames_per_task`` frames of
a video (its last range runs to the end of the video, whatever its frame count says), so
that one long video spreads over workers. The parts go to Ray Data in tasks: up to
``images_per_task`` images of one shard (a run of consecutive lines of ``inputs.txt``;
the videos among them are left to their own tasks), or one range. A task is a record of
integers (``TASK_DTYPE``: where its lines are in ``inputs.txt``, its frames, its shard's
part count), planned as a stream into a file; ``TaskTable`` turns task numbers back into
parts (paths) for the read stage. The paths never pass through the planner's memory or
Ray's object store.
"""

import dataclasses
import hashlib
import itertools
import json
import os

import numpy as np

from pose.apis.inputs import VIDEO_EXTENSIONS, InputError, collect_inputs, open_video
from pose.checks import check_input_file
from pose.errors import UserError
from pose.fileio import atomic_path

SHARD_NAME = "part-{:06d}.parquet"


def is_video(path):
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def list_file_paths(path):
    """The paths an input list names, in order (absolute; relative lines are relative to
    the list's folder). Raises ``UserError`` naming the file for an unreadable list or a
    line that is not UTF-8 text."""
    check_input_file(path, "input list")
    folder = os.path.dirname(os.path.abspath(path))
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise UserError(f"{path}: line {number} is not UTF-8 text; an input list "
                                "holds one path per line") from None
            if not line or line.startswith("#"):
                continue
            if "\x00" in line:
                raise UserError(f"{path}: line {number} holds a NUL character")
            yield os.path.normpath(os.path.join(folder, line))


@dataclasses.dataclass
class Corpus:
    """The ordered inputs of a run (absolute paths) and where they came from.

    The paths are not held: ``iter_paths`` streams them again from what the command named
    (the positional inputs, expanded once, then each input list read line by line), so
    that a run's memory does not grow with the length of its lists; ``count`` and
    ``sha256`` (of the ordered paths, one per line) are those of the one pass of
    ``collect_corpus``.
    """

    inputs: list  # the positional inputs, expanded (absolute paths)
    lists: list  # the input lists, in order
    sources: list  # what the command named: inputs and lists
    count: int = 0
    sha256: str = ""
    listed: int = 0  # of the inputs, the ones from input lists
    missing: int = 0  # listed paths found missing (counted only when checked: strict)

    def iter_paths(self):
        yield from self.inputs
        for list_path in self.lists:
            yield from list_file_paths(list_path)

    def digest(self):
        """SHA-256 of the ordered paths: the identity of the input list."""
        return self.sha256


def _path_line(path):
    return path.encode("utf-8", "surrogateescape") + b"\n"


def collect_corpus(inputs=(), lists=(), recursive=False, strict=False):
    """The ``Corpus`` of positional ``inputs`` (``collect_inputs``) and input ``lists``.

    A list that names no existing file is an ``InputError`` (a list of another machine's
    paths, a wrong root); otherwise its missing files become errors of the run (the
    read stage records them). With ``strict`` every listed path is checked here and any
    missing one is an ``InputError`` naming how many and the first. The lists are read as
    a stream (one line at a time): only their count and digest are kept.
    """
    paths = [os.path.abspath(item.path) for item in collect_inputs(inputs, recursive)] \
        if inputs else []
    h = hashlib.sha256()
    for path in paths:
        if "\n" in path:  # inputs.txt holds one path per line
            raise InputError(f"input {path!r}: a file name with a line break cannot be "
                             "listed; rename it")
        h.update(_path_line(path))
    listed = missing = 0
    first_missing = None
    for list_path in lists:
        found = False
        count = 0
        for path in list_file_paths(list_path):
            count += 1
            h.update(_path_line(path))
            if strict or not found:
                exists = os.path.isfile(path)
                found = found or exists
                if strict and not exists:
                    missing += 1
                    first_missing = first_missing or path
        if count == 0:
            raise InputError(f"input list {list_path} names no path")
        if not found:
            raise InputError(f"input list {list_path}: none of its {count} path(s) exists "
                             f"(the first: {next(list_file_paths(list_path))}); relative "
                             "paths are taken from the list's folder")
        listed += count
    if strict and missing:
        raise InputError(f"{missing} listed input(s) do not exist (the first: "
                         f"{first_missing}); without --strict they are recorded in "
                         "errors.parquet and the run goes on")
    if not paths and not listed:
        raise InputError("no input: name image or video files, folders or patterns, or "
                         "--list FILE")
    return Corpus(paths, [os.fspath(p) for p in lists],
                  [*map(os.fspath, inputs), *map(os.fspath, lists)], len(paths) + listed,
                  h.hexdigest(), listed, missing)


def write_inputs(corpus, path):
    """Write the corpus's paths to ``path``, one per line, as a stream; a list that
    changed since ``collect_corpus`` read it (another count or digest) is a
    ``UserError``, and nothing is left at ``path``."""
    h = hashlib.sha256()
    count = 0
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            for p in corpus.iter_paths():
                line = _path_line(p)
                h.update(line)
                f.write(line)
                count += 1
        if (count, h.hexdigest()) != (corpus.count, corpus.sha256):
            raise UserError(f"the input lists changed while this run read them ({count} "
                            f"path(s) now, {corpus.count} before): "
                            + ", ".join(map(str, corpus.lists)))


def _path_of(raw):
    return raw.rstrip(b"\n").decode("utf-8", "surrogateescape")


def iter_shard_lines(inputs_file, shard_size, skip=()):
    """``(shard, first input, byte offset, [lines])`` of each shard of an inputs file (one
    path per line, as ``write_inputs`` writes it; the lines as bytes with their ``\\n``),
    read as a stream; shards in ``skip`` are read past without keeping their lines."""
    shard, lines, start, offset = 0, [], 0, 0
    with open(inputs_file, "rb") as f:
        for number, raw in enumerate(f):  # binary lines: split at newlines only
            if number // shard_size != shard:
                if lines:
                    yield shard, shard * shard_size, start, lines
                shard, lines, start = number // shard_size, [], offset
            if shard not in skip:
                lines.append(raw)
            offset += len(raw)
    if lines:
        yield shard, shard * shard_size, start, lines


def shard_count(num_inputs, shard_size):
    return (num_inputs + shard_size - 1) // shard_size


def _frame_count(path):
    try:
        cap, _, count = open_video(path)
    except InputError:
        return 0
    cap.release()
    return count


# --------------------------------------------------------------------------- tasks

# A task: ``lines`` lines of inputs.txt from byte ``offset`` (``length`` bytes), the first
# being input ``input`` of ``shard``; ``video`` 0: the images among those lines (videos
# skipped), 1: frames [start, stop) (stop -1: to the end) of the one video, its range
# number ``range``. ``shard_parts``: how many parts the shard has (images and ranges).
TASK_FIELDS = ("shard", "input", "lines", "offset", "length", "video", "range", "start",
               "stop", "shard_parts")
TASK_DTYPE = np.dtype([(name, "<i8") for name in TASK_FIELDS])
PART_COLUMNS = ("shard", "input", "range", "path", "video", "start", "stop", "shard_parts")


def shard_tasks(lines, shard, first, offset, images_per_task, frames_per_task,
                frame_count=None):
    """The task records (a ``TASK_DTYPE`` array) of one shard: its ``lines`` (bytes, each
    with its ``\\n``) are inputs ``first``, ``first + 1``, ... and start at byte
    ``offset`` of inputs.txt. A video is opened for its frame count
    (``frame_count(path)``, default ``open_video``'s); one that cannot be opened, or
    gives no count, is one range to its end (the read stage says what is wrong)."""
    frame_count = frame_count or _frame_count
    tasks, parts = [], 0
    run = None  # the open image task: [first input, its offset, images, last input, end]
    position = offset
    for i, raw in enumerate(lines, start=first):
        path = _path_of(raw)
        if is_video(path):
            count = frame_count(path)
            ranges = max(1, -(-count // frames_per_task))
            for r in range(ranges):
                stop = -1 if r == ranges - 1 else (r + 1) * frames_per_task
                tasks.append((shard, i, 1, position, len(raw), 1, r, r * frames_per_task,
                              stop))
            parts += ranges
        else:
            if run is None:
                run = [i, position, 0, 0, 0]
            run[2:] = run[2] + 1, i, position + len(raw)
            parts += 1
            if run[2] == images_per_task:
                tasks.append(_image_task(shard, run))
                run = None
        position += len(raw)
    if run is not None:
        tasks.append(_image_task(shard, run))
    return np.array([(*task, parts) for task in tasks], TASK_DTYPE)


# Ray Data keeps ~4 KiB of the driver's heap and ~1 KiB of object-store pages per task
# for the whole run (BENCHMARKS.md): the default task size keeps a run near this many
# tasks, so that the driver's memory does not grow with the length of the input list.
MAX_DEFAULT_TASKS = 4096
MIN_DEFAULT_IMAGES_PER_TASK = 8


def default_images_per_task(num_inputs, shard_size):
    """``--images-per-task``'s default: 8 images per task, or more for long lists, so that
    the shards' tasks number about ``MAX_DEFAULT_TASKS`` (at least one per shard: a shard
    of 256 images is one task from ~1M inputs on). Tasks stay within their shard, so a
    shard's ``tasks`` are ``ceil(shard_size / images_per_task)``."""
    shards = max(1, shard_count(num_inputs, shard_size))
    most_per_shard = -(-shard_size // MIN_DEFAULT_IMAGES_PER_TASK)  # ceil
    tasks_per_shard = max(1, min(most_per_shard, MAX_DEFAULT_TASKS // shards))
    return -(-shard_size // tasks_per_shard)  # ceil


def _image_task(shard, run):
    """An image task's record (without its shard's part count): its lines run from its
    first image to its last (videos between them are read past)."""
    first, offset, _, last, end = run
    return (shard, first, last - first + 1, offset, end - offset, 0, 0, 0, -1)


def write_tasks(inputs_file, tasks_file, shard_size, images_per_task, frames_per_task,
                skip=(), frame_count=None):
    """Plan the tasks of the shards of ``inputs_file`` not in ``skip``, one shard at a
    time, into ``tasks_file`` (``TASK_DTYPE`` records, task ``n`` at byte
    ``n * TASK_DTYPE.itemsize``). Returns ``(tasks, shards)``: how many of each."""
    tasks = shards = 0
    with atomic_path(tasks_file) as tmp, open(tmp, "wb") as f:
        for shard, first, offset, lines in iter_shard_lines(inputs_file, shard_size, skip):
            records = shard_tasks(lines, shard, first, offset, images_per_task,
                                  frames_per_task, frame_count)
            f.write(records.tobytes())
            tasks += len(records)
            shards += 1
    return tasks, shards


class TaskTable:
    """The parts of planned tasks, by task number: what the read stage asks for.

    Reads the task's record from ``tasks_file`` and its lines from ``inputs_file`` (byte
    ranges, ``os.pread``: safe from several threads). In a run it lives in a small Ray
    actor on the driver's node, where the two files are, so that the output folder need
    not be shared storage and the paths never pass through the driver.
    """

    def __init__(self, inputs_file, tasks_file):
        self.inputs_file = os.fspath(inputs_file)
        self.inputs = os.open(inputs_file, os.O_RDONLY)
        self.tasks = os.open(tasks_file, os.O_RDONLY)

    def record(self, number):
        size = TASK_DTYPE.itemsize
        data = os.pread(self.tasks, size, number * size) if number >= 0 else b""
        if len(data) != size:
            raise IndexError(f"no task {number} in this run's plan")
        return np.frombuffer(data, TASK_DTYPE)[0]

    def parts(self, numbers):
        """The parts of tasks ``numbers`` as columns (``PART_COLUMNS``: one row per image,
        or the task's video range), in order."""
        out = {name: [] for name in PART_COLUMNS}
        for number in numbers:
            task = self.record(int(number))
            data = os.pread(self.inputs, int(task["length"]), int(task["offset"]))
            lines = data.split(b"\n")
            if len(data) != task["length"] or lines.pop() != b"" \
                    or len(lines) != task["lines"]:
                raise ValueError(f"{self.inputs_file} changed since task {number} was "
                                 f"planned (bytes {task['offset']}+{task['length']})")
            for i, raw in enumerate(lines, start=int(task["input"])):
                path = _path_of(raw)
                if is_video(path) != bool(task["video"]):
                    continue  # a video between the images of an image task: its own task
                for name, value in (("shard", task["shard"]), ("input", i),
                                    ("range", task["range"]), ("path", path),
                                    ("video", bool(task["video"])), ("start", task["start"]),
                                    ("stop", task["stop"]),
                                    ("shard_parts", task["shard_parts"])):
                    out[name].append(value if name in ("path", "video") else int(value))
        return out

    def __del__(self):
        for fd in ("inputs", "tasks"):
            if hasattr(self, fd):
                os.close(getattr(self, fd))


# --------------------------------------------------------------------------- manifest


def file_digest(path):
    """``sha256:HEX`` of a file's bytes, or of a folder's files (names and bytes, sorted)."""
    h = hashlib.sha256()
    path = os.fspath(path)
    if os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                h.update(os.path.relpath(full, path).encode("utf-8") + b"\0")
                _hash_file(h, full)
    else:
        _hash_file(h, path)
    return "sha256:" + h.hexdigest()


def _hash_file(h, path):
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)


def first_difference(before, now, prefix=""):
    """The first key (dotted) whose value differs between two JSON-like dicts, with both
    values, as text; None when they are equal."""
    if isinstance(before, dict) and isinstance(now, dict):
        for key in itertools.chain(before, (k for k in now if k not in before)):
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in now:
                return f"{name}: {_short(before[key])} then, absent now"
            if key not in before:
                return f"{name}: absent then, {_short(now[key])} now"
            found = first_difference(before[key], now[key], name)
            if found:
                return found
        return None
    if before != now:
        return f"{prefix}: {_short(before)} then, {_short(now)} now"
    return None


def _short(value):
    text = json.dumps(value)
    return text if len(text) <= 120 else text[:117] + "..."


def first_input_difference(inputs_file, corpus):
    """Where the listed inputs of an earlier run (``inputs_file``: one path per line)
    first differ from ``corpus``'s, as text; None when they are the same. Both are
    read as streams."""
    try:
        with open(inputs_file, encoding="utf-8", errors="surrogateescape") as f:
            for i, (line, path) in enumerate(itertools.zip_longest(
                    (line.rstrip("\n") for line in f), corpus.iter_paths())):
                if line != path:
                    return (f"input #{i + 1}: {line if line is not None else 'none'} then, "
                            f"{path if path is not None else 'none'} now")
    except OSError:
        return None
    return None
