"""Paired bootstrap confidence intervals for differences in COCO keypoint AP/AR.

"Is variant B better than A?" needs more than two numbers: the AP of one validation set
moves with the images that happen to be in it. The bootstrap answers how much: draw the
images again with replacement many times, score both variants on every drawn set, and read
the 95% interval of the difference off the resampled differences. Both variants are scored
on the *same* drawn sets (paired), so what the two share (hard images, easy images) cancels
and only their difference varies.

Matching detections to people (pycocotools ``COCOeval.evaluate``, OKS per pair, greedy
matching per image) is the expensive part and does not depend on which other images are in
the set, so it runs once per variant: :class:`PerImageMatches` keeps every image's matches
(``evalImgs``) in score order, and :func:`resampled_stats` re-runs only
``COCOeval.accumulate`` + ``summarize``, vectorised over many resamples. An image drawn
``c`` times counts ``c`` times (its detections and people are repeated), which makes the
identity resample (every image once) reproduce ``COCOeval.summarize()`` exactly.

How the weighted accumulation stays exact: in ``accumulate`` only the precision at true
positives is ever read (the recall thresholds are first crossed at a true positive, and the
precision envelope is never raised by a false positive), so per OKS threshold it suffices to
know, at each true positive in score order, the weighted counts of true and false positives
so far: cumulative sums of image counts (the false positives as the counted detections so
far minus the true positives, which keeps the per-threshold work to the true positives).
Detections with equal scores in *one* image drawn several times are ordered
detection-major (pycocotools, fed the duplicated image list, would order them copy-major);
this is the only place where a resample can differ from pycocotools on a duplicated
``evalImgs`` list, and only when a tie mixes matched and unmatched detections.

Seeds: with several training seeds per variant, each bootstrap replicate also draws the
seeds with replacement (a second resampling level) and averages the variant's stat over the
drawn seeds. Variants with the same number of seeds draw the same seed positions (seed ``s``
of every variant was trained on the same data order), so identical runs give a difference
of exactly 0.

Example:
    >>> ev_a = run_cocoeval(annotations, results_a, sigmas)
    >>> ev_b = run_cocoeval(annotations, results_b, sigmas)
    >>> diffs = paired_differences({"none": [PerImageMatches.from_cocoeval(ev_a)],
    ...                             "psa": [PerImageMatches.from_cocoeval(ev_b)]})
    >>> diffs[0]["stats"]["AP"]  # {"difference", "low", "high", "excludes_zero", ...}
"""

import dataclasses
import itertools

import numpy as np

from pose.evaluation.metrics import STAT_NAMES

INTERVAL_STATS = ("AP", "AP50", "AP75", "APM", "APL", "AR")


@dataclasses.dataclass(frozen=True)
class RankedMatches:
    """The true positives of one (area range, OKS threshold), in global score order.

    The false positives ranked before a true positive are the counted detections before it
    (``AreaMatches.counted_images``: those not ignored at every threshold) minus the ones
    ignored at this threshold (``ignored_images``) minus the true positives before it, so
    only the few detections whose status changes with the threshold are listed here.
    """

    tp_images: np.ndarray  # (P,) image index of each true positive
    tp_counted_before: np.ndarray  # (P,) counted detections ranked before each one
    ignored_images: np.ndarray  # (D,) counted detections that this threshold ignores
    tp_ignored_before: np.ndarray  # (P,) of those, the ones ranked before each true positive


@dataclasses.dataclass(frozen=True)
class AreaMatches:
    """One area range: its counted detections and the matches at every OKS threshold."""

    counted_images: np.ndarray  # (C,) image of each detection not ignored at every threshold
    thresholds: tuple  # T RankedMatches


@dataclasses.dataclass(frozen=True)
class PerImageMatches:
    """One variant's per-image COCOeval matches, ready to be re-accumulated on resamples.

    Attributes:
        image_ids: (I,) the evaluated image ids (``params.imgIds``), the resampling units.
        positives: (A, I) non-ignored ground-truth people per area range and image.
        ranked: A :class:`AreaMatches`, one per area range.
        iou_thresholds: (T,) OKS thresholds; recall_thresholds: (R,) recall points.
        area_labels: the A area-range names (``all``, ``medium``, ``large``).
    """

    image_ids: np.ndarray
    positives: np.ndarray
    ranked: tuple
    iou_thresholds: np.ndarray
    recall_thresholds: np.ndarray
    area_labels: tuple

    @classmethod
    def from_cocoeval(cls, cocoeval):
        """From a keypoint ``COCOeval`` after ``evaluate()`` (see ``metrics.run_cocoeval``)."""
        p = cocoeval.params
        if not cocoeval.evalImgs:
            raise ValueError("COCOeval has no per-image results: run evaluate() first")
        if p.iouType != "keypoints" or len(p.catIds) != 1 or len(p.maxDets) != 1:
            raise ValueError("the bootstrap re-implements keypoint COCOeval with one category "
                             f"and one maxDets; got iouType={p.iouType!r}, "
                             f"catIds={p.catIds}, maxDets={p.maxDets}")
        num_images, num_areas = len(p.imgIds), len(p.areaRng)
        positives = np.zeros((num_areas, num_images), np.int64)
        ranked = []
        for a in range(num_areas):
            entries = cocoeval.evalImgs[a * num_images:(a + 1) * num_images]
            ranked.append(_rank_area(entries, positives[a], p.maxDets[-1], len(p.iouThrs)))
        return cls(image_ids=np.asarray(p.imgIds, np.int64), positives=positives,
                   ranked=tuple(ranked), iou_thresholds=np.asarray(p.iouThrs, np.float64),
                   recall_thresholds=np.asarray(p.recThrs, np.float64),
                   area_labels=tuple(p.areaRngLbl))


def _rank_area(entries, positives, max_det, num_thresholds):
    """Concatenate one area range's ``evalImgs`` in image order and sort by score as
    ``COCOeval.accumulate`` does (stable mergesort of the negated scores); fills
    ``positives`` in place."""
    scores, matched, ignored, images = [], [], [], []
    for i, entry in enumerate(entries):
        if entry is None:  # neither people nor detections in this image
            continue
        positives[i] = np.count_nonzero(entry["gtIgnore"] == 0)
        n = len(entry["dtScores"][:max_det])
        scores.append(np.asarray(entry["dtScores"][:max_det], np.float64))
        matched.append(entry["dtMatches"][:, :max_det])
        ignored.append(entry["dtIgnore"][:, :max_det])
        images.append(np.full(n, i, np.int64))
    if not scores:
        empty = np.zeros(0, np.int64)
        return AreaMatches(empty, tuple(RankedMatches(empty, empty, empty, empty)
                                        for _ in range(num_thresholds)))
    order = np.argsort(-np.concatenate(scores), kind="mergesort")
    dt_matched = np.concatenate(matched, axis=1)[:, order] != 0  # (T, N)
    dt_ignored = np.concatenate(ignored, axis=1)[:, order] != 0  # (T, N)
    det_images = np.concatenate(images)[order]  # (N,)
    counted_at = np.flatnonzero(~dt_ignored.all(axis=0))
    per_threshold = []
    for t in range(num_thresholds):
        tp_at = np.flatnonzero(dt_matched[t] & ~dt_ignored[t])
        ignored_at = np.flatnonzero(dt_ignored[t] & ~dt_ignored.all(axis=0))
        per_threshold.append(RankedMatches(
            det_images[tp_at], np.searchsorted(counted_at, tp_at),
            det_images[ignored_at], np.searchsorted(ignored_at, tp_at)))
    return AreaMatches(det_images[counted_at], tuple(per_threshold))


def _running(counts_by_image, images):
    """(n+1, B): row j is the weighted count of the first j listed detections."""
    running = np.zeros((len(images) + 1, counts_by_image.shape[1]), np.int32)
    np.cumsum(counts_by_image[images], axis=0, out=running[1:])
    return running


def _first_count_reaching(cumulative, needed):
    """Per column b and row r: the first index k with ``cumulative[k, b] >= needed[r, b]``
    (``len(cumulative)`` if none); ``cumulative`` (P, B) is non-decreasing along k."""
    length, columns = cumulative.shape
    span = int(max(cumulative.max(initial=0), needed.max(initial=0))) + 2
    offsets = np.arange(columns, dtype=np.int64) * span  # keeps the columns apart, in order
    flat = (cumulative.T.astype(np.int64) + offsets[:, None]).ravel()  # (B*P,) sorted
    targets = (needed.T + offsets[:, None]).ravel()  # (B*R,)
    found = np.searchsorted(flat, targets, side="left").reshape(columns, -1)
    return found - (np.arange(columns) * length)[:, None]  # (B, R)


def _accumulate_threshold(ranked, counts_by_image, counted_before, npig, recall_thresholds):
    """``accumulate`` for one (area, threshold): precision at recall points (B, R), recall (B,).

    ``counted_before`` (C+1, B): weighted counted detections before each counted rank."""
    columns = counts_by_image.shape[1]
    num_tp = len(ranked.tp_images)
    if num_tp == 0:
        return np.zeros((columns, len(recall_thresholds))), np.zeros(columns)
    weights = counts_by_image[ranked.tp_images]  # (P, B)
    tp = np.cumsum(weights, axis=0)  # (P, B) weighted TPs so far, this one included
    fp = (counted_before[ranked.tp_counted_before] - (tp - weights)
          - _running(counts_by_image, ranked.ignored_images)[ranked.tp_ignored_before])
    tp_f, fp_f = tp.astype(np.float64), fp.astype(np.float64)
    precision = tp_f / (fp_f + tp_f + np.spacing(1))  # (P, B), as accumulate
    envelope = np.maximum.accumulate(precision[::-1], axis=0)[::-1]
    # The smallest TP count whose recall (tp / npig, in floating point as accumulate
    # computes it) reaches each recall threshold.
    safe_npig = np.maximum(npig, 1).astype(np.float64)  # (B,)
    needed = np.ceil(recall_thresholds[:, None] * safe_npig[None]).astype(np.int64)  # (R, B)
    needed = np.where((needed - 1) / safe_npig >= recall_thresholds[:, None], needed - 1, needed)
    needed = np.where(needed / safe_npig < recall_thresholds[:, None], needed + 1, needed)
    first = _first_count_reaching(tp, np.maximum(needed, 0))  # (B, R)
    q = np.take_along_axis(envelope.T, np.minimum(first, num_tp - 1), axis=1)
    q = np.where(first < num_tp, q, 0.0)
    return q, tp_f[-1] / safe_npig


def resampled_stats(matches, counts):
    """The 10 COCO keypoint stats (``STAT_NAMES`` order) of each resample of the images.

    Args:
        matches: :class:`PerImageMatches`.
        counts: (B, I) or (I,) non-negative ints, how often each image is in a resample
            (all ones: the full set, equal to ``COCOeval.summarize()`` stats exactly).

    Returns:
        float64 (B, 10); -1 where a resample has no ground truth in a stat's area range
        (pycocotools' convention).
    """
    counts = np.atleast_2d(np.asarray(counts))
    if counts.shape[1] != len(matches.image_ids):
        raise ValueError(f"counts has {counts.shape[1]} images, the matches have "
                         f"{len(matches.image_ids)}")
    counts_by_image = np.ascontiguousarray(counts.T, dtype=np.int32)  # (I, B)
    num_resamples = counts.shape[0]
    thresholds = len(matches.iou_thresholds)
    precision, recall = [], []
    for a, area in enumerate(matches.ranked):
        npig = counts.astype(np.int64) @ matches.positives[a]  # (B,)
        counted_before = _running(counts_by_image, area.counted_images)
        q = np.empty((num_resamples, thresholds, len(matches.recall_thresholds)))
        r = np.empty((num_resamples, thresholds))
        for t, ranked in enumerate(area.thresholds):
            q[:, t], r[:, t] = _accumulate_threshold(ranked, counts_by_image, counted_before,
                                                     npig, matches.recall_thresholds)
        undefined = npig == 0
        q[undefined], r[undefined] = -1.0, -1.0
        precision.append(q)
        recall.append(r)
    return _summarize(matches, precision, recall)


def _summarize(matches, precision, recall):
    """``COCOeval.summarize`` for keypoints on (B, T, R) precision and (B, T) recall lists."""
    area = {label: i for i, label in enumerate(matches.area_labels)}
    t50 = np.flatnonzero(matches.iou_thresholds == .5)[0]
    t75 = np.flatnonzero(matches.iou_thresholds == .75)[0]

    def mean(values, undefined):  # values (B, n): the row means, -1 where undefined
        return np.where(undefined, -1.0, values.mean(axis=1))

    columns = []
    for label, t in (("all", None), ("all", t50), ("all", t75), ("medium", None),
                     ("large", None)):
        q = precision[area[label]]
        values = q.reshape(len(q), -1) if t is None else q[:, t]
        columns.append(mean(values, q[:, 0, 0] < 0))
    for label, t in (("all", None), ("all", t50), ("all", t75), ("medium", None),
                     ("large", None)):
        r = recall[area[label]]
        columns.append(mean(r if t is None else r[:, t:t + 1], r[:, 0] < 0))
    return np.stack(columns, axis=1)  # (B, 10)


def resample_image_counts(num_images, num_resamples, rng):
    """(B, I) int counts: each row is one draw of ``num_images`` images with replacement."""
    drawn = rng.integers(0, num_images, size=(num_resamples, num_images))  # (B, I) indices
    flat = (drawn + np.arange(num_resamples)[:, None] * num_images).ravel()
    return np.bincount(flat, minlength=num_resamples * num_images).reshape(
        num_resamples, num_images)


def paired_differences(matches_by_variant, num_resamples=1000, seed=0, confidence=0.95,
                       stats=INTERVAL_STATS, chunk_size=50):
    """Paired bootstrap intervals of every pair's stat differences (later − earlier variant).

    Args:
        matches_by_variant: dict ``{label: [PerImageMatches, ...]}``, one per training seed,
            all on the same images; the dict order sets the pairs' direction.
        num_resamples: int, bootstrap replicates B. Default 1000.
        seed: int, seed of the resampling (the same seed gives the same intervals).
        confidence: float, the interval's coverage (percentile interval). Default 0.95.
        stats: stat names to report. Default AP, AP50, AP75, APM, APL, AR.
        chunk_size: int, resamples accumulated at once (bounds memory).

    Returns:
        list of dicts ``{"reference": a, "variant": b, "seeds": [n_a, n_b], "stats": {name:
        {"difference", "low", "high", "excludes_zero", "undefined"}}}`` for each pair a
        before b; ``difference`` is b − a on the full image set (mean over seeds),
        ``undefined`` counts replicates without ground truth in the stat's area range.
    """
    labels = list(matches_by_variant)
    runs = [m for label in labels for m in matches_by_variant[label]]
    if len(labels) < 2 or any(not matches_by_variant[label] for label in labels):
        raise ValueError("paired_differences needs at least two variants with one run each")
    image_ids = runs[0].image_ids
    if any(not np.array_equal(m.image_ids, image_ids) for m in runs):
        raise ValueError("every run must be evaluated on the same images to be paired")
    unknown = [s for s in stats if s not in STAT_NAMES]
    if unknown:
        raise ValueError(f"unknown stats {unknown}; choose among {STAT_NAMES}")
    rng = np.random.default_rng(seed)
    counts = resample_image_counts(len(image_ids), num_resamples, rng)
    seed_draws = {n: rng.integers(0, n, size=(num_resamples, n))
                  for n in sorted({len(matches_by_variant[label]) for label in labels})}
    columns = [STAT_NAMES.index(s) for s in stats]
    full, replicates = {}, {}
    for label in labels:
        group = matches_by_variant[label]
        full[label] = np.mean([resampled_stats(m, np.ones(len(image_ids), np.int64))[0]
                               for m in group], axis=0)[columns]
        per_seed = np.stack([  # (S, B, stats)
            np.concatenate([resampled_stats(m, counts[begin:begin + chunk_size])
                            for begin in range(0, num_resamples, chunk_size)])[:, columns]
            for m in group])
        drawn = per_seed[seed_draws[len(group)], np.arange(num_resamples)[:, None]]
        drawn = np.where(drawn < 0, np.nan, drawn)  # (B, S, stats)
        replicates[label] = drawn.mean(axis=1)  # (B, stats)
    tail = (1.0 - confidence) / 2.0
    pairs = []
    for a, b in itertools.combinations(labels, 2):
        diffs = replicates[b] - replicates[a]  # (B, stats)
        entry = {}
        for j, name in enumerate(stats):
            finite = diffs[:, j][np.isfinite(diffs[:, j])]
            low, high = (np.quantile(finite, [tail, 1.0 - tail]) if finite.size
                         else (np.nan, np.nan))
            entry[name] = {"difference": float(full[b][j] - full[a][j]), "low": float(low),
                           "high": float(high),
                           "excludes_zero": bool(low > 0.0 or high < 0.0),
                           "undefined": int(num_resamples - finite.size)}
        pairs.append({"reference": a, "variant": b,
                      "seeds": [len(matches_by_variant[a]), len(matches_by_variant[b])],
                      "stats": entry})
    return pairs
