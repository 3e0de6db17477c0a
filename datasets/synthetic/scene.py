"""One synthetic image: people placed in a scene, occluders, drawing, annotations."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from datasets.synthetic.annotations import annotate_figures, simulate_detections
from datasets.synthetic.config import (
    APPEARANCE_STREAM,
    DETECTION_STREAM,
    GEOMETRY_STREAM,
    MAX_ANNOTATIONS_PER_IMAGE,
    SyntheticConfig,
    image_id_for,
    random_stream,
)
from datasets.synthetic.figures import (
    OCCLUDER_ID,
    PART_BITS,
    compile_ops,
    make_figure,
    occluder_op,
    place_figure,
)
from datasets.synthetic.rendering import (
    color_tuple,
    draw_op,
    person_palette,
    random_color,
    render_background,
)


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


def _crowd_group(rng, width, height):
    """6-14 small figures side by side: an ``iscrowd`` region."""
    count = int(rng.integers(6, 15))
    base = rng.uniform(22, 55)
    cx, cy = rng.uniform(0.1, 0.9) * width, rng.uniform(0.25, 0.85) * height
    spread = count * base * 0.22
    figures = []
    for i in range(count):
        figure = make_figure(rng, base * rng.uniform(0.85, 1.15), "crowd")
        figure.place((cx + (i / (count - 1) - 0.5) * spread + rng.normal(0, base * 0.05),
                      cy + rng.normal(0, base * 0.15)))
        figures.append(figure)
    return figures


def _compose_people(rng, config):
    """The figures of a non-empty image, back to front: maybe a crowd, tiny keypoint-less
    people, then annotated people from small to large (placed to overlap little)."""
    width, height = config.width, config.height
    figures = []
    if rng.random() < config.crowd_image_rate:
        figures.extend(_crowd_group(rng, width, height))
    for _ in range(int(rng.poisson(config.no_keypoint_people))):
        figure = make_figure(rng, rng.uniform(12, 34), "tiny")
        place_figure(rng, figure, width, height, False, [], tries=1)
        figures.append(figure)
    count = min(config.max_people, 1 + int(rng.poisson(config.people_per_image - 1.0)))
    lowest = config.min_person_height
    highest = max(lowest + 1.0, config.max_person_height * height)
    heights = np.sort(np.exp(rng.uniform(math.log(lowest), math.log(highest), size=count)))
    boxes = []
    for person_height in heights:
        figure = make_figure(rng, float(person_height), "person")
        boxes.append(place_figure(rng, figure, width, height,
                                  rng.random() < config.truncation_rate, boxes))
        figures.append(figure)
    return figures


def _scatter_occluders(rng, figures, width, height, per_person):
    """Compiled occluders: on random joints of annotated people, and a few anywhere."""
    occluders = []
    for figure in figures:
        if figure.kind != "person":
            continue
        for _ in range(int(rng.poisson(per_person))):
            joint = figure.points[int(rng.integers(5, 17))]
            occluders.append(occluder_op(rng, joint + rng.normal(0, 0.3 * figure.unit, 2),
                                         figure.unit * rng.uniform(0.5, 1.2)))
    for _ in range(int(rng.poisson(0.3))):
        occluders.append(occluder_op(rng, np.array([rng.uniform(0, width),
                                                    rng.uniform(0, height)]),
                                     rng.uniform(8, 0.12 * max(width, height))))
    return compile_ops(occluders)


def _draw_scene(figures, occluders, width, height, appearance_rng, keep_background):
    """The owner map, and with an ``appearance_rng`` the colour image (and background)."""
    id_map = np.zeros((height, width), dtype=np.uint16)
    image = background = None
    if appearance_rng is not None:
        image = render_background(appearance_rng, width, height)
        if keep_background:
            background = image.copy()
    for person, figure in enumerate(figures):
        palette = person_palette(appearance_rng) if appearance_rng is not None else None
        base_id = (person + 1) << PART_BITS
        for op in figure.ops:
            if op[2] >= 0:
                draw_op(id_map, op, base_id | op[2], False)
            if image is not None:
                draw_op(image, op, palette[op[3]], True)
    for op in occluders:
        draw_op(id_map, op, OCCLUDER_ID, False)
        if image is not None:
            draw_op(image, op, color_tuple(random_color(appearance_rng)), True)
    return id_map, image, background


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
    config = config or SyntheticConfig()
    width, height = config.width, config.height
    image_id = image_id_for(split, index)
    geometry = random_stream(seed, split, index, GEOMETRY_STREAM)
    figures = []
    if geometry.random() >= config.empty_image_rate:
        figures = _compose_people(geometry, config)
    occluders = _scatter_occluders(geometry, figures, width, height,
                                   config.occluders_per_person)
    appearance = random_stream(seed, split, index, APPEARANCE_STREAM) if draw else None
    id_map, image, background = _draw_scene(figures, occluders, width, height, appearance,
                                            keep_background)

    annotations, figure_info, truth = annotate_figures(figures, id_map, image_id, width,
                                                       height)
    if len(annotations) >= MAX_ANNOTATIONS_PER_IMAGE:
        raise RuntimeError(f"too many annotations in image {image_id}: {len(annotations)}")
    for j, annotation in enumerate(annotations):
        annotation["id"] = image_id * MAX_ANNOTATIONS_PER_IMAGE + j
    detections = simulate_detections(random_stream(seed, split, index, DETECTION_STREAM),
                                     image_id, truth, width, height, config)
    image_info = {"license": 1, "file_name": f"{image_id:012d}.jpg", "height": height,
                  "width": width, "id": image_id}
    return Sample(image=image, background=background, id_map=id_map, image_info=image_info,
                  annotations=annotations, detections=detections, figures=figure_info)
