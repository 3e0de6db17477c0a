"""The plan of an extraction: the ordered inputs, their shards and parts, and the manifest
that makes a re-run resume the same work (no Ray here).

Inputs are what ``tools/infer.py`` takes (files, folders, glob patterns; ``collect_inputs``)
followed by the lines of input lists (one path per line; blank lines and lines starting
with ``#`` skipped; a relative path is relative to the list's folder). Every input gets
its place ``i`` in that order, and shard ``i // shard_size``: the shards are a function of
the input list alone, so a re-run of the same command finds the same shards, keeps those
already written and redoes only the others.

Each shard is cut into parts, the units of work that Ray Data schedules: images, and
frame ranges of ``frames_per_task`` frames of a video (its last range runs to the end of
the video, whatever its frame count says), so that one long video spreads over workers.
Parts travel in blocks: up to ``images_per_task`` images of one shard, or one range.
"""

import dataclasses
import hashlib
import itertools
import json
import os

from pose.apis.inputs import VIDEO_EXTENSIONS, InputError, collect_inputs, open_video
from pose.checks import check_input_file
from pose.errors import UserError

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
    """The ordered inputs of a run (absolute paths) and where they came from."""

    paths: list
    sources: list  # what the command named: inputs and lists
    listed: int = 0  # of ``paths``, the ones from input lists
    missing: int = 0  # listed paths found missing (counted only when checked: strict)

    def digest(self):
        """SHA-256 of the ordered paths: the identity of the input list."""
        h = hashlib.sha256()
        for path in self.paths:
            h.update(path.encode("utf-8", "surrogateescape") + b"\n")
        return h.hexdigest()


def collect_corpus(inputs=(), lists=(), recursive=False, strict=False):
    """The ``Corpus`` of positional ``inputs`` (``collect_inputs``) and input ``lists``.

    A list that names no existing file is an ``InputError`` (a list of another machine's
    paths, a wrong root); otherwise its missing files become errors of the run (the
    read stage records them). With ``strict`` every listed path is checked here and any
    missing one is an ``InputError`` naming how many and the first.
    """
    paths = [os.path.abspath(item.path) for item in collect_inputs(inputs, recursive)] \
        if inputs else []
    listed = missing = 0
    first_missing = None
    for list_path in lists:
        found = False
        count = 0
        for path in list_file_paths(list_path):
            count += 1
            paths.append(path)
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
    if not paths:
        raise InputError("no input: name image or video files, folders or patterns, or "
                         "--list FILE")
    return Corpus(paths, [*map(os.fspath, inputs), *map(os.fspath, lists)], listed, missing)


@dataclasses.dataclass(frozen=True)
class Part:
    """A unit of work: an image, or frames ``[start, stop)`` of a video (stop -1: to the
    end). ``(input, range)`` names it."""

    shard: int
    input: int
    range: int
    path: str
    video: bool
    start: int = 0
    stop: int = -1


def shard_count(num_inputs, shard_size):
    return (num_inputs + shard_size - 1) // shard_size


def shard_parts(corpus, shard, shard_size, frames_per_task, frame_count=None):
    """The ``Part`` list of one shard. A video is opened for its frame count
    (``frame_count(path)``, default ``open_video``'s); one that cannot be opened, or
    gives no count, is one range to its end (the read stage says what is wrong)."""
    frame_count = frame_count or _frame_count
    parts = []
    first = shard * shard_size
    for i, path in enumerate(corpus.paths[first:first + shard_size], start=first):
        if not is_video(path):
            parts.append(Part(shard, i, 0, path, False))
            continue
        count = frame_count(path)
        ranges = max(1, -(-count // frames_per_task))
        for r in range(ranges):
            stop = -1 if r == ranges - 1 else (r + 1) * frames_per_task
            parts.append(Part(shard, i, r, path, True, r * frames_per_task, stop))
    return parts


def _frame_count(path):
    try:
        cap, _, count = open_video(path)
    except InputError:
        return 0
    cap.release()
    return count


def blocks_of(parts, images_per_task):
    """``parts`` in blocks: each video range alone, images in runs of ``images_per_task``."""
    images = [p for p in parts if not p.video]
    for start in range(0, len(images), images_per_task):
        yield images[start:start + images_per_task]
    for part in parts:
        if part.video:
            yield [part]


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
    first differ from ``corpus``'s, as text; None when they are the same."""
    try:
        with open(inputs_file, encoding="utf-8", errors="surrogateescape") as f:
            for i, (line, path) in enumerate(itertools.zip_longest(
                    (line.rstrip("\n") for line in f), corpus.paths)):
                if line != path:
                    return (f"input #{i + 1}: {line if line is not None else 'none'} then, "
                            f"{path if path is not None else 'none'} now")
    except OSError:
        return None
    return None
