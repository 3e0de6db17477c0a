"""Shared fixtures: the real COCO sample's location and tiny model settings."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

COCO_SAMPLE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco_sample"

# Small enough to build in about a second; still four stages, every fusion path, PSA.
# Input sides must divide by 32 (stem x4, three branch halvings), hence 64x32.
TINY_HRNET = dict(width=8, num_keypoints=17, input_size=(32, 64), stage_modules=(1, 1, 1),
                  num_blocks=1, stage1_blocks=1, stem_width=16)


@pytest.fixture(scope="session")
def coco_sample_dir():
    """``../shared/data/coco_sample`` (4 COCO val2017 images); skips the test if absent."""
    if not (COCO_SAMPLE_DIR / "person_keypoints_sample.json").is_file():
        pytest.skip(f"the real COCO sample is not at {COCO_SAMPLE_DIR} (it lives in the "
                    "project's shared/ folder beside the repository, not in the repository)")
    return COCO_SAMPLE_DIR
