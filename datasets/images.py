"""Image files → uint8 RGB arrays, with the checks that keep a bad file from costing more
than a skip: not a regular file, over ``MAX_IMAGE_FILE_BYTES``, a header declaring more
than ``MAX_IMAGE_PIXELS``, truncated, undecodable. Each is an ``ImageDecodeError``, which
the data pipeline and the tools skip and count.
"""

import io
import os
import stat

import cv2
import numpy as np
import PIL.Image

from pose.errors import UserError

# Decode to RGB, keep 16-bit depth (converted below), expand grey/palette, drop alpha,
# and do NOT apply the EXIF orientation (COCO's annotations are in stored-pixel coordinates).
IMREAD_FLAGS = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_ANYDEPTH | cv2.IMREAD_IGNORE_ORIENTATION


class ImageDecodeError(UserError):
    """An image file exists but cannot be decoded (corrupt, truncated, unknown format)."""


# --------------------------------------------------------------------------- images


# An image file larger than this is skipped and counted like a corrupt one instead of being
# read into memory (a 100-megapixel 16-bit TIFF is 600 MB; a sparse 50 GB "photo.jpg" is
# no photo). OpenCV refuses images over 2^30 pixels itself (CV_IO_MAX_IMAGE_PIXELS).
MAX_IMAGE_FILE_BYTES = 1 << 30
# An image whose header declares more pixels than this is skipped and counted like a
# corrupt one before it is decoded (2^28 = 268 megapixels, above any camera's 200; a
# 60000 x 60000 JPEG of a few kilobytes would otherwise ask for 10 GiB). The header is read
# with Pillow, whose own smaller limit this check replaces.
MAX_IMAGE_PIXELS = 1 << 28
PIL.Image.MAX_IMAGE_PIXELS = None  # Pillow's limit: MAX_IMAGE_PIXELS checks instead


def declared_image_size(data):
    """``(width, height)`` an image file's header declares, without decoding it; None for
    a format Pillow does not know (OpenCV then decides, under its own 2^30-pixel limit)."""
    try:
        with PIL.Image.open(io.BytesIO(data)) as image:
            return image.size
    except (PIL.UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def read_image_rgb(path, exif_orientation=False):
    """Decode an image file to uint8 RGB (H, W, 3), ignoring EXIF orientation by default.

    Training and evaluation read the stored pixels, as the official HRNet code does (COCO's
    annotations are in that frame). A user's photos are read upright
    (``exif_orientation=True``: the orientation tag applied, as photo viewers show them;
    ``tools/infer.py`` and ``tools/detect.py`` unless ``--ignore-exif``).

    Grey, palette, RGBA (alpha dropped) and 16-bit images become 8-bit RGB
    (16-bit values are rounded ``v / 257``). A JPEG without its end-of-image marker or a
    PNG without its ``IEND`` chunk counts as truncated.

    Raises:
        FileNotFoundError: the file does not exist.
        ImageDecodeError: the file cannot be decoded or is truncated, is no regular file,
            is larger than ``MAX_IMAGE_FILE_BYTES`` or declares more than
            ``MAX_IMAGE_PIXELS`` pixels.
    """
    path = os.fspath(path)
    status = os.stat(path)  # FileNotFoundError when missing
    if not stat.S_ISREG(status.st_mode):
        raise ImageDecodeError(f"{path}: not a regular file (a pipe, device or socket)")
    if status.st_size > MAX_IMAGE_FILE_BYTES:
        raise ImageDecodeError(f"{path}: {status.st_size:,} bytes, over the "
                               f"{MAX_IMAGE_FILE_BYTES:,}-byte limit of an image file")
    return decode_image_rgb(np.fromfile(path, np.uint8), path, exif_orientation)


def decode_image_rgb(data, name="image", exif_orientation=False):
    """``read_image_rgb`` of an image file's bytes already in memory (an upload): the same
    checks (empty, declared pixels, truncated, undecodable) and conversions; ``name`` is
    what the messages call it.

    Raises:
        ImageDecodeError: as ``read_image_rgb``, naming ``name``.
    """
    data = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray,
                                                               memoryview)) else data
    if data.size == 0:
        raise ImageDecodeError(f"{name}: empty file")
    if data.size > MAX_IMAGE_FILE_BYTES:
        raise ImageDecodeError(f"{name}: {data.size:,} bytes, over the "
                               f"{MAX_IMAGE_FILE_BYTES:,}-byte limit of an image file")
    size = declared_image_size(data)
    if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise ImageDecodeError(f"{name}: declares {size[0]} x {size[1]} pixels, over the "
                               f"{MAX_IMAGE_PIXELS:,}-pixel limit of an image")
    head = data[:8].tobytes()
    tail = data[-4096:].tobytes()
    if head.startswith(b"\xff\xd8") and b"\xff\xd9" not in tail:
        raise ImageDecodeError(f"{name}: truncated JPEG (no end-of-image marker)")
    if head.startswith(b"\x89PNG") and b"IEND" not in tail:
        raise ImageDecodeError(f"{name}: truncated PNG (no IEND chunk)")
    try:
        flags = IMREAD_FLAGS & ~cv2.IMREAD_IGNORE_ORIENTATION if exif_orientation else (
            IMREAD_FLAGS)
        image = cv2.imdecode(data, flags)
    except cv2.error as exc:
        raise ImageDecodeError(f"{name}: OpenCV cannot decode it ({exc})") from exc
    if image is None or image.size == 0:
        raise ImageDecodeError(f"{name}: OpenCV cannot decode it")
    if image.ndim == 2:  # defensive: IMREAD_COLOR_RGB always gives 3 channels
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(np.nan_to_num(image.astype(np.float32)) * 255.0 + 0.5, 0, 255)
        image = image.astype(np.uint8)
    return image
