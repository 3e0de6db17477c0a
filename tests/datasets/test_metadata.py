"""DatasetMeta: flip pairs from names, sides, sigmas, reading the person category."""

import dataclasses
import json

import numpy as np
import pytest

from datasets.coco import AnnotationError
from datasets.metadata import (
    COCO_KEYPOINT_NAMES,
    COCO_SIGMAS,
    COCO_SKELETON_1BASED,
    DatasetMeta,
    MetadataError,
)

# HRNet's lib/dataset/coco.py writes these by hand; we derive them from the names.
HRNET_FLIP_PAIRS = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16]]


def test_coco_flip_pairs_derived_from_names():
    meta = DatasetMeta.coco()
    assert [list(p) for p in meta.flip_pairs] == HRNET_FLIP_PAIRS
    flip = np.array(meta.flip_index)
    assert flip[0] == 0  # nose stays
    assert np.array_equal(flip[flip], np.arange(17))  # an involution
    for i, j in meta.flip_pairs:
        assert meta.keypoint_names[i].replace("left_", "") == \
            meta.keypoint_names[j].replace("right_", "")


def test_coco_constants_unchanged_and_derived_fields():
    meta = DatasetMeta.coco()
    assert meta.keypoint_names == COCO_KEYPOINT_NAMES
    assert meta.skeleton == tuple((a - 1, b - 1) for a, b in COCO_SKELETON_1BASED)
    assert meta.skeleton[0] == (15, 13)  # (left_ankle, left_knee)
    np.testing.assert_allclose(meta.sigmas_array, COCO_SIGMAS)
    assert meta.num_keypoints == 17
    assert meta.keypoint_sides[0] == "center"
    assert meta.keypoint_sides[1] == "left" and meta.keypoint_sides[2] == "right"
    sides = dict(zip(meta.skeleton, meta.limb_sides))
    assert sides[(15, 13)] == "left"      # left ankle - left knee
    assert sides[(16, 14)] == "right"
    assert sides[(11, 12)] == "center"    # hip - hip
    assert sides[(0, 1)] == "center"      # nose - left eye
    # HRNet's half-body split: upper = 0..10, lower = 11..16.
    assert meta.upper_body_ids == tuple(range(11))
    assert meta.lower_body_ids == tuple(range(11, 17))


def test_frozen_and_hashable():
    meta = DatasetMeta.coco()
    with pytest.raises(dataclasses.FrozenInstanceError):
        meta.keypoint_names = ()
    assert hash(meta) == hash(DatasetMeta.coco()) and meta == DatasetMeta.coco()


def test_custom_set_needs_sigmas_with_clear_error():
    names = ("head", "left_hand", "right_hand", "left_foot", "right_foot")
    with pytest.raises(MetadataError, match=r"17 values .* 5 keypoints"):
        DatasetMeta(names, ((0, 1),))
    with pytest.raises(MetadataError, match=r"3 values .* 5 keypoints"):
        DatasetMeta(names, ((0, 1),), sigmas=[0.1, 0.1, 0.1])
    meta = DatasetMeta(names, ((0, 1), (1, 3)), sigmas=[0.1] * 5)
    assert meta.flip_index == (0, 2, 1, 4, 3)
    assert meta.limb_sides == ("center", "left")
    assert meta.lower_body_ids == (3, 4)
    with pytest.raises(MetadataError, match="out of range"):
        DatasetMeta(names, ((0, 5),), sigmas=[0.1] * 5)


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return str(path)


def test_from_coco_reads_person_category(tmp_path):
    cat = {"id": 7, "name": "person", "keypoints": ["nose", "left_eye", "right_eye"],
           "skeleton": [[1, 2], [1, 3]]}
    path = _write(tmp_path / "kp.json", {"images": [], "annotations": [],
                                        "categories": [{"id": 1, "name": "car"}, cat]})
    meta = DatasetMeta.from_coco(path, sigmas=[0.026, 0.025, 0.025])
    assert meta.keypoint_names == ("nose", "left_eye", "right_eye")
    assert meta.skeleton == ((0, 1), (0, 2))
    assert meta.flip_pairs == ((1, 2),)
    with pytest.raises(MetadataError, match="sigmas"):
        DatasetMeta.from_coco(path)  # 3 keypoints, COCO's 17 sigmas


def test_from_coco_without_keypoint_category_names_file(tmp_path):
    path = _write(tmp_path / "nokp.json", {"images": [], "annotations": [],
                                          "categories": [{"id": 1, "name": "person"}]})
    with pytest.raises(AnnotationError, match="nokp.json.*no person category"):
        DatasetMeta.from_coco(path)


def test_from_coco_on_the_real_sample(coco_sample_dir):
    sample_json = str(coco_sample_dir / "person_keypoints_sample.json")
    from datasets.coco import load_coco

    assert DatasetMeta.from_coco(sample_json) == DatasetMeta.coco()
    assert DatasetMeta.from_coco(load_coco(sample_json)) == DatasetMeta.coco()


# The COCO keypoint sigmas as published (cocodataset.org keypoint evaluation; Ronchi &
# Perona 2017), written out here so that a changed constant fails.
PUBLISHED_COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07,
                                  1.07, .87, .87, .89, .89]) / 10.0


def test_coco_sigmas_are_the_published_ones():
    from pycocotools.cocoeval import Params

    np.testing.assert_allclose(COCO_SIGMAS, PUBLISHED_COCO_SIGMAS, rtol=0, atol=1e-12)
    np.testing.assert_allclose(DatasetMeta.coco().sigmas_array, PUBLISHED_COCO_SIGMAS,
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(Params(iouType="keypoints").kpt_oks_sigmas,
                               PUBLISHED_COCO_SIGMAS, rtol=0, atol=1e-12)
