"""Pixels of the synthetic scenes: draw operations, person colours, cluttered backgrounds.

Everything here draws with cv2 at 1/16-pixel precision (``figures.SUBPIXEL_BITS``) and
takes its randomness from the image's appearance stream, so the pixels never change the
annotations.
"""

from __future__ import annotations

import colorsys
import math

import cv2
import numpy as np

from datasets.synthetic.figures import SUBPIXEL, SUBPIXEL_BITS

# Skin and hair tones, BGR.
SKIN_TONES = np.array([(196, 224, 255), (125, 194, 241), (105, 172, 224), (66, 134, 198),
                       (36, 85, 141), (38, 56, 92)], dtype=np.float64)
HAIR_TONES = np.array([(20, 20, 20), (30, 40, 60), (45, 75, 110), (110, 170, 200),
                       (160, 160, 160), (30, 60, 150)], dtype=np.float64)

# Elbow, wrist, knee and ankle markers: one hue family per side, BGR.
SIDE_MARKERS = {"l": np.array([40.0, 70.0, 235.0]), "r": np.array([235.0, 190.0, 40.0])}


def draw_op(image, op, color, antialiased):
    """Draw one compiled operation ``(kind, args, part, slot)`` filled with ``color``
    (lines are skipped when ``color`` is None)."""
    kind, args = op[0], op[1]
    line_type = cv2.LINE_AA if antialiased else cv2.LINE_8
    if kind == "disc":
        cv2.circle(image, args[0], args[1], color, -1, line_type, SUBPIXEL_BITS)
    elif kind == "poly":
        cv2.fillConvexPoly(image, args, color, line_type, SUBPIXEL_BITS)
    elif kind == "ellipse":
        cv2.ellipse(image, args[0], args[1], args[2], 0, 360, color, -1, line_type,
                    SUBPIXEL_BITS)
    elif color is not None:  # lines
        for p0, p1 in args[0]:
            cv2.line(image, p0, p1, color, args[1], line_type, SUBPIXEL_BITS)


def hsv_to_bgr(hue, saturation, value):
    """HSV in [0, 1] → BGR float array in [0, 255]."""
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
    return np.array([b, g, r]) * 255.0


def random_color(rng):
    """A random BGR colour (float), biased away from full saturation."""
    return hsv_to_bgr(rng.random(), rng.uniform(0.0, 1.0) ** 0.7, rng.uniform(0.2, 0.95))


def color_tuple(color):
    """A BGR colour clipped to [0, 255] as the int tuple cv2 takes."""
    color = np.clip(color, 0, 255)
    return (int(color[0]), int(color[1]), int(color[2]))


def person_palette(rng):
    """Colours of one person by palette slot. Left limbs are a darker shade of the same
    colours, and each side's joint markers have their own hue family."""
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.9, 1.08) \
        + rng.normal(0, 6, 3)
    hair = HAIR_TONES[rng.integers(len(HAIR_TONES))] * rng.uniform(0.85, 1.15) \
        + rng.normal(0, 6, 3)
    shirt, pants = random_color(rng), random_color(rng)
    shoe = hsv_to_bgr(rng.random(), rng.uniform(0, 0.6), rng.uniform(0.05, 0.45))
    forearm = shirt if rng.random() < 0.5 else skin
    shin = pants if rng.random() < 0.8 else skin
    luminance = float(shirt @ np.array([0.114, 0.587, 0.299]))
    band = (random_color(rng) if rng.random() < 0.4 else None)
    palette = {
        "skin": skin, "hair": hair, "shirt": shirt, "pants": pants, "shoe": shoe,
        "ear": skin * 0.85, "eye": np.array([40.0, 30.0, 25.0]) + rng.normal(0, 8, 3),
        "nose": skin * np.array([0.6, 0.62, 0.8]),
        "stripe": (np.array([30.0, 30.0, 30.0]) if luminance > 150
                   else np.array([235.0, 245.0, 250.0])),
        "band": band}
    for side, shade in (("l", 0.68), ("r", 1.0)):
        palette[side + "sleeve"] = shirt * shade
        palette[side + "forearm"] = forearm * shade
        palette[side + "skin"] = skin * shade
        palette[side + "pants"] = pants * shade
        palette[side + "shin"] = shin * shade
        # Elbow, wrist, knee and ankle markers in one hue family per side (like a watch
        # or a knee brace worn on one side): the strongest left/right cue of a figure.
        marker = SIDE_MARKERS[side] + rng.normal(0, 12, 3)
        palette[side + "joint_arm"] = marker
        palette[side + "joint_leg"] = marker * 0.85
    keys = [k for k, v in palette.items() if v is not None]
    values = np.clip(np.stack([palette[k] for k in keys]), 0, 255).astype(np.int64).tolist()
    out = dict(zip(keys, map(tuple, values)))
    out["band"] = out.get("band")
    return out


_NOISE_TILES = {}


def _noise_tile(height, width):
    """A fixed (per size) tile of fine noise twice the image size, cropped at random."""
    key = (height, width)
    if key not in _NOISE_TILES:
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([7, height, width])))
        _NOISE_TILES[key] = rng.integers(0, 13, size=(2 * height, 2 * width, 3),
                                         dtype=np.uint8)
    return _NOISE_TILES[key]


def _draw_clutter_shape(rng, image, width, height):
    """One background distractor: circle, ellipse, rectangle, limb-like bar or stripes."""
    color = color_tuple(random_color(rng))
    c = (rng.uniform(-0.1, 1.1) * width, rng.uniform(-0.1, 1.1) * height)
    s = float(np.exp(rng.uniform(math.log(6), math.log(0.35 * max(width, height)))))
    kind = rng.integers(0, 5)
    filled = -1 if rng.random() < 0.7 else int(rng.integers(1, 5))
    center = (int(c[0] * SUBPIXEL), int(c[1] * SUBPIXEL))
    if kind == 0:
        cv2.circle(image, center, int(s * SUBPIXEL), color, filled, cv2.LINE_AA, SUBPIXEL_BITS)
    elif kind == 1:
        cv2.ellipse(image, center,
                    (int(s * SUBPIXEL), int(s * rng.uniform(0.2, 1.0) * SUBPIXEL)),
                    rng.uniform(0, 180), 0, 360, color, filled, cv2.LINE_AA, SUBPIXEL_BITS)
    elif kind == 2:
        w, h = s, s * rng.uniform(0.2, 1.5)
        angle = rng.uniform(0, math.pi)
        rotation = np.array([[math.cos(angle), math.sin(angle)],
                             [-math.sin(angle), math.cos(angle)]])
        corners = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) @ rotation + c
        cv2.fillConvexPoly(image, np.round(corners * SUBPIXEL).astype(np.int32), color,
                           cv2.LINE_AA, SUBPIXEL_BITS)
    elif kind == 3:  # limb-like distractor: a thick line with round caps
        angle = rng.uniform(0, 2 * math.pi)
        d = np.array([math.cos(angle), math.sin(angle)]) * s
        p0, p1 = np.round((np.array(c) - d) * SUBPIXEL), np.round((np.array(c) + d) * SUBPIXEL)
        cv2.line(image, (int(p0[0]), int(p0[1])), (int(p1[0]), int(p1[1])), color,
                 max(1, int(s * rng.uniform(0.05, 0.3))), cv2.LINE_AA, SUBPIXEL_BITS)
    else:  # parallel stripes
        angle = rng.uniform(0, math.pi)
        d = np.array([math.cos(angle), math.sin(angle)]) * s
        n = np.array([-d[1], d[0]]) * rng.uniform(0.1, 0.3)
        for i in range(int(rng.integers(2, 6))):
            p0 = np.round((np.array(c) - d + i * n) * SUBPIXEL)
            p1 = np.round((np.array(c) + d + i * n) * SUBPIXEL)
            cv2.line(image, (int(p0[0]), int(p0[1])), (int(p1[0]), int(p1[1])), color,
                     max(1, int(s * 0.06)), cv2.LINE_AA, SUBPIXEL_BITS)


def render_background(rng, width, height):
    """A (height, width, 3) uint8 BGR background: smooth gradient, blotches, clutter
    shapes and fine noise."""
    grid_h, grid_w = int(rng.integers(3, 14)), int(rng.integers(3, 14))
    corners = np.stack([random_color(rng) for _ in range(4)]).reshape(2, 2, 3)
    low = cv2.resize(corners.astype(np.float32), (grid_w, grid_h),
                     interpolation=cv2.INTER_LINEAR)
    low += rng.normal(0.0, rng.uniform(5, 35), size=low.shape).astype(np.float32)
    image = cv2.resize(np.clip(low, 0, 255).astype(np.uint8), (width, height),
                       interpolation=cv2.INTER_LINEAR)
    for _ in range(int(rng.integers(3, 13))):
        _draw_clutter_shape(rng, image, width, height)
    tile = _noise_tile(height, width)
    oy, ox = int(rng.integers(0, height)), int(rng.integers(0, width))
    return cv2.add(image, tile[oy:oy + height, ox:ox + width])
