"""Facts about the COCO person keypoint set, kept in one place.

Everything that needs keypoint names, the skeleton or the OKS sigmas reads them from
here or from the annotation file's own category (``DatasetMeta`` in this module).
"""

import os
from dataclasses import dataclass, field

import numpy as np

# The 17 COCO keypoints, in the order of the annotation files.
COCO_KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)

# Limbs as COCO's person category writes them: 1-based keypoint indices.
COCO_SKELETON_1BASED = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7),
    (6, 8), (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5),
    (4, 6), (5, 7),
)

# Per-keypoint OKS sigmas of the COCO keypoint benchmark (pycocotools' COCOeval).
COCO_SIGMAS = np.array(
    [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62,
     1.07, 1.07, 0.87, 0.87, 0.89, 0.89], dtype=np.float64) / 10.0

# Words that put a keypoint in the lower body for the half-body augmentation (HRNet's
# ``lower_body_ids`` for COCO are the hips, knees and ankles).
_LOWER_BODY_WORDS = ("hip", "knee", "ankle", "foot", "heel", "toe")


class MetadataError(ValueError):
    """The dataset metadata (keypoint names, skeleton, sigmas) is inconsistent."""


def _side(name):
    if name.startswith("left_"):
        return "left"
    if name.startswith("right_"):
        return "right"
    return "center"


@dataclass(frozen=True)
class DatasetMeta:
    """Keypoint facts of one dataset: names, skeleton, flip permutation, OKS sigmas, sides.

    Everything but ``keypoint_names``, ``skeleton`` and ``sigmas`` is derived:

    - ``flip_index[k]`` is the keypoint that ``k`` becomes in a horizontally mirrored image:
      ``left_X`` <-> ``right_X``, every other name maps to itself (``flip_index`` is a
      permutation and an involution).
    - ``flip_pairs``: the ``(left, right)`` index pairs, ascending by the left index.
    - ``keypoint_sides``: ``'left'`` / ``'right'`` / ``'center'`` from the name prefix.
    - ``limb_sides``: a limb is ``'left'`` (``'right'``) when both ends are, else ``'center'``.
    - ``upper_body_ids`` / ``lower_body_ids``: lower = names with hip/knee/ankle/foot/heel/toe
      (COCO: 11..16, as HRNet's half-body transform).

    Args:
        keypoint_names: tuple of str, the K keypoint names in annotation order.
        skeleton: pairs of 0-based keypoint indices (limbs).
        sigmas: K per-keypoint OKS sigmas; ``None`` (default) takes COCO's 17, which is an
            error when K != 17.

    Example:
        >>> meta = DatasetMeta.coco()
        >>> meta.flip_index[1], meta.flip_pairs[0]
        (2, (1, 2))
    """

    keypoint_names: tuple
    skeleton: tuple
    sigmas: tuple = None
    flip_index: tuple = field(init=False)
    flip_pairs: tuple = field(init=False)
    keypoint_sides: tuple = field(init=False)
    limb_sides: tuple = field(init=False)
    upper_body_ids: tuple = field(init=False)
    lower_body_ids: tuple = field(init=False)

    def __post_init__(self):
        names = tuple(str(n) for n in self.keypoint_names)
        k = len(names)
        if k == 0:
            raise MetadataError("keypoint_names is empty")
        if len(set(names)) != k:
            raise MetadataError(f"keypoint_names has duplicates: {names}")
        skeleton = tuple((int(a), int(b)) for a, b in self.skeleton)
        for a, b in skeleton:
            if not (0 <= a < k and 0 <= b < k):
                raise MetadataError(
                    f"skeleton limb ({a}, {b}) is out of range for {k} keypoints "
                    "(the skeleton must be 0-based)")
        sigmas = COCO_SIGMAS if self.sigmas is None else np.asarray(self.sigmas, np.float64)
        if sigmas.ndim != 1 or sigmas.shape[0] != k:
            origin = "COCO's default" if self.sigmas is None else "the given"
            raise MetadataError(
                f"{origin} sigmas have {sigmas.size} values but the dataset has {k} "
                "keypoints; pass sigmas= with one OKS sigma per keypoint")
        position = {n: i for i, n in enumerate(names)}
        flip_index = []
        for name in names:
            side = _side(name)
            other = name
            if side == "left":
                other = "right_" + name[len("left_"):]
            elif side == "right":
                other = "left_" + name[len("right_"):]
            flip_index.append(position.get(other, position[name]))
        sides = tuple(_side(n) for n in names)
        limb_sides = tuple(sides[a] if sides[a] == sides[b] else "center" for a, b in skeleton)
        lower = tuple(i for i, n in enumerate(names) if any(w in n for w in _LOWER_BODY_WORDS))
        upper = tuple(i for i in range(k) if i not in lower)
        set_ = object.__setattr__
        set_(self, "keypoint_names", names)
        set_(self, "skeleton", skeleton)
        set_(self, "sigmas", tuple(float(s) for s in sigmas))
        set_(self, "flip_index", tuple(flip_index))
        set_(self, "flip_pairs",
             tuple((i, j) for i, j in enumerate(flip_index) if i < j))
        set_(self, "keypoint_sides", sides)
        set_(self, "limb_sides", limb_sides)
        set_(self, "upper_body_ids", upper)
        set_(self, "lower_body_ids", lower)

    @property
    def num_keypoints(self):
        """K, the number of keypoints."""
        return len(self.keypoint_names)

    @property
    def sigmas_array(self):
        """The OKS sigmas as a float64 array of shape (K,)."""
        return np.asarray(self.sigmas, np.float64)

    @property
    def flip_index_array(self):
        """``flip_index`` as an int64 array of shape (K,), for fancy indexing."""
        return np.asarray(self.flip_index, np.int64)

    @classmethod
    def coco(cls):
        """The 17-keypoint COCO person set with its 19 limbs and OKS sigmas."""
        return cls(COCO_KEYPOINT_NAMES,
                   tuple((a - 1, b - 1) for a, b in COCO_SKELETON_1BASED))

    @classmethod
    def from_category(cls, category, sigmas=None, source="category"):
        """Build from a COCO category dict (``keypoints`` names, 1-based ``skeleton``)."""
        names = category.get("keypoints") or ()
        if not names:
            raise MetadataError(f"{source}: category {category.get('name')!r} has no keypoints")
        skeleton_1based = category.get("skeleton") or ()
        for limb in skeleton_1based:
            if len(limb) != 2 or min(limb) < 1:
                raise MetadataError(
                    f"{source}: skeleton limb {limb} is not a 1-based pair as COCO writes it")
        return cls(tuple(names), tuple((a - 1, b - 1) for a, b in skeleton_1based), sigmas)

    @classmethod
    def from_coco(cls, coco_or_path, sigmas=None):
        """Read the person category of a COCO keypoint annotation file.

        Args:
            coco_or_path: a ``pycocotools.coco.COCO`` object, or the path of a
                ``person_keypoints_*.json`` file.
            sigmas: optional OKS sigmas, one per keypoint; default COCO's 17.

        Raises:
            MetadataError: when there is no category with keypoints, or the sigmas do
                not match the number of keypoints. Errors reading the file are
                ``datasets.coco.AnnotationError`` (a ``ValueError``) naming the file.
        """
        from datasets import coco as _coco  # local import: coco.py imports this module

        if isinstance(coco_or_path, (str, os.PathLike)):
            source = os.fspath(coco_or_path)
            coco = _coco.load_coco(source)
        else:
            coco = coco_or_path
            source = "COCO object"
        category = _coco.find_keypoint_category(coco, source=source)
        return cls.from_category(category, sigmas=sigmas, source=source)
