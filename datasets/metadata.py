"""Facts about the COCO person keypoint set, kept in one place.

Everything that needs keypoint names, the skeleton or the OKS sigmas reads them from
here or from the annotation file's own category (``DatasetMeta`` in this module).
"""

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
