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

Seeds: a difference between two trained variants moves with the validation images *and*
with the training noise (initialisation, data order, the floating-point order of the CPU's
kernels): the same variant trained with another seed, or on another CPU kind, scores
another AP, often by more than PSA changes it. :func:`seed_aware_interval` puts both in
the interval. Seed ``s`` of one variant is paired with seed ``s`` of the other (they share
the data order), and the interval is ``d ± h`` with

    h = sqrt((t(S − 1) · s_d / sqrt(S))² + (z · s_images)²)

``d`` the mean over seeds of the per-seed differences on the full set, ``s_d`` their
standard deviation over the ``S`` seeds (the training noise), ``s_images`` the standard
deviation of the seed-averaged difference over the paired image resamples (the choice of
validation images): each source's own half-width, Student's t with ``S − 1`` degrees of
freedom for the few seeds and the normal quantile for the many image resamples, added in
quadrature. It is exact when either source dominates and errs wide when both matter: in a
simulated A/A comparison (normal seed and image noise, 4,000 trials) it held 0 in 95–97%
of trials at every mix, where Welch–Satterthwaite's pooled t held it in 92% with 3 seeds
and 88% with 2 (its degrees of freedom grow whenever the seeds happen to agree). Variants
with unequal seed counts are compared unpaired (``s_a²/S_a + s_b²/S_b`` with Welch's
degrees of freedom for the seed term). Why not resample the seeds like the images: a
bootstrap of 3 values returns little more than their range, and that held 0 in the same
simulation in 82% of trials. With one seed per variant the training noise cannot be
estimated: the interval is the paired bootstrap's percentile interval over images alone
and no verdict is drawn from it (in the simulation it held 0 in 40% of trials).

Example:
    >>> ev_a = run_cocoeval(annotations, results_a, sigmas)
    >>> ev_b = run_cocoeval(annotations, results_b, sigmas)
    >>> diffs = paired_differences({"none": [PerImageMatches.from_cocoeval(ev_a)],
    ...                             "psa": [PerImageMatches.from_cocoeval(ev_b)]})
    >>> diffs[0]["stats"]["AP"]  # {"difference", "low", "high", "shown", "interval", ...}
"""

import dataclasses
import itertools
import os

import numpy as np
from scipy import stats as scipy_stats

from pose.errors import UserError
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


def check_resample_memory(num_resamples, num_images):
    """Refuse, before allocating, a resample count whose image counts would not fit in
    half of this machine's memory (``resample_image_counts`` holds three (B, I) int64
    arrays at its peak)."""
    needed = 3 * 8 * num_resamples * num_images
    try:
        limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (AttributeError, ValueError, OSError):  # no sysconf: nothing to compare with
        return
    if needed > limit:
        raise UserError(f"{num_resamples:,} resamples of {num_images:,} images need about "
                        f"{needed / 2**30:.1f} GiB for the image counts, more than half of "
                        f"this machine's memory ({limit / 2**30:.1f} GiB): ask for fewer "
                        "resamples")


def resample_image_counts(num_images, num_resamples, rng):
    """(B, I) int counts: each row is one draw of ``num_images`` images with replacement."""
    drawn = rng.integers(0, num_images, size=(num_resamples, num_images))  # (B, I) indices
    flat = (drawn + np.arange(num_resamples)[:, None] * num_images).ravel()
    return np.bincount(flat, minlength=num_resamples * num_images).reshape(
        num_resamples, num_images)


def paired_differences(matches_by_variant, num_resamples=1000, seed=0, confidence=0.95,
                       stats=INTERVAL_STATS, chunk_size=50):
    """Paired intervals of every pair's stat differences (later − earlier variant), with
    the images resampled and, with several seeds per variant, the training noise in them.

    Args:
        matches_by_variant: dict ``{label: [PerImageMatches, ...]}``, one per training seed
            (seed ``s`` of every variant paired), all on the same images; the dict order
            sets the pairs' direction.
        num_resamples: int, bootstrap replicates B of the images. Default 1000.
        seed: int, seed of the resampling (the same seed gives the same intervals).
        confidence: float, the interval's coverage. Default 0.95.
        stats: stat names to report. Default AP, AP50, AP75, APM, APL, AR.
        chunk_size: int, resamples accumulated at once (bounds memory).

    Returns:
        list of dicts ``{"reference": a, "variant": b, "seeds": [n_a, n_b], "stats": {name:
        interval}}`` for each pair a before b; each interval is
        :func:`seed_aware_interval`'s dict plus ``undefined``, the image replicates without
        ground truth in the stat's area range.
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
    check_resample_memory(num_resamples, len(image_ids))
    rng = np.random.default_rng(seed)
    counts = resample_image_counts(len(image_ids), num_resamples, rng)
    columns = [STAT_NAMES.index(s) for s in stats]
    full, replicates = {}, {}
    for label in labels:
        group = matches_by_variant[label]
        full[label] = np.stack([resampled_stats(m, np.ones(len(image_ids), np.int64))[0]
                                for m in group])[:, columns]  # (S, stats)
        per_seed = np.stack([  # (S, B, stats)
            np.concatenate([resampled_stats(m, counts[begin:begin + chunk_size])
                            for begin in range(0, num_resamples, chunk_size)])[:, columns]
            for m in group])
        per_seed = np.where(per_seed < 0, np.nan, per_seed)
        replicates[label] = per_seed.mean(axis=0)  # (B, stats) seed means per image draw
    pairs = []
    for a, b in itertools.combinations(labels, 2):
        diffs = replicates[b] - replicates[a]  # (B, stats)
        entry = {}
        for j, name in enumerate(stats):
            finite = diffs[:, j][np.isfinite(diffs[:, j])]
            entry[name] = {**seed_aware_interval(full[a][:, j], full[b][:, j], finite,
                                                 confidence),
                           "undefined": int(num_resamples - finite.size)}
        pairs.append({"reference": a, "variant": b,
                      "seeds": [len(matches_by_variant[a]), len(matches_by_variant[b])],
                      "stats": entry})
    return pairs


MIN_SEEDS_FOR_A_VERDICT = 2  # a seed-to-seed spread needs two runs per variant
MAX_SEEDS_SUGGESTED = 1000  # beyond this ``seeds_needed`` says None (more images instead)


def seed_aware_interval(reference_seeds, variant_seeds, image_replicates, confidence=0.95):
    """The interval of ``mean(variant_seeds) − mean(reference_seeds)`` with both the
    training noise (the seeds) and the choice of validation images (the replicates) in it.

    See the module docstring for the formula and why it is not a bootstrap over seeds.

    Args:
        reference_seeds, variant_seeds: (S_a,), (S_b,) one stat of each variant's seeds on
            the full validation set (seed ``s`` of both paired when ``S_a == S_b``).
        image_replicates: (B,) finite seed-averaged differences over paired image
            resamples (B ≥ 2 for an image term; fewer counts as no image noise).
        confidence: float in (0, 1). Default 0.95.

    Returns:
        dict with ``difference``; ``low``/``high``, the interval; ``interval``: ``"images"``
        (a variant has one seed: the replicates' percentile interval, training noise not in
        it) or ``"seeds+images"``; ``paired``; ``seed_std`` (of the paired differences, or
        None unpaired or with one seed) and ``image_std`` (of the replicates); ``df``, the
        seed term's degrees of freedom (None for ``"images"``);
        ``excludes_zero`` (of this interval); ``shown``, whether that is a verdict: the
        interval excludes 0 *and* holds the training noise; ``seeds_needed``: with
        seeds and nothing shown, the seeds per variant at which a difference of this size
        with this spread would be shown (None when no number up to
        ``MAX_SEEDS_SUGGESTED`` would, e.g. when the images alone are too few).
    """
    reference = np.asarray(reference_seeds, np.float64)
    variant = np.asarray(variant_seeds, np.float64)
    replicates = np.asarray(image_replicates, np.float64)
    difference = float(variant.mean() - reference.mean())
    tail = (1.0 - confidence) / 2.0
    image_var = float(replicates.var(ddof=1)) if replicates.size > 1 else 0.0
    result = {"difference": difference, "paired": len(reference) == len(variant),
              "seed_std": None, "image_std": float(np.sqrt(image_var)), "df": None,
              "seeds_needed": None}
    if min(len(reference), len(variant)) < MIN_SEEDS_FOR_A_VERDICT:
        low, high = (np.quantile(replicates, [tail, 1.0 - tail]) if replicates.size
                     else (np.nan, np.nan))
        result.update(interval="images", low=float(low), high=float(high),
                      excludes_zero=bool(low > 0.0 or high < 0.0), shown=False)
        return result
    if result["paired"]:
        per_seed_var = float(np.var(variant - reference, ddof=1))  # (b_s − a_s) over s
        result["seed_std"] = float(np.sqrt(per_seed_var))
        seed_var, seed_df = per_seed_var / len(variant), len(variant) - 1.0
    else:
        parts = [np.var(x, ddof=1) / len(x) for x in (reference, variant)]
        seed_var = float(sum(parts))
        seed_df = (seed_var ** 2 / sum(p ** 2 / (len(x) - 1) for p, x in
                                       zip(parts, (reference, variant)))
                   if seed_var > 0 else np.inf)
        per_seed_var = float(np.var(reference, ddof=1) + np.var(variant, ddof=1))
    half = _half_width(seed_var, seed_df, image_var, tail)
    low, high = difference - half, difference + half
    excludes_zero = bool(low > 0.0 or high < 0.0)
    result.update(interval="seeds+images", low=float(low), high=float(high),
                  df=float(seed_df), excludes_zero=excludes_zero, shown=excludes_zero)
    if not excludes_zero and difference != 0.0:
        result["seeds_needed"] = _seeds_needed(abs(difference), per_seed_var, image_var,
                                               tail, start=len(variant) + 1)
    return result


def _half_width(seed_var, seed_df, image_var, tail):
    """Each source's half-width (t with ``seed_df`` for the seeds, normal for the images)
    added in quadrature."""
    seed_half = scipy_stats.t.ppf(1.0 - tail, seed_df) * np.sqrt(seed_var) if seed_var else 0.0
    image_half = scipy_stats.norm.ppf(1.0 - tail) * np.sqrt(image_var)
    return float(np.hypot(seed_half, image_half))


def _seeds_needed(difference, per_seed_var, image_var, tail, start):
    """The fewest seeds per variant (≥ ``start``) whose interval for ``difference`` would
    exclude 0 with this per-seed spread (``S − 1`` degrees of freedom, as paired), or None
    up to ``MAX_SEEDS_SUGGESTED``. The half-width falls with every seed added (the seeds'
    share and their t quantile both shrink), so a bisection finds it."""
    def shown(n):
        return _half_width(per_seed_var / n, n - 1.0, image_var, tail) < difference

    low, high = max(start, MIN_SEEDS_FOR_A_VERDICT), MAX_SEEDS_SUGGESTED
    if not shown(high):
        return None
    while low < high:  # shown(high) holds throughout
        middle = (low + high) // 2
        if shown(middle):
            high = middle
        else:
            low = middle + 1
    return low
