"""What the user names on the command line: image files, folders, glob patterns, videos.

``collect_inputs`` expands them into an ordered list of ``InputFile``; a missing path, a
glob matching nothing, a folder without images or videos and a video that cannot be
opened raise ``InputError`` naming it. An image that cannot be decoded is not an error
here: the run skips it and lists it in its report.
"""

import dataclasses
import glob
import hashlib
import os
import re

import cv2
import numpy as np

from pose.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".tif", ".tiff",
                    ".webp", ".jp2", ".pbm", ".pgm", ".ppm", ".pnm", ".pxm", ".sr", ".ras",
                    ".exr", ".hdr", ".pic", ".avif")
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg",
                    ".wmv", ".flv", ".3gp", ".ts", ".mts")

class InputError(UserError):
    """An input the user named cannot be used (missing path, empty folder, bad video)."""


# --------------------------------------------------------------------------- inputs


@dataclasses.dataclass(frozen=True)
class InputFile:
    """One input: ``path`` on disk, ``kind`` ("image" | "video"), ``name`` for the outputs
    (the base name, or the path relative to a folder input)."""

    path: str
    kind: str
    name: str


def _kind(path):
    return "video" if os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS else "image"


def _folder_files(folder, recursive):
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            ext = os.path.splitext(f)[1].lower()
            full = os.path.join(root, f)
            # regular files only: a named pipe called x.jpg would block the reader forever
            if (not f.startswith(".") and ext in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
                    and os.path.isfile(full)):
                found.append(InputFile(full, _kind(f), os.path.relpath(full, folder)))
        if not recursive:
            break
    return found


def collect_inputs(inputs, recursive=False):
    """Expand files, folders and glob patterns into an ordered list of ``InputFile``.

    A folder contributes its image and video files (by extension, hidden files left out,
    regular files only: no pipes or devices), sorted, with sub-folders when
    ``recursive``. A named file is taken whatever its extension (an undecodable one is
    skipped later). Duplicates are dropped.

    Raises:
        InputError: a path that does not exist (naming it), a pattern matching nothing,
            or a folder with no image or video in it.
    """
    items, seen = [], set()
    for raw in inputs:
        raw = os.fspath(raw)
        if os.path.isdir(raw):
            found = _folder_files(raw, recursive)
            if not found:
                hint = "" if recursive else " (pass --recursive to search sub-folders)"
                raise InputError(f"folder {raw!r} holds no image or video files{hint}; "
                                 f"image extensions: {' '.join(IMAGE_EXTENSIONS)}")
        elif os.path.isfile(raw):
            found = [InputFile(raw, _kind(raw), os.path.basename(raw))]
        elif glob.has_magic(raw):
            matches = sorted(glob.glob(raw, recursive=recursive))
            found = []
            for m in matches:
                if os.path.isdir(m):
                    found.extend(_folder_files(m, recursive))
                elif os.path.isfile(m):
                    found.append(InputFile(m, _kind(m), os.path.basename(m)))
            if not found:
                raise InputError(f"pattern {raw!r} matches no file")
        else:
            raise InputError(f"input not found: {raw!r} (no such file or folder)")
        for item in found:
            key = os.path.realpath(item.path)
            if key not in seen:
                seen.add(key)
                items.append(item)
    return items


_NUMERIC_NAME = re.compile(r"^0*(\d+)$")


class ImageIds:
    """The image ids of one run, one per input file. An id wanted for a file that another
    file of the run already has (two ``000000000785.jpg`` in two folders, two ``a.jpg``) is
    replaced by a 48-bit id from the SHA-1 of the file's resolved path, so that no two
    photos share an id in the results.

    Example:
        >>> ids = ImageIds()
        >>> ids.assign(785, "a/000000000785.jpg")  # 785
        >>> ids.assign(785, "b/000000000785.jpg")  # the SHA-1 id of b/000000000785.jpg's path
        >>> ids.assign(785, "a/000000000785.jpg")  # 785 again: the same file
    """

    def __init__(self):
        self.owner = {}  # id: resolved path

    def assign(self, wanted, path):
        """``wanted`` when no other file has it, else the path's own 48-bit id."""
        path = os.path.realpath(os.fspath(path))
        image_id = wanted
        if self.owner.get(image_id, path) != path:
            image_id = int(hashlib.sha1(path.encode("utf-8")).hexdigest()[:12], 16)
        self.owner[image_id] = path
        return image_id


def image_id_from_name(file_name):
    """The COCO image id of a COCO-style file name (``000000000785.jpg`` → 785), or None."""
    match = _NUMERIC_NAME.match(os.path.splitext(os.path.basename(file_name))[0])
    return int(match.group(1)) if match and len(match.group(1)) < 16 else None


def open_video(path):
    """``cv2.VideoCapture`` of ``path`` with its fps, size and frame count; ``InputError``
    when it cannot be opened or has no readable frame."""
    cap = cv2.VideoCapture(os.fspath(path))
    if not cap.isOpened():
        cap.release()
        raise InputError(f"cannot open video {os.fspath(path)!r} (not a video, corrupt, or "
                         "a codec this OpenCV build lacks)")
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = fps if np.isfinite(fps) and 0 < fps < 1000 else 25.0
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    return cap, fps, max(count, 0)
