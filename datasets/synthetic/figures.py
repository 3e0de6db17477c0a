"""The figure model: a small 2.5D skeleton posed at random and projected to the image.

A figure is sampled in a body frame (lateral = the person's left, up, forward) in "head
units" (a standing figure is about 7.85 units tall): proportions, facing direction and
in-plane roll, joint angles within human limits. It is projected orthographically to
the screen, where it becomes 17 keypoints and a list of draw operations (bands, discs,
ellipses, lines) sorted back to front. Every coordinate a label uses is a multiple of
1/16 pixel, the fixed-point precision cv2 draws at, so each label is exactly the centre
of the disc drawn at its joint.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

SUBPIXEL_BITS = 4  # fractional bits for cv2 drawing: coordinates are exact to 1/16 pixel
SUBPIXEL = 1 << SUBPIXEL_BITS

# Body parts (the low 5 bits of the owner map; the high bits are person index + 1).
TORSO, HEAD, NECK, L_UARM, L_FARM, R_UARM, R_FARM, L_THIGH, L_SHIN, R_THIGH, R_SHIN = range(11)
PART_BITS = 5
OCCLUDER_ID = 0xFFFF


def _part_bits(*parts):
    return sum(1 << p for p in parts)


# Which drawn parts count as "the keypoint itself is visible" for each of the 17 keypoints.
KEYPOINT_OWN_PARTS = np.array(
    [_part_bits(HEAD)] * 5
    + [_part_bits(TORSO, L_UARM), _part_bits(TORSO, R_UARM), _part_bits(L_UARM, L_FARM),
       _part_bits(R_UARM, R_FARM), _part_bits(L_FARM), _part_bits(R_FARM),
       _part_bits(TORSO, L_THIGH), _part_bits(TORSO, R_THIGH), _part_bits(L_THIGH, L_SHIN),
       _part_bits(R_THIGH, R_SHIN), _part_bits(L_SHIN), _part_bits(R_SHIN)],
    dtype=np.int64)

# Short names of the 17 COCO keypoints, in COCO's order, as the body-point keys.
KEYPOINT_KEYS = ("nose", "leye", "reye", "lear", "rear", "ls", "rs", "le", "re", "lw", "rw",
                 "lh", "rh", "lk", "rk", "la", "ra")


class Figure:
    """A posed figure: keypoints, draw operations and self-visibility.

    ``rel_*`` are relative to the pelvis; :meth:`place` translates them into the image and
    compiles the draw operations to cv2's fixed-point integers.

    Attributes:
        kind: "person", "tiny" or "crowd".
        unit: float, one head unit in pixels.
        self_visible: (17,) bool, keypoints not hidden by the figure's own orientation.
        own_bits: (17,) int64, the parts whose pixels count as the keypoint being seen.
        points, extent, ops: keypoints (17, 2), box (x0, y0, x1, y1) and compiled draw
            operations ``(kind, cv2 args, part, palette slot)`` once placed.
    """

    __slots__ = ("kind", "unit", "self_visible", "own_bits", "rel_points", "rel_ops",
                 "rel_extent", "points", "extent", "ops")

    def place(self, translation):
        # The translation is a multiple of 1/16 px, so labels stay exact drawn centres.
        tx = round(float(translation[0]) * SUBPIXEL) / SUBPIXEL
        ty = round(float(translation[1]) * SUBPIXEL) / SUBPIXEL
        self.points = self.rel_points + (tx, ty)
        self.extent = self.rel_extent + (tx, ty, tx, ty)
        self.ops = compile_ops(self.rel_ops, tx, ty)


def compile_ops(ops, tx=0.0, ty=0.0):
    """Turns ``(kind, points, params, part, slot)`` into cv2-ready fixed-point arguments,
    translated by ``(tx, ty)``: ``(kind, args, part, slot)`` per operation."""
    if not ops:
        return []
    flat = np.array([p for op in ops for p in op[1]], dtype=np.float64) + (tx, ty)
    fixed = np.round(flat * SUBPIXEL).astype(np.int64).tolist()
    out, start = [], 0
    for kind, points, params, part, slot in ops:
        n = len(points)
        coords = fixed[start:start + n]
        start += n
        if kind == "poly":
            args = np.array(coords, dtype=np.int32)
        elif kind == "disc":
            args = (tuple(coords[0]), max(1, int(round(params[0] * SUBPIXEL))))
        elif kind == "ellipse":
            (axis_x, axis_y), angle = params
            args = (tuple(coords[0]), (max(1, int(round(axis_x * SUBPIXEL))),
                                       max(1, int(round(axis_y * SUBPIXEL)))), float(angle))
        else:  # "lines": consecutive point pairs, one thickness
            args = ([(tuple(coords[j]), tuple(coords[j + 1])) for j in range(0, n, 2)],
                    params[0])
        out.append((kind, args, part, slot))
    return out


def _unit_vector(v):
    n = float(np.sqrt(np.dot(v, v)))
    return v / n if n > 1e-9 else np.array([0.0, -1.0, 0.0])


def limb_directions(rng, side, arm):
    """Directions (body frame: lateral, up, forward) of the two segments of a limb.

    Abduction, flexion and the elbow/knee bend are drawn within human limits; ``side`` is
    +1 for the left limb, -1 for the right.
    """
    if arm:
        abduction = rng.uniform(0, 55) if rng.random() < 0.6 else rng.uniform(40, 175)
        flexion = rng.uniform(-35, 95)
        bend = rng.uniform(0, 50) if rng.random() < 0.45 else rng.uniform(30, 150)  # elbow
        bend_towards = np.array([side * rng.uniform(-1.0, 1.0), rng.uniform(-0.3, 1.0),
                                 rng.uniform(0.2, 1.0)])
    else:
        abduction = rng.uniform(-12, 35)
        flexion = rng.uniform(-25, 35) if rng.random() < 0.75 else rng.uniform(20, 110)
        bend = rng.uniform(0, 35) if rng.random() < 0.6 else rng.uniform(20, 140)  # knee
        bend_towards = np.array([side * rng.uniform(-0.3, 0.3), rng.uniform(-0.2, 0.2), -1.0])
    a, f, b = math.radians(abduction), math.radians(flexion), math.radians(bend)
    upper = np.array([side * math.sin(a) * math.cos(f), -math.cos(a) * math.cos(f), math.sin(f)])
    normal = _unit_vector(bend_towards - np.dot(bend_towards, upper) * upper)
    lower = math.cos(b) * upper + math.sin(b) * normal
    return upper, lower


def band_corners(p0, p1, width0, width1):
    """Corners of a (tapered) band of width ``width0`` at ``p0`` and ``width1`` at ``p1``."""
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    n = math.hypot(dx, dy)
    px, py = (-dy / n, dx / n) if n > 1e-9 else (1.0, 0.0)
    a, b = width0 / 2, width1 / 2
    return [(p0[0] + px * a, p0[1] + py * a), (p1[0] + px * b, p1[1] + py * b),
            (p1[0] - px * b, p1[1] - py * b), (p0[0] - px * a, p0[1] - py * a)]


@dataclasses.dataclass(frozen=True)
class _Proportions:
    """Segment lengths and widths of one figure, in head units (``unit`` pixels each)."""

    unit: float
    torso: float
    neck: float
    shoulder: float
    hip: float
    head_rx: float
    head_ry: float
    upper_arm: float
    forearm: float
    hand: float
    thigh: float
    shin: float
    upper_arm_width: float
    forearm_width: float
    thigh_width: float
    shin_width: float
    depth_half: float  # half the body's front-to-back depth


def _sample_proportions(rng, height):
    jitter = np.exp(rng.normal(0.0, 0.07, size=14)).tolist()
    build = float(np.exp(rng.normal(0.0, 0.15)))
    return _Proportions(
        unit=height / 7.85,
        torso=2.5 * jitter[0], neck=0.35 * jitter[1],
        shoulder=0.8 * jitter[2] * build ** 0.5, hip=0.52 * jitter[3] * build ** 0.5,
        head_rx=0.44 * jitter[4], head_ry=0.55 * jitter[5],
        upper_arm=1.45 * jitter[6], forearm=1.25 * jitter[7], hand=0.42 * jitter[8],
        thigh=1.9 * jitter[9], shin=1.8 * jitter[10],
        upper_arm_width=0.52 * build * jitter[11], forearm_width=0.42 * build * jitter[12],
        thigh_width=0.75 * build * jitter[13], shin_width=0.55 * build * jitter[11],
        depth_half=0.45 * build)


def _sample_facing(rng, kind):
    """``(yaw, roll, head_yaw)``: yaw and head yaw in radians, roll in degrees."""
    r = rng.random()  # facing: front, back, or sideways-ish
    if r < 0.45:
        yaw = rng.normal(0.0, 25.0)
    elif r < 0.7:
        yaw = 180.0 + rng.normal(0.0, 25.0)
    else:
        yaw = (1 if rng.random() < 0.5 else -1) * rng.uniform(55, 125)
    roll = rng.normal(0.0, 8.0) if rng.random() < 0.94 else rng.uniform(-180.0, 180.0)
    if kind != "person":
        roll = rng.normal(0.0, 5.0)
    head_yaw = math.radians(yaw + rng.uniform(-35, 35))
    return math.radians(yaw), roll, head_yaw


@dataclasses.dataclass
class _Pose:
    """Body-frame points of one figure (head units) and its head's frame."""

    points: dict
    head_forward: np.ndarray
    head_lateral: np.ndarray
    head_up: np.ndarray
    tilt_lateral: float  # radians


def _sample_pose(rng, prop, yaw, head_yaw):
    """Joint positions in the body frame: limbs from ``limb_directions``, a tilted head."""
    sh, hh, torso = prop.shoulder, prop.hip, prop.torso
    points = {}
    points["ls"], points["rs"] = np.array([sh, torso, 0.0]), np.array([-sh, torso, 0.0])
    points["lh"], points["rh"] = np.array([hh, 0.0, 0.0]), np.array([-hh, 0.0, 0.0])
    for side, s in (("l", 1.0), ("r", -1.0)):
        upper, lower = limb_directions(rng, s, arm=True)
        points[side + "e"] = points[side + "s"] + prop.upper_arm * upper
        points[side + "w"] = points[side + "e"] + prop.forearm * lower
        points[side + "hand"] = points[side + "w"] + prop.hand * lower
        upper, lower = limb_directions(rng, s, arm=False)
        points[side + "k"] = points[side + "h"] + prop.thigh * upper
        points[side + "a"] = points[side + "k"] + prop.shin * lower
        points[side + "heel"] = points[side + "a"] + np.array([0.0, -0.22, -0.12])
        points[side + "toe"] = points[side + "a"] + np.array([0.0, -0.28, 0.62])
    tilt_lateral, tilt_forward = math.radians(rng.uniform(-15, 15)), math.radians(
        rng.uniform(-20, 20))
    points["neck"] = np.array([0.0, torso, 0.0])
    up = _unit_vector(np.array([math.sin(tilt_lateral), 1.0, math.sin(tilt_forward)]))
    head = points["neck"] + (prop.neck + prop.head_ry) * up
    points["head"] = head
    relative_yaw = head_yaw - yaw
    lateral = np.array([math.cos(relative_yaw), 0.0, -math.sin(relative_yaw)])
    forward = np.array([math.sin(relative_yaw), 0.0, math.cos(relative_yaw)])
    rx, ry = prop.head_rx, prop.head_ry
    points["nose"] = head + 0.95 * rx * forward - 0.1 * ry * up
    points["leye"] = head + 0.72 * rx * forward + 0.12 * ry * up + 0.4 * rx * lateral
    points["reye"] = head + 0.72 * rx * forward + 0.12 * ry * up - 0.4 * rx * lateral
    points["lear"] = head + 0.97 * rx * lateral - 0.1 * rx * forward
    points["rear"] = head - 0.97 * rx * lateral - 0.1 * rx * forward
    points["face"] = head + 0.4 * rx * forward - 0.12 * ry * up
    points["top"] = np.array([0.0, torso + 0.12, 0.0])
    points["waist"] = np.array([0.0, 0.38 * torso, 0.0])
    points["bottom"] = np.array([0.0, -0.3, 0.0])
    cos_yaw, sin_yaw = math.cos(yaw), math.sin(yaw)
    stripe_depth = 0.0 if sin_yaw > 0.5 else math.copysign(prop.depth_half * 0.9, cos_yaw)
    points["stripe0"] = np.array([0.85 * sh, torso - 0.05, stripe_depth])
    points["stripe1"] = np.array([hh + 0.12, 0.4 * torso, stripe_depth])
    return _Pose(points, forward, lateral, up, tilt_lateral)


@dataclasses.dataclass
class _Projection:
    """The figure on the screen (pixels, relative to the pelvis)."""

    screen: dict  # name → (x, y)
    depth: dict  # name → depth, towards the camera positive
    keypoints: np.ndarray  # (17, 2), multiples of 1/16 px
    all_points: np.ndarray  # (N, 2) every projected point (for the extent)
    keypoint_lateral: np.ndarray  # (17,) the keypoints' body-frame lateral coordinate
    keypoint_depth: np.ndarray  # (17,)


def _project(pose, unit, yaw, roll):
    """Orthographic projection: screen = in-plane rotation by ``roll`` of (x, -up)."""
    cos_yaw, sin_yaw = math.cos(yaw), math.sin(yaw)
    cos_roll, sin_roll = math.cos(math.radians(roll)), math.sin(math.radians(roll))
    names = list(KEYPOINT_KEYS) + [n for n in pose.points if n not in KEYPOINT_KEYS]
    body = np.stack([pose.points[n] for n in names]) * unit  # (N, 3) pixels
    x = body[:, 0] * cos_yaw - body[:, 2] * sin_yaw
    y = -body[:, 1]
    screen = np.stack([x * cos_roll - y * sin_roll, x * sin_roll + y * cos_roll], axis=1)
    depth = body[:, 0] * sin_yaw + body[:, 2] * cos_yaw
    screen[:17] = np.round(screen[:17] * SUBPIXEL) / SUBPIXEL  # labels = drawn centres
    return _Projection(dict(zip(names, map(tuple, screen.tolist()))),
                       dict(zip(names, depth.tolist())), screen[:17].copy(), screen,
                       body[:17, 0], depth[:17])


def _keypoint_visibility(pose, projection, yaw):
    """``(self_visible (17,), own_bits (17,), face_direction)`` of a posed figure.

    The face (nose, eyes) shows only when it turns towards the camera, an ear only when
    not on the far side of the head; the shoulders and hips on the far side of a turned
    body are hidden by the torso (their torso pixels stop counting as seeing them).
    """
    cos_yaw, sin_yaw = math.cos(yaw), math.sin(yaw)

    def depth_of(v):  # towards the camera is positive
        return v[0] * sin_yaw + v[2] * cos_yaw

    forward, lateral = pose.head_forward, pose.head_lateral
    self_visible = np.ones(17, dtype=bool)
    face_direction = depth_of(forward)
    self_visible[0] = face_direction > -0.2
    for k, s in ((1, 1.0), (2, -1.0)):
        self_visible[k] = depth_of(_unit_vector(0.72 * forward + s * 0.6 * lateral)) > 0.05
    for k, s in ((3, 1.0), (4, -1.0)):
        self_visible[k] = depth_of(s * lateral) > -0.35
    own_bits = KEYPOINT_OWN_PARTS.copy()
    for k, part in ((5, TORSO), (6, TORSO), (11, TORSO), (12, TORSO)):
        if projection.keypoint_depth[k] < -0.65 * abs(projection.keypoint_lateral[k]):
            own_bits[k] &= ~(1 << part)
    return self_visible, own_bits, face_direction


class _DrawOps:
    """A figure's draw operations with their depth keys, drawn back to front."""

    def __init__(self, screen, unit):
        self.screen = screen
        self.unit = unit
        self.items = []  # (depth key, sequence, op)

    def add(self, key, kind, points, params, part, slot):
        self.items.append((key, len(self.items), (kind, points, params, part, slot)))

    def segment(self, key, a, b, width_a, width_b, part, slot):
        """A band from point ``a`` to ``b`` with round ends (widths in head units)."""
        pa, pb = self.screen[a], self.screen[b]
        u = self.unit
        self.add(key, "poly", band_corners(pa, pb, width_a * u, width_b * u), None, part, slot)
        self.add(key, "disc", [pa], (width_a * u / 2,), part, slot)
        self.add(key, "disc", [pb], (width_b * u / 2,), part, slot)

    def back_to_front(self):
        return [item[2] for item in sorted(self.items, key=lambda item: (item[0], item[1]))]


def _add_torso(ops, prop, yaw, roll_angle, height):
    """Shirt from shoulders to waist with optional bands, trousers below, the left stripe."""
    u, sh, hh = prop.unit, prop.shoulder, prop.hip
    cos_yaw, sin_yaw = math.cos(yaw), math.sin(yaw)

    def half(lateral):
        return (abs(lateral * cos_yaw) + abs(prop.depth_half * sin_yaw)) * u

    top, waist, bottom = ops.screen["top"], ops.screen["waist"], ops.screen["bottom"]
    key = (0.0, 0)
    ops.add(key, "poly", band_corners(top, waist, 2 * half(sh + 0.26), 2 * half(hh + 0.38)),
            None, TORSO, "shirt")
    ops.add(key, "poly", band_corners(waist, bottom, 2 * half(hh + 0.38), 2 * half(hh + 0.38)),
            None, TORSO, "pants")
    ops.add(key, "ellipse", [bottom], ((half(hh + 0.38), 0.25 * u), roll_angle), TORSO, "pants")
    q = band_corners(top, waist, 2 * half(sh + 0.18), 2 * half(hh + 0.3))
    bands = []
    for t in (0.12, 0.37, 0.63, 0.88):  # stripes across the shirt
        bands.append((q[0][0] + (q[1][0] - q[0][0]) * t, q[0][1] + (q[1][1] - q[0][1]) * t))
        bands.append((q[3][0] + (q[2][0] - q[3][0]) * t, q[3][1] + (q[2][1] - q[3][1]) * t))
    ops.add(key, "lines", bands, (max(1, int(round(0.14 * u))),), -1, "band")
    if sin_yaw > -0.5 and height >= 24:  # the left-side stripe, hidden when the left turns away
        ops.add(key, "lines", [ops.screen["stripe0"], ops.screen["stripe1"]],
                (max(1, int(round(0.2 * u))),), -1, "stripe")


def _add_limbs(ops, prop, depth):
    """Arms and legs, each chain drawn as one unit ordered by its mean depth."""
    w_ua, w_fa, w_th, w_sn = (prop.upper_arm_width, prop.forearm_width, prop.thigh_width,
                              prop.shin_width)
    u = prop.unit
    for side in ("l", "r"):
        left = side == "l"
        key = ((depth[side + "s"] + depth[side + "e"] + depth[side + "w"]) / 3, 2)
        upper_arm, forearm = (L_UARM, L_FARM) if left else (R_UARM, R_FARM)
        ops.segment(key, side + "s", side + "e", w_ua, w_ua * 0.9, upper_arm, side + "sleeve")
        ops.segment(key, side + "e", side + "w", w_fa, w_fa * 0.85, forearm, side + "forearm")
        ops.segment(key, side + "w", side + "hand", w_fa * 0.7, w_fa * 0.8, forearm,
                    side + "skin")
        ops.add(key, "disc", [ops.screen[side + "e"]], (w_fa * 0.3 * u,), -1,
                side + "joint_arm")
        ops.add(key, "disc", [ops.screen[side + "w"]], (w_fa * 0.28 * u,), -1,
                side + "joint_arm")

        key = ((depth[side + "h"] + depth[side + "k"] + depth[side + "a"]) / 3, 1)
        thigh, shin = (L_THIGH, L_SHIN) if left else (R_THIGH, R_SHIN)
        ops.segment(key, side + "heel", side + "toe", 0.32, 0.36, shin, "shoe")
        ops.segment(key, side + "h", side + "k", w_th, w_th * 0.8, thigh, side + "pants")
        ops.segment(key, side + "k", side + "a", w_sn, w_sn * 0.75, shin, side + "shin")
        ops.add(key, "disc", [ops.screen[side + "k"]], (w_sn * 0.32 * u,), -1,
                side + "joint_leg")
        ops.add(key, "disc", [ops.screen[side + "a"]], (w_sn * 0.28 * u,), -1,
                side + "joint_leg")


def _add_head(ops, prop, depth, head_angle, self_visible, face_direction):
    """Neck and a hair-coloured head; the face and its features only when they show."""
    u, rx, ry = prop.unit, prop.head_rx, prop.head_ry
    key = (depth["head"] + 0.05 * u, 3)
    ops.segment(key, "neck", "head", 0.36, 0.36, NECK, "skin")
    for k in (3, 4):  # an ear on the far side is drawn first, then covered by the head
        if not self_visible[k]:
            ops.add(key, "disc", [ops.screen[KEYPOINT_KEYS[k]]], (0.2 * rx * u,), HEAD, "ear")
    ops.add(key, "ellipse", [ops.screen["head"]], ((rx * u, ry * u), head_angle), HEAD, "hair")
    if face_direction > -0.35:
        face_width = rx * (0.55 + 0.3 * max(face_direction, 0.0))
        ops.add(key, "ellipse", [ops.screen["face"]], ((face_width * u, 0.8 * ry * u),
                                                        head_angle), HEAD, "skin")
    for k in (3, 4):
        if self_visible[k]:
            ops.add(key, "disc", [ops.screen[KEYPOINT_KEYS[k]]], (0.2 * rx * u,), HEAD, "ear")
    for k in (1, 2):
        if self_visible[k]:
            ops.add(key, "disc", [ops.screen[KEYPOINT_KEYS[k]]], (0.11 * rx * u,), HEAD, "eye")
    if self_visible[0]:
        ops.add(key, "disc", [ops.screen["nose"]], (0.13 * rx * u,), HEAD, "nose")


def make_figure(rng, height, kind):
    """Samples a posed figure of standing height ``height`` pixels, pelvis at the origin.

    Args:
        rng: ``numpy.random.Generator`` (the image's geometry stream).
        height: float, standing height in pixels.
        kind: "person" (annotated with keypoints), "tiny" (annotated without) or "crowd".

    Returns:
        A :class:`Figure` (call :meth:`Figure.place` to put it in an image).
    """
    prop = _sample_proportions(rng, height)
    yaw, roll, head_yaw = _sample_facing(rng, kind)
    pose = _sample_pose(rng, prop, yaw, head_yaw)
    projection = _project(pose, prop.unit, yaw, roll)
    self_visible, own_bits, face_direction = _keypoint_visibility(pose, projection, yaw)

    cos_roll, sin_roll = math.cos(math.radians(roll)), math.sin(math.radians(roll))
    roll_angle = math.degrees(math.atan2(sin_roll, cos_roll))
    ops = _DrawOps(projection.screen, prop.unit)
    _add_torso(ops, prop, yaw, roll_angle, height)
    _add_limbs(ops, prop, projection.depth)
    head_angle = roll_angle + math.degrees(pose.tilt_lateral) * math.cos(yaw)
    _add_head(ops, prop, projection.depth, head_angle, self_visible, face_direction)

    figure = Figure()
    figure.kind = kind
    figure.unit = prop.unit
    figure.self_visible = self_visible
    figure.own_bits = own_bits
    figure.rel_points = projection.keypoints
    figure.rel_ops = ops.back_to_front()
    margin = 0.8 * prop.unit + 1.0
    points = projection.all_points
    figure.rel_extent = np.array([points[:, 0].min() - margin, points[:, 1].min() - margin,
                                  points[:, 0].max() + margin, points[:, 1].max() + margin])
    return figure


def box_iou(a, b):
    """IoU of two ``(x0, y0, x1, y1)`` boxes."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def place_figure(rng, figure, width, height, truncate, others, tries=12):
    """Places ``figure`` in the image, avoiding heavy overlap with the ``others`` boxes.

    Up to ``tries`` random positions are drawn (allowed to cross the border by up to 40 %
    of the figure when ``truncate``); the first with IoU < 0.3 to every other box wins,
    else the least overlapping one. Returns the figure's box ``(x0, y0, x1, y1)``.
    """
    x0, y0, x1, y1 = figure.rel_extent.tolist()
    fw, fh = x1 - x0, y1 - y0
    best = None
    for _ in range(tries):
        out = rng.uniform(0.0, 0.4) if truncate else 0.0
        lo_x, hi_x = -x0 - out * fw, width - x1 + out * fw
        lo_y, hi_y = -y0 - out * fh, height - y1 + out * fh
        tx = rng.uniform(min(lo_x, hi_x), max(lo_x, hi_x))
        ty = rng.uniform(min(lo_y, hi_y), max(lo_y, hi_y))
        box = (x0 + tx, y0 + ty, x1 + tx, y1 + ty)
        worst = max((box_iou(box, o) for o in others), default=0.0)
        if best is None or worst < best[0]:
            best = (worst, tx, ty, box)
        if worst < 0.3:
            break
    figure.place((best[1], best[2]))
    return best[3]


def occluder_op(rng, center, size):
    """A random convex occluder (rectangle, ellipse or polygon) around ``center`` with
    radius about ``size``, as an uncompiled draw operation."""
    kind = rng.integers(0, 3)
    cx, cy = float(center[0]), float(center[1])
    if kind == 0:  # rotated rectangle
        a = rng.uniform(0, math.pi)
        w, h = size * rng.uniform(0.7, 1.6), size * rng.uniform(0.5, 1.2)
        c, s = math.cos(a), math.sin(a)
        pts = [(cx + x * c - y * s, cy + x * s + y * c) for x, y in
               ((-w, -h), (w, -h), (w, h), (-w, h))]
        return ("poly", pts, None, -1, "occluder")
    if kind == 1:
        return ("ellipse", [(cx, cy)],
                ((size * rng.uniform(0.7, 1.4), size * rng.uniform(0.5, 1.1)),
                 rng.uniform(0, 180)), -1, "occluder")
    angles = np.sort(rng.uniform(0, 2 * math.pi, size=int(rng.integers(5, 9))))
    radii = size * rng.uniform(0.6, 1.3, size=angles.size)
    pts = np.stack([np.cos(angles) * radii + cx, np.sin(angles) * radii + cy], axis=1)
    hull = cv2.convexHull(pts.astype(np.float32))[:, 0].astype(np.float64)
    return ("poly", [tuple(p) for p in hull.tolist()], None, -1, "occluder")
