"""``pose.evaluation.keypoint_eval`` gives pycocotools' own numbers, to the bit.

Against pycocotools' ``COCOeval`` on the same inputs: the OKS of every pair, the matches
and ignore flags of every image at every threshold and area range, the precision arrays
and the AP. On the coco-analyze reference set (tests/data/coco_analyze: crowd regions,
people without keypoints, duplicates, background false positives, misses) and on
hand-made ties that decide which person a detection takes.
"""

import contextlib
import io
import json
import os

import numpy as np
import pytest

from datasets.coco import load_coco
from datasets.metadata import DatasetMeta
from pose.evaluation import keypoint_eval as ke
from pose.evaluation.metrics import run_cocoeval

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "data", "coco_analyze")


@pytest.fixture(scope="module")
def reference_set():
    coco = load_coco(os.path.join(DATA, "annotations.json"))
    with open(os.path.join(DATA, "results.json")) as f:
        results = json.load(f)
    return coco, results, DatasetMeta.from_coco(coco).sigmas_array


def _pycocotools(coco, results, sigmas, thresholds=None, max_dets=None):
    ev = run_cocoeval(coco, results, sigmas) if thresholds is None and max_dets is None \
        else _configured(coco, results, sigmas, thresholds, max_dets)
    with contextlib.redirect_stdout(io.StringIO()):
        ev.accumulate()
        ev.summarize()
    return ev


def _configured(coco, results, sigmas, thresholds, max_dets):
    import copy

    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(coco, coco.loadRes(copy.deepcopy(results)), iouType="keypoints")
        ev.params.kpt_oks_sigmas = np.asarray(sigmas)
        if thresholds is not None:
            ev.params.iouThrs = np.asarray(thresholds, np.float64)
        if max_dets is not None:
            ev.params.maxDets = [max_dets]
        ev.evaluate()
    return ev


def _compare(coco, results, sigmas, thresholds=None, max_dets=None):
    """Every image's matches and flags, the precision and the AP of each area range."""
    ev = _pycocotools(coco, results, sigmas, thresholds, max_dets)
    gt = ke.GroundTruth(coco, sigmas)
    det = ke.Detections.from_results(results, gt)
    num_images = len(gt.image_ids)
    for a, area in enumerate(ev.params.areaRng):
        m = ke.match(gt, det, ev.params.iouThrs, tuple(area), ev.params.maxDets[-1])
        for e in ev.evalImgs[a * num_images:(a + 1) * num_images]:
            if e is None:
                continue
            columns = np.flatnonzero(m.unit == gt.unit_of(e["image_id"], e["category_id"]))
            assert (m.detections[columns] + 1).tolist() == list(e["dtIds"])
            mine = np.where(m.matched[:, columns] >= 0,
                            gt.ids[np.maximum(m.matched[:, columns], 0)], 0)
            np.testing.assert_array_equal(mine, e["dtMatches"], err_msg=str(e["image_id"]))
            np.testing.assert_array_equal(m.dt_ignore[:, columns], e["dtIgnore"] != 0)
        precision, recall = ke.accumulate(gt, det, m)
        np.testing.assert_array_equal(precision[:, :, 0], ev.eval["precision"][:, :, 0, a, -1])
        np.testing.assert_array_equal(recall[:, 0], ev.eval["recall"][:, 0, a, -1])
    return ev, gt, det


def test_the_reference_set_matches_pycocotools_to_the_bit(reference_set):
    coco, results, sigmas = reference_set
    ev, gt, det = _compare(coco, results, sigmas)
    m = ke.match(gt, det)
    ap = ke.summary(ke.accumulate(gt, det, m)[0])
    assert (ap["AP"], ap["AP50"], ap["AP75"]) == tuple(float(s) for s in ev.stats[:3])
    # the OKS of every pair, as computeOks
    starts, counts, order = det.ranked(gt, 20)
    d, g, unit, rank, _ = ke._unit_pairs(gt, starts, counts, order)
    oks = ke._pair_oks(gt, det, d, g)
    checked = 0
    for (image_id, cat_id), ious in ev.ious.items():
        if len(ious) == 0:
            continue
        people = [gt.row_of_id[p["id"]] for p in ev._gts[image_id, cat_id]]
        u = gt.unit_of(image_id, cat_id)
        for row in range(len(ious)):
            for column, person in enumerate(people):
                pick = (unit == u) & (rank == row) & (g == person)
                assert oks[pick].tolist() == [ious[row, column]]
                checked += 1
    assert checked > 500


def test_the_localisation_matching_and_a_raised_max_dets(reference_set):
    """OKS 0.1 only (the diagnosis' matching) and maxDets 5 (detections cut per image)."""
    coco, results, sigmas = reference_set
    _compare(coco, results, sigmas, thresholds=[0.1])
    _compare(coco, results, sigmas, max_dets=5)


def test_best_oks_is_the_best_over_the_counted_people_of_every_detection(reference_set):
    coco, results, sigmas = reference_set
    ev = _configured(coco, results, sigmas, [0.5], 100)
    gt = ke.GroundTruth(coco, sigmas)
    best = ke.best_oks(gt, ke.Detections.from_results(results, gt))
    expected = np.zeros(len(results))
    for key, ious in ev.ious.items():
        if len(ious) == 0:
            continue
        dts = sorted(ev._dts[key], key=lambda d: -d["score"])  # computeOks' order (stable)
        counted = np.asarray([not p["ignore"] for p in ev._gts[key]])
        for row, d in enumerate(dts):
            expected[d["id"] - 1] = np.where(counted, ious[row], 0.0).max()
    assert best.tolist() == expected.tolist()
    assert (best > 0.5).sum() > 200


def _scene(tmp_path, people, results):
    """Annotations of ``people``: (keypoints (17, 3), area, iscrowd) in image 1."""
    data = {"images": [{"id": 1, "file_name": "1.jpg", "width": 640, "height": 480}],
            "categories": [{"id": 1, "name": "person", "keypoints": [f"k{i}" for i in
                                                                     range(17)]}],
            "annotations": []}
    for n, (keypoints, area, crowd) in enumerate(people, start=1):
        xy = keypoints[:, :2]
        data["annotations"].append({
            "id": n, "image_id": 1, "category_id": 1, "iscrowd": crowd, "area": area,
            "bbox": [*xy.min(0).tolist(), *(xy.max(0) - xy.min(0)).tolist()],
            "keypoints": keypoints.reshape(-1).tolist(),
            "num_keypoints": int((keypoints[:, 2] > 0).sum())})
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return load_coco(path)


def test_ties_and_ignored_people_decide_as_pycocotools(tmp_path):
    """Two identical people (equal OKS: pycocotools takes the later one), a crowd region
    and a person without keypoints (taken only when no counted person is left, and a
    crowd by any number of detections)."""
    rng = np.random.default_rng(3)
    pose = np.concatenate([rng.uniform(100, 300, size=(17, 2)), np.full((17, 1), 2.0)], 1)
    unlabelled = pose.copy()
    unlabelled[:, 2] = 0
    people = [(pose, 20000.0, 0), (pose.copy(), 20000.0, 0), (pose + (1, 1, 0), 20000.0, 1),
              (unlabelled + (2, 0, 0), 20000.0, 0)]
    coco = _scene(tmp_path, people, [])
    results = [{"image_id": 1, "category_id": 1, "score": s,
                "keypoints": (pose + (dx, 0, 0)).reshape(-1).tolist()}
               for s, dx in ((0.9, 3.0), (0.8, 3.0), (0.7, 3.0), (0.6, 3.0), (0.6, 40.0))]
    ev, gt, det = _compare(coco, results, np.full(17, 0.05))
    first = ev.evalImgs[0]
    assert first["dtMatches"][0].tolist()[:2] == [2, 1]  # the tie went to the later person
