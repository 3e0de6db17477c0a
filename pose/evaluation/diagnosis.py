"""Keypoint error diagnosis of a COCO results set (Ronchi & Perona, ICCV 2017).

"Benchmarking and Error Diagnosis in Multi-Instance Pose Estimation" explains a pose
estimator's AP by the kind of its mistakes; this module follows the definitions of the
authors' code (matteorr/coco-analyze, ``pycocotools/cocoanalyze.py``) with its own code:

- Detections are matched to ground truth as pycocotools' ``COCOeval`` matches them, at
  the low localisation threshold OKS 0.1, so that a badly placed person still has its person.
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

Definitions: the above are issue 27's (``definitions="issue"``, the default). Where
coco-analyze's code differs, ``definitions="coco-analyze"`` follows it: the class is the
argmax over the own keypoint, the counterpart and the other people's (good only from
ks > 0.85 and on the own keypoint), the keypoints are corrected to a ks rather than onto
the ground truth, in the order miss, swap, inversion, jitter, the rescoring adds
soft-NMS, and the background steps ignore what is unmatched at each OKS threshold.
tests/data/coco_analyze/README.md lists the differences; with that option the numbers of
coco-analyze itself, stored there, are reproduced.

Speed: every evaluation (the matching at OKS 0.1, the AP of each step, the best OKS of
the rescoring) is :mod:`pose.evaluation.keypoint_eval`, pycocotools' keypoint COCOeval
on arrays with the annotations indexed once; it gives pycocotools' numbers to the bit
(tested against it), several times faster than one ``COCOeval.evaluate()``.

Example:
    >>> coco = load_coco("person_keypoints_val2017.json")
    >>> meta = DatasetMeta.from_coco(coco)
    >>> results = load_results("keypoints_results.json", coco, meta.num_keypoints)
    ... # (pose.evaluation.diagnosis_files: reading results files, writing the outputs)
    >>> report = diagnose(coco, results, meta)
    >>> report["counts"]
    {'good': 8012, 'jitter': 1650, 'inversion': 210, 'swap': 95, 'miss': 620}
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from datasets.metadata import DatasetMeta
from pose.evaluation.keypoint_eval import (
    OKS_THRESHOLDS,
    RECALL_THRESHOLDS,
    Detections,
    GroundTruth,
    accumulate,
    best_oks,
    match,
    summary,
)

KEYPOINT_CLASSES = ("good", "jitter", "inversion", "swap", "miss")
# The keypoint errors, corrected cumulatively in this order (the order; the
# reference corrects miss, swap, inversion, jitter).
KEYPOINT_ERRORS = ("jitter", "inversion", "swap", "miss")
CORRECTION_STEPS = ("original", *KEYPOINT_ERRORS, "score", "background_fp", "background_fn")
# coco-analyze's order (its Params.err_types)
REFERENCE_ERRORS = ("miss", "swap", "inversion", "jitter")
# "issue": the definitions of issue 27 (the default); "coco-analyze": the reference's own
DEFINITIONS = ("issue", "coco-analyze")

LOCALIZATION_OKS = 0.1  # the reference's oksLocThrs
GOOD_KS = 0.85  # the reference's jitterKsThrs[1]
JITTER_KS = 0.5  # the reference's jitterKsThrs[0]

# COCOeval's keypoint area ranges (Params.setKpParams) by which instances are broken down.
SIZE_RANGES = {"medium": (32.0 ** 2, 96.0 ** 2), "large": (96.0 ** 2, math.inf)}
# Bins of the ground truth's number of labelled keypoints: (label, lowest, highest).
VISIBLE_BINS = (("1-5", 1, 5), ("6-10", 6, 10), ("11-15", 11, 15), ("16+", 16, math.inf))


__all__ = ["KEYPOINT_CLASSES", "CORRECTION_STEPS", "DEFINITIONS", "correction_steps",
           "classify_keypoints", "diagnose", "class_counts_by_image", "corrected_results",
           "match_and_classify", "RESULT_STEPS"]



def _check_definitions(definitions):
    if definitions not in DEFINITIONS:
        raise ValueError(f"definitions must be one of {', '.join(DEFINITIONS)}; got "
                         f"{definitions!r}")
    return definitions


def correction_steps(definitions="issue") -> tuple:
    """The steps of ``ap_steps`` in order for ``definitions``: the original results, the
    keypoint errors corrected one after the other, rescoring, then the background errors."""
    errors = KEYPOINT_ERRORS if _check_definitions(definitions) == "issue" else REFERENCE_ERRORS
    return ("original", *errors, "score", "background_fp", "background_fn")


class _Prepared:
    """The annotations indexed once (:class:`GroundTruth`), the results as arrays, and
    the matching of the results at the localisation threshold OKS 0.1."""

    def __init__(self, coco, results, meta):
        self.coco, self.results, self.meta = coco, results, meta
        self.gt = GroundTruth(coco, meta.sigmas_array)
        self.det = Detections.from_results(results, self.gt)
        self.localization = match(self.gt, self.det, [LOCALIZATION_OKS])


def _localization_matches(prepared, matching=None):
    """(detection id → ground-truth id, unmatched counted detection ids, unmatched counted
    ground-truth ids) of a matching at one threshold (default: at OKS 0.1), all areas."""
    gt, m = prepared.gt, matching or prepared.localization
    matched = m.matched[0]
    hit = matched >= 0
    dt_to_gt = dict(zip((m.detections[hit] + 1).tolist(), gt.ids[matched[hit]].tolist()))
    false_pos = set((m.detections[~hit & ~m.dt_ignore[0]] + 1).tolist())
    in_evaluated = m.evaluated[gt.unit]
    false_neg = set(gt.ids[in_evaluated & ~m.gt_matched[0] & ~m.gt_ignore].tolist())
    return dt_to_gt, false_pos, false_neg


def _ks(xy, keypoints, area, sigmas):
    """ks of detected keypoints against ground-truth keypoints (COCOeval's per-keypoint
    term, with the ground truth's area); -1 where the ground truth does not label it.

    Args:
        xy: (..., K, 2) detected positions.
        keypoints: (..., K, 3) ground-truth x, y, visibility.
        area: (...) the ground truths' areas.
        sigmas: (K,) OKS sigmas.
    """
    squared = ((xy - keypoints[..., :2]) ** 2).sum(axis=-1)  # (..., K)
    ks = np.exp(-squared / (2.0 * sigmas) ** 2
                / (np.asarray(area, np.float64)[..., None] + np.spacing(1)) / 2.0)
    return np.where(keypoints[..., 2] > 0, ks, -1.0)


def _classes(own, flipped, other, other_flipped, definitions):
    """(M, K) class indices from the keypoint similarities against the matched person's
    keypoint, its counterpart, and (the best over) the other persons' keypoint and
    counterpart; -1 where the matched person does not label the keypoint. Also returns
    the best similarity of each keypoint over all four (the reference's ``oks_max``)."""
    index = KEYPOINT_CLASSES.index
    best = np.maximum(np.maximum(own, other), np.maximum(flipped, other_flipped))
    classes = np.full(own.shape, index("miss"), np.int64)
    if definitions == "issue":
        wrong = np.maximum(flipped, np.maximum(other, other_flipped))
        wrong_person = wrong >= JITTER_KS
        other_any = np.maximum(other, other_flipped)
        classes[wrong_person & (other_any > flipped)] = index("swap")
        classes[wrong_person & (flipped >= other_any)] = index("inversion")
        classes[own >= JITTER_KS] = index("jitter")
        classes[own >= GOOD_KS] = index("good")
    else:  # coco-analyze: the argmax over [own, others, own flipped, others flipped]
        on_own = own >= best
        on_flipped = ~on_own & (other < best) & (flipped >= best)
        on_other = ~on_own & ~on_flipped
        reached = best >= JITTER_KS
        classes[reached & on_other] = index("swap")
        classes[reached & on_flipped] = index("inversion")
        classes[reached & on_own] = index("jitter")
        # the reference's good is ks > 0.85, and ks = 0.85 exactly falls into no class
        # there; here it is good, as the ks ≥ 0.85
        classes[(best >= GOOD_KS) & on_own] = index("good")
    classes[own < 0] = -1
    return classes, best


def classify_keypoints(detection, truth, others, sigmas, flip_index,
                       definitions="issue") -> np.ndarray:
    """The class (index into ``KEYPOINT_CLASSES``) of each keypoint of one matched detection.

    As the reference, the counterpart of keypoint k is the ground truth's
    ``flip_index[k]`` (a centre keypoint is its own counterpart, so it is never an
    inversion), another person's keypoint is its k or its counterpart, each with that
    person's area and the sigma of k. Where the issue and the reference differ the issue
    is followed by default (``definitions="issue"``): the reference takes the argmax over
    all persons (a keypoint with ks 0.6 but 0.9 against the counterpart is an inversion
    there) and calls ks > 0.85 good; here a keypoint is good or jitter by its own ks first
    (good from ks ≥ 0.85), and only a keypoint below 0.5 is an inversion or a swap,
    whichever similarity is higher (a tie is an inversion). ``definitions="coco-analyze"``
    follows the reference.

    Args:
        detection: (K, 3) detected x, y, score.
        truth: ((K, 3) x, y, visibility, area) of the matched ground truth.
        others: list of ((K, 3) keypoints, area) of the other persons of the image.
        sigmas: (K,) OKS sigmas.
        flip_index: (K,) int, the left/right counterpart of each keypoint.
        definitions: ``"issue"`` or ``"coco-analyze"`` (see above).

    Returns:
        int64 (K,): 0..4 for good, jitter, inversion, swap, miss; -1 where the ground
        truth does not label the keypoint.
    """
    _check_definitions(definitions)
    keypoints, area = truth
    xy = np.asarray(detection, np.float64)[:, :2]
    keypoints = np.asarray(keypoints, np.float64)
    own = _ks(xy, keypoints, area, sigmas)
    flipped = _ks(xy, keypoints[flip_index], area, sigmas)
    other = np.full(len(xy), -1.0)
    other_flipped = np.full(len(xy), -1.0)
    for person, person_area in others:
        person = np.asarray(person, np.float64)
        other = np.maximum(other, _ks(xy, person, person_area, sigmas))
        other_flipped = np.maximum(other_flipped,
                                   _ks(xy, person[flip_index], person_area, sigmas))
    return _classes(own, flipped, other, other_flipped, definitions)[0]


def _counts(classes) -> dict:
    """{class: count} and {class: share} of the labelled keypoints in ``classes``."""
    flat = np.asarray(classes, np.int64).reshape(-1)
    flat = flat[flat >= 0]
    counts = {name: int((flat == i).sum()) for i, name in enumerate(KEYPOINT_CLASSES)}
    total = max(int(flat.size), 1)
    return {"counts": counts, "shares": {n: c / total for n, c in counts.items()},
            "keypoints": int(flat.size)}


def diagnose(coco, results, meta: DatasetMeta, definitions: str = "issue") -> dict:
    """The error taxonomy of ``results`` against the annotations ``coco``.

    Args:
        coco: ``pycocotools.coco.COCO`` of the annotations.
        results: list of COCO keypoint result dicts (checked: ``load_results``).
        meta: ``DatasetMeta`` of the set (flip index, sigmas, keypoint names).
        definitions: ``"issue"`` (default) or ``"coco-analyze"``: the reference's own
            definitions where they differ (see the module's docstring); the stored
            reference numbers of ``tests/data/coco_analyze`` are reproduced with it.

    As COCOeval, only the 20 best-scored detections of an image (``maxDets``) are
    matched, so the others are neither classified nor background errors. ``background``
    counts the errors of the results as given (at OKS 0.1). The AP of each step is what
    pycocotools' COCOeval gives on the corrected results (computed by
    :mod:`pose.evaluation.keypoint_eval`, which reproduces it exactly).

    Returns:
        JSON-ready dict: ``counts`` (over all matched keypoints), ``shares``,
        ``keypoints`` (their number), ``per_keypoint``, ``by_size``,
        ``by_visible_keypoints``, ``matched_detections``, ``background`` (counts,
        0-based entries of the false positives in ``results``, annotation ids of the
        false negatives), ``ap_steps`` (AP, AP50, AP75 after each step of
        :func:`correction_steps`), ``recall`` and ``pr_curves`` (COCOeval's precision at
        OKS .5 on its 101 recall points, per step; -1 where there is no ground truth),
        ``definitions``.
    """
    _check_definitions(definitions)
    prepared = _Prepared(coco, results, meta)
    dt_to_gt, false_pos, false_neg = _localization_matches(prepared)
    matched = _classify_matches(prepared, definitions)
    classes = matched.by_entry()
    steps, curves = _correction_steps(prepared, matched, definitions)
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
        "recall": [float(r) for r in RECALL_THRESHOLDS],
        "pr_curves": curves,
        "thresholds": {"localization_oks": LOCALIZATION_OKS, "good_ks": GOOD_KS,
                       "jitter_ks": JITTER_KS},
        "definitions": definitions,
    }


def match_and_classify(coco, results, meta: DatasetMeta, definitions: str = "issue"):
    """``(detection id → ground-truth id, {entry of results: (K,) classes})``: the matching
    at OKS 0.1 and the classes of the matched detections, computed once for
    :func:`class_counts_by_image` and :func:`corrected_results`."""
    _check_definitions(definitions)
    prepared = _Prepared(coco, results, meta)
    dt_to_gt, _, _ = _localization_matches(prepared)
    matched = _classify_matches(prepared, definitions)
    classes = matched.by_entry()
    # what corrected_results needs to skip the matching again
    classes = _Classified(classes, prepared=prepared, matched=matched,
                          definitions=definitions)
    return dt_to_gt, classes


class _Classified(dict):
    """``{entry: classes}`` that remembers how it was computed (for corrected_results)."""

    def __init__(self, classes, prepared, matched, definitions):
        super().__init__(classes)
        self.prepared, self.matched, self.definitions = prepared, matched, definitions


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


@dataclasses.dataclass
class _Matched:
    """The classified detections: entries (M,) of the results, their people (M,) (rows
    of the ``GroundTruth``), classes (M, K), and where each keypoint's correction puts it
    (M, K, 2)."""

    entries: np.ndarray
    people: np.ndarray
    classes: np.ndarray
    targets: np.ndarray

    def by_entry(self):
        return {int(e): c for e, c in zip(self.entries, self.classes)}


def _classify_matches(prepared, definitions) -> _Matched:
    """Classify every detection matched at OKS 0.1 to a person with keypoints (a crowd
    region or a person without keypoints has nothing to compare with; COCOeval ignores
    them too): all pairs of matched detections and other persons of their image at once."""
    gt, det, meta = prepared.gt, prepared.det, prepared.meta
    m = prepared.localization
    hit = (m.matched[0] >= 0) & ~gt.ignore[np.maximum(m.matched[0], 0)]
    entries, people = m.detections[hit], m.matched[0][hit]
    order = np.argsort(entries, kind="stable")  # entry order (detection ids ascending)
    entries, people = entries[order], people[order]
    sigmas, flip = meta.sigmas_array, meta.flip_index_array
    xy = det.keypoints[entries, :, :2]  # (M, K, 2)
    truth = gt.keypoints[people]  # (M, K, 3)
    area = gt.area[people]
    own = _ks(xy, truth, area, sigmas)
    flipped = _ks(xy, truth[:, flip], area, sigmas)
    # every other person with keypoints of the same image (any category, as the reference)
    num_images = len(gt.image_ids)
    image_of = gt.unit % num_images
    has_keypoints = np.asarray([bool(a.get("keypoints")) for a in gt.anns], bool)
    order, starts, counts = _image_groups(image_of, num_images)
    pair_i, pair_h = _pairs_in_images(image_of[people], order, starts, counts)
    keep = (pair_h != people[pair_i]) & has_keypoints[pair_h]
    pair_i, pair_h = pair_i[keep], pair_h[keep]
    other = np.full(own.shape, -1.0)
    other_flipped = np.full(own.shape, -1.0)
    np.maximum.at(other, pair_i, _ks(xy[pair_i], gt.keypoints[pair_h], gt.area[pair_h],
                                     sigmas))
    np.maximum.at(other_flipped, pair_i, _ks(xy[pair_i], gt.keypoints[pair_h][:, flip],
                                             gt.area[pair_h], sigmas))
    classes, best = _classes(own, flipped, other, other_flipped, definitions)
    targets = truth[:, :, :2].copy()  # the issue: onto the ground truth
    if definitions == "coco-analyze":
        targets = _reference_targets(xy, truth, area, sigmas, classes, best)
    return _Matched(entries, people, classes, targets)


def _image_groups(image_of, num_images):
    order = np.argsort(image_of, kind="stable")
    counts = np.bincount(image_of, minlength=num_images)
    starts = np.zeros(num_images, np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    return order, starts, counts


def _pairs_in_images(images, order, starts, counts):
    """(i, person) for every person of the image ``images[i]``."""
    n = counts[images]
    pair_i = np.repeat(np.arange(len(images)), n)
    first = np.zeros(len(images), np.int64)
    np.cumsum(n[:-1], out=first[1:])
    return pair_i, order[starts[images][pair_i] + np.arange(len(pair_i)) - first[pair_i]]


def _reference_targets(xy, truth, area, sigmas, classes, best):
    """Where coco-analyze moves a corrected keypoint: onto the ground truth's y, and its
    x shifted by the distance "at" a ks (a jitter: 0.85, a miss: 0.5, an inversion or a
    swap: the ks it had against the wrong keypoint), from ``d = sqrt(-log(ks) · 2 · area
    · σ²)``. (That distance gives the similarity ks^(1/4), not ks, under COCOeval's
    ``exp(-d² / (2 · area · (2σ)²))``: jitter is corrected to 0.96 and miss to 0.84.)
    Good and unlabelled keypoints stay where they are."""
    index = KEYPOINT_CLASSES.index
    area = area[:, None]
    low = np.sqrt(-np.log(JITTER_KS) * 2 * area * (sigmas ** 2))
    high = np.sqrt(-np.log(GOOD_KS) * 2 * area * (sigmas ** 2))
    best = np.where(best < 0, 0.0, best)
    rounded = best + np.spacing(1) * (best == 0) - np.spacing(1) * (best == 1)
    at_best = np.sqrt(-np.log(rounded) * 2 * area * (sigmas ** 2))
    shift = np.select([classes == index("jitter"), classes == index("miss"),
                       (classes == index("inversion")) | (classes == index("swap"))],
                      [high, low, at_best], 0.0)
    targets = xy.copy()
    moved = (classes > index("good"))
    targets[..., 0] = np.where(moved, truth[..., 0] + shift, xy[..., 0])
    targets[..., 1] = np.where(moved, truth[..., 1], xy[..., 1])
    return targets


# The steps whose corrected results are a results set of their own (the background steps
# only mark detections and ground truths as ignored in COCOeval).
RESULT_STEPS = ("original", *KEYPOINT_ERRORS, "score")


def _corrected_keypoints(prepared, matched, definitions):
    """{step: (N, K, 3) keypoints}: the original keypoints, then each keypoint error
    corrected on top of the ones before (in :func:`correction_steps` order)."""
    current = prepared.det.keypoints
    sets = {"original": current}
    for error in correction_steps(definitions)[1:-3]:
        rows, columns = np.nonzero(matched.classes == KEYPOINT_CLASSES.index(error))
        current = current.copy()
        current[matched.entries[rows], columns, :2] = matched.targets[rows, columns]
        sets[error] = current
    return sets


def _rescored(prepared, keypoints, definitions):
    """Each detection's score becomes its best OKS with a counted ground truth (not
    crowd, with keypoints) of its image, 0 without one; coco-analyze then decays those
    scores by soft non-maximum suppression within each image."""
    det = prepared.det.replace(keypoints=keypoints)
    scores = best_oks(prepared.gt, det)
    if definitions == "coco-analyze":
        scores = _reference_soft_nms(prepared, keypoints, scores)
    return scores


def _reference_soft_nms(prepared, keypoints, scores):
    """coco-analyze's ``_soft_nms``: per image, the detections in results order; take the
    best-scored (stable), decay every remaining score by ``exp(-oks² / 0.5)`` with the
    OKS between the two over all keypoints (the mean of their keypoint boxes' areas)."""
    det, gt = prepared.det, prepared.gt
    variances = gt.variances
    x, y = keypoints[:, :, 0], keypoints[:, :, 1]
    areas = (x.max(axis=1) - x.min(axis=1)) * (y.max(axis=1) - y.min(axis=1))
    out = scores.copy()
    valid = np.flatnonzero(det.unit >= 0)
    for unit_rows in np.split(valid[np.argsort(det.unit[valid], kind="stable")],
                              np.flatnonzero(np.diff(np.sort(det.unit[valid]))) + 1):
        remaining = list(unit_rows)
        while remaining:
            remaining.sort(key=lambda i: -out[i])
            best, remaining = remaining[0], remaining[1:]
            if not remaining:
                break
            rest = np.asarray(remaining)
            e = (((x[rest] - x[best]) ** 2 + (y[rest] - y[best]) ** 2) / variances
                 / ((.5 * (areas[best] + areas[rest])) + np.spacing(1))[:, None] / 2)
            oks = np.sum(np.exp(-e), axis=1) / e.shape[1]
            out[rest] = out[rest] * np.exp(-((oks ** 2) / .5))
    return out


def _as_results(results, keypoints=None, scores=None):
    """A copy of ``results`` with other keypoints (N, K, 3) and/or scores (N,)."""
    out = []
    for i, r in enumerate(results):
        r = dict(r)
        if keypoints is not None:
            r["keypoints"] = keypoints[i].reshape(-1).tolist()
        if scores is not None:
            r["score"] = float(scores[i])
        out.append(r)
    return out


def corrected_results(coco, results, meta: DatasetMeta, classified=None,
                      definitions: str = "issue") -> dict:
    """{step of ``RESULT_STEPS``: results with the errors up to that step corrected}: what
    a comparison evaluates to put intervals on the AP after each fix. ``classified``: as
    :func:`class_counts_by_image` (computed with the same ``definitions``)."""
    _check_definitions(definitions)
    if not isinstance(classified, tuple) or not isinstance(classified[1], _Classified):
        classified = match_and_classify(coco, results, meta, definitions)
    classes = classified[1]
    prepared, matched = classes.prepared, classes.matched
    keypoints = _corrected_keypoints(prepared, matched, classes.definitions)
    sets = {"original": results}
    for step in correction_steps(classes.definitions)[1:-3]:
        sets[step] = _as_results(results, keypoints[step])
    final = keypoints[correction_steps(classes.definitions)[-4]]
    sets["score"] = _as_results(results, final,
                                _rescored(prepared, final, classes.definitions))
    return {step: sets[step] for step in (*sets.keys(),)}


def _evaluated(prepared, det, dt_ignore=None, gt_ignore=None, matching=None):
    """(matching, {AP, AP50, AP75}, precision at OKS .5 over the recall points)."""
    matching = matching or match(prepared.gt, det)
    precision, _ = accumulate(prepared.gt, det, matching, dt_ignore, gt_ignore)
    return matching, summary(precision), [float(p) for p in precision[0, :, 0]]


def _correction_steps(prepared, matched, definitions):
    """({step: AP, AP50, AP75}, {step: precision at OKS .5}) of the original results and
    after each correction of :func:`correction_steps`, each on top of the ones before."""
    steps, curves = {}, {}
    keypoints = _corrected_keypoints(prepared, matched, definitions)
    for step, kpts in keypoints.items():
        _, steps[step], curves[step] = _evaluated(prepared, prepared.det.replace(kpts))
    final_keypoints = kpts
    det = prepared.det.replace(final_keypoints, _rescored(prepared, final_keypoints,
                                                          definitions))
    final, steps["score"], curves["score"] = _evaluated(prepared, det)
    gt = prepared.gt
    if definitions == "issue":
        # matched again at OKS 0.1; what is unmatched then is ignored at every threshold
        _, false_pos, false_neg = _localization_matches(
            prepared, match(gt, det, [LOCALIZATION_OKS]))
        dt_fp = np.isin(final.detections + 1, list(false_pos))[None, :]
        dt_ignore = final.dt_ignore | dt_fp
        _, steps["background_fp"], curves["background_fp"] = _evaluated(
            prepared, det, dt_ignore, matching=final)
        gt_ignore = final.gt_ignore | np.isin(gt.ids, list(false_neg))
        _, steps["background_fn"], curves["background_fn"] = _evaluated(
            prepared, det, dt_ignore, gt_ignore, matching=final)
        return steps, curves
    # coco-analyze: at each OKS threshold, the detections and the people unmatched at
    # that threshold (as its _summarize_bckgd_errors)
    dt_ignore = final.dt_ignore | (final.matched < 0)
    _, steps["background_fp"], curves["background_fp"] = _evaluated(
        prepared, det, dt_ignore, matching=final)
    gt_ignore = final.gt_ignore.copy()
    rows = []
    for t in range(len(OKS_THRESHOLDS)):  # the unmatched up to t (a subset of those at t)
        gt_ignore |= ~final.gt_matched[t]
        precision, _ = accumulate(gt, det, final, dt_ignore, gt_ignore)
        rows.append(precision[t])
    precision = np.stack(rows)
    steps["background_fn"] = summary(precision)
    curves["background_fn"] = [float(p) for p in precision[0, :, 0]]
    return steps, curves


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
