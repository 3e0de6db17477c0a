"""COCO annotations of a drawn scene: boxes, areas, polygons, RLE, keypoint visibility,
and a simulated person detector's boxes.

Everything is read off the owner map (``id_map``: 0 background, ``(person + 1) << 5 |
part`` for people, ``OCCLUDER_ID`` for occluders), so the annotations describe exactly
what was drawn.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from datasets.synthetic.figures import PART_BITS


def coco_rle(mask):
    """Uncompressed COCO RLE (column-major run lengths, starting with zeros)."""
    flat = mask.ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
    if flat[0]:
        counts = [0] + counts
    return {"counts": counts, "size": [int(mask.shape[0]), int(mask.shape[1])]}


def _pixel_window(extent, width, height):
    """The pixel window ``(x0, y0, x1, y1)`` (x1, y1 exclusive) of an extent, clipped."""
    x0 = max(0, int(math.floor(extent[0])))
    y0 = max(0, int(math.floor(extent[1])))
    x1 = min(width, int(math.ceil(extent[2])) + 1)
    y1 = min(height, int(math.ceil(extent[3])) + 1)
    return x0, y0, x1, y1


def mask_box_and_area(mask, x0, y0):
    """bbox ``[x, y, w, h]`` (tight, in pixels) and area of a boolean window mask whose
    top-left pixel is ``(x0, y0)``."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    bbox = [float(x0 + cols[0]), float(y0 + rows[0]),
            float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1)]
    return bbox, float(np.count_nonzero(mask))


def mask_polygons(mask, x0, y0):
    """COCO polygons of a window mask (outer contours, simplified to 0.8 px)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        contour = cv2.approxPolyDP(contour, 0.8, True)[:, 0]
        if len(contour) >= 3:
            polygons.append((contour + (x0, y0)).astype(np.float64).ravel().tolist())
    if not polygons:  # a thin sliver: fall back to the box outline
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        ax0, ay0, ax1, ay1 = x0 + cols[0], y0 + rows[0], x0 + cols[-1], y0 + rows[-1]
        polygons = [[float(v) for v in (ax0, ay0, ax1, ay0, ax1, ay1, ax0, ay1)]]
    return polygons


def _keypoints_annotation(figure, person, id_map, width, height):
    """COCO ``keypoints`` [x, y, v] * 17 and ``num_keypoints`` of an annotated person.

    ``v=0`` (and x=y=0) outside the image; ``v=2`` where the topmost pixel at the keypoint
    is one of its own body parts and the figure's orientation shows it; else ``v=1``.
    """
    keypoints = [0] * 51
    points = figure.points
    inside = ((points[:, 0] >= 0) & (points[:, 0] <= width - 1)
              & (points[:, 1] >= 0) & (points[:, 1] <= height - 1))
    ix = np.clip(np.round(points[:, 0]).astype(np.int64), 0, width - 1)
    iy = np.clip(np.round(points[:, 1]).astype(np.int64), 0, height - 1)
    owner = id_map[iy, ix].astype(np.int64)
    own_part = ((owner >> PART_BITS) == person + 1) \
        & (((figure.own_bits >> (owner & 31)) & 1) == 1)
    visibility = np.where(inside, np.where(own_part & figure.self_visible, 2, 1), 0)
    for k in range(17):
        if visibility[k]:
            keypoints[3 * k:3 * k + 3] = [float(points[k, 0]), float(points[k, 1]),
                                          int(visibility[k])]
    return keypoints, int(np.count_nonzero(visibility))


def annotate_figures(figures, id_map, image_id, width, height):
    """The COCO annotations of the drawn figures.

    People and tiny people with at least 6 visible pixels get an annotation each (tiny
    ones with ``num_keypoints = 0``); crowd figures are merged into one ``iscrowd``
    annotation with an RLE mask. Annotation ids are ``image_id * 100 + j``.

    Returns:
        ``(annotations, figure_info, truth)``: the COCO entries; one dict per figure
        (``kind``, ``points``, ``annotation`` index or None); ``(bbox, kind)`` of every
        figure the detector could find.
    """
    annotations, figure_info, truth = [], [], []
    crowd_mask = None
    owner = id_map >> PART_BITS
    for person, figure in enumerate(figures):
        x0, y0, x1, y1 = _pixel_window(figure.extent, width, height)
        info = {"kind": figure.kind, "points": figure.points, "annotation": None}
        figure_info.append(info)
        if x1 <= x0 or y1 <= y0:
            continue
        mask = owner[y0:y1, x0:x1] == person + 1
        if figure.kind == "crowd":
            if mask.any():
                if crowd_mask is None:
                    crowd_mask = np.zeros((height, width), dtype=bool)
                crowd_mask[y0:y1, x0:x1] |= mask
                truth.append((mask_box_and_area(mask, x0, y0)[0], "crowd"))
            continue
        if np.count_nonzero(mask) < 6:
            continue
        bbox, area = mask_box_and_area(mask, x0, y0)
        keypoints, num_keypoints = [0] * 51, 0
        if figure.kind == "person":
            keypoints, num_keypoints = _keypoints_annotation(figure, person, id_map, width,
                                                             height)
        truth.append((bbox, figure.kind))
        info["annotation"] = len(annotations)
        annotations.append({"segmentation": mask_polygons(mask, x0, y0),
                            "num_keypoints": num_keypoints, "area": area, "iscrowd": 0,
                            "keypoints": keypoints, "image_id": image_id, "bbox": bbox,
                            "category_id": 1, "id": 0})
    if crowd_mask is not None:
        annotations.append(_crowd_annotation(crowd_mask, image_id))
    return annotations, figure_info, truth


def _crowd_annotation(crowd_mask, image_id):
    ys, xs = np.nonzero(crowd_mask)
    return {"segmentation": coco_rle(crowd_mask), "num_keypoints": 0,
            "area": float(ys.size), "iscrowd": 1, "keypoints": [0] * 51,
            "image_id": image_id,
            "bbox": [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
                     float(ys.max() - ys.min() + 1)],
            "category_id": 1, "id": 0}


def simulate_detections(rng, image_id, truth, width, height, config):
    """Simulated person-detector output (COCO results format): jittered true boxes (small
    people missed more often, scored lower) plus false positives with low scores."""
    detections = []

    def add(x0, y0, x1, y1, score):
        x0, y0 = max(0.0, x0), max(0.0, y0)
        x1, y1 = min(float(width), x1), min(float(height), y1)
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            detections.append({"image_id": image_id, "category_id": 1,
                               "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2),
                                        round(y1 - y0, 2)],
                               "score": round(float(score), 4)})

    for (x, y, w, h), kind in truth:
        small = w * h < 32 * 32
        if rng.random() < config.detection_miss_rate * (4.0 if small else 1.0):
            continue
        cx, cy = x + w / 2 + rng.normal(0, 0.05 * w), y + h / 2 + rng.normal(0, 0.05 * h)
        w2, h2 = w * math.exp(rng.normal(0.02, 0.08)), h * math.exp(rng.normal(0.02, 0.08))
        if kind == "person" and not small:
            score = np.clip(rng.normal(0.92, 0.06), 0.45, 0.999)
        else:
            score = rng.uniform(0.15, 0.85)
        add(cx - w2 / 2, cy - h2 / 2, cx + w2 / 2, cy + h2 / 2, score)
    for _ in range(int(rng.poisson(config.false_positives_per_image))):
        if truth and rng.random() < 0.3:  # a part-of-a-person or duplicate box
            (x, y, w, h), _ = truth[int(rng.integers(len(truth)))]
            fw, fh = w * rng.uniform(0.3, 1.0), h * rng.uniform(0.3, 1.0)
            fx = x + rng.uniform(-0.2, 1.0) * w - fw / 2
            fy = y + rng.uniform(-0.2, 1.0) * h - fh / 2
            add(fx, fy, fx + fw, fy + fh, rng.uniform(0.02, 0.5))
        else:
            fh = math.exp(rng.uniform(math.log(12), math.log(0.8 * height)))
            fw = fh * rng.uniform(0.25, 1.2)
            fx = rng.uniform(-0.1, 1.0) * width - fw / 2
            fy = rng.uniform(-0.1, 1.0) * height - fh / 2
            add(fx, fy, fx + fw, fy + fh, 0.5 * rng.random() ** 2)
    return detections
