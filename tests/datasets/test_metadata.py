"""DatasetMeta: flip pairs from names, sides, sigmas, reading the person category."""

import dataclasses
import json
import types

import numpy as np
import pytest

from datasets.coco import AnnotationError
from datasets.metadata import (
    COCO_KEYPOINT_NAMES,
    COCO_SIGMAS,
    COCO_SKELETON_1BASED,
    DatasetMeta,
    MetadataError,
    preset_names,
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


# --------------------------------------------------------------------------- presets

# Published values, copied by hand from mmpose's configs/_base_/datasets/*.py (the
# independent reference for the YAML files under configs/datasets/).
PUBLISHED = {
    "crowdpose": (14, [0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087,
                       0.089, 0.089, 0.079, 0.079], 6),
    "aic": (14, [0.01388152, 0.01515228, 0.01057665, 0.01417709, 0.01497891, 0.01402144,
                 0.03909642, 0.03686941, 0.01981803, 0.03843971, 0.03412318, 0.02415081,
                 0.01291456, 0.01236173], 6),
    "mpii": (16, [0.089, 0.083, 0.107, 0.107, 0.083, 0.089, 0.026, 0.026, 0.026, 0.026,
                  0.062, 0.072, 0.179, 0.179, 0.072, 0.062], 6),
}


# CrowdPose's 15 limbs as mmpose's configs/_base_/datasets/crowdpose.py lists them
# (skeleton_info 0..14, by name; mmpose's 'top_head' is the release's 'head').
PUBLISHED_CROWDPOSE_SKELETON = (
    ("left_ankle", "left_knee"), ("left_knee", "left_hip"), ("right_ankle", "right_knee"),
    ("right_knee", "right_hip"), ("left_hip", "right_hip"), ("left_shoulder", "left_hip"),
    ("right_shoulder", "right_hip"), ("left_shoulder", "right_shoulder"),
    ("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow"),
    ("left_elbow", "left_wrist"), ("right_elbow", "right_wrist"), ("head", "neck"),
    ("right_shoulder", "neck"), ("left_shoulder", "neck"))


def _data(**fields):
    """A ``data`` config slice (pose.config.DataConfig's metadata fields)."""
    keys = ("dataset", "keypoint_names", "skeleton", "flip_pairs", "oks_sigmas")
    return types.SimpleNamespace(**{k: fields.get(k) for k in keys})


def test_presets_carry_published_sigmas_and_flip_pairs():
    assert preset_names() == ["aic", "coco", "crowdpose", "mpii", "ochuman"]
    for name, (k, sigmas, pairs) in PUBLISHED.items():
        meta = DatasetMeta.from_config(_data(dataset=name))
        assert meta.num_keypoints == k and meta.sigmas == tuple(sigmas)
        assert len(meta.flip_pairs) == pairs
        for i, j in meta.flip_pairs:  # every pair swaps a left_ X with its right_ X
            a, b = sorted((meta.keypoint_names[i], meta.keypoint_names[j]))
            assert a.startswith("left_") and b == "right_" + a[len("left_"):]
    # COCO and OCHuman: pycocotools' own sigmas, bit for bit
    assert DatasetMeta.from_config(_data(dataset="coco")) == DatasetMeta.coco()
    assert DatasetMeta.from_config(_data(dataset="ochuman")) == DatasetMeta.coco()
    assert DatasetMeta.from_config(_data()) == DatasetMeta.coco()
    crowdpose = DatasetMeta.from_config(_data(dataset="crowdpose"))
    assert tuple(crowdpose.names_of(crowdpose.skeleton)) == PUBLISHED_CROWDPOSE_SKELETON


def test_metadata_round_trips_through_the_config_fields():
    meta = DatasetMeta.from_config(_data(dataset="mpii"))
    assert DatasetMeta.from_config(_data(**meta.config_fields())) == meta
    assert meta.names_of(meta.skeleton)[0] == ("right_ankle", "right_knee")


def test_own_dataset_described_in_one_yaml(tmp_path):
    path = tmp_path / "hands.yaml"
    path.write_text("name: hands\nkeypoint_names: [wrist, thumb, index]\n"
                    "skeleton: [[wrist, thumb], [wrist, index]]\n"
                    "flip_pairs: [[thumb, index]]\nsigmas: [0.05, 0.03, 0.03]\n")
    meta = DatasetMeta.from_config(_data(dataset=str(path)))
    assert meta.flip_index == (0, 2, 1) and meta.skeleton == ((0, 1), (0, 2))
    path.write_text("keypoint_names: [wrist]\ncolour: red\n")
    with pytest.raises(MetadataError, match=r"hands.yaml: unknown key 'colour'"):
        DatasetMeta.from_config(_data(dataset=str(path)))
    with pytest.raises(MetadataError, match=r"unknown dataset preset 'crowd'.*crowdpose"):
        DatasetMeta.from_config(_data(dataset="crowd"))
    # PyYAML alone keeps the second 'sigmas' silently: the set would train with it.
    path.write_text("keypoint_names: [wrist, thumb]\nsigmas: [0.05, 0.03]\n"
                    "skeleton: [[wrist, thumb]]\nsigmas: [0.5, 0.3]\n")
    with pytest.raises(MetadataError) as error:
        DatasetMeta.from_config(_data(dataset=str(path)))
    assert str(error.value) == f"{path}: duplicate key 'sigmas' at lines 2 and 4; keep one of them"


def _crowdpose_category(skeleton):
    names = list(DatasetMeta.from_config(_data(dataset="crowdpose")).keypoint_names)
    return {"id": 1, "name": "person", "keypoints": names, "skeleton": skeleton}


def test_file_skeleton_out_of_range_is_reported_in_the_files_numbering():
    category = _crowdpose_category([list(p) for p in COCO_SKELETON_1BASED])  # as released
    with pytest.raises(MetadataError, match=r"cp.json: the category's skeleton refers to "
                       r"keypoints the file does not have: limb \[16, 14\] \(1-based.*14 "
                       r"keypoints, numbered 1..14"):
        DatasetMeta.from_config(_data(oks_sigmas=[0.1] * 14), category, source="cp.json")
    # with the preset, its skeleton replaces the broken one
    meta = DatasetMeta.from_config(_data(dataset="crowdpose"), category, source="cp.json")
    assert meta == DatasetMeta.from_config(_data(dataset="crowdpose"))


def test_file_and_preset_disagreeing_name_the_field_file_and_both_values():
    category = _crowdpose_category([[13, 14], [1, 2]])  # valid, but not the preset's
    with pytest.raises(MetadataError, match=r"cp.json: field 'skeleton' disagrees with "
                       r".*crowdpose.yaml: the file has \[\['head', 'neck'\], "
                       r"\['left_shoulder', 'right_shoulder'\]\], .*crowdpose.yaml has"):
        DatasetMeta.from_config(_data(dataset="crowdpose"), category, source="cp.json")
    category = _crowdpose_category([])
    category["keypoints"][12] = "top_head"
    with pytest.raises(MetadataError, match=r"cp.json: field 'keypoints' disagrees .*'top_head'"
                       r".*'head'"):
        DatasetMeta.from_config(_data(dataset="crowdpose"), category, source="cp.json")
    with pytest.raises(MetadataError, match=r"no OKS sigmas for the 14 keypoints of cp.json"):
        DatasetMeta.from_config(_data(), category, source="cp.json")
