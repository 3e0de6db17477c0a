"""pycocotools' keypoint ``COCOeval`` on arrays: the same matches and the same AP, faster.

The error diagnosis (:mod:`pose.evaluation.diagnosis`) evaluates one results set many
times (the original, each keypoint correction, the rescoring, the background steps);
pycocotools' ``evaluate()`` loops in Python over every detection × person × threshold, and
``loadRes`` copies every result dict each time. Here the annotations are indexed once
(:class:`GroundTruth`), a results set is a few arrays (:class:`Detections`, whose keypoints
and scores a correction replaces without copying dicts), the OKS of every detection ×
person pair of every image is one NumPy expression, and the greedy matching runs over all
images at once, one detection rank at a time.

Exactly pycocotools' numbers, not an approximation: the same operations in the same order
(OKS as ``computeOks``: the per-keypoint terms summed over the labelled keypoints of each
pair, one row per pair, which NumPy sums as it sums pycocotools' 1-D vector), the same
stable score order, the same greedy matching (a person already taken is skipped unless it
is a crowd; a detection matched to a counted person stops at the first ignored one; the
best OKS ≥ threshold wins, the later person on a tie), the same ``accumulate`` (precision
envelope, ``searchsorted`` recall points) and ``summarize`` means. The tests compare the
matches, the OKS and the stats with pycocotools' own on generated sets.

One category (the person) or several are both handled; the area ranges, OKS thresholds,
recall points and ``maxDets`` are COCOeval's keypoint defaults unless given.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# COCOeval's keypoint parameters (pycocotools Params.setKpParams), built as it builds them.
OKS_THRESHOLDS = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)
AREA_RANGES = {"all": (0 ** 2, 1e5 ** 2), "medium": (32 ** 2, 96 ** 2),
               "large": (96 ** 2, 1e5 ** 2)}
MAX_DETS = 20

__all__ = ["OKS_THRESHOLDS", "RECALL_THRESHOLDS", "AREA_RANGES", "MAX_DETS", "GroundTruth",
           "Detections", "Matching", "match", "best_oks", "accumulate", "summary"]


def _groups(keys, num_groups):
    """(order, starts, counts): ``order`` sorts ``keys`` stably, group ``u`` is
    ``order[starts[u]:starts[u] + counts[u]]``."""
    order = np.argsort(keys, kind="stable")
    counts = np.bincount(keys, minlength=num_groups)
    starts = np.zeros(num_groups, np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    return order, starts, counts


def _ragged(starts, counts):
    """The flat indices ``starts[i] + j`` for ``j < counts[i]``, and ``i`` of each."""
    total = int(counts.sum())
    owner = np.repeat(np.arange(len(counts)), counts)
    first = np.zeros(len(counts), np.int64)
    np.cumsum(counts[:-1], out=first[1:])
    return starts[owner] + np.arange(total) - first[owner], owner


class GroundTruth:
    """The annotations of a ``COCO`` object as COCOeval's ``_prepare`` sees them, indexed once.

    A *unit* is one (category, image) pair, numbered as ``evalImgs`` orders them:
    category-major, images in ``image_ids`` order. Within a unit the people keep the order
    of the annotation file.

    Attributes:
        image_ids, cat_ids: the evaluated ids (sorted; default all of the annotations).
        ids (G,), unit (G,), keypoints (G, K, 3), area (G,), bbox (G, 4), crowd (G,),
        ignore (G,): each person (``ignore``: crowd or no labelled keypoint, as
        ``_prepare``); ``starts``/``counts`` (U,): each unit's people in
        ``order`` (indices into the arrays above).
    """

    def __init__(self, coco, sigmas, image_ids=None, cat_ids=None):
        self.coco = coco
        self.sigmas = np.asarray(sigmas, np.float64).reshape(-1)
        self.variances = (self.sigmas * 2) ** 2
        self.image_ids = sorted(set(int(i) for i in (
            coco.getImgIds() if image_ids is None else image_ids)))
        self.cat_ids = sorted(set(int(c) for c in (
            coco.getCatIds() if cat_ids is None else cat_ids)))
        self.image_index = {image_id: i for i, image_id in enumerate(self.image_ids)}
        self.cat_index = {cat_id: c for c, cat_id in enumerate(self.cat_ids)}
        self.num_units = len(self.cat_ids) * len(self.image_ids)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=self.image_ids, catIds=self.cat_ids))
        k = len(self.sigmas)
        self.anns = anns
        self.ids = np.asarray([a["id"] for a in anns], np.int64)
        self.unit = np.asarray([self.unit_of(a["image_id"], a["category_id"]) for a in anns],
                               np.int64)
        self.keypoints = np.zeros((len(anns), k, 3))
        for g, a in enumerate(anns):
            if a.get("keypoints"):
                self.keypoints[g] = np.asarray(a["keypoints"], np.float64).reshape(k, 3)
        self.area = np.asarray([a["area"] for a in anns], np.float64)
        self.bbox = np.asarray([a["bbox"] for a in anns], np.float64).reshape(-1, 4)
        self.crowd = np.asarray([bool(a.get("iscrowd", 0)) for a in anns], bool)
        self.ignore = self.crowd | np.asarray([a.get("num_keypoints", 0) == 0 for a in anns],
                                              bool)
        self.labelled = self.keypoints[:, :, 2] > 0  # (G, K)
        self.order, self.starts, self.counts = _groups(self.unit, self.num_units)
        self.row_of_id = {int(i): g for g, i in enumerate(self.ids)}

    def unit_of(self, image_id, cat_id):
        return self.cat_index[cat_id] * len(self.image_ids) + self.image_index[image_id]

    def gt_ignore(self, area_range):
        """(G,) COCOeval's ``_ignore`` for one area range."""
        low, high = area_range
        return self.ignore | (self.area < low) | (self.area > high)


@dataclasses.dataclass
class Detections:
    """A results set as arrays; entry ``i`` is ``results[i]`` (COCOeval's id ``i + 1``).

    ``unit`` is -1 for a result COCOeval does not evaluate (an image or category outside
    the ground truth's ``image_ids``/``cat_ids``).
    """

    unit: np.ndarray  # (N,) int64
    keypoints: np.ndarray  # (N, K, 3) float64
    scores: np.ndarray  # (N,) float64

    @classmethod
    def from_results(cls, results, gt: GroundTruth):
        k = len(gt.sigmas)
        unit = np.asarray([gt.unit_of(r["image_id"], r["category_id"])
                           if r["image_id"] in gt.image_index and r["category_id"] in
                           gt.cat_index else -1 for r in results], np.int64)
        keypoints = np.asarray([r["keypoints"] for r in results], np.float64).reshape(-1, k, 3)
        scores = np.asarray([r["score"] for r in results], np.float64)
        return cls(unit, keypoints, scores)

    def replace(self, keypoints=None, scores=None):
        return Detections(self.unit, self.keypoints if keypoints is None else keypoints,
                          self.scores if scores is None else scores)

    def areas(self):
        """(N,) ``loadRes``'s area: the box of all keypoints, (x1 - x0) · (y1 - y0)."""
        x, y = self.keypoints[:, :, 0], self.keypoints[:, :, 1]
        return (x.max(axis=1) - x.min(axis=1)) * (y.max(axis=1) - y.min(axis=1))

    def ranked(self, gt: GroundTruth, max_det):
        """(starts, counts, order): each unit's detections in COCOeval's order (score
        descending, stable), the first ``max_det`` of them (all if None)."""
        valid = np.flatnonzero(self.unit >= 0)
        order = valid[np.lexsort((valid, -self.scores[valid], self.unit[valid]))]
        counts = np.bincount(self.unit[valid], minlength=gt.num_units)
        starts = np.zeros(gt.num_units, np.int64)
        np.cumsum(counts[:-1], out=starts[1:])
        if max_det is not None:
            counts = np.minimum(counts, max_det)
        return starts, counts, order


def _pair_oks(gt: GroundTruth, det: Detections, d, g):
    """OKS of the detection × person pairs (d[i], g[i]) as ``computeOks`` computes it."""
    labelled = gt.labelled[g]  # (P, K)
    k1 = labelled.sum(axis=1)  # (P,)
    oks = np.empty(len(d))
    # the pairs grouped by their number of labelled keypoints, so that the labelled terms
    # of each group are one (pairs, n) block, a row per pair in keypoint order: the
    # vector pycocotools sums
    by_count = np.argsort(k1, kind="stable")
    pair, k = np.nonzero(labelled[by_count])
    pair = by_count[pair]
    dx = det.keypoints[d[pair], k, 0] - gt.keypoints[g[pair], k, 0]
    dy = det.keypoints[d[pair], k, 1] - gt.keypoints[g[pair], k, 1]
    e = (dx ** 2 + dy ** 2) / gt.variances[k] / (gt.area[g[pair]] + np.spacing(1)) / 2
    terms = np.exp(-e)
    sizes = np.bincount(k1, minlength=labelled.shape[1] + 1)
    first_pair, first_term = int(sizes[0]), 0
    for n in range(1, len(sizes)):
        if not sizes[n]:
            continue
        rows = by_count[first_pair:first_pair + sizes[n]]
        block = terms[first_term:first_term + sizes[n] * n].reshape(sizes[n], n)
        oks[rows] = np.sum(block, axis=1) / n
        first_pair += sizes[n]
        first_term += sizes[n] * n
    boxed = by_count[:sizes[0]]
    if len(boxed):  # no labelled keypoint: the distance to the box doubled on each side
        xd, yd = det.keypoints[d[boxed], :, 0], det.keypoints[d[boxed], :, 1]
        bb = gt.bbox[g[boxed]]  # (B, 4)
        x0, x1 = (bb[:, 0] - bb[:, 2])[:, None], (bb[:, 0] + bb[:, 2] * 2)[:, None]
        y0, y1 = (bb[:, 1] - bb[:, 3])[:, None], (bb[:, 1] + bb[:, 3] * 2)[:, None]
        dx = np.maximum(0, x0 - xd) + np.maximum(0, xd - x1)
        dy = np.maximum(0, y0 - yd) + np.maximum(0, yd - y1)
        e = (dx ** 2 + dy ** 2) / gt.variances / (gt.area[g[boxed]] + np.spacing(1))[:, None] / 2
        oks[boxed] = np.sum(np.exp(-e), axis=1) / e.shape[1]
    return oks


def _unit_pairs(gt: GroundTruth, starts, counts, order):
    """Every (ranked detection, person) pair of each unit: (d, g, unit, rank, column)
    with ``column`` the person's position in its unit (annotation order)."""
    flat, unit_of_flat = _ragged(starts, counts)
    d = order[flat]  # detections, unit by unit, in rank order
    rank = flat - starts[unit_of_flat]
    people = gt.counts[unit_of_flat]  # (D,)
    pair_d, owner = np.repeat(d, people), np.repeat(np.arange(len(d)), people)
    first = np.zeros(len(d), np.int64)
    np.cumsum(people[:-1], out=first[1:])
    column = np.arange(len(pair_d)) - first[owner]
    unit = unit_of_flat[owner]
    pair_g = gt.order[gt.starts[unit] + column]
    return pair_d, pair_g, unit, rank[owner], column


def best_oks(gt: GroundTruth, det: Detections):
    """(N,) each detection's best OKS with a counted person (not ``ignore``) of its unit,
    over all its unit's detections (no ``maxDets``); 0 without one."""
    starts, counts, order = det.ranked(gt, None)
    d, g, _, _, _ = _unit_pairs(gt, starts, counts, order)
    keep = ~gt.ignore[g]
    best = np.zeros(len(det.scores))
    np.maximum.at(best, d[keep], _pair_oks(gt, det, d[keep], g[keep]))
    return best


@dataclasses.dataclass
class Matching:
    """``evaluate()`` of one results set for one area range, as arrays.

    The listed detections are the first ``maxDets`` of every unit, units in order and
    detections in rank order (``accumulate``'s concatenation order).

    Attributes:
        detections: (N,) entries of the results set listed.
        unit: (N,) their units.
        matched: (T, N) int64, the matched person (row of ``GroundTruth``) or -1.
        dt_ignore: (T, N) bool, COCOeval's ``dtIgnore``.
        gt_ignore: (G,) bool, ``_ignore`` of each person in this area range.
        evaluated: (U,) bool, units with people or detections (``evalImgs`` not None).
        gt_matched: (T, G) bool, each person matched at each threshold.
    """

    detections: np.ndarray
    unit: np.ndarray
    matched: np.ndarray
    dt_ignore: np.ndarray
    gt_ignore: np.ndarray
    evaluated: np.ndarray
    gt_matched: np.ndarray


def _last_best(values, candidates):
    """Per row of (..., G): the last index of the largest value among ``candidates``,
    -1 where there is none."""
    masked = np.where(candidates, values, -np.inf)
    last = masked.shape[-1] - 1 - np.argmax(masked[..., ::-1], axis=-1)
    return np.where(candidates.any(axis=-1), last, -1)


def match(gt: GroundTruth, det: Detections, thresholds=OKS_THRESHOLDS,
          area_range=AREA_RANGES["all"], max_det=MAX_DETS) -> Matching:
    """COCOeval's ``computeOks`` + ``evaluateImg`` for every unit at once."""
    thresholds = np.asarray(thresholds, np.float64)
    limits = np.minimum(thresholds, 1 - 1e-10)  # as evaluateImg
    num_t = len(thresholds)
    starts, counts, order = det.ranked(gt, max_det)
    all_detections = np.bincount(det.unit[det.unit >= 0], minlength=gt.num_units)
    evaluated = (all_detections > 0) | (gt.counts > 0)
    gt_ignore = gt.gt_ignore(area_range)

    flat, unit_of_flat = _ragged(starts, counts)
    listed = order[flat]
    rank = flat - starts[unit_of_flat]
    matched = np.full((num_t, len(listed)), -1, np.int64)
    gt_matched = np.zeros((num_t, len(gt.ids)), bool)

    # units with both people and detections, padded to (V, D, G) with people in
    # COCOeval's order: counted first, ignored last (stable)
    both = np.flatnonzero((counts > 0) & (gt.counts > 0))
    if len(both):
        slot = np.full(gt.num_units, -1, np.int64)
        slot[both] = np.arange(len(both))
        max_d, max_g = int(counts[both].max()), int(gt.counts[both].max())
        people = np.full((len(both), max_g), -1, np.int64)  # person row per sorted column
        for v, u in enumerate(both):  # one short stable sort per unit
            rows = gt.order[gt.starts[u]:gt.starts[u] + gt.counts[u]]
            people[v, :len(rows)] = rows[np.argsort(gt_ignore[rows], kind="mergesort")]
        valid = people >= 0
        safe = np.where(valid, people, 0)
        ignored = gt_ignore[safe] & valid  # (V, G)
        crowd = gt.crowd[safe] & valid
        # OKS of each (ranked detection, person) pair
        d, g, unit, pair_rank, _ = _unit_pairs(gt, starts, counts, order)
        keep = slot[unit] >= 0
        d, g, unit, pair_rank = d[keep], g[keep], unit[keep], pair_rank[keep]
        column_of = np.full(len(gt.ids), -1, np.int64)
        column_of[people[valid]] = np.nonzero(valid)[1]
        oks = np.full((len(both), max_d, max_g), -np.inf)
        oks[slot[unit], pair_rank, column_of[g]] = _pair_oks(gt, det, d, g)
        taken = np.zeros((len(both), num_t, max_g), bool)
        choice = np.full((len(both), num_t, max_d), -1, np.int64)
        for r in range(max_d):
            active = counts[both] > r  # (V,)
            value = np.broadcast_to(oks[:, r, None, :], taken.shape)
            candidate = ((~taken | crowd[:, None, :]) & valid[:, None, :]
                         & (value >= limits[None, :, None]) & active[:, None, None])
            counted = _last_best(value, candidate & ~ignored[:, None, :])
            anyone = _last_best(value, candidate & ignored[:, None, :])
            pick = np.where(counted >= 0, counted, anyone)  # (V, T)
            v_idx, t_idx = np.nonzero(pick >= 0)
            taken[v_idx, t_idx, pick[v_idx, t_idx]] = True
            choice[:, :, r] = pick
        # back to the listed detections
        in_both = slot[unit_of_flat] >= 0
        v_of = slot[unit_of_flat[in_both]]
        column = choice[v_of, :, rank[in_both]]  # (n, T)
        person = np.where(column >= 0, people[v_of[:, None], np.maximum(column, 0)], -1)
        matched[:, in_both] = person.T
        t_idx, n_idx = np.nonzero(matched >= 0)
        gt_matched[t_idx, matched[t_idx, n_idx]] = True
    dt_ignore = np.where(matched >= 0, gt_ignore[np.maximum(matched, 0)], False)
    low, high = area_range
    area = det.areas()[listed]
    dt_ignore |= (matched < 0) & ((area < low) | (area > high))[None, :]
    return Matching(listed, unit_of_flat, matched, dt_ignore, gt_ignore, evaluated,
                    gt_matched)


def accumulate(gt: GroundTruth, det: Detections, matching: Matching, dt_ignore=None,
               gt_ignore=None, recall_thresholds=RECALL_THRESHOLDS):
    """COCOeval's ``accumulate`` for one area range: (precision (T, R, C), recall (T, C))
    with C categories; -1 where a category has no counted person.

    ``dt_ignore`` (T, N) / ``gt_ignore`` (G,) replace the matching's flags (what the
    reference does to ``evalImgs`` to leave background errors out)."""
    dt_ignore = matching.dt_ignore if dt_ignore is None else dt_ignore
    gt_ignore = matching.gt_ignore if gt_ignore is None else gt_ignore
    num_t, num_r, num_c = matching.matched.shape[0], len(recall_thresholds), len(gt.cat_ids)
    precision = -np.ones((num_t, num_r, num_c))
    recall = -np.ones((num_t, num_c))
    num_images = len(gt.image_ids)
    in_evaluated = matching.evaluated[gt.unit]  # people of evaluated units (all are)
    for c in range(num_c):
        people = (gt.unit // num_images == c) & in_evaluated
        npig = int(np.count_nonzero(~gt_ignore[people]))
        columns = np.flatnonzero(matching.unit // num_images == c)
        if npig == 0:
            continue
        scores = det.scores[matching.detections[columns]]
        inds = np.argsort(-scores, kind="mergesort")
        dtm = matching.matched[:, columns][:, inds] >= 0
        dtig = dt_ignore[:, columns][:, inds]
        tp_sum = np.cumsum(dtm & ~dtig, axis=1).astype(float)
        fp_sum = np.cumsum(~dtm & ~dtig, axis=1).astype(float)
        for t in range(num_t):
            tp, fp = tp_sum[t], fp_sum[t]
            nd = len(tp)
            rc = tp / npig
            pr = tp / (fp + tp + np.spacing(1))
            recall[t, c] = rc[-1] if nd else 0
            pr = np.maximum.accumulate(pr[::-1])[::-1] if nd else pr
            inds_r = np.searchsorted(rc, recall_thresholds, side="left")
            q = np.zeros(num_r)
            found = inds_r < nd
            q[found] = pr[inds_r[found]]
            precision[t, :, c] = q
    return precision, recall


def summary(precision, thresholds=OKS_THRESHOLDS):
    """``summarize``'s AP (mean over thresholds, recall points and categories), AP50 and
    AP75 of one area range's precision (T, R, C); -1 where undefined."""
    thresholds = np.asarray(thresholds)

    def mean(s):
        s = s[s > -1]
        return float(np.mean(s)) if len(s) else -1.0

    out = {"AP": mean(precision)}
    for name, value in (("AP50", .5), ("AP75", .75)):
        t = np.flatnonzero(thresholds == value)
        out[name] = mean(precision[t[0]]) if len(t) else -1.0
    return out
