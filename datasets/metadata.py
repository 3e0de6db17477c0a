"""Dataset metadata (keypoint names, skeleton, flip pairs, OKS sigmas), kept in one place.

Everything that needs keypoint names, the skeleton or the OKS sigmas reads them from a
``DatasetMeta``, which comes from the data, not from code (``DatasetMeta.from_config``):

- names and skeleton from the annotation file's keypoint category (the skeleton 1-based,
  as COCO writes it);
- OKS sigmas (and flip pairs where the names do not say ``left_``/``right_``) from a
  preset: ``data.dataset`` names one of ``configs/datasets/*.yaml`` (coco, crowdpose,
  ochuman, aic, mpii) or the path of a YAML file of the same form describing one's own
  dataset; explicit ``data.keypoint_names``/``skeleton``/``flip_pairs``/``oks_sigmas``
  override the preset;
- without a file (inference from a checkpoint), from the config alone: training writes the
  resolved metadata into the config saved beside every checkpoint.

When the file and the preset disagree, ``MetadataError`` names the field, the file and
both values. A file skeleton that refers to keypoints the file does not have (CrowdPose's
release carries COCO's 17-keypoint skeleton in its 14-keypoint file) is reported in the
file's own 1-based numbering, or, when the preset has a skeleton, logged and replaced.
"""

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from pose.errors import UserError
from pose.fileio import DuplicateKeyError, load_yaml

logger = logging.getLogger(__name__)

# configs/datasets/ of the repository: one YAML per shipped preset.
PRESETS_DIR = Path(__file__).resolve().parent.parent / "configs" / "datasets"

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


class MetadataError(UserError):
    """The dataset metadata (keypoint names, skeleton, sigmas) is inconsistent."""


def _flip_index_from_names(names):
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
    return flip_index


def _flip_index_from_pairs(pairs, k):
    flip_index = list(range(k))
    for pair in pairs:
        a, b = (int(v) for v in pair)
        if not (0 <= a < k and 0 <= b < k) or a == b:
            raise MetadataError(f"flip pair ({a}, {b}) is not two different keypoints of {k}")
        if flip_index[a] != a or flip_index[b] != b:
            raise MetadataError(f"keypoint {a} or {b} is in two flip pairs")
        flip_index[a], flip_index[b] = b, a
    return flip_index


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
        flip_pairs: pairs of 0-based indices that swap in a mirrored image; ``None``
            (default) derives them from the ``left_``/``right_`` name prefixes.

    Example:
        >>> meta = DatasetMeta.coco()
        >>> meta.flip_index[1], meta.flip_pairs[0]
        (2, (1, 2))
    """

    keypoint_names: tuple
    skeleton: tuple
    sigmas: tuple = None
    flip_pairs: tuple = None
    flip_index: tuple = field(init=False)
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
        flip_index = (_flip_index_from_names(names) if self.flip_pairs is None
                      else _flip_index_from_pairs(self.flip_pairs, k))
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
    def from_coco(cls, coco_or_path, sigmas=None, data=None):
        """Read the person category of a COCO keypoint annotation file.

        Args:
            coco_or_path: a ``pycocotools.coco.COCO`` object, or the path of a
                ``person_keypoints_*.json`` file.
            sigmas: optional OKS sigmas, one per keypoint; default COCO's 17.
            data: optional ``data`` config slice: the file is then checked against its
                preset and fields (``from_config``), and ``sigmas`` is ignored.

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
            source = getattr(coco, "annotation_file", "COCO object")
        category = _coco.find_keypoint_category(coco, source=source)
        if data is not None:
            return cls.from_config(data, category=category, source=source)
        return cls.from_category(category, sigmas=sigmas, source=source)

    def names_of(self, pairs):
        """Index pairs → keypoint-name pairs (how configs and presets write limbs)."""
        return tuple((self.keypoint_names[a], self.keypoint_names[b]) for a, b in pairs)

    def config_fields(self):
        """The metadata as ``DataConfig`` fields, for the config saved beside a checkpoint."""
        return {"keypoint_names": self.keypoint_names,
                "skeleton": self.names_of(self.skeleton),
                "flip_pairs": self.names_of(self.flip_pairs),
                "oks_sigmas": self.sigmas}

    @classmethod
    def from_config(cls, data, category=None, source="annotation file", num_keypoints=None):
        """The metadata of an experiment: the file's category, the preset and the config.

        Args:
            data: the ``data`` config slice (``dataset``, ``keypoint_names``, ``skeleton``,
                ``flip_pairs``, ``oks_sigmas``; any object with these attributes).
            category: the annotation file's keypoint category (a COCO category dict), or
                None when there is no file at hand (inference from a checkpoint).
            source: the annotation file's path, for messages.
            num_keypoints: K of the model, used only when neither the file nor the config
                names the keypoints (then K = 17 means COCO).

        Raises:
            MetadataError: the file and the preset/config disagree (the message names the
                field, the file and both values), the file's skeleton refers to keypoints
                the file does not have, or no sigmas are known for a non-COCO set.
        """
        spec = describe(data)
        names = spec.get("keypoint_names")
        skeleton = spec.get("skeleton")
        if category is not None:
            file_names = tuple(str(n) for n in category.get("keypoints") or ())
            if not file_names:
                raise MetadataError(f"{source}: category {category.get('name')!r} has no "
                                    "keypoints")
            if names is not None and tuple(names) != file_names:
                raise MetadataError(
                    f"{source}: field 'keypoints' disagrees with {spec['source']}: the file "
                    f"has {list(file_names)} ({len(file_names)}), {spec['source']} has "
                    f"{list(names)} ({len(names)})")
            names = file_names
            skeleton = _file_skeleton(category, source, names, skeleton, spec.get("source"))
        elif names is None:
            if num_keypoints not in (None, len(COCO_KEYPOINT_NAMES)):
                raise MetadataError(
                    f"the config names no keypoints for a {num_keypoints}-keypoint model: "
                    "set data.dataset to a preset (" + ", ".join(preset_names())
                    + ") or to your dataset's metadata YAML")
            names = COCO_KEYPOINT_NAMES
            skeleton = skeleton or _named(COCO_KEYPOINT_NAMES, COCO_SKELETON_1BASED)
        sigmas = spec.get("sigmas")
        if sigmas is None and tuple(names) != COCO_KEYPOINT_NAMES:
            raise MetadataError(
                f"no OKS sigmas for the {len(names)} keypoints of {source}: set data.dataset "
                f"to a preset ({', '.join(preset_names())}) or to a metadata YAML, or set "
                "data.oks_sigmas")
        return cls(names, _indices(skeleton or (), names, "skeleton", spec.get("source")),
                   sigmas, _indices(spec["flip_pairs"], names, "flip_pairs", spec["source"])
                   if spec.get("flip_pairs") is not None else None)


def _named(names, pairs_1based):
    return tuple((names[a - 1], names[b - 1]) for a, b in pairs_1based)


def _indices(pairs, names, what, source):
    position = {n: i for i, n in enumerate(names)}
    out = []
    for pair in pairs:
        unknown = [n for n in pair if n not in position]
        if unknown:
            raise MetadataError(f"{source}: {what} entry {list(pair)} names keypoint(s) "
                                f"{unknown} that the dataset does not have ({list(names)})")
        out.append((position[pair[0]], position[pair[1]]))
    return tuple(out)


def _file_skeleton(category, source, names, preset_skeleton, preset_source):
    """The file's 1-based skeleton as name pairs, checked against the preset's."""
    raw = category.get("skeleton") or ()
    k = len(names)
    bad = [list(limb) for limb in raw
           if len(limb) != 2 or not all(isinstance(v, int) and 1 <= v <= k for v in limb)]
    if bad:
        what = (f"{source}: the category's skeleton refers to keypoints the file does not "
                f"have: limb {bad[0]} (1-based, as COCO writes it) but the file has {k} "
                f"keypoints, numbered 1..{k}"
                + (f" ({len(bad)} such limbs)" if len(bad) > 1 else ""))
        if preset_skeleton is None:
            raise MetadataError(what + "; fix the file's skeleton or set data.dataset to a "
                                "preset with a skeleton")
        logger.warning("%s; using the skeleton of %s", what, preset_source)
        return tuple(preset_skeleton)
    file_skeleton = _named(names, raw)
    if not file_skeleton:
        return preset_skeleton
    if preset_skeleton is not None and _limb_set(file_skeleton) != _limb_set(preset_skeleton):
        raise MetadataError(
            f"{source}: field 'skeleton' disagrees with {preset_source}: the file has "
            f"{[list(p) for p in file_skeleton]}, {preset_source} has "
            f"{[list(p) for p in preset_skeleton]}")
    return file_skeleton


def _limb_set(pairs):
    return {frozenset(p) for p in pairs}


def preset_names():
    """The shipped presets: the stems of ``configs/datasets/*.yaml``."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


_PRESET_KEYS = ("name", "keypoint_names", "skeleton", "flip_pairs", "sigmas")


def load_preset(name_or_path):
    """Read a dataset metadata YAML: a preset name (``crowdpose``) or a file path.

    The file holds ``keypoint_names`` (list), ``skeleton`` and ``flip_pairs`` (lists of
    name pairs; optional), ``sigmas`` (one OKS sigma per keypoint; optional) and ``name``.

    Returns:
        dict with those keys (missing ones None) and ``source``, the file's path.

    Raises:
        MetadataError: naming the file, for an unknown preset, unreadable YAML, a key given
            twice (naming both lines), an unknown key, or values of the wrong shape.
    """
    text = os.fspath(name_or_path)
    is_path = text.endswith((".yaml", ".yml")) or os.sep in text or "/" in text
    path = Path(text) if is_path else PRESETS_DIR / f"{text}.yaml"
    if not path.is_file():
        if is_path:
            raise MetadataError(f"dataset metadata file not found: {path}")
        raise MetadataError(f"unknown dataset preset {text!r}; known: "
                            f"{', '.join(preset_names())}, or the path of a metadata YAML")
    try:
        tree = load_yaml(path.read_text(encoding="utf-8"), path) or {}
    except DuplicateKeyError as exc:
        raise MetadataError(str(exc)) from None
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
        raise MetadataError(f"{path}: not a readable YAML file: {exc}") from None
    if not isinstance(tree, dict):
        raise MetadataError(f"{path}: expected a mapping with keys {', '.join(_PRESET_KEYS)}")
    unknown = sorted(set(tree) - set(_PRESET_KEYS))
    if unknown:
        raise MetadataError(f"{path}: unknown key {unknown[0]!r}; known: "
                            f"{', '.join(_PRESET_KEYS)}")
    spec = {key: tree.get(key) for key in _PRESET_KEYS}
    spec["source"] = str(path)
    names = spec["keypoint_names"]
    if names is not None and (not isinstance(names, list)
                              or not all(isinstance(n, str) for n in names)):
        raise MetadataError(f"{path}: keypoint_names must be a list of names")
    for key in ("skeleton", "flip_pairs"):
        pairs = spec[key]
        if pairs is None:
            continue
        if not isinstance(pairs, list) or not all(
                isinstance(p, list) and len(p) == 2 for p in pairs):
            raise MetadataError(f"{path}: {key} must be a list of [name, name] pairs")
        spec[key] = tuple(tuple(str(n) for n in p) for p in pairs)
    if spec["sigmas"] is not None:
        sigmas = spec["sigmas"]
        if not isinstance(sigmas, list) or not all(
                isinstance(v, (int, float)) and v > 0 for v in sigmas):
            raise MetadataError(f"{path}: sigmas must be a list of positive numbers")
        if names is not None and len(sigmas) != len(names):
            raise MetadataError(f"{path}: {len(sigmas)} sigmas for {len(names)} keypoints")
        spec["sigmas"] = tuple(float(v) for v in sigmas)
    if names is not None:
        spec["keypoint_names"] = tuple(names)
    return spec


def describe(data):
    """Merge the preset named by ``data.dataset`` with the config's explicit fields
    (``keypoint_names``, ``skeleton``, ``flip_pairs``, ``oks_sigmas``; these win)."""
    dataset = getattr(data, "dataset", None)
    spec = load_preset(dataset) if dataset else {"source": "the config"}
    explicit = {"keypoint_names": getattr(data, "keypoint_names", None),
                "skeleton": getattr(data, "skeleton", None),
                "flip_pairs": getattr(data, "flip_pairs", None),
                "sigmas": getattr(data, "oks_sigmas", None)}
    for key, value in explicit.items():
        if value is not None:
            spec[key] = tuple(value)
    return spec
