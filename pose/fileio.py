"""Atomic file writes (every file the project writes goes through ``atomic_path``) and
the project's one YAML reader (``load_yaml``: duplicate keys refused).

A writer gets a temporary path in the destination folder and the file is renamed onto its
final name only when the writer finished without an exception, so a crash, a kill or a
full disk never leaves a half-written checkpoint, JSON or picture in place of a good one
(``os.replace`` is atomic within one file system).

Example:
    >>> with atomic_path("runs/a/metrics.json") as tmp, open(tmp, "w") as f:
    ...     f.write("{}")
    >>> write_json({"AP": 0.7}, "runs/a/metrics.json")
"""

import contextlib
import json
import os
import shutil
import tempfile
import typing

import numpy as np
import yaml


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    Args:
        path: the destination file; its folder is created if missing.
        suffix: the temporary file's suffix (default: ``path``'s extension, so that
            writers that pick the format from the name, as ``cv2.imwrite`` or
            ``keras.Model.save``, still work).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if suffix is None:
        suffix = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=suffix)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_directory(path):
    """Yield a temporary folder beside ``path``; it replaces ``path`` if the block succeeds.

    For outputs that are folders (a SavedModel). An existing ``path`` is moved aside
    first and removed only after the new folder is in place.
    """
    path = os.fspath(path).rstrip("/\\")
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=".tmp-")
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if os.path.isdir(path):
        old = tempfile.mkdtemp(dir=parent, prefix=".old-")
        os.rmdir(old)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        if os.path.exists(path):
            os.remove(path)
        os.replace(tmp, path)


def write_bytes(data, path):
    """Write ``data`` (bytes) to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return os.fspath(path)


def write_text(text, path):
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    return write_bytes(text.encode("utf-8"), path)


def write_json(data, path, indent=2):
    """Write ``data`` as JSON atomically; ``indent=None`` writes it compact."""
    separators = (",", ":") if indent is None else None
    return write_text(json.dumps(data, indent=indent, separators=separators), path)


def finite_json(value):
    """``(value', count)``: ``value`` (nested dicts, lists, tuples, numbers) with every NaN
    or infinite number replaced by None, and how many were replaced.

    ``json.dumps`` writes NaN as the bare token ``NaN``, which is not JSON (strict parsers,
    JavaScript, ``jq`` refuse the file); null is.
    """
    count = 0

    def clean(v):
        nonlocal count
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, (float, np.floating)) and not np.isfinite(v):
            count += 1
            return None
        return v

    return clean(value), count


def save_image(image_rgb, path, jpeg_quality=92):
    """Write an RGB ``uint8`` image atomically (format from the extension; BGR on disk).

    Raises:
        OSError: when OpenCV cannot encode to the extension of ``path``.
    """
    import cv2

    image = np.asarray(image_rgb)
    ext = os.path.splitext(os.fspath(path))[1].lower() or ".png"
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if ext in (".jpg", ".jpeg") else []
    ok, data = cv2.imencode(ext, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise OSError(f"cannot encode an image as {ext!r} for {path}")
    return write_bytes(data.tobytes(), path)


def save_keras(model, path):
    """``model.save`` to a ``.keras`` file atomically; returns the path."""
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)
    return os.fspath(path)


class DuplicateKeyError(ValueError):
    """A YAML mapping gives one key twice; the message names the file, the key and both
    lines."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the
    last silently, so a config could say ``lr`` twice and train with the second)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, typing.Hashable):
                continue  # PyYAML's own error follows
            if key in seen:
                raise DuplicateKeyError(f"{self.source}: duplicate key {key!r} at lines "
                                        f"{seen[key]} and {line}; keep one of them")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml(stream, source):
    """``yaml.safe_load`` of ``stream`` (text or an open file) that refuses duplicate keys.

    Raises:
        DuplicateKeyError: naming ``source``, the key and both lines.
        yaml.YAMLError: the text is not YAML.
    """
    loader = _UniqueKeyLoader(stream)
    loader.source = os.fspath(source)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
