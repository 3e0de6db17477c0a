"""Keypoint error diagnosis of a COCO results set (Ronchi & Perona, ICCV 2017).

"Benchmarking and Error Diagnosis in Multi-Instance Pose Estimation" explains a pose
estimator's AP by the kind of its mistakes; this module follows the definitions of the
authors' code (matteorr/coco-analyze, ``pycocotools/cocoanalyze.py``) with its own code:

- Detections are matched to ground truth by pycocotools' ``COCOeval`` at the low
  localisation threshold OKS 0.1, so that a badly placed person still has its person.
- Each labelled keypoint of a matched detection is classified by its keypoint
  similarity ks (COCOeval's per-keypoint term ``exp(-d² / (2 · area · (2σ)²))`` with the
  ground truth's area): **good** (ks ≥ 0.85), **jitter** (0.5 ≤ ks < 0.85),
  **inversion** (ks < 0.5 but ≥ 0.5 against the same person's left/right counterpart),
  **swap** (ks < 0.5 but ≥ 0.5 against a keypoint of another person of the image),
  **miss** (the rest).
- **Scoring** errors: the AP when each detection is rescored by its best OKS with any
  ground truth of its image (the ranking an oracle would give).
- **Background** false positives (detections unmatched at OKS 0.1) and false negatives
  (ground truths unmatched at 0.1 that count: not crowd, at least one keypoint).

The AP (OKS .50:.95, .5 and .75) is measured on the original results and after each
error is corrected in turn (jitter, inversion, swap, miss: the keypoints moved onto the
ground truth; then scoring: rescored; then background false positives removed; then
false negatives no longer counted): the paper's "AP improvement" bars. Flip pairs and
sigmas come from the dataset metadata (``datasets.metadata.DatasetMeta``), so any
COCO-format keypoint set works.

Example:
    >>> coco = load_coco("person_keypoints_val2017.json")
    >>> meta = DatasetMeta.from_coco(coco)
    >>> results = load_results("keypoints_results.json", coco, meta.num_keypoints)
    >>> report = diagnose(coco, results, meta)
    >>> report["counts"]
    {'good': 8012, 'jitter': 1650, 'inversion': 210, 'swap': 95, 'miss': 620}
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
from types import SimpleNamespace

import numpy as np

from datasets.coco import load_coco
from datasets.metadata import DatasetMeta
from pose.errors import UserError
from pose.evaluation.metrics import STAT_NAMES
from pose.fileio import write_bytes, write_json, write_text

KEYPOINT_CLASSES = ("good", "jitter", "inversion", "swap", "miss")
# The keypoint errors, corrected cumulatively in this order (the order; the
# reference corrects miss, swap, inversion, jitter).
KEYPOINT_ERRORS = ("jitter", "inversion", "swap", "miss")
CORRECTION_STEPS = ("original", *KEYPOINT_ERRORS, "score", "background_fp", "background_fn")

LOCALIZATION_OKS = 0.1  # the reference's oksLocThrs
GOOD_KS = 0.85  # the reference's jitterKsThrs[1]
JITTER_KS = 0.5  # the reference's jitterKsThrs[0]

# COCOeval's keypoint area ranges (Params.setKpParams) by which instances are broken down.
SIZE_RANGES = {"medium": (32.0 ** 2, 96.0 ** 2), "large": (96.0 ** 2, math.inf)}
# Bins of the ground truth's number of labelled keypoints: (label, lowest, highest).
VISIBLE_BINS = (("1-5", 1, 5), ("6-10", 6, 10), ("11-15", 11, 15), ("16+", 16, math.inf))

DIAGNOSIS_OUTPUTS = ("diagnosis.json", "diagnosis.md", "diagnosis_errors.png",
                     "diagnosis_pr.png")

__all__ = ["KEYPOINT_CLASSES", "CORRECTION_STEPS", "DIAGNOSIS_OUTPUTS", "ResultsError",
           "load_results", "classify_keypoints", "diagnose", "class_counts_by_image",
           "corrected_results", "match_and_classify", "RESULT_STEPS",
           "format_diagnosis", "write_diagnosis", "diagnose_files"]


class ResultsError(UserError):
    """A keypoint results file that cannot be diagnosed; the message names file and entry."""


def load_results(path, coco, num_keypoints: int) -> list[dict]:
    """Read and check a COCO keypoint results file against its annotations.

    Args:
        path: the results JSON (a list of ``{"image_id", "category_id", "keypoints",
            "score"}``).
        coco: ``pycocotools.coco.COCO`` of the annotations.
        num_keypoints: K; every ``keypoints`` vector must hold 3K numbers.

    Returns:
        list of result dicts as read.

    Raises:
        ResultsError: the file is missing, not JSON, not a non-empty list, or an entry
            lacks a key, names an image the annotations lack, has a keypoint vector of
            the wrong length or values that are not finite numbers (``json`` reads NaN,
            which COCOeval would score as a perfect match).
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            results = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultsError(f"results file {path!r} is not valid JSON: {exc}") from None
    except OSError as exc:
        raise ResultsError(f"results file {path!r} cannot be read: {exc.strerror}") from None
    if not isinstance(results, list):
        raise ResultsError(f"results file {path!r} holds a JSON {type(results).__name__}, "
                           "expected a list of keypoint results")
    if not results:
        raise ResultsError(f"results file {path!r} holds no results")
    image_ids = set(coco.getImgIds())
    for i, entry in enumerate(results):
        where = f"results file {path!r}: entry {i}"
        missing = [k for k in ("image_id", "category_id", "keypoints", "score")
                   if not isinstance(entry, dict) or k not in entry]
        if missing:
            raise ResultsError(f"{where} lacks {', '.join(missing)}")
        image_id = entry["image_id"]
        if isinstance(image_id, bool) or not isinstance(image_id, int):
            raise ResultsError(f"{where} has image_id {image_id!r}; expected an integer")
        if image_id not in image_ids:
            raise ResultsError(f"{where} is for image {entry['image_id']!r}, which the "
                               "annotations do not have")
        values = entry["keypoints"]
        if not isinstance(values, list) or len(values) != 3 * num_keypoints:
            length = len(values) if isinstance(values, list) else type(values).__name__
            raise ResultsError(f"{where} has keypoints of length {length}; expected "
                               f"{3 * num_keypoints} (x, y, score for {num_keypoints} "
                               "keypoints)")
        numbers = [*values, entry["score"]]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
            raise ResultsError(f"{where} has keypoints or a score that are not numbers")
        if not np.isfinite(np.asarray(numbers, np.float64)).all():
            raise ResultsError(f"{where} has keypoints or a score that are not finite "
                               "(NaN or infinity)")
    return results


def _cocoeval(coco, results, sigmas, oks_thresholds=None, max_dets=None):
    """pycocotools' keypoint ``COCOeval`` after ``evaluate()``; detection ``i`` of
    ``results`` has the id ``i + 1`` (``loadRes`` numbers them in order)."""
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        dt = coco.loadRes(copy.deepcopy(results))
        ev = COCOeval(coco, dt, iouType="keypoints")
        ev.params.useSegm = None
        ev.params.kpt_oks_sigmas = np.asarray(sigmas, np.float64)
        if oks_thresholds is not None:
            ev.params.iouThrs = np.asarray(oks_thresholds, np.float64)
        if max_dets is not None:
            ev.params.maxDets = [int(max_dets)]
        ev.evaluate()
    return ev


def _accumulate(ev):
    """``accumulate`` + ``summarize``: the AP of the 10 stats, and the precision at OKS
    .5 over COCOeval's 101 recall points (all areas, the most detections)."""
    with contextlib.redirect_stdout(io.StringIO()):
        ev.accumulate()
        ev.summarize()
    stats = dict(zip(STAT_NAMES, (float(v) for v in ev.stats)))
    precision = ev.eval["precision"][0, :, 0, 0, -1]  # (T, R, K, A, M) → (R,) at OKS .5
    return ({"AP": stats["AP"], "AP50": stats["AP50"], "AP75": stats["AP75"]},
            [float(p) for p in precision])


def _matches_at_all_areas(ev):
    """(detection id → ground-truth id, unmatched counted detection ids, unmatched counted
    ground-truth ids) of the first threshold of ``ev``, over all areas."""
    dt_to_gt, false_pos, false_neg = {}, set(), set()
    for e in ev.evalImgs:  # areaRng[0] is "all"
        if e is None or list(e["aRng"]) != list(ev.params.areaRng[0]):
            continue
        for dt_id, gt_id, ignored in zip(e["dtIds"], e["dtMatches"][0], e["dtIgnore"][0]):
            if gt_id:
                dt_to_gt[int(dt_id)] = int(gt_id)
            elif not ignored:
                false_pos.add(int(dt_id))
        for gt_id, dt_id, ignored in zip(e["gtIds"], e["gtMatches"][0], e["gtIgnore"]):
            if not dt_id and not ignored:
                false_neg.add(int(gt_id))
    return dt_to_gt, false_pos, false_neg


def _similarities(xy, gt_keypoints, area, sigmas):
    """ks of each detected keypoint against the same keypoint of ``gt_keypoints``
    (COCOeval's term, with the ground truth's area); -1 where it is not labelled.

    Args:
        xy: (K, 2) detected positions.
        gt_keypoints: (K, 3) ground-truth x, y, visibility.
        area: float, the ground truth's area.
        sigmas: (K,) OKS sigmas.
    """
    squared = ((xy - gt_keypoints[:, :2]) ** 2).sum(axis=1)  # (K,)
    ks = np.exp(-squared / (2.0 * sigmas) ** 2 / (area + np.spacing(1)) / 2.0)
    return np.where(gt_keypoints[:, 2] > 0, ks, -1.0)


def classify_keypoints(detection, truth, others, sigmas, flip_index) -> np.ndarray:
    """The class (index into ``KEYPOINT_CLASSES``) of each keypoint of one matched detection.

    As the reference, the counterpart of keypoint k is the ground truth's
    ``flip_index[k]`` (a centre keypoint is its own counterpart, so it is never an
    inversion), another person's keypoint is its k or its counterpart, each with that
    person's area and the sigma of k. Where the issue and the reference differ the issue
    is followed: the reference takes the argmax over all persons (a keypoint with ks 0.6
    but 0.9 against the counterpart is an inversion there) and calls ks > 0.85 good; here
    a keypoint is good or jitter by its own ks first (good from ks ≥ 0.85), and only a
    keypoint below 0.5 is an inversion or a swap, whichever similarity is higher (a tie
    is an inversion).

    Args:
        detection: (K, 3) detected x, y, score.
        truth: ((K, 3) x, y, visibility, area) of the matched ground truth.
        others: list of ((K, 3) keypoints, area) of the other persons of the image.
        sigmas: (K,) OKS sigmas.
        flip_index: (K,) int, the left/right counterpart of each keypoint.

    Returns:
        int64 (K,): 0..4 for good, jitter, inversion, swap, miss; -1 where the ground
        truth does not label the keypoint.
    """
    keypoints, area = truth
    xy = detection[:, :2]
    own = _similarities(xy, keypoints, area, sigmas)
    flipped = _similarities(xy, keypoints[flip_index], area, sigmas)
    other = np.full(len(xy), -1.0)
    for person, person_area in others:
        other = np.maximum(other, _similarities(xy, person, person_area, sigmas))
        other = np.maximum(other, _similarities(xy, person[flip_index], person_area, sigmas))
    classes = np.full(len(xy), KEYPOINT_CLASSES.index("miss"), np.int64)
    wrong_person = (np.maximum(flipped, other) >= JITTER_KS)
    classes[wrong_person & (other > flipped)] = KEYPOINT_CLASSES.index("swap")
    classes[wrong_person & (flipped >= other)] = KEYPOINT_CLASSES.index("inversion")
    classes[own >= JITTER_KS] = KEYPOINT_CLASSES.index("jitter")
    classes[own >= GOOD_KS] = KEYPOINT_CLASSES.index("good")
    classes[own < 0] = -1
    return classes


def _counts(classes) -> dict:
    """{class: count} and {class: share} of the labelled keypoints in ``classes``."""
    flat = np.asarray(classes, np.int64).reshape(-1)
    flat = flat[flat >= 0]
    counts = {name: int((flat == i).sum()) for i, name in enumerate(KEYPOINT_CLASSES)}
    total = max(int(flat.size), 1)
    return {"counts": counts, "shares": {n: c / total for n, c in counts.items()},
            "keypoints": int(flat.size)}


def diagnose(coco, results, meta: DatasetMeta) -> dict:
    """The error taxonomy of ``results`` against the annotations ``coco``.

    Args:
        coco: ``pycocotools.coco.COCO`` of the annotations.
        results: list of COCO keypoint result dicts (checked: ``load_results``).
        meta: ``DatasetMeta`` of the set (flip index, sigmas, keypoint names).

    As COCOeval, only the 20 best-scored detections of an image (``maxDets``) are
    matched, so the others are neither classified nor background errors. ``background``
    counts the errors of the results as given; the ``background_fp``/``background_fn``
    steps, as the reference, match the corrected and rescored results again at OKS 0.1
    and leave out what is unmatched then (ignored: neither true nor false).

    Returns:
        JSON-ready dict: ``counts`` (over all matched keypoints), ``shares``,
        ``keypoints`` (their number), ``per_keypoint``, ``by_size``,
        ``by_visible_keypoints``, ``matched_detections``, ``background`` (counts,
        0-based entries of the false positives in ``results``, annotation ids of the
        false negatives), ``ap_steps`` (AP, AP50, AP75 after each step of
        ``CORRECTION_STEPS``), ``recall`` and ``pr_curves`` (COCOeval's precision at
        OKS .5 on its 101 recall points, per step; -1 where there is no ground truth).
    """
    matching = _cocoeval(coco, results, meta.sigmas_array, oks_thresholds=[LOCALIZATION_OKS])
    dt_to_gt, false_pos, false_neg = _matches_at_all_areas(matching)
    classes = _classify_matches(coco, results, dt_to_gt, meta)
    steps, curves = _correction_steps(coco, results, classes, dt_to_gt, meta)
    return {
        **_counts(list(classes.values())),
        "per_keypoint": {name: _counts([c[j] for c in classes.values()])
                         for j, name in enumerate(meta.keypoint_names)},
        "by_size": _breakdown(classes, dt_to_gt, coco, _size_label, SIZE_RANGES),
        "by_visible_keypoints": _breakdown(classes, dt_to_gt, coco, _visible_label,
                                           [name for name, _, _ in VISIBLE_BINS]),
        "matched_detections": len(classes),
        "background": {"false_positives": len(false_pos), "false_negatives": len(false_neg),
                       "detections": len(results),
                       "false_positive_entries": sorted(i - 1 for i in false_pos),
                       "false_negative_ids": sorted(false_neg)},
        "ap_steps": steps,
        "recall": [float(r) for r in matching.params.recThrs],
        "pr_curves": curves,
        "thresholds": {"localization_oks": LOCALIZATION_OKS, "good_ks": GOOD_KS,
                       "jitter_ks": JITTER_KS},
    }


def match_and_classify(coco, results, meta: DatasetMeta):
    """``(detection id → ground-truth id, {entry of results: (K,) classes})``: the matching
    at OKS 0.1 and the classes of the matched detections, computed once for
    :func:`class_counts_by_image` and :func:`corrected_results`."""
    matching = _cocoeval(coco, results, meta.sigmas_array, oks_thresholds=[LOCALIZATION_OKS])
    dt_to_gt, _, _ = _matches_at_all_areas(matching)
    return dt_to_gt, _classify_matches(coco, results, dt_to_gt, meta)


def class_counts_by_image(coco, results, meta: DatasetMeta, classified=None):
    """Each image's count of matched keypoints per class: what a comparison resamples.

    ``classified``: :func:`match_and_classify`'s result when the caller has it.

    Returns:
        ``(image_ids (I,) int64, counts (I, 5) int64)`` over every image of the
        annotations (sorted ids; zeros where nothing was matched), columns in
        ``KEYPOINT_CLASSES`` order. The sums over the images are :func:`diagnose`'s
        ``counts``.
    """
    _, classes = classified or match_and_classify(coco, results, meta)
    image_ids = np.asarray(sorted(coco.getImgIds()), np.int64)
    row_of = {int(image_id): row for row, image_id in enumerate(image_ids)}
    counts = np.zeros((len(image_ids), len(KEYPOINT_CLASSES)), np.int64)
    for index, labels in classes.items():
        labelled = labels[labels >= 0]
        np.add.at(counts, (row_of[int(results[index]["image_id"])], labelled), 1)
    return image_ids, counts


def _classify_matches(coco, results, dt_to_gt, meta):
    """{entry of ``results``: (K,) classes} of the detections matched to a ground truth
    with keypoints (a crowd region or a person without keypoints has nothing to compare
    with; COCOeval ignores them too)."""
    k = meta.num_keypoints
    classes = {}
    for dt_id, gt_id in sorted(dt_to_gt.items()):
        gt = coco.anns[gt_id]
        if gt.get("iscrowd", 0) or not gt.get("num_keypoints", 0):
            continue
        image_anns = coco.loadAnns(coco.getAnnIds(imgIds=gt["image_id"]))
        others = [(np.asarray(a["keypoints"], np.float64).reshape(k, 3), float(a["area"]))
                  for a in image_anns if a["id"] != gt_id and a.get("keypoints")]
        truth = (np.asarray(gt["keypoints"], np.float64).reshape(k, 3), float(gt["area"]))
        detection = np.asarray(results[dt_id - 1]["keypoints"], np.float64).reshape(k, 3)
        classes[dt_id - 1] = classify_keypoints(detection, truth, others, meta.sigmas_array,
                                                meta.flip_index_array)
    return classes


# The steps whose corrected results are a results set of their own (the background steps
# only mark detections and ground truths as ignored in COCOeval).
RESULT_STEPS = ("original", *KEYPOINT_ERRORS, "score")


def _corrected(coco, results, classes, dt_to_gt, meta):
    """{step of ``RESULT_STEPS``: results}: the original results, then each keypoint error
    corrected on top of the ones before, then every detection rescored by its best OKS."""
    k = meta.num_keypoints
    sets = {"original": results}
    current = copy.deepcopy(results)
    for error in KEYPOINT_ERRORS:
        # The reference moves a corrected keypoint to the ks it had against the wrong
        # target (miss: to ks 0.5, jitter: to 0.85); the issue asks for the ground truth.
        wrong = {index: labels == KEYPOINT_CLASSES.index(error)
                 for index, labels in classes.items()}
        for index, moved in wrong.items():
            truth = np.asarray(coco.anns[dt_to_gt[index + 1]]["keypoints"],
                               np.float64).reshape(k, 3)
            kpts = np.asarray(current[index]["keypoints"], np.float64).reshape(k, 3)
            kpts[moved, :2] = truth[moved, :2]
            current[index]["keypoints"] = [float(v) for v in kpts.reshape(-1)]  # (3K,)
        sets[error] = copy.deepcopy(current)
    sets["score"] = _rescore_by_best_oks(coco, current, meta.sigmas_array)
    return sets


def corrected_results(coco, results, meta: DatasetMeta, classified=None) -> dict:
    """{step of ``RESULT_STEPS``: results with the errors up to that step corrected}: what
    a comparison evaluates to put intervals on the AP after each fix. ``classified``: as
    :func:`class_counts_by_image`."""
    dt_to_gt, classes = classified or match_and_classify(coco, results, meta)
    return _corrected(coco, results, classes, dt_to_gt, meta)


def _correction_steps(coco, results, classes, dt_to_gt, meta):
    """({step: AP, AP50, AP75}, {step: precision at OKS .5}) of the original results and
    after each correction of ``CORRECTION_STEPS``, each on top of the ones before."""
    sigmas = meta.sigmas_array
    steps, curves = {}, {}
    sets = _corrected(coco, results, classes, dt_to_gt, meta)
    for step in RESULT_STEPS[:-1]:
        steps[step], curves[step] = _accumulate(_cocoeval(coco, sets[step], sigmas))
    current = sets["score"]
    final = _cocoeval(coco, current, sigmas)
    steps["score"], curves["score"] = _accumulate(final)
    _, false_pos, false_neg = _matches_at_all_areas(
        _cocoeval(coco, current, sigmas, oks_thresholds=[LOCALIZATION_OKS]))
    for e in filter(None, final.evalImgs):  # as the reference: ignored, neither true nor false
        for column, dt_id in enumerate(e["dtIds"]):
            if dt_id in false_pos:
                e["dtIgnore"][:, column] = True
    steps["background_fp"], curves["background_fp"] = _accumulate(final)
    for e in filter(None, final.evalImgs):
        for row, gt_id in enumerate(e["gtIds"]):
            if gt_id in false_neg:
                e["gtIgnore"][row] = 1
    steps["background_fn"], curves["background_fn"] = _accumulate(final)
    return steps, curves


def _rescore_by_best_oks(coco, results, sigmas):
    """Each detection's score becomes its best OKS with a counted ground truth (not
    crowd, with keypoints) of its image, 0 without one. COCOeval computes the OKS, for
    all detections of an image (``maxDets`` raised to the most of any image)."""
    per_image = {}
    for r in results:
        per_image[r["image_id"]] = per_image.get(r["image_id"], 0) + 1
    ev = _cocoeval(coco, results, sigmas, oks_thresholds=[LOCALIZATION_OKS],
                   max_dets=max(per_image.values()))
    best = {}
    for (image_id, category_id), oks in ev.ious.items():
        if len(oks) == 0:
            continue
        dts = ev._dts[image_id, category_id]
        gts = ev._gts[image_id, category_id]
        order = np.argsort([-d["score"] for d in dts], kind="mergesort")  # COCOeval's order
        counted = np.asarray([not g["ignore"] for g in gts], bool)  # (G,)
        oks = np.where(counted[None, :], np.asarray(oks), 0.0)  # (D, G)
        for row, index in enumerate(order):
            best[dts[index]["id"]] = float(oks[row].max())
    rescored = copy.deepcopy(results)
    for index, r in enumerate(rescored):
        r["score"] = best.get(index + 1, 0.0)
    return rescored


def _size_label(gt):
    return next((name for name, (low, high) in SIZE_RANGES.items()
                 if low <= gt["area"] < high), None)


def _visible_label(gt):
    return next((name for name, low, high in VISIBLE_BINS
                 if low <= gt["num_keypoints"] <= high), None)


def _breakdown(classes, dt_to_gt, coco, label_of, names):
    """Counts and shares of the matched keypoints grouped by ``label_of(ground truth)``
    into the groups ``names`` (instances outside every group, e.g. small people by size,
    are left out)."""
    groups = {}
    for index, labels in classes.items():
        label = label_of(coco.anns[dt_to_gt[index + 1]])
        if label is not None:
            groups.setdefault(label, []).append(labels)
    return {name: {**_counts(groups.get(name, [])), "instances": len(groups.get(name, []))}
            for name in names}


def format_diagnosis(report: dict, source: str = "") -> str:
    """``diagnosis.md``: the report's tables in Markdown."""
    lines = ["# Keypoint error diagnosis (Ronchi & Perona, ICCV 2017)", ""]
    if source:
        lines += [source, ""]

    def header(first):
        return "| " + " | ".join([first, *KEYPOINT_CLASSES, "keypoints"]) + " |"

    rule = "|" + "|".join(["---"] * (len(KEYPOINT_CLASSES) + 2)) + "|"

    def row(name, part):
        cells = [f"{part['counts'][c]} ({100 * part['shares'][c]:.1f}%)"
                 for c in KEYPOINT_CLASSES]
        return "| " + " | ".join([name, *cells, str(part["keypoints"])]) + " |"

    lines += [f"Matched detections (OKS ≥ {LOCALIZATION_OKS}): {report['matched_detections']}",
              "", "## Keypoint errors", "", header("keypoint"), rule, row("all", report)]
    lines += [row(name, part) for name, part in report["per_keypoint"].items()]
    for title, key in (("By instance size", "by_size"),
                       ("By number of labelled keypoints", "by_visible_keypoints")):
        lines += ["", f"## {title}", "", header("group (people)"), rule]
        lines += [row(f"{name} ({part['instances']})", part)
                  for name, part in report[key].items()]
    background = report["background"]
    lines += ["", "## Background errors", "",
              f"- false positives (detections unmatched at OKS {LOCALIZATION_OKS}): "
              f"{background['false_positives']} of {background['detections']}",
              f"- false negatives (counted ground truths unmatched at OKS "
              f"{LOCALIZATION_OKS}): {background['false_negatives']}",
              "", "## AP after correcting each error in turn", "",
              "| step | AP | AP50 | AP75 |", "|---|---|---|---|"]
    lines += [f"| {step} | {s['AP']:.3f} | {s['AP50']:.3f} | {s['AP75']:.3f} |"
              for step, s in report["ap_steps"].items()]
    return "\n".join(lines) + "\n"


_CLASS_COLOURS = {"good": "#4F9D69", "jitter": "#8C4646", "inversion": "#D96459",
                  "swap": "#F2AE72", "miss": "#F2E394"}


def _plot_errors(report, path):
    """Stacked bars of the class shares per keypoint type (and all keypoints)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    parts = {"all": report, **report["per_keypoint"]}
    fig = Figure(figsize=(max(6.0, 0.5 * len(parts) + 2), 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    bottom = np.zeros(len(parts))
    for name in KEYPOINT_CLASSES:
        shares = np.asarray([part["shares"][name] for part in parts.values()])
        ax.bar(range(len(parts)), shares, bottom=bottom, label=name,
               color=_CLASS_COLOURS[name])
        bottom += shares
    ax.set_xticks(range(len(parts)), list(parts), rotation=60, ha="right")
    ax.set_ylabel("share of matched keypoints")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", bbox_to_anchor=(1, 1))
    fig.tight_layout()
    fig.savefig(path, format="png")


def _plot_pr(report, path):
    """Precision-recall at OKS .5 after each correction, areas between filled."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    recall = np.asarray(report["recall"])
    previous = None
    for step, precision in report["pr_curves"].items():
        precision = np.clip(np.asarray(precision), 0, None)  # -1: no ground truth
        ax.plot(recall, precision, lw=1.5,
                label=f"{step}: AP50 {report['ap_steps'][step]['AP50']:.3f}")
        if previous is not None:
            ax.fill_between(recall, previous, precision, where=precision >= previous,
                            alpha=0.3)
        previous = precision
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision (OKS .5)")
    ax.grid(True)
    ax.legend(loc="upper left", bbox_to_anchor=(1, 1), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")


def write_diagnosis(report: dict, out_dir, source: str = "") -> tuple:
    """Write ``DIAGNOSIS_OUTPUTS`` (JSON, Markdown, two PNG figures) into ``out_dir``."""
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    write_json(report, os.path.join(out_dir, "diagnosis.json"))
    write_text(format_diagnosis(report, source), os.path.join(out_dir, "diagnosis.md"))
    for name, plot in (("diagnosis_errors.png", _plot_errors), ("diagnosis_pr.png", _plot_pr)):
        buffer = io.BytesIO()
        plot(report, buffer)
        write_bytes(buffer.getvalue(), os.path.join(out_dir, name))
    return DIAGNOSIS_OUTPUTS


def diagnose_files(annotations, results, out_dir, meta=None, dataset=None) -> dict:
    """Diagnose a results file against an annotation file; write the outputs.

    Args:
        annotations: COCO keypoint annotation file (or its ``COCO`` object).
        results: COCO keypoint results JSON.
        out_dir: folder for ``DIAGNOSIS_OUTPUTS``.
        meta: ``DatasetMeta``, or None: from the annotations' category, with the sigmas
            and flip pairs of ``dataset`` (a preset name or metadata YAML) when given,
            else COCO's sigmas.
        dataset: str or None, see ``meta``.

    Returns:
        the report of :func:`diagnose`.
    """
    coco = load_coco(annotations) if isinstance(annotations, (str, os.PathLike)) else annotations
    if meta is None:
        meta = DatasetMeta.from_coco(
            coco, data=SimpleNamespace(dataset=dataset) if dataset else None)
    report = diagnose(coco, load_results(results, coco, meta.num_keypoints), meta)
    write_diagnosis(report, out_dir, source=f"{os.fspath(results)} against "
                    f"{getattr(coco, 'annotation_file', 'the annotations')}")
    return report
