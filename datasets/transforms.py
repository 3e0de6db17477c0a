"""Geometric transforms of top-down pose estimation: box → crop, affine, flip, augmentation.

Conventions (used by every function here and by ``datasets.coco`` / ``datasets.pipeline``):

- **Coordinates** are pixel indices: the centre of pixel ``(col, row)`` is at ``(x, y) =
  (col, row)``, as OpenCV's ``warpAffine`` and HRNet use them (COCO's continuous
  coordinates are taken as they are, as HRNet and mmpose do).
- **center** is ``(x, y)`` in image pixels; **scale** is ``(w, h)`` of the crop region in
  **pixels** (mmpose 1.x), *not* HRNet's ``pixel_std = 200`` units: HRNet's
  ``scale`` equals ours divided by 200.
- **Horizontal flip** of an image of width ``W`` maps ``x → W - 1 - x`` (exact mirroring of
  the pixel grid, ``img[:, ::-1]``; HRNet's ``fliplr_joints`` and its centre flip
  ``c[0] = W - c[0] - 1``), and swaps left/right keypoints through ``flip_index``.
- **Rotation** ``r`` degrees: the crop's "up" direction is the image direction rotated by
  ``r`` (HRNet's ``get_affine_transform``), so a point of the image rotates by ``-r``
  (clockwise on screen for ``r > 0``) in the crop. The UDP variant uses the same sign
  (mmpose's ``get_udp_warp_matrix`` uses the opposite one; rotation augmentation is
  symmetric, so only consistency matters).
- **Standard warp** (HRNet): ``center → (W/2, H/2)``, uniform zoom ``W_in / scale_w``.
  **UDP warp** (Huang et al., CVPR 2020, "The Devil is in the Details"): the crop region
  ``[c - s/2, c + s/2]`` maps exactly onto the pixel centres ``[0, W_in - 1]``:
  ``center → ((W-1)/2, (H-1)/2)``, zoom ``(W_in - 1) / scale_w`` along x and
  ``(H_in - 1) / scale_h`` along y.

Augmentation follows HRNet's ``JointsDataset.__getitem__`` and is one affine warp per sample
(half-body, scale, rotation and flip are folded into one 2×3 matrix). All randomness comes
from a ``numpy.random.Generator`` passed in.
"""

from dataclasses import dataclass

import cv2
import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def box_to_center_scale(boxes, aspect_ratio, padding=1.25):
    """Centre and pixel scale of the crop region around ``(x, y, w, h)`` boxes.

    The box is padded to the model's aspect ratio (``aspect_ratio = input_w / input_h``)
    by growing its short side, then enlarged by ``padding`` (HRNet's ``_xywh2cs`` with
    scale in pixels instead of ``/200``).

    Args:
        boxes: array (..., 4) of ``x, y, w, h``.
        aspect_ratio: float, ``input_w / input_h`` (e.g. 192/256 = 0.75).
        padding: float, enlargement factor, default 1.25.

    Returns:
        ``(center, scale)``: float32 arrays (..., 2) each.

    Example:
        >>> box_to_center_scale(np.array([10., 20., 30., 80.]), 0.75)
        (array([25., 60.], dtype=float32), array([ 75., 100.], dtype=float32))
    """
    boxes = np.asarray(boxes, np.float64)
    x, y, w, h = (boxes[..., i] for i in range(4))
    center = np.stack([x + w * 0.5, y + h * 0.5], axis=-1)
    w_fit = np.where(w > aspect_ratio * h, w, h * aspect_ratio)
    h_fit = np.where(w > aspect_ratio * h, w / aspect_ratio, h)
    scale = np.stack([w_fit, h_fit], axis=-1) * padding
    return center.astype(np.float32), scale.astype(np.float32)


def get_affine_transform(center, scale, rotation_deg, output_size, inverse=False, udp=False):
    """The 2×3 matrix that maps the crop region of an image onto an ``output_size`` crop.

    Args:
        center: (2,) crop centre ``(x, y)`` in image pixels.
        scale: (2,) crop region ``(w, h)`` in image pixels (``scale[1]`` is used only by UDP;
            the standard warp zooms uniformly by ``output_w / scale_w``, as HRNet).
        rotation_deg: float, rotation in degrees (see the module docstring for the sign).
        output_size: ``(w, h)`` of the crop in pixels.
        inverse: bool, return the crop → image matrix instead. Default False.
        udp: bool, the unbiased (UDP) variant that maps the region onto pixel centres
            ``0 .. size - 1`` exactly. Default False (HRNet).

    Returns:
        float64 array (2, 3), usable with ``cv2.warpAffine`` and ``affine_points``.

    Example:
        >>> m = get_affine_transform([100, 50], [60, 80], 0, (48, 64))
        >>> affine_points(np.array([100., 50.]), m)
        array([24., 32.])
    """
    cx, cy = float(center[0]), float(center[1])
    sw, sh = float(scale[0]), float(scale[1])
    ow, oh = float(output_size[0]), float(output_size[1])
    if udp:
        kx, ky = (ow - 1.0) / sw, (oh - 1.0) / sh
        dx, dy = (ow - 1.0) * 0.5, (oh - 1.0) * 0.5
    else:
        kx = ky = ow / sw
        dx, dy = ow * 0.5, oh * 0.5
    theta = np.deg2rad(rotation_deg)
    cs, sn = np.cos(theta), np.sin(theta)
    # dst = K · R(-theta) · (src - c) + d, with R(-theta) = [[cs, sn], [-sn, cs]].
    linear = np.array([[kx * cs, kx * sn], [-ky * sn, ky * cs]])
    matrix = np.empty((2, 3))
    matrix[:, :2] = linear
    matrix[:, 2] = np.array([dx, dy]) - linear @ np.array([cx, cy])
    return invert_affine(matrix) if inverse else matrix


def invert_affine(matrix):
    """Inverse of a 2×3 affine matrix (float64)."""
    matrix = np.asarray(matrix, np.float64)
    linear_inv = np.linalg.inv(matrix[:, :2])
    return np.concatenate([linear_inv, -linear_inv @ matrix[:, 2:]], axis=1)


def compose_affine(outer, inner):
    """The 2×3 matrix of ``outer ∘ inner`` (apply ``inner`` first)."""
    outer = np.asarray(outer, np.float64)
    inner = np.asarray(inner, np.float64)
    return np.concatenate([outer[:, :2] @ inner[:, :2],
                           outer[:, :2] @ inner[:, 2:] + outer[:, 2:]], axis=1)


def hflip_matrix(width):
    """The 2×3 matrix of the horizontal mirror ``x → width - 1 - x``."""
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]])


def affine_points(points, matrix):
    """Apply a 2×3 affine matrix to points of shape (..., 2); returns float64 (..., 2)."""
    points = np.asarray(points, np.float64)
    matrix = np.asarray(matrix, np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def fliplr_joints(keypoints, image_width, flip_index):
    """Mirror keypoints of an image of width ``image_width`` and swap left/right joints.

    ``x → image_width - 1 - x`` (HRNet's ``fliplr_joints``); the joints axis (-2) is
    permuted by ``flip_index`` so that every extra column (visibility, score) follows its
    joint. Unlike HRNet, invisible joints are not zeroed, so flipping twice is the identity.

    Args:
        keypoints: array (..., K, C) with C >= 2, x and y first.
        image_width: int, width of the image the keypoints live in.
        flip_index: (K,) permutation (``DatasetMeta.flip_index``).

    Returns:
        float array (..., K, C), a new array.
    """
    out = np.array(keypoints, dtype=np.result_type(np.asarray(keypoints).dtype, np.float32))
    out[..., 0] = (image_width - 1) - out[..., 0]
    return out[..., np.asarray(flip_index, np.int64), :]


@dataclass(frozen=True)
class Augmentation:
    """Random augmentation of top-down training crops (HRNet's defaults for COCO).

    Args:
        scale_factor: float, ``s *= clip(1 + N(0,1)·f, 1 - f, 1 + f)``. Default 0.35.
        rotation_factor: float, degrees, ``r = clip(N(0,1)·f, -2f, 2f)``. Default 45.
        rotation_prob: float, probability of rotating at all. Default 0.6.
        flip_prob: float, probability of a horizontal flip. Default 0.5.
        half_body_prob: float, probability of the half-body crop. Default 0.3.
        half_body_min_joints: int, half-body only when MORE than this many joints are
            visible. Default 8.
        half_body_upper_prob: float, probability of taking the upper body when it has more
            than 2 visible joints. Default 0.5. (HRNet's code draws ``randn() < 0.5``,
            which is true with probability 0.69; mmpose's default ``upper_prioritized_prob``
            is 1.0. 0.5 is the even choice the HRNet paper's wording describes.)
        half_body_padding: float, enlargement of the half-body box. Default 1.5.
    """

    scale_factor: float = 0.35
    rotation_factor: float = 45.0
    rotation_prob: float = 0.6
    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    half_body_min_joints: int = 8
    half_body_upper_prob: float = 0.5
    half_body_padding: float = 1.5

    def __post_init__(self):
        for name in ("rotation_prob", "flip_prob", "half_body_prob", "half_body_upper_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Augmentation.{name} must be in [0, 1], got {value!r}")
        if not 0.0 <= self.scale_factor < 1.0:
            raise ValueError(
                f"Augmentation.scale_factor must be in [0, 1), got {self.scale_factor!r}")


NO_AUGMENTATION = Augmentation(scale_factor=0.0, rotation_factor=0.0, rotation_prob=0.0,
                               flip_prob=0.0, half_body_prob=0.0)


def half_body_center_scale(keypoints, visible, upper_body_ids, aspect_ratio, rng,
                           upper_prob=0.5, padding=1.5):
    """Crop region around the visible upper or lower body (HRNet's ``half_body_transform``).

    The upper body is taken with probability ``upper_prob`` when it has more than two
    visible joints, else the lower body when it has more than two, else the upper body;
    fewer than two selected joints returns ``None``. The joints' bounding box (centre =
    mean of the joints, as HRNet) is padded to ``aspect_ratio`` and enlarged by ``padding``.

    Args:
        keypoints: (K, >=2) image coordinates.
        visible: (K,) bool.
        upper_body_ids: indices of the upper-body joints (``DatasetMeta.upper_body_ids``).
        aspect_ratio: float, input_w / input_h.
        rng: ``numpy.random.Generator``.
        upper_prob: float, default 0.5.
        padding: float, default 1.5.

    Returns:
        ``(center (2,), scale (2,))`` float64 in pixels, or ``None``.
    """
    visible = np.asarray(visible, bool)
    upper = np.zeros(visible.shape[0], bool)
    upper[np.asarray(upper_body_ids, np.int64)] = True
    upper_sel = visible & upper
    lower_sel = visible & ~upper
    if rng.random() < upper_prob and upper_sel.sum() > 2:
        selected = upper_sel
    else:
        selected = lower_sel if lower_sel.sum() > 2 else upper_sel
    if selected.sum() < 2:
        return None
    pts = np.asarray(keypoints, np.float64)[selected, :2]
    center = pts.mean(axis=0)
    w, h = pts.max(axis=0) - pts.min(axis=0)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    return center, np.array([w, h]) * padding


def sample_augmentation(rng, center, scale, keypoints, visible, aspect_ratio,
                        upper_body_ids, augmentation=Augmentation()):
    """Draw one sample's augmentation in HRNet's order: half-body, scale, rotation, flip.

    Args:
        rng: ``numpy.random.Generator`` (the only source of randomness).
        center, scale: (2,) the record's crop region (pixels).
        keypoints: (K, >=2) image coordinates; visible: (K,) bool.
        aspect_ratio: input_w / input_h.
        upper_body_ids: ``DatasetMeta.upper_body_ids``.
        augmentation: ``Augmentation``.

    Returns:
        ``(center (2,), scale (2,), rotation_deg, flip)`` with centre/scale BEFORE the flip
        (``warp_sample`` mirrors the centre).
    """
    aug = augmentation
    center = np.asarray(center, np.float64)
    scale = np.asarray(scale, np.float64)
    visible = np.asarray(visible, bool)
    if (aug.half_body_prob > 0 and visible.sum() > aug.half_body_min_joints
            and rng.random() < aug.half_body_prob):
        half = half_body_center_scale(keypoints, visible, upper_body_ids, aspect_ratio, rng,
                                      aug.half_body_upper_prob, aug.half_body_padding)
        if half is not None:
            center, scale = half
    sf = aug.scale_factor
    scale = scale * np.clip(rng.standard_normal() * sf + 1.0, 1.0 - sf, 1.0 + sf)
    rf = aug.rotation_factor
    rotation = 0.0
    if rng.random() < aug.rotation_prob:
        rotation = float(np.clip(rng.standard_normal() * rf, -2.0 * rf, 2.0 * rf))
    flip = bool(rng.random() < aug.flip_prob)
    return center, scale, rotation, flip


def crop_matrix(center, scale, rotation_deg, flip, image_width, output_size, udp=False):
    """The image → crop matrix of one sample, the flip folded in (one warp per sample).

    A flipped sample is the crop of the mirrored image around the mirrored centre
    ``(W - 1 - cx, cy)``: ``M = A(c', s, r) · F`` with ``F: x → W - 1 - x``.
    """
    if not flip:
        return get_affine_transform(center, scale, rotation_deg, output_size, udp=udp)
    mirrored = (image_width - 1.0 - float(center[0]), float(center[1]))
    affine = get_affine_transform(mirrored, scale, rotation_deg, output_size, udp=udp)
    return compose_affine(affine, hflip_matrix(image_width))


def warp_image(image, matrix, output_size):
    """``cv2.warpAffine`` with bilinear interpolation and black borders."""
    return cv2.warpAffine(image, np.asarray(matrix, np.float64),
                          (int(output_size[0]), int(output_size[1])),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def crop_image(image, center, scale, output_size, rotation_deg=0.0, flip=False, udp=False):
    """The project's one crop: the region ``center``/``scale`` of ``image`` → ``output_size``.

    Training (``warp_sample``), the evaluation pipeline, inference (``crop_boxes``) and the
    pipeline benchmark all crop through here: one matrix (``crop_matrix``, flip and rotation
    folded in) and one ``cv2.warpAffine``.

    Args:
        image: (H, W, C) image.
        center, scale: (2,) the crop region in image pixels (see the module docstring).
        output_size: ``(w, h)`` of the crop.
        rotation_deg: float, rotation in degrees. Default 0.
        flip: bool, mirror horizontally. Default False.
        udp: bool, the UDP warp. Default False.

    Returns:
        ``(crop (h, w, C), matrix (2, 3) image → crop)``.
    """
    matrix = crop_matrix(center, scale, rotation_deg, flip, image.shape[1], output_size, udp)
    return warp_image(image, matrix, output_size), matrix


def crop_boxes(image, boxes, output_size, padding=1.25, udp=False):
    """Centred crops of person boxes: ``box_to_center_scale`` then ``crop_image`` per box.

    Args:
        image: (H, W, 3) uint8 image.
        boxes: (M, 4) ``x, y, w, h``.
        output_size: ``(w, h)`` of the crops (the model input).
        padding: float, box enlargement. Default 1.25 (as evaluation).
        udp: bool, the UDP warp. Default False.

    Returns:
        ``(crops (M, h, w, 3) uint8, center (M, 2), scale (M, 2))`` float32 centres/scales.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    w, h = (int(v) for v in output_size)
    center, scale = box_to_center_scale(boxes, w / h, padding)
    crops = np.empty((len(boxes), h, w, 3), np.uint8)
    for i in range(len(boxes)):
        crops[i], _ = crop_image(image, center[i], scale[i], (w, h), udp=udp)
    return crops, center, scale


def warp_sample(image, keypoints, center, scale, rotation_deg, flip, output_size, flip_index,
                udp=False):
    """Crop one sample with one affine warp and move its keypoints into the crop.

    Args:
        image: (H, W, C) image.
        keypoints: (K, C>=2) image coordinates (extra columns, e.g. visibility, follow
            their joint through the flip).
        center, scale, rotation_deg, flip: from the record or ``sample_augmentation``.
        output_size: ``(w, h)`` of the crop.
        flip_index: (K,) left/right permutation.
        udp: bool, UDP warp.

    Returns:
        ``(crop (h, w, C), keypoints (K, C) in crop coordinates, matrix (2, 3) image → crop)``.
        A flipped sample's keypoint ``k`` is the image's joint ``flip_index[k]``.
    """
    crop, matrix = crop_image(image, center, scale, output_size, rotation_deg, flip, udp)
    kpts = np.array(keypoints, np.float64)
    if flip:
        kpts = kpts[np.asarray(flip_index, np.int64)]
    kpts[:, :2] = affine_points(kpts[:, :2], matrix)
    return crop, kpts, matrix


def normalize_image(image):
    """RGB pixels (..., 3) → float32 ``(x / 255 - mean) / std`` with ImageNet statistics.

    The project's one normalization, for NumPy and for the tf.data pipeline alike: an
    array that is not float32 is converted with NumPy; a float32 TensorFlow tensor (the
    pipeline casts its uint8 batches first) goes through the same arithmetic as TF ops,
    so this module needs no TensorFlow. It stays outside the model: checkpoints and
    exports take normalized crops (see the README).
    """
    if getattr(getattr(image, "dtype", None), "name", None) != "float32":
        image = np.asarray(image, np.float32)
    return (image * (1.0 / 255.0) - IMAGENET_MEAN) / IMAGENET_STD
