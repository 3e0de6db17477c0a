"""COCO keypoint evaluation primitives: OKS, OKS-NMS, rescoring, results files, COCOeval.

NumPy and pycocotools only. The per-image post-processing follows HRNet's
``lib/dataset/coco.py`` ``evaluate`` (rescoring by the mean confident keypoint score,
OKS-NMS at 0.9) and ``lib/nms/nms.py``; the metric is pycocotools' own ``COCOeval`` with
``iouType="keypoints"``. OKS sigmas are always an argument (for COCO:
``datasets.metadata.COCO_SIGMAS``).

Example:
    >>> results = postprocess_predictions(coords, kpt_scores, image_ids, box_scores,
    ...                                   areas, sigmas=COCO_SIGMAS)
    >>> write_coco_results(results, "out/keypoints_val2017_results.json")
    >>> stats = evaluate_coco_keypoints("person_keypoints_val2017.json", results,
    ...                                 sigmas=COCO_SIGMAS)
    >>> print(format_ap_table(stats))
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
from collections import OrderedDict

import numpy as np

from pose.fileio import write_json

STAT_NAMES = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL")

__all__ = [
    "STAT_NAMES",
    "oks_iou",
    "oks_matrix",
    "oks_nms",
    "soft_oks_nms",
    "rescore_instances",
    "rescore_and_nms",
    "postprocess_predictions",
    "write_coco_results",
    "run_cocoeval",
    "evaluate_coco_keypoints",
    "format_ap_table",
]


def _as_instances(keypoints) -> np.ndarray:
    """(M, K, 3) or (M, 3K), or one instance (K, 3) / (3K,) → float64 (M, K, 3)."""
    arr = np.asarray(keypoints, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None]  # (1, 3K)
    if arr.ndim == 2:
        if arr.shape[1] % 3 != 0:
            raise ValueError(f"flat keypoints need 3K values per instance, got shape {arr.shape}")
        arr = arr.reshape(arr.shape[0], -1, 3)  # (M, K, 3)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(
            f"keypoints must be (M, K, 3) or (M, 3K), got shape {np.shape(keypoints)}")
    return arr


def _check_sigmas(sigmas, k: int) -> np.ndarray:
    s = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    if s.shape[0] != k:
        raise ValueError(f"sigmas has {s.shape[0]} entries but the keypoints have K={k}")
    return s


def oks_iou(g, d, area_g, area_d, sigmas, vis_threshold: float | None = None) -> np.ndarray:
    """Object keypoint similarity between one instance ``g`` and many instances ``d``.

    As HRNet's ``oks_iou``: ``e_k = (dx_k^2 + dy_k^2) / (2 sigma_k)^2 / (mean area + eps) / 2``
    with the mean of the two instances' areas, ``OKS = mean_k exp(-e_k)`` over the
    keypoints counted. With ``vis_threshold`` only keypoints whose third value exceeds it
    in *both* instances are counted (HRNet's code intends this but its ``list(a) and
    list(b)`` keeps only ``d``'s condition; mmpose uses ``&`` as here); an instance pair
    with no counted keypoint has OKS 0.

    Args:
        g: (K, 3) or flat (3K,) x, y, score/visibility of the reference instance.
        d: (M, K, 3) or (M, 3K) the other instances.
        area_g: float, area of ``g``.
        area_d: (M,) areas of ``d``.
        sigmas: (K,) per-keypoint OKS sigmas.
        vis_threshold: float or None. Default None (all keypoints count).

    Returns:
        float64 (M,) OKS values.
    """
    g_arr = np.asarray(g, dtype=np.float64)
    gk = g_arr if (g_arr.ndim == 2 and g_arr.shape[1] == 3) else _as_instances(g_arr)[0]
    dk = _as_instances(d)
    if dk.shape[0] == 0:
        return np.zeros((0,), dtype=np.float64)
    if dk.shape[1] != gk.shape[0]:
        raise ValueError(f"g has K={gk.shape[0]} keypoints but d has K={dk.shape[1]}")
    s = _check_sigmas(sigmas, gk.shape[0])
    variances = (2.0 * s) ** 2  # (K,)
    area_d = np.asarray(area_d, dtype=np.float64).reshape(-1)
    dx = dk[:, :, 0] - gk[None, :, 0]  # (M, K)
    dy = dk[:, :, 1] - gk[None, :, 1]
    mean_area = (float(area_g) + area_d) / 2.0 + np.spacing(1)  # (M,)
    e = (dx ** 2 + dy ** 2) / variances[None, :] / mean_area[:, None] / 2.0  # (M, K)
    if vis_threshold is None:
        return np.exp(-e).mean(axis=1)
    counted = (gk[None, :, 2] > vis_threshold) & (dk[:, :, 2] > vis_threshold)  # (M, K)
    n = counted.sum(axis=1)
    total = np.where(counted, np.exp(-e), 0.0).sum(axis=1)
    return np.where(n > 0, total / np.maximum(n, 1), 0.0)


def oks_matrix(keypoints, areas, sigmas, vis_threshold: float | None = None) -> np.ndarray:
    """Pairwise OKS (M, M) between all instances (row i is ``oks_iou(kpts[i], kpts, ...)``).

    Args:
        keypoints: (M, K, 3) or (M, 3K).
        areas: (M,) instance areas.
        sigmas: (K,) OKS sigmas.
        vis_threshold: float or None, as in :func:`oks_iou`.

    Returns:
        float64 (M, M).
    """
    kp = _as_instances(keypoints)
    m, k, _ = kp.shape
    s = _check_sigmas(sigmas, k)
    a = np.asarray(areas, dtype=np.float64).reshape(-1)
    if a.shape[0] != m:
        raise ValueError(f"areas has {a.shape[0]} entries for {m} instances")
    variances = (2.0 * s) ** 2
    dx = kp[:, None, :, 0] - kp[None, :, :, 0]  # (M, M, K)
    dy = kp[:, None, :, 1] - kp[None, :, :, 1]
    mean_area = (a[:, None] + a[None, :]) / 2.0 + np.spacing(1)  # (M, M)
    e = (dx ** 2 + dy ** 2) / variances / mean_area[..., None] / 2.0
    if vis_threshold is None:
        return np.exp(-e).mean(axis=2)
    vis = kp[:, :, 2] > vis_threshold  # (M, K)
    counted = vis[:, None, :] & vis[None, :, :]
    n = counted.sum(axis=2)
    total = np.where(counted, np.exp(-e), 0.0).sum(axis=2)
    return np.where(n > 0, total / np.maximum(n, 1), 0.0)


def oks_nms(keypoints, scores, areas, sigmas, threshold: float = 0.9,
            vis_threshold: float | None = None, tie_break=None) -> np.ndarray:
    """Greedy OKS non-maximum suppression (HRNet's ``oks_nms``).

    Instances are visited by decreasing score; each kept instance removes the remaining
    ones whose OKS with it is above ``threshold`` (``OKS <= threshold`` survives).
    Instances of equal score are visited by decreasing ``tie_break`` (the detector's box
    score): when every rescored score is 0 (a weak model, a hard image) the detector's
    most confident person is kept first, not the first in file order. Distinct scores are
    visited exactly as without it (HRNet's order).

    Args:
        keypoints: (M, K, 3) or (M, 3K); the third value is the keypoint score.
        scores: (M,) instance scores.
        areas: (M,) instance areas (HRNet: the area of the padded detection box).
        sigmas: (K,) OKS sigmas.
        threshold: float, suppression threshold. Default 0.9.
        vis_threshold: float or None, as in :func:`oks_iou`. Default None.
        tie_break: (M,) or None, the order among equal scores (higher first). Default None.

    Returns:
        int64 array of kept indices, highest score first.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.shape[0] == 0:
        return np.zeros((0,), dtype=np.int64)
    ious = oks_matrix(keypoints, areas, sigmas, vis_threshold)
    order = np.argsort(scores, kind="stable")[::-1]
    if tie_break is not None:  # stable: reorders only within runs of equal score
        tie = np.asarray(tie_break, dtype=np.float64).reshape(-1)[order]
        order = order[np.lexsort((-tie, -scores[order]))]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        order = rest[ious[i, rest] <= threshold]
    return np.asarray(keep, dtype=np.int64)


def soft_oks_nms(keypoints, scores, areas, sigmas, threshold: float = 0.9,
                 max_dets: int = 20, vis_threshold: float | None = None,
                 method: str = "gaussian", return_scores: bool = False):
    """Soft OKS-NMS (HRNet's / mmpose's ``soft_oks_nms``).

    Repeatedly take the highest-scoring remaining instance and decay the others' scores
    by their OKS ``o`` with it: ``score * exp(-o^2 / threshold)`` (``method="gaussian"``,
    the HRNet/mmpose default) or ``score * (1 - o)`` where ``o >= threshold``
    (``"linear"``). At most ``max_dets`` instances are returned (20 in HRNet and mmpose,
    COCO's keypoint maxDets).

    Args:
        keypoints: (M, K, 3) or (M, 3K).
        scores: (M,) instance scores.
        areas: (M,) instance areas.
        sigmas: (K,) OKS sigmas.
        threshold: float, decay parameter. Default 0.9 (the value HRNet and mmpose pass).
        max_dets: int, most instances to keep. Default 20.
        vis_threshold: float or None, as in :func:`oks_iou`.
        method: "gaussian" or "linear". Default "gaussian".
        return_scores: bool, also return the decayed scores of the kept instances.

    Returns:
        int64 (≤max_dets,) kept indices in selection order, and with ``return_scores``
        a float64 array of their decayed scores.
    """
    if method not in ("gaussian", "linear"):
        raise ValueError(f"method must be 'gaussian' or 'linear', got {method!r}")
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.shape[0] == 0:
        empty = np.zeros((0,), dtype=np.int64)
        return (empty, np.zeros((0,))) if return_scores else empty
    ious = oks_matrix(keypoints, areas, sigmas, vis_threshold)
    order = np.argsort(scores, kind="stable")[::-1]
    cur = scores[order]
    keep, kept_scores = [], []
    while order.size > 0 and len(keep) < max_dets:
        i = order[0]
        keep.append(i)
        kept_scores.append(cur[0])
        order, cur = order[1:], cur[1:]
        o = ious[i, order]
        if method == "gaussian":
            cur = cur * np.exp(-o ** 2 / threshold)
        else:
            cur = np.where(o >= threshold, cur * (1.0 - o), cur)
        resort = np.argsort(cur, kind="stable")[::-1]
        order, cur = order[resort], cur[resort]
    keep = np.asarray(keep, dtype=np.int64)
    if return_scores:
        return keep, np.asarray(kept_scores, dtype=np.float64)
    return keep


def rescore_instances(box_scores, keypoint_scores, threshold: float = 0.2) -> np.ndarray:
    """Instance score = box score × mean of the keypoint scores above ``threshold``.

    HRNet's rescoring (``TEST.IN_VIS_THRE = 0.2``). When no keypoint score is above the
    threshold the mean is taken as 0 (HRNet initialises it to 0), so the instance score is
    0; it is still kept and written out, it just ranks last.

    Args:
        box_scores: (N,) detector scores (1 for ground-truth boxes).
        keypoint_scores: (N, K) per-keypoint confidences (heatmap maxima).
        threshold: float, keypoints with score ``> threshold`` count. Default 0.2.

    Returns:
        float64 (N,) instance scores.
    """
    box = np.asarray(box_scores, dtype=np.float64).reshape(-1)
    ks = np.asarray(keypoint_scores, dtype=np.float64)
    if ks.ndim != 2 or ks.shape[0] != box.shape[0]:
        raise ValueError(
            f"keypoint_scores must be (N, K) with N={box.shape[0]}, got shape {ks.shape}")
    confident = ks > threshold
    n = confident.sum(axis=1)
    mean = np.where(n > 0, np.where(confident, ks, 0.0).sum(axis=1) / np.maximum(n, 1), 0.0)
    return box * mean


def rescore_and_nms(keypoints, keypoint_scores, box_scores, areas, sigmas, *,
                    score_threshold: float = 0.2, nms_threshold: float = 0.9,
                    soft_nms: bool = False, vis_threshold: float | None = None):
    """One image's post-processing: :func:`rescore_instances`, then OKS-NMS on the result.

    Evaluation (:func:`postprocess_predictions`, image by image) and inference
    (``pose.apis.estimator.PoseEstimator``) both call this, so they keep the same people.
    Soft NMS (as in HRNet) only selects: the returned scores are the rescored values.
    OKS-NMS visits equal scores by decreasing box score (``tie_break``): when every
    rescored score is 0 the detector's most confident person is kept.

    Args:
        keypoints: (N, K, 2) x, y in image pixels.
        keypoint_scores: (N, K) per-keypoint confidences.
        box_scores: (N,) detector scores.
        areas: (N,) instance areas for OKS (HRNet: area of the padded box).
        sigmas: (K,) OKS sigmas.
        score_threshold: float, keypoint score threshold of the rescoring. Default 0.2.
        nms_threshold: float, OKS-NMS threshold (soft-NMS decay parameter). Default 0.9.
        soft_nms: bool, use soft OKS-NMS. Default False.
        vis_threshold: float or None, passed to the NMS OKS. Default None (as HRNet).

    Returns:
        ``(keep, scores)``: int64 kept indices in NMS order and float64 (N,) instance scores
        of all instances.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    ks = np.asarray(keypoint_scores, dtype=np.float64)
    scores = rescore_instances(box_scores, ks, score_threshold)
    full = np.concatenate([kp, ks[..., None]], axis=2)  # (N, K, 3)
    if soft_nms:
        keep = soft_oks_nms(full, scores, areas, sigmas, threshold=nms_threshold,
                            vis_threshold=vis_threshold)
    else:
        keep = oks_nms(full, scores, areas, sigmas, threshold=nms_threshold,
                       vis_threshold=vis_threshold, tie_break=box_scores)
    return keep, scores


def postprocess_predictions(keypoints, keypoint_scores, image_ids, box_scores, areas, sigmas,
                            *, score_threshold: float = 0.2, nms_threshold: float = 0.9,
                            soft_nms: bool = False, vis_threshold: float | None = None,
                            category_id: int = 1) -> list[dict]:
    """Per-image rescoring and OKS-NMS into a COCO keypoint results list (HRNet's evaluate).

    Image by image, :func:`rescore_and_nms`: every instance's score becomes
    :func:`rescore_instances`, then :func:`oks_nms` (or :func:`soft_oks_nms` with
    ``soft_nms=True``, which as in HRNet only selects, keeping the rescored values) runs
    on the rescored instances.

    Args:
        keypoints: (N, K, 2) x, y in original-image pixels.
        keypoint_scores: (N, K) per-keypoint confidences.
        image_ids: (N,) COCO image ids of the instances.
        box_scores: (N,) detector scores.
        areas: (N,) instance areas for OKS (HRNet: area of the padded box, ``prod(scale*200)``).
        sigmas: (K,) OKS sigmas.
        score_threshold: float, keypoint score threshold of the rescoring. Default 0.2.
        nms_threshold: float, OKS-NMS threshold (soft-NMS decay parameter). Default 0.9.
        soft_nms: bool, use soft OKS-NMS. Default False.
        vis_threshold: float or None, passed to the NMS OKS. Default None (as HRNet).
        category_id: int, the person category. Default 1.

    Returns:
        list of dicts ``{"image_id": int, "category_id": int, "keypoints": [x, y, s] * K
        (Python floats), "score": float}``, images in order of first appearance, each
        image's instances in NMS order.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    ks = np.asarray(keypoint_scores, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[2] != 2:
        raise ValueError(f"keypoints must be (N, K, 2), got shape {kp.shape}")
    n, k, _ = kp.shape
    if ks.shape != (n, k):
        raise ValueError(f"keypoint_scores must be ({n}, {k}), got shape {ks.shape}")
    ids = np.asarray(image_ids).reshape(-1)
    box = np.asarray(box_scores, dtype=np.float64).reshape(-1)
    area = np.asarray(areas, dtype=np.float64).reshape(-1)
    for name, arr in (("image_ids", ids), ("box_scores", box), ("areas", area)):
        if arr.shape[0] != n:
            raise ValueError(f"{name} has {arr.shape[0]} entries for {n} instances")
    sig = _check_sigmas(sigmas, k)
    full = np.concatenate([kp, ks[..., None]], axis=2)  # (N, K, 3)

    groups: OrderedDict = OrderedDict()
    for i, img in enumerate(ids.tolist()):
        groups.setdefault(img, []).append(i)

    results = []
    for img, members in groups.items():
        members = np.asarray(members, dtype=np.int64)
        keep, scores = rescore_and_nms(
            kp[members], ks[members], box[members], area[members], sig,
            score_threshold=score_threshold, nms_threshold=nms_threshold, soft_nms=soft_nms,
            vis_threshold=vis_threshold)
        for j in keep:
            results.append({
                "image_id": int(img),
                "category_id": int(category_id),
                "keypoints": [float(v) for v in full[members[j]].reshape(-1)],
                "score": float(scores[j]),
            })
    return results


def write_coco_results(results: list[dict], path) -> str:
    """Write a COCO results list as JSON atomically (temporary file + ``os.replace``).

    Args:
        results: list of result dicts (JSON-serialisable).
        path: destination file; its folder is created if missing.

    Returns:
        str, the path written.
    """
    return write_json(results, path, indent=None)


def _load_gt(annotations):
    from pycocotools.coco import COCO

    if isinstance(annotations, COCO):
        return annotations
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(os.fspath(annotations))


def run_cocoeval(annotations, results, sigmas, *, image_ids=None, verbose: bool = False):
    """pycocotools' ``COCOeval(iouType="keypoints")`` after its per-image matching.

    ``evaluate()`` has run (``evalImgs`` holds every image's matches), ``accumulate()`` and
    ``summarize()`` have not: :func:`evaluate_coco_keypoints` runs them once, the bootstrap
    (:mod:`pose.evaluation.bootstrap`) re-accumulates resampled images from ``evalImgs``.

    Args:
        annotations, results, sigmas, image_ids, verbose: as in
            :func:`evaluate_coco_keypoints`; ``results`` must not be empty (``loadRes``
            cannot load an empty list).

    Returns:
        ``pycocotools.cocoeval.COCOeval``.
    """
    from pycocotools.cocoeval import COCOeval

    if isinstance(results, (str, os.PathLike)):
        with open(results) as f:
            results = json.load(f)
    results = copy.deepcopy(list(results))
    if len(results) == 0:
        raise ValueError("COCOeval needs at least one result; got none")
    gt = _load_gt(annotations)
    out = io.StringIO()
    with contextlib.redirect_stdout(out) if not verbose else contextlib.nullcontext():
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, iouType="keypoints")
        ev.params.useSegm = None
        ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64).reshape(-1)
        if image_ids is not None:
            ev.params.imgIds = sorted(int(i) for i in image_ids)
        ev.evaluate()
    return ev


def evaluate_coco_keypoints(annotations, results, sigmas, *, image_ids=None,
                            verbose: bool = False) -> dict:
    """COCO keypoint AP/AR with pycocotools' ``COCOeval(iouType="keypoints")``.

    Args:
        annotations: path of a COCO keypoint annotation file, or a ``pycocotools.coco.COCO``.
        results: list of result dicts (see :func:`postprocess_predictions`) or the path of
            a results JSON file. The list is deep-copied (``loadRes`` edits its dicts).
        sigmas: (K,) OKS sigmas, set as ``params.kpt_oks_sigmas``.
        image_ids: optional iterable of image ids to evaluate on; default all images of
            the annotations (as HRNet).
        verbose: bool, let pycocotools print its progress and summary. Default False.

    Returns:
        dict ``{name: float}`` for ``STAT_NAMES`` (AP, AP50, AP75, APM, APL, AR, AR50,
        AR75, ARM, ARL). A value of -1 is pycocotools' "no ground truth in this area
        range" (e.g. APM/ARM without medium people). Empty results (which pycocotools'
        ``loadRes`` cannot take) give what it gives for detections that match nothing:
        0, or -1 where the range has no ground truth.
    """
    if isinstance(results, (str, os.PathLike)):
        with open(results) as f:
            results = json.load(f)
    if len(results) == 0:
        return _stats_without_results(_load_gt(annotations), image_ids)
    ev = run_cocoeval(annotations, results, sigmas, image_ids=image_ids, verbose=verbose)
    with contextlib.redirect_stdout(io.StringIO()) if not verbose else contextlib.nullcontext():
        ev.accumulate()
        ev.summarize()
    return {name: float(v) for name, v in zip(STAT_NAMES, ev.stats)}


# COCOeval's keypoint area ranges (Params.setKpParams): all, medium, large.
_AREA_RANGES = {"": (0.0, 1e10), "M": (32.0 ** 2, 96.0 ** 2), "L": (96.0 ** 2, 1e10)}


def _stats_without_results(gt, image_ids=None):
    """COCOeval's stats for no detections: 0 where the area range has ground truth that
    counts (not crowd, ``num_keypoints`` > 0), else -1."""
    ids = set(gt.getImgIds() if image_ids is None else (int(i) for i in image_ids))
    areas = [a["area"] for a in gt.dataset.get("annotations", [])
             if a["image_id"] in ids and not a.get("iscrowd", 0)
             and a.get("num_keypoints", 0) > 0]
    stats = {}
    for name in STAT_NAMES:
        low, high = _AREA_RANGES[name[2:] if name[2:] in ("M", "L") else ""]
        stats[name] = 0.0 if any(low <= a <= high for a in areas) else -1.0
    return stats


def format_ap_table(stats: dict, precision: int = 3) -> str:
    """A readable, aligned two-row table of the COCO keypoint stats.

    Args:
        stats: dict from :func:`evaluate_coco_keypoints` (missing names show as "-").
        precision: int, decimals. Default 3.

    Returns:
        str, e.g.::

            | AP    | AP50  | ... | ARL   |
            |-------|-------|-----|-------|
            | 0.744 | 0.905 | ... | 0.810 |
    """
    cells = []
    for name in STAT_NAMES:
        v = stats.get(name)
        cells.append("-" if v is None else f"{float(v):.{precision}f}")
    widths = [max(len(n), len(c)) for n, c in zip(STAT_NAMES, cells)]
    head = "| " + " | ".join(n.ljust(w) for n, w in zip(STAT_NAMES, widths)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    row = "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    return "\n".join([head, rule, row])
