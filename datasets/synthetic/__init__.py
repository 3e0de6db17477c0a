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

Modules, each one job: ``config`` (``SyntheticConfig``, image ids, random streams),
``figures`` (the figure model: pose, projection, draw operations, placement, occluders),
``rendering`` (pixels: draw operations, colours, backgrounds), ``annotations`` (COCO
entries read off what was drawn, simulated detections), ``scene`` (one image:
``render_sample``) and ``coco_writer`` (splits in COCO's layout: ``generate_coco``).
"""

from datasets.synthetic.coco_writer import generate_coco, generate_split, person_category
from datasets.synthetic.config import SPLIT_CODES, SyntheticConfig, image_id_for
from datasets.synthetic.scene import Sample, render_sample

__all__ = [
    "SPLIT_CODES",
    "SyntheticConfig",
    "Sample",
    "person_category",
    "image_id_for",
    "render_sample",
    "generate_split",
    "generate_coco",
]
