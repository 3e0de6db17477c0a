"""Synthetic person-keypoint data in COCO's own format, so every tool runs without COCO.

The generator draws articulated 2D figures (a small 2.5D skeleton projected to the image:
random joint angles within human limits, varied proportions, sizes, in-plane rotation and
facing direction) over cluttered backgrounds, with occluders, several overlapping people,
keypoint-less people and ``iscrowd`` regions, and writes them in COCO's directory layout::

    out_dir/train2017/000002000001.jpg ...
    out_dir/val2017/000001000001.jpg ...
    out_dir/annotations/person_keypoints_train2017.json
    out_dir/annotations/person_keypoints_val2017.json
    out_dir/annotations/person_detection_results_val2017.json

The data is made to be learnable: every keypoint label is the exact (1/16 pixel) centre of
the disc drawn at that joint; the person's left limbs are a darker shade of their colour,
elbow/wrist/knee/ankle markers have one hue family per side, and a stripe marks the left
side of the torso; the face (eyes, nose) shows only when the
figure faces the camera, so a mirrored or back-facing figure can be told apart. That is
also why models trained on this data should not use horizontal-flip augmentation or the
flip test: a mirrored image keeps the side colours while the labels swap sides
(``configs/demo/hrnet_small_128x96.yaml`` turns both off).

Visibility follows COCO: a keypoint outside the image is ``v=0`` with ``x=y=0``; a
keypoint inside the image is ``v=2`` when its own body part is the topmost drawn pixel
there and ``v=1`` when something (an occluder, another person, the figure's own body, the
back of the head) hides it. The per-pixel owner map used for this is kept in
:class:`Sample` (``id_map``), so tests can look at what was drawn.

Every image is generated from its own ``numpy.random.Generator`` seeded from
``(seed, split, index, stream)``: the same seed gives byte-identical files, images are
independent of each other (and of ``workers``), and ``write_images=False`` gives exactly
the same JSON as a full run (annotations use only the geometry streams).

Example::

    from datasets.synthetic import generate_coco
    summary = generate_coco("data/synth", num_train=2000, num_val=200, seed=0)
"""

from __future__ import annotations

import colorsys
import dataclasses
import math
import os
import time
from pathlib import Path

import cv2
import numpy as np

from datasets.metadata import COCO_KEYPOINT_NAMES, COCO_SKELETON_1BASED
from pose.fileio import write_bytes, write_json

__all__ = [
    "SPLIT_CODES",
    "SyntheticConfig",
    "Sample",
    "person_category",
    "select_keypoints",
    "image_id_for",
    "render_sample",
    "generate_split",
    "generate_coco",
]

# Image ids are split_code * 1_000_000 + index + 1, annotation ids image_id * 100 + j:
# unique across both splits and independent of generation order.
SPLIT_CODES = {"val2017": 1, "train2017": 2}
_IDS_PER_SPLIT = 1_000_000
_MAX_ANNS_PER_IMAGE = 100

_SHIFT = 4  # fractional bits for cv2 drawing: coordinates are exact to 1/16 pixel.
_ONE = 1 << _SHIFT

# Body parts (the low 5 bits of the owner map; the high bits are person index + 1).
TORSO, HEAD, NECK, L_UARM, L_FARM, R_UARM, R_FARM, L_THIGH, L_SHIN, R_THIGH, R_SHIN = range(11)
_PART_BITS = 5
_OCCLUDER_ID = 0xFFFF


def _bits(*parts):
    return sum(1 << p for p in parts)


# Which drawn parts count as "the keypoint itself is visible" for each of the 17 keypoints.
_OWN_BITS = np.array(
    [_bits(HEAD)] * 5
    + [_bits(TORSO, L_UARM), _bits(TORSO, R_UARM), _bits(L_UARM, L_FARM), _bits(R_UARM, R_FARM),
       _bits(L_FARM), _bits(R_FARM), _bits(TORSO, L_THIGH), _bits(TORSO, R_THIGH),
       _bits(L_THIGH, L_SHIN), _bits(R_THIGH, R_SHIN), _bits(L_SHIN), _bits(R_SHIN)],
    dtype=np.int64)

# Skin and hair tones, BGR.
_SKIN = np.array([(196, 224, 255), (125, 194, 241), (105, 172, 224), (66, 134, 198),
                  (36, 85, 141), (38, 56, 92)], dtype=np.float64)
_HAIR = np.array([(20, 20, 20), (30, 40, 60), (45, 75, 110), (110, 170, 200),
                  (160, 160, 160), (30, 60, 150)], dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the synthetic scenes (all counts are per image).

    Args:
        width: int, image width in pixels. Default 640.
        height: int, image height in pixels. Default 480.
        empty_image_rate: float, fraction of images with nobody in them. Default 0.1.
        people_per_image: float, mean number of keypoint-annotated people in a non-empty
            image (1 + Poisson(mean - 1), capped at ``max_people``). Default 2.0.
        max_people: int, cap on keypoint-annotated people per image. Default 8.
        min_person_height: float, smallest standing height (pixels) of an annotated
            person. Default 64.
        max_person_height: float, largest standing height as a fraction of the image
            height (figures may be cut by the border). Default 1.0.
        no_keypoint_people: float, mean number of tiny people annotated with
            ``num_keypoints = 0`` per non-empty image. Default 0.3.
        crowd_image_rate: float, fraction of non-empty images with an ``iscrowd`` group.
            Default 0.08.
        occluders_per_person: float, mean number of occluders dropped on each person's
            joints. Default 0.35.
        truncation_rate: float, fraction of people allowed to be cut by the image border.
            Default 0.2.
        false_positives_per_image: float, mean number of false-positive detector boxes per
            val image (low scores). Default 2.0.
        detection_miss_rate: float, chance that the simulated detector misses a person.
            Default 0.03.
        jpeg_quality: int, JPEG quality of the written images. Default 90.
    """

    width: int = 640
    height: int = 480
    empty_image_rate: float = 0.1
    people_per_image: float = 2.0
    max_people: int = 8
    min_person_height: float = 64.0
    max_person_height: float = 1.0
    no_keypoint_people: float = 0.3
    crowd_image_rate: float = 0.08
    occluders_per_person: float = 0.35
    truncation_rate: float = 0.2
    false_positives_per_image: float = 2.0
    detection_miss_rate: float = 0.03
    jpeg_quality: int = 90

    def __post_init__(self):
        if self.width < 32 or self.height < 32:
            raise ValueError(f"image size must be at least 32x32, got {self.width}x{self.height}")
        for name in ("empty_image_rate", "crowd_image_rate", "truncation_rate",
                     "detection_miss_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        if self.people_per_image < 1.0:
            raise ValueError(f"people_per_image must be >= 1, got {self.people_per_image!r}")
        if self.max_people < 1 or self.max_people > 40:
            raise ValueError(f"max_people must be in [1, 40], got {self.max_people!r}")
        for name in ("no_keypoint_people", "occluders_per_person", "false_positives_per_image"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0 < self.max_person_height <= 2.0:
            raise ValueError(f"max_person_height must be in (0, 2], got {self.max_person_height!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality!r}")


@dataclasses.dataclass
class Sample:
    """One generated image with everything known about it.

    Attributes:
        image: (H, W, 3) uint8 BGR image, or None when rendered with ``draw=False``.
        background: the image before any person or occluder was drawn (only with
            ``keep_background=True``), else None.
        id_map: (H, W) uint16 owner map: 0 background, ``(person + 1) << 5 | part`` for
            people (person indexes ``figures``), 0xFFFF for occluders.
        image_info: the COCO ``images`` entry.
        annotations: the COCO ``annotations`` entries of this image.
        detections: simulated detector results for this image (COCO results format).
        figures: one dict per drawn person: ``kind`` ("person", "tiny" or "crowd"),
            ``points`` (17, 2) float keypoint positions (also those outside the image),
            ``annotation`` (index into ``annotations`` or None).
    """

    image: np.ndarray | None
    background: np.ndarray | None
    id_map: np.ndarray
    image_info: dict
    annotations: list
    detections: list
    figures: list


# Keypoints other sets have that the generated figures know as combinations of COCO's
# (averaged positions; labelled only where all of their COCO keypoints are).
DERIVED_KEYPOINTS = {
    "neck": ("left_shoulder", "right_shoulder"),
    "head": ("left_eye", "right_eye", "left_ear", "right_ear"),  # the head's centre
    "pelvis": ("left_hip", "right_hip"),
}


def person_category(keypoint_names=None, skeleton=None):
    """The person category: COCO's 17 keypoint names and 1-based skeleton by default, or
    ``keypoint_names`` (COCO names and ``DERIVED_KEYPOINTS``) with ``skeleton`` (1-based
    pairs, as COCO writes them; written as given, even when wrong)."""
    if keypoint_names is None:
        keypoint_names = COCO_KEYPOINT_NAMES
        skeleton = COCO_SKELETON_1BASED if skeleton is None else skeleton
    return {
        "supercategory": "person",
        "id": 1,
        "name": "person",
        "keypoints": list(keypoint_names),
        "skeleton": [list(pair) for pair in (skeleton or ())],
    }


def select_keypoints(keypoints, keypoint_names):
    """COCO-17 flat ``[x, y, v] * 17`` → ``[x, y, v] * K`` of ``keypoint_names``.

    Each name is a COCO keypoint or one of ``DERIVED_KEYPOINTS`` (the mean position of
    its COCO keypoints, with the smallest of their visibilities). Returns the flat list
    and the number of labelled keypoints.
    """
    coco = np.asarray(keypoints, np.float64).reshape(17, 3)
    index = {name: i for i, name in enumerate(COCO_KEYPOINT_NAMES)}
    out = []
    for name in keypoint_names:
        sources = DERIVED_KEYPOINTS.get(name, (name,))
        unknown = [n for n in sources if n not in index]
        if unknown:
            raise ValueError(f"the generator has no keypoint {name!r}; known: "
                             f"{', '.join(COCO_KEYPOINT_NAMES + tuple(DERIVED_KEYPOINTS))}")
        rows = coco[[index[n] for n in sources]]
        v = int(rows[:, 2].min())
        out += [float(rows[:, 0].mean()), float(rows[:, 1].mean()), v] if v else [0, 0, 0]
    return out, sum(1 for v in out[2::3] if v)


def image_id_for(split, index):
    """COCO image id of image ``index`` of ``split`` ("train2017" or "val2017")."""
    if split not in SPLIT_CODES:
        raise ValueError(f"split must be one of {sorted(SPLIT_CODES)}, got {split!r}")
    if not 0 <= index < _IDS_PER_SPLIT - 1:
        raise ValueError(f"index must be in [0, {_IDS_PER_SPLIT - 1}), got {index!r}")
    return SPLIT_CODES[split] * _IDS_PER_SPLIT + index + 1


def _rng(seed, split, index, stream):
    return np.random.Generator(np.random.PCG64(
        np.random.SeedSequence([int(seed), SPLIT_CODES[split], int(index), stream])))


# --------------------------------------------------------------------------- geometry


class _Figure:
    """A posed figure: keypoints, draw operations and self-visibility.

    ``rel_*`` are relative to the pelvis; :meth:`place` translates them into the image and
    compiles the draw operations to cv2's fixed-point integers.
    """

    __slots__ = ("kind", "u", "self_visible", "own_bits", "rel_points", "rel_ops",
                 "rel_extent", "points", "extent", "ops")

    def place(self, t):
        # The translation is a multiple of 1/16 px, so labels stay exact drawn centres.
        tx, ty = round(float(t[0]) * _ONE) / _ONE, round(float(t[1]) * _ONE) / _ONE
        self.points = self.rel_points + (tx, ty)
        self.extent = self.rel_extent + (tx, ty, tx, ty)
        self.ops = _compile(self.rel_ops, tx, ty)


def _compile(ops, tx=0.0, ty=0.0):
    """Turns (kind, points, params, part, slot) into cv2-ready fixed-point arguments."""
    if not ops:
        return []
    flat = np.array([p for op in ops for p in op[1]], dtype=np.float64) + (tx, ty)
    q = np.round(flat * _ONE).astype(np.int64).tolist()
    out, i = [], 0
    for kind, pts, prm, part, slot in ops:
        n = len(pts)
        qq = q[i:i + n]
        i += n
        if kind == "poly":
            args = np.array(qq, dtype=np.int32)
        elif kind == "disc":
            args = (tuple(qq[0]), max(1, int(round(prm[0] * _ONE))))
        elif kind == "ellipse":
            (ax, ay), angle = prm
            args = (tuple(qq[0]), (max(1, int(round(ax * _ONE))), max(1, int(round(ay * _ONE)))),
                    float(angle))
        else:  # "lines": consecutive point pairs, one thickness
            args = ([(tuple(qq[j]), tuple(qq[j + 1])) for j in range(0, n, 2)], prm[0])
        out.append((kind, args, part, slot))
    return out


def _unit(v):
    n = float(np.sqrt(np.dot(v, v)))
    return v / n if n > 1e-9 else np.array([0.0, -1.0, 0.0])


def _limb(g, side, arm):
    """Directions (body frame: lateral, up, forward) of the two segments of a limb."""
    if arm:
        alpha = g.uniform(0, 55) if g.random() < 0.6 else g.uniform(40, 175)  # abduction
        phi = g.uniform(-35, 95)                                                # flexion
        bend = g.uniform(0, 50) if g.random() < 0.45 else g.uniform(30, 150)   # elbow
        q = np.array([side * g.uniform(-1.0, 1.0), g.uniform(-0.3, 1.0), g.uniform(0.2, 1.0)])
    else:
        alpha = g.uniform(-12, 35)
        phi = g.uniform(-25, 35) if g.random() < 0.75 else g.uniform(20, 110)
        bend = g.uniform(0, 35) if g.random() < 0.6 else g.uniform(20, 140)    # knee
        q = np.array([side * g.uniform(-0.3, 0.3), g.uniform(-0.2, 0.2), -1.0])
    a, f, b = math.radians(alpha), math.radians(phi), math.radians(bend)
    d1 = np.array([side * math.sin(a) * math.cos(f), -math.cos(a) * math.cos(f), math.sin(f)])
    p = _unit(q - np.dot(q, d1) * d1)
    d2 = math.cos(b) * d1 + math.sin(b) * p
    return d1, d2


def _quad(p0, p1, w0, w1):
    """Corners of a (tapered) band of widths w0 at p0 and w1 at p1."""
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    n = math.hypot(dx, dy)
    px, py = (-dy / n, dx / n) if n > 1e-9 else (1.0, 0.0)
    a, b = w0 / 2, w1 / 2
    return [(p0[0] + px * a, p0[1] + py * a), (p1[0] + px * b, p1[1] + py * b),
            (p1[0] - px * b, p1[1] - py * b), (p0[0] - px * a, p0[1] - py * a)]


_KP_NAMES = ("nose", "leye", "reye", "lear", "rear", "ls", "rs", "le", "re", "lw", "rw",
             "lh", "rh", "lk", "rk", "la", "ra")


def _make_figure(g, height, kind):
    """Samples a posed figure of standing height ``height`` pixels, pelvis at the origin."""
    u = height / 7.85  # proportions in "head" units; a standing figure is ~7.85 units tall
    jit = np.exp(g.normal(0.0, 0.07, size=14)).tolist()
    build = float(np.exp(g.normal(0.0, 0.15)))
    T, neck = 2.5 * jit[0], 0.35 * jit[1]
    sh, hh = 0.8 * jit[2] * build ** 0.5, 0.52 * jit[3] * build ** 0.5
    rx, ry = 0.44 * jit[4], 0.55 * jit[5]
    ua, fa, hand = 1.45 * jit[6], 1.25 * jit[7], 0.42 * jit[8]
    th, sn = 1.9 * jit[9], 1.8 * jit[10]
    w_ua, w_fa = 0.52 * build * jit[11], 0.42 * build * jit[12]
    w_th, w_sn = 0.75 * build * jit[13], 0.55 * build * jit[11]
    depth_half = 0.45 * build

    r = g.random()  # facing: front, back, or sideways-ish
    if r < 0.45:
        yaw = g.normal(0.0, 25.0)
    elif r < 0.7:
        yaw = 180.0 + g.normal(0.0, 25.0)
    else:
        yaw = (1 if g.random() < 0.5 else -1) * g.uniform(55, 125)
    roll = g.normal(0.0, 8.0) if g.random() < 0.94 else g.uniform(-180.0, 180.0)
    if kind != "person":
        roll = g.normal(0.0, 5.0)
    head_yaw = math.radians(yaw + g.uniform(-35, 35))
    yaw = math.radians(yaw)
    cy, sy = math.cos(yaw), math.sin(yaw)
    cr, sr = math.cos(math.radians(roll)), math.sin(math.radians(roll))

    def depth_of(v):  # towards the camera is positive
        return v[0] * sy + v[2] * cy

    # Points in the body frame (lateral = the person's left, up, forward), in head units.
    P = {}
    P["ls"], P["rs"] = np.array([sh, T, 0.0]), np.array([-sh, T, 0.0])
    P["lh"], P["rh"] = np.array([hh, 0.0, 0.0]), np.array([-hh, 0.0, 0.0])
    for side, s in (("l", 1.0), ("r", -1.0)):
        d1, d2 = _limb(g, s, arm=True)
        P[side + "e"] = P[side + "s"] + ua * d1
        P[side + "w"] = P[side + "e"] + fa * d2
        P[side + "hand"] = P[side + "w"] + hand * d2
        d1, d2 = _limb(g, s, arm=False)
        P[side + "k"] = P[side + "h"] + th * d1
        P[side + "a"] = P[side + "k"] + sn * d2
        P[side + "heel"] = P[side + "a"] + np.array([0.0, -0.22, -0.12])
        P[side + "toe"] = P[side + "a"] + np.array([0.0, -0.28, 0.62])
    tilt_l, tilt_f = math.radians(g.uniform(-15, 15)), math.radians(g.uniform(-20, 20))
    P["neck"] = np.array([0.0, T, 0.0])
    up_h = _unit(np.array([math.sin(tilt_l), 1.0, math.sin(tilt_f)]))
    hc = P["neck"] + (neck + ry) * up_h
    P["head"] = hc
    dyaw = head_yaw - yaw
    lat_h = np.array([math.cos(dyaw), 0.0, -math.sin(dyaw)])
    fwd_h = np.array([math.sin(dyaw), 0.0, math.cos(dyaw)])
    P["nose"] = hc + 0.95 * rx * fwd_h - 0.1 * ry * up_h
    P["leye"] = hc + 0.72 * rx * fwd_h + 0.12 * ry * up_h + 0.4 * rx * lat_h
    P["reye"] = hc + 0.72 * rx * fwd_h + 0.12 * ry * up_h - 0.4 * rx * lat_h
    P["lear"] = hc + 0.97 * rx * lat_h - 0.1 * rx * fwd_h
    P["rear"] = hc - 0.97 * rx * lat_h - 0.1 * rx * fwd_h
    P["face"] = hc + 0.4 * rx * fwd_h - 0.12 * ry * up_h
    P["top"] = np.array([0.0, T + 0.12, 0.0])
    P["waist"] = np.array([0.0, 0.38 * T, 0.0])
    P["bottom"] = np.array([0.0, -0.3, 0.0])
    f = 0.0 if sy > 0.5 else math.copysign(depth_half * 0.9, cy)
    P["stripe0"] = np.array([0.85 * sh, T - 0.05, f])
    P["stripe1"] = np.array([hh + 0.12, 0.4 * T, f])

    # Project everything at once: screen = in-plane rotation of (x, -up).
    names = list(_KP_NAMES) + [n for n in P if n not in _KP_NAMES]
    body = np.stack([P[n] for n in names]) * u
    x = body[:, 0] * cy - body[:, 2] * sy
    y = -body[:, 1]
    scr = np.stack([x * cr - y * sr, x * sr + y * cr], axis=1)
    depth = body[:, 0] * sy + body[:, 2] * cy
    scr[:17] = np.round(scr[:17] * _ONE) / _ONE  # labels are exactly the drawn centres
    kp = scr[:17].copy()
    S = dict(zip(names, map(tuple, scr.tolist())))
    D = dict(zip(names, depth.tolist()))

    self_visible = np.ones(17, dtype=bool)
    face_dir = depth_of(fwd_h)
    self_visible[0] = face_dir > -0.2
    for k, s in ((1, 1.0), (2, -1.0)):
        self_visible[k] = depth_of(_unit(0.72 * fwd_h + s * 0.6 * lat_h)) > 0.05
    for k, s in ((3, 1.0), (4, -1.0)):
        self_visible[k] = depth_of(s * lat_h) > -0.35
    own = _OWN_BITS.copy()
    for k, part in ((5, TORSO), (6, TORSO), (11, TORSO), (12, TORSO)):
        if depth[k] < -0.65 * abs(body[k, 0]):  # far side of a turned body: torso hides it
            own[k] &= ~(1 << part)

    ops = []  # (sort_key, seq, op)

    def add(key, kind, pts, prm, part, slot):
        ops.append((key, len(ops), (kind, pts, prm, part, slot)))

    def seg(key, a, b, wa, wb, part, slot):
        pa, pb = S[a], S[b]
        add(key, "poly", _quad(pa, pb, wa * u, wb * u), None, part, slot)
        add(key, "disc", [pa], (wa * u / 2,), part, slot)
        add(key, "disc", [pb], (wb * u / 2,), part, slot)

    # Torso: shirt from shoulders to waist, pelvis (trousers) from waist to below the hips.
    def half(lat):
        return (abs(lat * cy) + abs(depth_half * sy)) * u

    top, waist, bottom = S["top"], S["waist"], S["bottom"]
    angle = math.degrees(math.atan2(sr, cr))
    tk = (0.0, 0)
    add(tk, "poly", _quad(top, waist, 2 * half(sh + 0.26), 2 * half(hh + 0.38)), None, TORSO,
        "shirt")
    add(tk, "poly", _quad(waist, bottom, 2 * half(hh + 0.38), 2 * half(hh + 0.38)), None, TORSO,
        "pants")
    add(tk, "ellipse", [bottom], ((half(hh + 0.38), 0.25 * u), angle), TORSO, "pants")
    q = _quad(top, waist, 2 * half(sh + 0.18), 2 * half(hh + 0.3))
    bands = []
    for t in (0.12, 0.37, 0.63, 0.88):  # stripes across the shirt
        bands.append((q[0][0] + (q[1][0] - q[0][0]) * t, q[0][1] + (q[1][1] - q[0][1]) * t))
        bands.append((q[3][0] + (q[2][0] - q[3][0]) * t, q[3][1] + (q[2][1] - q[3][1]) * t))
    add(tk, "lines", bands, (max(1, int(round(0.14 * u))),), -1, "band")
    if sy > -0.5 and height >= 24:  # the left-side stripe, hidden when the left turns away
        add(tk, "lines", [S["stripe0"], S["stripe1"]], (max(1, int(round(0.2 * u))),), -1,
            "stripe")

    # Limbs, each chain drawn as one unit ordered by its mean depth.
    for side in ("l", "r"):
        L = side == "l"
        key = ((D[side + "s"] + D[side + "e"] + D[side + "w"]) / 3, 2)
        uarm, farm = (L_UARM, L_FARM) if L else (R_UARM, R_FARM)
        seg(key, side + "s", side + "e", w_ua, w_ua * 0.9, uarm, side + "sleeve")
        seg(key, side + "e", side + "w", w_fa, w_fa * 0.85, farm, side + "forearm")
        seg(key, side + "w", side + "hand", w_fa * 0.7, w_fa * 0.8, farm, side + "skin")
        add(key, "disc", [S[side + "e"]], (w_fa * 0.3 * u,), -1, side + "joint_arm")
        add(key, "disc", [S[side + "w"]], (w_fa * 0.28 * u,), -1, side + "joint_arm")

        key = ((D[side + "h"] + D[side + "k"] + D[side + "a"]) / 3, 1)
        thigh, shin = (L_THIGH, L_SHIN) if L else (R_THIGH, R_SHIN)
        seg(key, side + "heel", side + "toe", 0.32, 0.36, shin, "shoe")
        seg(key, side + "h", side + "k", w_th, w_th * 0.8, thigh, side + "pants")
        seg(key, side + "k", side + "a", w_sn, w_sn * 0.75, shin, side + "shin")
        add(key, "disc", [S[side + "k"]], (w_sn * 0.32 * u,), -1, side + "joint_leg")
        add(key, "disc", [S[side + "a"]], (w_sn * 0.28 * u,), -1, side + "joint_leg")

    # Neck and head: a hair-coloured head, a face only when turned towards the camera.
    hk = (D["head"] + 0.05 * u, 3)
    seg(hk, "neck", "head", 0.36, 0.36, NECK, "skin")
    head_angle = angle + math.degrees(tilt_l) * cy
    for k in (3, 4):
        if not self_visible[k]:
            add(hk, "disc", [S[_KP_NAMES[k]]], (0.2 * rx * u,), HEAD, "ear")
    add(hk, "ellipse", [S["head"]], ((rx * u, ry * u), head_angle), HEAD, "hair")
    if face_dir > -0.35:
        fw = rx * (0.55 + 0.3 * max(face_dir, 0.0))
        add(hk, "ellipse", [S["face"]], ((fw * u, 0.8 * ry * u), head_angle), HEAD, "skin")
    for k in (3, 4):
        if self_visible[k]:
            add(hk, "disc", [S[_KP_NAMES[k]]], (0.2 * rx * u,), HEAD, "ear")
    for k in (1, 2):
        if self_visible[k]:
            add(hk, "disc", [S[_KP_NAMES[k]]], (0.11 * rx * u,), HEAD, "eye")
    if self_visible[0]:
        add(hk, "disc", [S["nose"]], (0.13 * rx * u,), HEAD, "nose")

    ops.sort(key=lambda o: (o[0], o[1]))
    fig = _Figure()
    fig.kind = kind
    fig.u = u
    fig.self_visible = self_visible
    fig.own_bits = own
    fig.rel_points = kp
    fig.rel_ops = [o[2] for o in ops]
    m = 0.8 * u + 1.0
    fig.rel_extent = np.array([scr[:, 0].min() - m, scr[:, 1].min() - m,
                               scr[:, 0].max() + m, scr[:, 1].max() + m])
    return fig


def _box_iou(a, b):
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _place(g, fig, W, H, trunc, others, tries=12):
    """Places ``fig`` in the image, avoiding heavy overlap with ``others``; returns its box."""
    x0, y0, x1, y1 = fig.rel_extent.tolist()
    fw, fh = x1 - x0, y1 - y0
    best = None
    for _ in range(tries):
        out = g.uniform(0.0, 0.4) if trunc else 0.0
        lo_x, hi_x = -x0 - out * fw, W - x1 + out * fw
        lo_y, hi_y = -y0 - out * fh, H - y1 + out * fh
        tx = g.uniform(min(lo_x, hi_x), max(lo_x, hi_x))
        ty = g.uniform(min(lo_y, hi_y), max(lo_y, hi_y))
        box = (x0 + tx, y0 + ty, x1 + tx, y1 + ty)
        worst = max((_box_iou(box, o) for o in others), default=0.0)
        if best is None or worst < best[0]:
            best = (worst, tx, ty, box)
        if worst < 0.3:
            break
    fig.place((best[1], best[2]))
    return best[3]


def _occluder(g, center, size):
    """A random convex occluder shape around ``center`` with radius ~ ``size``."""
    kind = g.integers(0, 3)
    cx, cy = float(center[0]), float(center[1])
    if kind == 0:  # rotated rectangle
        a = g.uniform(0, math.pi)
        w, h = size * g.uniform(0.7, 1.6), size * g.uniform(0.5, 1.2)
        c, s = math.cos(a), math.sin(a)
        pts = [(cx + x * c - y * s, cy + x * s + y * c) for x, y in
               ((-w, -h), (w, -h), (w, h), (-w, h))]
        return ("poly", pts, None, -1, "occluder")
    if kind == 1:
        return ("ellipse", [(cx, cy)],
                ((size * g.uniform(0.7, 1.4), size * g.uniform(0.5, 1.1)), g.uniform(0, 180)),
                -1, "occluder")
    angles = np.sort(g.uniform(0, 2 * math.pi, size=int(g.integers(5, 9))))
    radii = size * g.uniform(0.6, 1.3, size=angles.size)
    pts = np.stack([np.cos(angles) * radii + cx, np.sin(angles) * radii + cy], axis=1)
    hull = cv2.convexHull(pts.astype(np.float32))[:, 0].astype(np.float64)
    return ("poly", [tuple(p) for p in hull.tolist()], None, -1, "occluder")


# --------------------------------------------------------------------------- drawing


def _draw(img, op, color, aa):
    kind, args = op[0], op[1]
    lt = cv2.LINE_AA if aa else cv2.LINE_8
    if kind == "disc":
        cv2.circle(img, args[0], args[1], color, -1, lt, _SHIFT)
    elif kind == "poly":
        cv2.fillConvexPoly(img, args, color, lt, _SHIFT)
    elif kind == "ellipse":
        cv2.ellipse(img, args[0], args[1], args[2], 0, 360, color, -1, lt, _SHIFT)
    elif color is not None:  # lines
        for p0, p1 in args[0]:
            cv2.line(img, p0, p1, color, args[1], lt, _SHIFT)


def _hsv(h, s, v):
    r, g_, b = colorsys.hsv_to_rgb(h, s, v)
    return np.array([b, g_, r]) * 255.0


def _color(a):
    return _hsv(a.random(), a.uniform(0.0, 1.0) ** 0.7, a.uniform(0.2, 0.95))


def _tuple(c):
    c = np.clip(c, 0, 255)
    return (int(c[0]), int(c[1]), int(c[2]))


_SIDE_MARKERS = {"l": np.array([40.0, 70.0, 235.0]), "r": np.array([235.0, 190.0, 40.0])}


def _palette(a):
    """Colours of one person. Left limbs are a darker shade of the same colours."""
    skin = _SKIN[a.integers(len(_SKIN))] * a.uniform(0.9, 1.08) + a.normal(0, 6, 3)
    hair = _HAIR[a.integers(len(_HAIR))] * a.uniform(0.85, 1.15) + a.normal(0, 6, 3)
    shirt, pants = _color(a), _color(a)
    shoe = _hsv(a.random(), a.uniform(0, 0.6), a.uniform(0.05, 0.45))
    forearm = shirt if a.random() < 0.5 else skin
    shin = pants if a.random() < 0.8 else skin
    lum = float(shirt @ np.array([0.114, 0.587, 0.299]))
    band = (_color(a) if a.random() < 0.4 else None)
    pal = {"skin": skin, "hair": hair, "shirt": shirt, "pants": pants, "shoe": shoe,
           "ear": skin * 0.85, "eye": np.array([40.0, 30.0, 25.0]) + a.normal(0, 8, 3),
           "nose": skin * np.array([0.6, 0.62, 0.8]),
           "stripe": np.array([30.0, 30.0, 30.0]) if lum > 150 else np.array([235.0, 245.0, 250.0]),
           "band": band}
    for side, f in (("l", 0.68), ("r", 1.0)):
        pal[side + "sleeve"] = shirt * f
        pal[side + "forearm"] = forearm * f
        pal[side + "skin"] = skin * f
        pal[side + "pants"] = pants * f
        pal[side + "shin"] = shin * f
        # Elbow, wrist, knee and ankle markers in one hue family per side (like a watch
        # or a knee brace worn on one side): the strongest left/right cue of a figure.
        marker = _SIDE_MARKERS[side] + a.normal(0, 12, 3)
        pal[side + "joint_arm"] = marker
        pal[side + "joint_leg"] = marker * 0.85
    keys = [k for k, v in pal.items() if v is not None]
    vals = np.clip(np.stack([pal[k] for k in keys]), 0, 255).astype(np.int64).tolist()
    out = dict(zip(keys, map(tuple, vals)))
    out["band"] = out.get("band")
    return out


_NOISE_CACHE = {}


def _noise_tile(h, w):
    key = (h, w)
    if key not in _NOISE_CACHE:
        r = np.random.Generator(np.random.PCG64(np.random.SeedSequence([7, h, w])))
        _NOISE_CACHE[key] = r.integers(0, 13, size=(2 * h, 2 * w, 3), dtype=np.uint8)
    return _NOISE_CACHE[key]


def _background(a, W, H):
    """Smooth gradient + blotches + clutter shapes + fine noise."""
    gh, gw = int(a.integers(3, 14)), int(a.integers(3, 14))
    corners = np.stack([_color(a) for _ in range(4)]).reshape(2, 2, 3).astype(np.float32)
    low = cv2.resize(corners, (gw, gh), interpolation=cv2.INTER_LINEAR)
    low += a.normal(0.0, a.uniform(5, 35), size=low.shape).astype(np.float32)
    img = cv2.resize(np.clip(low, 0, 255).astype(np.uint8), (W, H),
                     interpolation=cv2.INTER_LINEAR)
    for _ in range(int(a.integers(3, 13))):
        color = _tuple(_color(a))
        c = (a.uniform(-0.1, 1.1) * W, a.uniform(-0.1, 1.1) * H)
        s = float(np.exp(a.uniform(math.log(6), math.log(0.35 * max(W, H)))))
        kind = a.integers(0, 5)
        filled = -1 if a.random() < 0.7 else int(a.integers(1, 5))
        ci = (int(c[0] * _ONE), int(c[1] * _ONE))
        if kind == 0:
            cv2.circle(img, ci, int(s * _ONE), color, filled, cv2.LINE_AA, _SHIFT)
        elif kind == 1:
            cv2.ellipse(img, ci, (int(s * _ONE), int(s * a.uniform(0.2, 1.0) * _ONE)),
                        a.uniform(0, 180), 0, 360, color, filled, cv2.LINE_AA, _SHIFT)
        elif kind == 2:
            w, h = s, s * a.uniform(0.2, 1.5)
            ang = a.uniform(0, math.pi)
            rot = np.array([[math.cos(ang), math.sin(ang)], [-math.sin(ang), math.cos(ang)]])
            pts = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) @ rot + c
            cv2.fillConvexPoly(img, np.round(pts * _ONE).astype(np.int32), color, cv2.LINE_AA,
                               _SHIFT)
        elif kind == 3:  # limb-like distractor: a thick line with round caps
            ang = a.uniform(0, 2 * math.pi)
            d = np.array([math.cos(ang), math.sin(ang)]) * s
            p0, p1 = np.round((np.array(c) - d) * _ONE), np.round((np.array(c) + d) * _ONE)
            cv2.line(img, (int(p0[0]), int(p0[1])), (int(p1[0]), int(p1[1])), color,
                     max(1, int(s * a.uniform(0.05, 0.3))), cv2.LINE_AA, _SHIFT)
        else:  # parallel stripes
            ang = a.uniform(0, math.pi)
            d = np.array([math.cos(ang), math.sin(ang)]) * s
            n = np.array([-d[1], d[0]]) * a.uniform(0.1, 0.3)
            for i in range(int(a.integers(2, 6))):
                p0 = np.round((np.array(c) - d + i * n) * _ONE)
                p1 = np.round((np.array(c) + d + i * n) * _ONE)
                cv2.line(img, (int(p0[0]), int(p0[1])), (int(p1[0]), int(p1[1])), color,
                         max(1, int(s * 0.06)), cv2.LINE_AA, _SHIFT)
    tile = _noise_tile(H, W)
    oy, ox = int(a.integers(0, H)), int(a.integers(0, W))
    return cv2.add(img, tile[oy:oy + H, ox:ox + W])


# --------------------------------------------------------------------------- annotations


def _rle(mask):
    """Uncompressed COCO RLE (column-major run lengths, starting with zeros)."""
    flat = mask.ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
    if flat[0]:
        counts = [0] + counts
    return {"counts": counts, "size": [int(mask.shape[0]), int(mask.shape[1])]}


def _crop(extent, W, H):
    x0 = max(0, int(math.floor(extent[0])))
    y0 = max(0, int(math.floor(extent[1])))
    x1 = min(W, int(math.ceil(extent[2])) + 1)
    y1 = min(H, int(math.ceil(extent[3])) + 1)
    return x0, y0, x1, y1


def _mask_stats(mask, x0, y0):
    """bbox [x, y, w, h] (tight, in pixels) and area of a boolean crop mask."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    bbox = [float(x0 + cols[0]), float(y0 + rows[0]),
            float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1)]
    return bbox, float(np.count_nonzero(mask))


def _polygons(mask, x0, y0):
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        c = cv2.approxPolyDP(c, 0.8, True)[:, 0]
        if len(c) >= 3:
            polys.append((c + (x0, y0)).astype(np.float64).ravel().tolist())
    if not polys:  # a thin sliver: fall back to the box outline
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        ax0, ay0, ax1, ay1 = x0 + cols[0], y0 + rows[0], x0 + cols[-1], y0 + rows[-1]
        polys = [[float(v) for v in (ax0, ay0, ax1, ay0, ax1, ay1, ax0, ay1)]]
    return polys


def _detections(d, image_id, truth, W, H, cfg):
    """Simulated detector output: jittered true boxes plus false positives."""
    dets = []

    def add(x0, y0, x1, y1, score):
        x0, y0 = max(0.0, x0), max(0.0, y0)
        x1, y1 = min(float(W), x1), min(float(H), y1)
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            dets.append({"image_id": image_id, "category_id": 1,
                         "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2),
                                  round(y1 - y0, 2)],
                         "score": round(float(score), 4)})

    for (x, y, w, h), kind in truth:
        small = w * h < 32 * 32
        if d.random() < cfg.detection_miss_rate * (4.0 if small else 1.0):
            continue
        cx, cy = x + w / 2 + d.normal(0, 0.05 * w), y + h / 2 + d.normal(0, 0.05 * h)
        w2, h2 = w * math.exp(d.normal(0.02, 0.08)), h * math.exp(d.normal(0.02, 0.08))
        if kind == "person" and not small:
            score = np.clip(d.normal(0.92, 0.06), 0.45, 0.999)
        else:
            score = d.uniform(0.15, 0.85)
        add(cx - w2 / 2, cy - h2 / 2, cx + w2 / 2, cy + h2 / 2, score)
    for _ in range(int(d.poisson(cfg.false_positives_per_image))):
        if truth and d.random() < 0.3:  # a part-of-a-person or duplicate box
            (x, y, w, h), _ = truth[int(d.integers(len(truth)))]
            fw, fh = w * d.uniform(0.3, 1.0), h * d.uniform(0.3, 1.0)
            fx, fy = x + d.uniform(-0.2, 1.0) * w - fw / 2, y + d.uniform(-0.2, 1.0) * h - fh / 2
            add(fx, fy, fx + fw, fy + fh, d.uniform(0.02, 0.5))
        else:
            fh = math.exp(d.uniform(math.log(12), math.log(0.8 * H)))
            fw = fh * d.uniform(0.25, 1.2)
            fx, fy = d.uniform(-0.1, 1.0) * W - fw / 2, d.uniform(-0.1, 1.0) * H - fh / 2
            add(fx, fy, fx + fw, fy + fh, 0.5 * d.random() ** 2)
    return dets


# --------------------------------------------------------------------------- one image


def render_sample(seed, split, index, config=None, *, draw=True, keep_background=False):
    """Generates image ``index`` of ``split`` for ``seed``.

    Args:
        seed: int >= 0, the data set seed.
        split: str, "train2017" or "val2017".
        index: int, the image's index in its split.
        config: SyntheticConfig or None (defaults).
        draw: bool, render the RGB image (False: only the owner map and annotations,
            which are identical either way). Default True.
        keep_background: bool, also return the image before people were drawn.

    Returns:
        A :class:`Sample`.

    Example::

        s = render_sample(0, "val2017", 3)
        s.image.shape, len(s.annotations)
    """
    cfg = config or SyntheticConfig()
    W, H = cfg.width, cfg.height
    image_id = image_id_for(split, index)
    g = _rng(seed, split, index, 0)

    figures = []
    if g.random() >= cfg.empty_image_rate:
        # iscrowd group in the background.
        if g.random() < cfg.crowd_image_rate:
            k = int(g.integers(6, 15))
            base = g.uniform(22, 55)
            cx, cy = g.uniform(0.1, 0.9) * W, g.uniform(0.25, 0.85) * H
            spread = k * base * 0.22
            for i in range(k):
                fig = _make_figure(g, base * g.uniform(0.85, 1.15), "crowd")
                fig.place((cx + (i / (k - 1) - 0.5) * spread + g.normal(0, base * 0.05),
                               cy + g.normal(0, base * 0.15)))
                figures.append(fig)
        # tiny keypoint-less people, then annotated people from small to large.
        for _ in range(int(g.poisson(cfg.no_keypoint_people))):
            fig = _make_figure(g, g.uniform(12, 34), "tiny")
            _place(g, fig, W, H, False, [], tries=1)
            figures.append(fig)
        n = min(cfg.max_people, 1 + int(g.poisson(cfg.people_per_image - 1.0)))
        lo = cfg.min_person_height
        hi = max(lo + 1.0, cfg.max_person_height * H)
        heights = np.sort(np.exp(g.uniform(math.log(lo), math.log(hi), size=n)))
        boxes = []
        for h in heights:
            fig = _make_figure(g, float(h), "person")
            boxes.append(_place(g, fig, W, H, g.random() < cfg.truncation_rate, boxes))
            figures.append(fig)

    # Occluders on joints of annotated people, and a few anywhere.
    occluders = []
    for fig in figures:
        if fig.kind != "person":
            continue
        for _ in range(int(g.poisson(cfg.occluders_per_person))):
            j = fig.points[int(g.integers(5, 17))]
            occluders.append(_occluder(g, j + g.normal(0, 0.3 * fig.u, 2),
                                       fig.u * g.uniform(0.5, 1.2)))
    for _ in range(int(g.poisson(0.3))):
        occluders.append(_occluder(g, np.array([g.uniform(0, W), g.uniform(0, H)]),
                                   g.uniform(8, 0.12 * max(W, H))))
    occluders = _compile(occluders)

    # Draw: owner map always, colour image when asked.
    id_map = np.zeros((H, W), dtype=np.uint16)
    image = background = None
    if draw:
        a = _rng(seed, split, index, 1)
        image = _background(a, W, H)
        if keep_background:
            background = image.copy()
    for p, fig in enumerate(figures):
        pal = _palette(a) if draw else None
        base_id = (p + 1) << _PART_BITS
        for op in fig.ops:
            if op[2] >= 0:
                _draw(id_map, op, base_id | op[2], False)
            if draw:
                _draw(image, op, pal[op[3]], True)
    for op in occluders:
        _draw(id_map, op, _OCCLUDER_ID, False)
        if draw:
            _draw(image, op, _tuple(_color(a)), True)

    # Annotations.
    anns, figinfo, truth = [], [], []
    crowd_mask = None
    owner = id_map >> _PART_BITS
    for p, fig in enumerate(figures):
        x0, y0, x1, y1 = _crop(fig.extent, W, H)
        info = {"kind": fig.kind, "points": fig.points, "annotation": None}
        figinfo.append(info)
        if x1 <= x0 or y1 <= y0:
            continue
        mask = owner[y0:y1, x0:x1] == p + 1
        if fig.kind == "crowd":
            if mask.any():
                if crowd_mask is None:
                    crowd_mask = np.zeros((H, W), dtype=bool)
                crowd_mask[y0:y1, x0:x1] |= mask
                truth.append((_mask_stats(mask, x0, y0)[0], "crowd"))
            continue
        area_px = np.count_nonzero(mask)
        if area_px < 6:
            continue
        bbox, area = _mask_stats(mask, x0, y0)
        kps = [0] * 51
        nkp = 0
        if fig.kind == "person":
            pts = fig.points
            inside = ((pts[:, 0] >= 0) & (pts[:, 0] <= W - 1)
                      & (pts[:, 1] >= 0) & (pts[:, 1] <= H - 1))
            ix = np.clip(np.round(pts[:, 0]).astype(np.int64), 0, W - 1)
            iy = np.clip(np.round(pts[:, 1]).astype(np.int64), 0, H - 1)
            val = id_map[iy, ix].astype(np.int64)
            mine = ((val >> _PART_BITS) == p + 1) & (((fig.own_bits >> (val & 31)) & 1) == 1)
            vis = np.where(inside, np.where(mine & fig.self_visible, 2, 1), 0)
            for k in range(17):
                if vis[k]:
                    kps[3 * k:3 * k + 3] = [float(pts[k, 0]), float(pts[k, 1]), int(vis[k])]
            nkp = int(np.count_nonzero(vis))
        truth.append((bbox, fig.kind))
        info["annotation"] = len(anns)
        anns.append({"segmentation": _polygons(mask, x0, y0), "num_keypoints": nkp,
                     "area": area, "iscrowd": 0, "keypoints": kps, "image_id": image_id,
                     "bbox": bbox, "category_id": 1, "id": 0})
    if crowd_mask is not None:
        ys, xs = np.nonzero(crowd_mask)
        anns.append({"segmentation": _rle(crowd_mask), "num_keypoints": 0,
                     "area": float(ys.size), "iscrowd": 1, "keypoints": [0] * 51,
                     "image_id": image_id,
                     "bbox": [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
                              float(ys.max() - ys.min() + 1)],
                     "category_id": 1, "id": 0})
    if len(anns) >= _MAX_ANNS_PER_IMAGE:
        raise RuntimeError(f"too many annotations in image {image_id}: {len(anns)}")
    for j, ann in enumerate(anns):
        ann["id"] = image_id * _MAX_ANNS_PER_IMAGE + j

    dets = _detections(_rng(seed, split, index, 2), image_id, truth, W, H, cfg)
    image_info = {"license": 1, "file_name": f"{image_id:012d}.jpg", "height": H, "width": W,
                  "id": image_id}
    return Sample(image=image, background=background, id_map=id_map, image_info=image_info,
                  annotations=anns, detections=dets, figures=figinfo)


# --------------------------------------------------------------------------- writing


def _work(job):
    seed, split, start, stop, cfg, image_dir = job
    out = []
    for index in range(start, stop):
        s = render_sample(seed, split, index, cfg, draw=image_dir is not None)
        if image_dir is not None:
            ok, buf = cv2.imencode(".jpg", s.image, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
            if not ok:
                raise RuntimeError(f"JPEG encoding failed for image {s.image_info['id']}")
            write_bytes(buf.tobytes(), os.path.join(image_dir, s.image_info["file_name"]))
        out.append((s.image_info, s.annotations, s.detections))
    return out


def _info(seed, split, cfg):
    return {"description": f"Synthetic COCO-format person keypoints ({split}, seed {seed})",
            "url": "", "version": "1.0", "year": 2017, "contributor": "datasets.synthetic",
            "date_created": "2017/09/01",
            "generator": {"seed": int(seed), **dataclasses.asdict(cfg)}}


def generate_split(out_dir, split, num_images, seed, config=None, *, write_images=True,
                   workers=1, keypoint_names=None, skeleton=None):
    """Writes one split (images, keypoint annotations, and detections for val2017).

    Args:
        out_dir: str or Path, the data set root (COCO layout below it).
        split: str, "train2017" or "val2017".
        num_images: int, number of images.
        seed: int >= 0.
        config: SyntheticConfig or None.
        write_images: bool, write the JPEG files (False: JSON only, same content).
        workers: int, processes to use (the output does not depend on it).
        keypoint_names, skeleton: another keypoint set (see ``person_category`` and
            ``select_keypoints``), e.g. CrowdPose's 14; default COCO's 17.

    Returns:
        dict of counts for the split.
    """
    cfg = config or SyntheticConfig()
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed!r}")
    if not 0 <= num_images < _IDS_PER_SPLIT - 1:
        raise ValueError(f"num_images must be in [0, {_IDS_PER_SPLIT - 1}), got {num_images!r}")
    out_dir = Path(out_dir)
    ann_dir = out_dir / "annotations"
    ann_dir.mkdir(parents=True, exist_ok=True)
    image_dir = None
    if write_images:
        image_dir = out_dir / split
        image_dir.mkdir(parents=True, exist_ok=True)
        image_dir = str(image_dir)
    chunk = 16
    jobs = [(seed, split, i, min(i + chunk, num_images), cfg, image_dir)
            for i in range(0, num_images, chunk)]
    if workers > 1 and len(jobs) > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            results = pool.map(_work, jobs, chunksize=1)
    else:
        results = [_work(job) for job in jobs]
    images, anns, dets = [], [], []
    for chunk_out in results:
        for info, a, d in chunk_out:
            images.append(info)
            anns.extend(a)
            dets.extend(d)
    if keypoint_names is not None:
        for ann in anns:
            ann["keypoints"], ann["num_keypoints"] = select_keypoints(ann["keypoints"],
                                                                      keypoint_names)
    write_json({
        "info": _info(seed, split, cfg),
        "licenses": [{"url": "", "id": 1, "name": "Synthetic data, free to use"}],
        "images": images, "annotations": anns,
        "categories": [person_category(keypoint_names, skeleton)]},
        ann_dir / f"person_keypoints_{split}.json", indent=None)
    if split == "val2017":
        write_json(dets, ann_dir / "person_detection_results_val2017.json", indent=None)
    with_people = {a["image_id"] for a in anns}
    return {
        "images": len(images),
        "empty_images": len(images) - len(with_people),
        "annotations": len(anns),
        "people_with_keypoints": sum(1 for a in anns if a["num_keypoints"] > 0),
        "people_without_keypoints": sum(1 for a in anns
                                        if a["num_keypoints"] == 0 and not a["iscrowd"]),
        "crowd": sum(1 for a in anns if a["iscrowd"]),
        "detections": len(dets) if split == "val2017" else 0,
    }


def generate_coco(out_dir, num_train, num_val, seed, image_size=(640, 480), write_images=True,
                  *, workers=1, keypoint_names=None, skeleton=None, **config):
    """Writes a synthetic COCO person-keypoint data set in COCO's directory layout.

    Splits with zero images are not written (existing files are left alone). Annotation
    JSON is written last, atomically, so its presence means the split is complete.

    Args:
        out_dir: str or Path, the data set root.
        num_train: int, images in train2017.
        num_val: int, images in val2017 (also gets ``person_detection_results_val2017.json``).
        seed: int >= 0; the same seed gives byte-identical files.
        image_size: (width, height), default (640, 480).
        write_images: bool, False writes only the JSON files (with the same content).
        workers: int, processes to use; the output does not depend on it. Default 1.
        keypoint_names, skeleton: another keypoint set than COCO's 17 (names of COCO
            keypoints or ``DERIVED_KEYPOINTS``; 1-based skeleton). Default None.
        **config: any :class:`SyntheticConfig` field (``people_per_image``,
            ``false_positives_per_image``, ``empty_image_rate``, ...).

    Returns:
        dict: {"train2017": counts, "val2017": counts, "seconds": float}.

    A set shaped like COCO val2017 (5000 images, 2.7k of them with people, ~6.3k people
    with keypoints, ~100k detector boxes) takes a few seconds per thousand images::

        generate_coco(out, num_train=0, num_val=5000, seed=0, write_images=False,
                      empty_image_rate=0.46, people_per_image=2.4,
                      false_positives_per_image=19.5)
    """
    width, height = image_size
    cfg = SyntheticConfig(width=int(width), height=int(height), **config)
    t0 = time.perf_counter()
    summary = {}
    for split, n in (("train2017", num_train), ("val2017", num_val)):
        if n > 0:
            summary[split] = generate_split(out_dir, split, n, seed, cfg,
                                            write_images=write_images, workers=workers,
                                            keypoint_names=keypoint_names, skeleton=skeleton)
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    return summary
