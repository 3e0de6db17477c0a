"""Parameters of the synthetic scenes, image ids and the per-image random streams."""

from __future__ import annotations

import dataclasses

import numpy as np

# Image ids are split_code * 1_000_000 + index + 1, annotation ids image_id * 100 + j:
# unique across both splits and independent of generation order.
SPLIT_CODES = {"val2017": 1, "train2017": 2}
IDS_PER_SPLIT = 1_000_000
MAX_ANNOTATIONS_PER_IMAGE = 100

# The independent random streams of one image: the geometry (people, poses, occluders)
# decides the annotations; appearance (colours, background) only the pixels; detections
# the simulated detector boxes. ``write_images=False`` skips the appearance stream and
# still writes the same JSON.
GEOMETRY_STREAM, APPEARANCE_STREAM, DETECTION_STREAM = 0, 1, 2


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


def image_id_for(split, index):
    """COCO image id of image ``index`` of ``split`` ("train2017" or "val2017")."""
    if split not in SPLIT_CODES:
        raise ValueError(f"split must be one of {sorted(SPLIT_CODES)}, got {split!r}")
    if not 0 <= index < IDS_PER_SPLIT - 1:
        raise ValueError(f"index must be in [0, {IDS_PER_SPLIT - 1}), got {index!r}")
    return SPLIT_CODES[split] * IDS_PER_SPLIT + index + 1


def random_stream(seed, split, index, stream):
    """The generator of one ``stream`` of image ``index`` of ``split`` for ``seed``."""
    return np.random.Generator(np.random.PCG64(
        np.random.SeedSequence([int(seed), SPLIT_CODES[split], int(index), stream])))
