"""Tests of pose.evaluation.metrics: hand-worked OKS/NMS cases, pycocotools as the reference."""

import contextlib
import copy
import io
import json
import math
import os

import numpy as np
import pytest

from datasets.metadata import COCO_SIGMAS
from pose.evaluation.metrics import (
    STAT_NAMES,
    evaluate_coco_keypoints,
    format_ap_table,
    oks_iou,
    oks_matrix,
    oks_nms,
    postprocess_predictions,
    rescore_and_nms,
    rescore_instances,
    soft_oks_nms,
    write_coco_results,
)


@pytest.fixture
def sample_annotations(coco_sample_dir):
    """The real COCO sample's keypoint annotations (the test skips where it is absent)."""
    return coco_sample_dir / "person_keypoints_sample.json"


def pose(offset_x=0.0, offset_y=0.0, k=17, seed=0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 100, (k, 2)) + [offset_x, offset_y]
    return np.concatenate([xy, np.ones((k, 1))], axis=1)  # (K, 3)


# --------------------------------------------------------------------------- OKS
def test_oks_iou_two_keypoints_by_hand():
    g = np.array([[0.0, 0.0, 1.0], [10.0, 0.0, 1.0]])
    d = np.array([[[3.0, 4.0, 1.0], [10.0, 0.0, 1.0]],
                  [[0.0, 0.0, 1.0], [10.0, 0.0, 1.0]]])
    sigmas = np.array([0.5, 0.25])  # variances (2 sigma)^2 = 1.0, 0.25
    # instance 0: e = 25 / 1.0 / ((100 + 300) / 2) / 2 = 0.0625 for joint 0, 0 for joint 1
    got = oks_iou(g, d, 100.0, np.array([300.0, 100.0]), sigmas)
    np.testing.assert_allclose(got, [(math.exp(-0.0625) + 1.0) / 2.0, 1.0], rtol=1e-12)
    # flat (3K,) inputs give the same
    np.testing.assert_allclose(oks_iou(g.ravel(), d.reshape(2, -1), 100.0, [300.0, 100.0],
                                       sigmas), got)
    # visibility threshold: joint 1 of g is below it -> only joint 0 counts
    g_low = g.copy()
    g_low[1, 2] = 0.1
    np.testing.assert_allclose(oks_iou(g_low, d[:1], 100.0, [300.0], sigmas, 0.5),
                               [math.exp(-0.0625)])
    # nothing counted -> 0
    np.testing.assert_allclose(oks_iou(g_low, d[:1], 100.0, [300.0], sigmas, 2.0), [0.0])


def test_oks_matrix_rows_equal_oks_iou():
    kp = np.stack([pose(seed=1), pose(5, 3, seed=1), pose(seed=2)])
    kp[1, :4, 2] = 0.05
    areas = np.array([5000.0, 6000.0, 4000.0])
    for thr in (None, 0.2):
        m = oks_matrix(kp, areas, COCO_SIGMAS, thr)
        for i in range(3):
            np.testing.assert_allclose(m[i], oks_iou(kp[i], kp, areas[i], areas, COCO_SIGMAS,
                                                     thr))
    with pytest.raises(ValueError, match="sigmas"):
        oks_iou(kp[0], kp, 1.0, areas, COCO_SIGMAS[:5])


# --------------------------------------------------------------------------- NMS
def test_oks_nms_suppresses_near_duplicate_keeps_far_pose():
    a = pose(seed=3)
    b = a.copy()
    b[:, :2] += 0.5  # near-identical
    c = pose(400, 300, seed=4)  # far away
    kp = np.stack([b, a, c])
    scores = np.array([0.7, 0.9, 0.5])
    areas = np.full(3, 8000.0)
    assert oks_iou(a, b[None], 8000.0, [8000.0], COCO_SIGMAS)[0] > 0.9
    keep = oks_nms(kp, scores, areas, COCO_SIGMAS, threshold=0.9)
    assert keep.tolist() == [1, 2]
    # with a threshold above their OKS, all three survive, ordered by score
    assert oks_nms(kp, scores, areas, COCO_SIGMAS, threshold=0.9999).tolist() == [1, 0, 2]
    assert oks_nms(np.zeros((0, 17, 3)), [], [], COCO_SIGMAS).tolist() == []


def test_soft_oks_nms_decays_scores_by_hand():
    a = pose(seed=5)
    b = a.copy()
    b[:, :2] += 1.0
    c = pose(500, 0, seed=6)
    kp = np.stack([a, b, c])
    scores = np.array([0.9, 0.8, 0.5])
    areas = np.full(3, 8000.0)
    o_ab = oks_iou(a, b[None], 8000.0, [8000.0], COCO_SIGMAS)[0]
    o_ac = oks_iou(a, c[None], 8000.0, [8000.0], COCO_SIGMAS)[0]
    o_cb = oks_iou(c, b[None], 8000.0, [8000.0], COCO_SIGMAS)[0]
    b_after_a = 0.8 * math.exp(-o_ab ** 2 / 0.9)
    c_after_a = 0.5 * math.exp(-o_ac ** 2 / 0.9)
    assert b_after_a < c_after_a  # so c is picked second
    keep, kept_scores = soft_oks_nms(kp, scores, areas, COCO_SIGMAS, threshold=0.9,
                                     return_scores=True)
    assert keep.tolist() == [0, 2, 1]
    np.testing.assert_allclose(
        kept_scores, [0.9, c_after_a, b_after_a * math.exp(-o_cb ** 2 / 0.9)], rtol=1e-12)
    assert soft_oks_nms(kp, scores, areas, COCO_SIGMAS, max_dets=2).tolist() == [0, 2]


def test_rescore_instances():
    box = np.array([0.9, 0.5, 1.0])
    ks = np.array([[0.1, 0.5, 0.7], [0.1, 0.2, 0.15], [0.3, 0.3, 0.9]])
    # 0.2 is not above the 0.2 threshold; no confident keypoint -> score 0 (HRNet)
    np.testing.assert_allclose(rescore_instances(box, ks, 0.2), [0.9 * 0.6, 0.0, 0.5])


# HRNet's TEST.IN_VIS_THRE (lib/config/default.py and the COCO configs).
HRNET_IN_VIS_THRE = 0.2


def test_rescoring_threshold_defaults_to_hrnets_in_vis_thre():
    from pose.config import TestConfig

    assert TestConfig().keypoint_score_threshold == HRNET_IN_VIS_THRE
    # Scores just either side of 0.2: only 0.21 and 0.9 count → box · (0.21 + 0.9) / 2.
    box = np.array([0.8])
    ks = np.array([[0.19, 0.21, 0.9]])
    np.testing.assert_allclose(rescore_instances(box, ks), [0.8 * 0.555], rtol=1e-12)
    results = postprocess_predictions(np.zeros((1, 3, 2)), ks, [7], box, [100.0],
                                      sigmas=[0.1, 0.1, 0.1])
    assert results[0]["score"] == pytest.approx(0.8 * 0.555, rel=1e-12)
    _, scores = rescore_and_nms(np.zeros((1, 3, 2)), ks, box, [100.0], [0.1, 0.1, 0.1])
    np.testing.assert_allclose(scores, [0.8 * 0.555], rtol=1e-12)


def test_postprocess_predictions_groups_rescores_and_nms():
    a = pose(seed=7)[:, :2]
    kp = np.stack([a, a + 0.3, pose(300, 0, seed=8)[:, :2], a])
    ks = np.full((4, 17), 0.8)
    ks[1] = 0.6
    ks[3, :10] = 0.1  # mean of the 7 confident ones = 0.8
    out = postprocess_predictions(kp, ks, [42, 42, 42, 7], [1.0, 1.0, 0.5, 0.5],
                                  [9000.0] * 4, COCO_SIGMAS)
    assert [r["image_id"] for r in out] == [42, 42, 7]
    assert [r["score"] for r in out] == pytest.approx([0.8, 0.4, 0.4])
    first = out[0]
    assert set(first) == {"image_id", "category_id", "keypoints", "score"}
    assert first["category_id"] == 1 and len(first["keypoints"]) == 51
    assert all(type(v) is float for v in first["keypoints"])
    assert type(first["score"]) is float and type(first["image_id"]) is int
    np.testing.assert_allclose(np.reshape(first["keypoints"], (17, 3))[:, :2], a)
    assert np.reshape(out[2]["keypoints"], (17, 3))[0, 2] == pytest.approx(0.1)
    json.dumps(out)
    soft = postprocess_predictions(kp, ks, [42, 42, 42, 7], [1.0, 1.0, 0.5, 0.5],
                                   [9000.0] * 4, COCO_SIGMAS, soft_nms=True)
    assert len(soft) == 4  # soft-NMS only re-orders within max_dets


def test_write_coco_results_atomic(tmp_path):
    results = [{"image_id": 1, "category_id": 1, "keypoints": [1.0, 2.0, 0.5], "score": 0.3}]
    path = tmp_path / "sub" / "results.json"
    assert write_coco_results(results, path) == str(path)
    assert json.loads(path.read_text()) == results
    write_coco_results([], path)  # overwrite in place
    assert json.loads(path.read_text()) == []
    assert sorted(os.listdir(path.parent)) == ["results.json"]  # no temporary left behind


def test_format_ap_table():
    stats = {name: i / 10 for i, name in enumerate(STAT_NAMES)}
    table = format_ap_table(stats)
    lines = table.splitlines()
    assert len(lines) == 3 and len({len(line) for line in lines}) == 1
    assert lines[0].split("|")[1].strip() == "AP" and "0.900" in lines[2]
    assert "-" in format_ap_table({})


# --------------------------------------------------------------------------- COCOeval
def test_empty_results_give_zeros():
    # no annotation file is read for empty results
    stats = evaluate_coco_keypoints("does-not-exist.json", [], COCO_SIGMAS)
    assert stats == {name: 0.0 for name in STAT_NAMES}


def _gt_as_results(coco_json):
    results = []
    for ann in coco_json["annotations"]:
        if ann["num_keypoints"] == 0:
            continue
        results.append({"image_id": ann["image_id"], "category_id": 1,
                        "keypoints": [float(v) for v in ann["keypoints"]], "score": 1.0})
    return results


def _pycocotools_stats(annotations, results, sigmas):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(annotations))
        dt = gt.loadRes(copy.deepcopy(results))
        ev = COCOeval(gt, dt, "keypoints")
        ev.params.kpt_oks_sigmas = np.asarray(sigmas)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def test_ground_truth_as_predictions_gives_ap_one(sample_annotations):
    data = json.loads(sample_annotations.read_text())
    results = _gt_as_results(data)
    stats = evaluate_coco_keypoints(str(sample_annotations), results, COCO_SIGMAS)
    assert stats["AP"] == pytest.approx(1.0)
    assert stats["AR"] == pytest.approx(1.0)
    assert stats["APM"] == pytest.approx(1.0) and stats["APL"] == pytest.approx(1.0)
    assert results == _gt_as_results(data)  # caller's dicts not modified by loadRes


def test_postprocess_of_ground_truth_with_duplicates_gives_ap_one(tmp_path, sample_annotations):
    data = json.loads(sample_annotations.read_text())
    anns = [a for a in data["annotations"] if a["num_keypoints"] > 0]
    kp = np.array([a["keypoints"] for a in anns], np.float64).reshape(len(anns), -1, 3)
    ks = (kp[:, :, 2] > 0).astype(np.float64)  # v -> keypoint score
    coords = np.concatenate([kp[:, :, :2], kp[:, :, :2] + 0.5])  # each pose twice
    kscores = np.concatenate([ks, ks * 0.9])
    ids = [a["image_id"] for a in anns] * 2
    areas = [a["area"] for a in anns] * 2
    results = postprocess_predictions(coords, kscores, ids, np.ones(len(ids)), areas,
                                      COCO_SIGMAS)
    assert len(results) == len(anns)  # the duplicates are removed by OKS-NMS
    path = write_coco_results(results, tmp_path / "res.json")
    stats = evaluate_coco_keypoints(str(sample_annotations), path, COCO_SIGMAS)
    assert stats["AP"] == pytest.approx(1.0)


def test_perturbed_predictions_match_pycocotools_directly(sample_annotations):
    from pycocotools.coco import COCO

    data = json.loads(sample_annotations.read_text())
    rng = np.random.default_rng(11)
    results = _gt_as_results(data)
    for r in results:
        kp = np.reshape(r["keypoints"], (-1, 3))
        kp[:, :2] += rng.normal(0.0, 6.0, (kp.shape[0], 2))  # 6 px noise per coordinate
        r["keypoints"] = [float(v) for v in kp.ravel()]
        r["score"] = float(rng.uniform(0.3, 1.0))
    ref = _pycocotools_stats(sample_annotations, results, COCO_SIGMAS)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(sample_annotations))
    stats = evaluate_coco_keypoints(gt, results, COCO_SIGMAS)
    np.testing.assert_allclose([stats[n] for n in STAT_NAMES], ref, rtol=0, atol=1e-12)
    assert 0.0 < stats["AP"] < 1.0  # the perturbation matters
    # the sigmas argument is used: wider sigmas forgive the same errors
    wide = evaluate_coco_keypoints(gt, results, COCO_SIGMAS * 3)
    assert wide["AP"] > stats["AP"]


@pytest.mark.parametrize("soft_nms", [False, True])
def test_rescore_and_nms_is_postprocess_predictions_of_one_image(soft_nms):
    rng = np.random.default_rng(5)
    base = rng.uniform(0, 100, size=(1, 17, 2))
    kp = base + rng.normal(scale=[[[0.5]], [[0.5]], [[30.0]], [[1.0]]], size=(4, 17, 2))
    ks = rng.uniform(0, 1, size=(4, 17))
    box, areas = rng.uniform(0.5, 1, 4), rng.uniform(800, 1200, 4)
    keep, scores = rescore_and_nms(kp, ks, box, areas, COCO_SIGMAS, soft_nms=soft_nms)
    np.testing.assert_allclose(scores, rescore_instances(box, ks))
    results = postprocess_predictions(kp, ks, [9] * 4, box, areas, COCO_SIGMAS,
                                      soft_nms=soft_nms)
    assert [r["score"] for r in results] == [float(scores[j]) for j in keep]
    assert len(keep) == (4 if soft_nms else 3)  # hard NMS drops the near-duplicate
