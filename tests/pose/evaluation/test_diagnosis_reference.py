"""The diagnosis against coco-analyze's own numbers, and its APs against pycocotools.

tests/data/coco_analyze holds a generated set, a results set mixing every error, and
what matteorr/coco-analyze's ``COCOanalyze`` computed on them (README.md there says how).
``definitions="coco-analyze"`` reproduces all of it; the default definitions (the issue's)
share with it the matching, the misses and the AP of the original results. Every AP after
a correction is what pycocotools' COCOeval gives on the corrected results set itself.
"""

import contextlib
import copy
import io
import json
import os

import numpy as np
import pytest

from datasets.coco import load_coco
from datasets.metadata import DatasetMeta
from pose.evaluation.diagnosis import (
    LOCALIZATION_OKS,
    corrected_results,
    correction_steps,
    diagnose,
    match_and_classify,
)
from pose.evaluation.diagnosis_files import load_results
from pose.evaluation.metrics import evaluate_coco_keypoints, run_cocoeval

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "data", "coco_analyze")


@pytest.fixture(scope="module")
def reference_set():
    coco = load_coco(os.path.join(DATA, "annotations.json"))
    meta = DatasetMeta.from_coco(coco)
    results = load_results(os.path.join(DATA, "results.json"), coco, meta.num_keypoints)
    with open(os.path.join(DATA, "reference.json")) as f:
        reference = json.load(f)
    return coco, meta, results, reference


@pytest.fixture(scope="module")
def reports(reference_set):
    coco, meta, results, _ = reference_set
    return {definitions: diagnose(coco, results, meta, definitions=definitions)
            for definitions in ("coco-analyze", "issue")}


def test_coco_analyze_definitions_reproduce_the_reference(reference_set, reports):
    _, meta, results, reference = reference_set
    report = reports["coco-analyze"]
    assert reference["detections"] == len(results)
    assert report["matched_detections"] == reference["matched_detections"]
    assert report["counts"] == reference["counts"]
    assert {name: part["counts"] for name, part in report["per_keypoint"].items()} == \
        reference["per_keypoint"]
    assert list(report["ap_steps"]) == list(correction_steps("coco-analyze"))
    for step, expected in reference["ap_steps"].items():
        got = report["ap_steps"][step]
        # the reference's AP is the mean of its 10 per-threshold means, ours pycocotools'
        # mean over all thresholds and recall points: equal up to the summation order
        assert got["AP"] == pytest.approx(expected["AP"], rel=0, abs=1e-12), step
        assert (got["AP50"], got["AP75"]) == (expected["AP50"], expected["AP75"]), step
    # every class occurs, and every correction moves the AP (the set exercises them all)
    assert min(reference["counts"].values()) > 100
    steps = [reference["ap_steps"][s]["AP"] for s in correction_steps("coco-analyze")]
    assert all(after > before for before, after in zip(steps[:6], steps[1:6]))


def test_issue_definitions_share_the_matching_misses_and_original_ap(reference_set, reports):
    """A miss (ks < 0.5 against everything) and the matching at OKS 0.1 are defined alike;
    what is good, jitter, inversion or swap is not (see the module docstring of
    pose.evaluation.diagnosis), so only their sum is shared."""
    _, _, _, reference = reference_set
    report = reports["issue"]
    assert report["matched_detections"] == reference["matched_detections"]
    assert report["counts"]["miss"] == reference["counts"]["miss"]
    assert report["keypoints"] == sum(reference["counts"].values())
    assert {n: p["counts"]["miss"] for n, p in report["per_keypoint"].items()} == \
        {n: p["miss"] for n, p in reference["per_keypoint"].items()}
    assert report["ap_steps"]["original"] == {
        k: reference["ap_steps"]["original"][k] for k in ("AP", "AP50", "AP75")} | {
        "AP": report["ap_steps"]["original"]["AP"]}
    assert report["ap_steps"]["original"]["AP"] == pytest.approx(
        reference["ap_steps"]["original"]["AP"], rel=0, abs=1e-12)
    assert report["counts"] != reference["counts"]  # the definitions do differ here


def _ap(coco, results, sigmas):
    stats = evaluate_coco_keypoints(coco, results, sigmas)
    return {"AP": stats["AP"], "AP50": stats["AP50"], "AP75": stats["AP75"]}


@pytest.mark.parametrize("definitions", ["issue", "coco-analyze"])
def test_every_ap_is_pycocotools_on_the_corrected_results(reference_set, reports,
                                                          definitions):
    """Each step's AP equals, bit for bit, pycocotools' COCOeval run from scratch on that
    step's corrected results set (``corrected_results``); the background steps equal
    COCOeval's evaluation of the rescored set with the background errors' ignore flags
    set in its ``evalImgs`` (as the reference does)."""
    coco, meta, results, _ = reference_set
    sigmas = meta.sigmas_array
    report = reports[definitions]
    sets = corrected_results(coco, results, meta,
                             match_and_classify(coco, results, meta, definitions),
                             definitions=definitions)
    assert list(sets) == list(correction_steps(definitions)[:-2])
    for step, corrected in sets.items():
        assert report["ap_steps"][step] == _ap(coco, corrected, sigmas), step
    ev = run_cocoeval(coco, sets["score"], sigmas)
    areas = len(ev.params.areaRng)
    per_area = len(ev.evalImgs) // areas
    everything = [e for e in ev.evalImgs[:per_area] if e is not None]  # area "all"
    if definitions == "issue":
        rematch = run_cocoeval(coco, sets["score"], sigmas)
        rematch.params.iouThrs = np.asarray([LOCALIZATION_OKS])
        with contextlib.redirect_stdout(io.StringIO()):
            rematch.evaluate()
        unmatched_dt = {d for e in rematch.evalImgs[:per_area] if e is not None
                        for d, m, i in zip(e["dtIds"], e["dtMatches"][0], e["dtIgnore"][0])
                        if not m and not i}
        unmatched_gt = {g for e in rematch.evalImgs[:per_area] if e is not None
                        for g, m, i in zip(e["gtIds"], e["gtMatches"][0], e["gtIgnore"])
                        if not m and not i}
        for e in everything:
            for column, d in enumerate(e["dtIds"]):
                if d in unmatched_dt:
                    e["dtIgnore"][:, column] = True
        assert report["ap_steps"]["background_fp"] == _accumulated(ev)
        for e in everything:
            for row, g in enumerate(e["gtIds"]):
                if g in unmatched_gt:
                    e["gtIgnore"][row] = 1
        assert report["ap_steps"]["background_fn"] == _accumulated(ev)
    else:  # each threshold's own unmatched detections, then people
        for e in everything:
            e["dtIgnore"] = e["dtIgnore"] | (e["dtMatches"] == 0)
        assert report["ap_steps"]["background_fp"] == _accumulated(ev)
        rows = []
        for t in range(len(ev.params.iouThrs)):
            for e in everything:
                e["gtIgnore"] = np.where(e["gtMatches"][t] == 0, 1, e["gtIgnore"])
            with contextlib.redirect_stdout(io.StringIO()):
                ev.accumulate()
            rows.append(copy.deepcopy(ev.eval["precision"][t, :, 0, 0, -1]))
        assert np.mean([r.mean() for r in rows]) == pytest.approx(
            report["ap_steps"]["background_fn"]["AP"], rel=0, abs=1e-12)
        assert report["ap_steps"]["background_fn"]["AP50"] == rows[0].mean()


def _accumulated(ev):
    with contextlib.redirect_stdout(io.StringIO()):
        ev.accumulate()
        ev.summarize()
    return {"AP": float(ev.stats[0]), "AP50": float(ev.stats[1]), "AP75": float(ev.stats[2])}
