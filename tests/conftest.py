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


@pytest.fixture(scope="session")
def synthetic_coco(tmp_path_factory):
    """A small generated COCO-format set (40 train, 6 val images at 320x240), made once."""
    from datasets.synthetic import generate_coco

    root = tmp_path_factory.mktemp("synthetic_coco")
    generate_coco(root, num_train=40, num_val=6, seed=3, image_size=(320, 240))
    return root


@pytest.fixture(scope="session")
def tiny_config(synthetic_coco):
    """A ``Config`` for the tiny model on the generated set: short, fast training."""
    from pose.config import Config, DataConfig, ModelConfig, TestConfig, TrainConfig

    return Config(
        model=ModelConfig(psa_placement="branch", **TINY_HRNET),
        data=DataConfig(root=str(synthetic_coco), sigma=1.0),
        train=TrainConfig(batch_size=8, epochs=1, lr=1e-3, lr_steps=(5,), val_every=1),
        test=TestConfig(batch_size=16, detections="annotations/person_detection_results_val2017.json"),
    )
