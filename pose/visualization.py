"""Pictures of poses and runs: skeleton overlays, heatmap grids, training curves, AP charts.

Drawing is OpenCV on RGB ``uint8`` arrays (anti-aliased, a dark halo under every line and
dot so the overlay reads on any background); plots are matplotlib with the non-interactive
"Agg" backend. Every file written here is written to a temporary name in the destination
folder and renamed into place, so a crash never leaves a half-written picture.

Colours follow the COCO/mmpose convention, by body side as ``DatasetMeta`` gives it:
left limbs and joints green, right ones orange, centre ones (face, torso cross-links) blue.

Example:
    >>> from datasets.metadata import DatasetMeta
    >>> overlay = draw_pose(image, keypoints, scores, DatasetMeta.coco(), boxes=boxes)
    >>> from pose.fileio import save_image
    >>> save_image(overlay, "out/000000000785.jpg")
"""

import colorsys
import csv
import math
import os

import cv2
import numpy as np

from pose.fileio import atomic_path

# RGB colours by body side (mmpose's COCO palette: left green, right orange, centre blue).
SIDE_COLORS = {
    "left": (0, 255, 0),
    "right": (255, 128, 0),
    "center": (51, 153, 255),
}
HALO_COLOR = (0, 0, 0)
BOX_COLOR = (255, 255, 255)


# --------------------------------------------------------------------------- skeletons


def _line_width(person_size, image_size):
    """Line thickness in pixels for a person of size ``person_size`` (sqrt of box area)."""
    by_person = person_size / 70.0
    cap = max(1.0, image_size / 250.0)  # never thicker than the image can carry
    return int(np.clip(round(min(by_person, cap)), 1, 12))


def _person_sizes(keypoints, visible, boxes, image_size):
    """sqrt(area) per person: from the box, else the extent of its visible keypoints."""
    n = keypoints.shape[0]
    sizes = np.full(n, image_size / 4.0)
    for i in range(n):
        if boxes is not None and np.all(np.isfinite(boxes[i])) and boxes[i][2] > 0:
            sizes[i] = math.sqrt(max(boxes[i][2] * boxes[i][3], 1.0))
        elif visible[i].sum() >= 2:
            pts = keypoints[i][visible[i]]
            w, h = pts.max(axis=0) - pts.min(axis=0)
            sizes[i] = max(math.hypot(w, h) / 1.2, 8.0)  # keypoint extent understates the body
    return sizes


def _pt(xy):
    # cv2 wants int pixels; shift=0 keeps it simple (sub-pixel shift would also be possible)
    return int(round(float(xy[0]))), int(round(float(xy[1])))


def track_color(track_id):
    """A distinct RGB colour per track id: hues a golden-ratio step apart, so consecutive
    ids (people who appear together) differ most."""
    r, g, b = colorsys.hsv_to_rgb((int(track_id) * 0.6180339887) % 1.0, 0.9, 1.0)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def draw_pose(image_rgb, keypoints, scores, meta, boxes=None, box_scores=None, threshold=0.3,
              track_ids=None):
    """Draw skeletons (and optional person boxes) on a copy of an RGB image.

    Limbs are coloured by ``meta.limb_sides`` and joints by ``meta.keypoint_sides``
    (``SIDE_COLORS``), each over a dark halo; a joint is drawn when its score is
    ``> threshold`` and a limb when both of its joints are. Line thickness and dot radius
    grow with the person's size (its box, else its keypoints' extent), capped by the image
    size, so overlays read the same on thumbnails and on 4K frames.

    Args:
        image_rgb: (H, W, 3) uint8 RGB image (grey (H, W) or (H, W, 1) is expanded).
        keypoints: (N, K, 2) x, y in image pixels.
        scores: (N, K) keypoint confidences.
        meta: ``datasets.metadata.DatasetMeta`` (skeleton, sides).
        boxes: optional (N, 4) person boxes ``x, y, w, h``. Default None.
        box_scores: optional (N,) scores written above the boxes. Default None.
        threshold: float, the keypoint score a joint must exceed. Default 0.3.
        track_ids: optional (N,) int track ids (videos): each person's limbs and box take
            the id's colour (``track_color``; joints keep their side colours) and the
            label reads ``#id score``. Default None.

    Returns:
        The drawn (H, W, 3) uint8 RGB copy; the input is not modified.

    Example:
        >>> overlay = draw_pose(image, kpts, scores, DatasetMeta.coco(), threshold=0.3)
    """
    image = np.asarray(image_rgb)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    if image.dtype != np.uint8:
        raise ValueError(f"draw_pose expects a uint8 image, got {image.dtype}")
    canvas = np.ascontiguousarray(image[..., :3]).copy()
    keypoints = np.asarray(keypoints, np.float64).reshape(-1, meta.num_keypoints, 2)
    scores = np.asarray(scores, np.float64).reshape(-1, meta.num_keypoints)
    n = keypoints.shape[0]
    if scores.shape[0] != n:
        raise ValueError(f"{n} keypoint sets but {scores.shape[0]} score rows")
    if boxes is not None:
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if boxes.shape[0] != n:
            raise ValueError(f"{n} keypoint sets but {boxes.shape[0]} boxes")
    if track_ids is not None:
        track_ids = np.asarray(track_ids).reshape(-1)
        if track_ids.shape[0] != n:
            raise ValueError(f"{n} keypoint sets but {track_ids.shape[0]} track ids")
    person_colors = [None if track_ids is None else track_color(t)
                     for t in (track_ids if track_ids is not None else range(n))]
    h, w = canvas.shape[:2]
    image_size = math.sqrt(float(h) * float(w))
    visible = (scores > threshold) & np.all(np.isfinite(keypoints), axis=-1)
    # keep far-away points from overflowing cv2's int coordinates
    keypoints = np.clip(np.nan_to_num(keypoints), -4 * max(h, w), 5 * max(h, w))
    sizes = _person_sizes(keypoints, visible, boxes, image_size)

    if boxes is not None:
        for i in range(n):
            x, y, bw, bh = boxes[i]
            if not np.all(np.isfinite(boxes[i])):
                continue
            t = max(1, _line_width(sizes[i], image_size) // 2)
            p1, p2 = _pt((x, y)), _pt((x + bw, y + bh))
            cv2.rectangle(canvas, p1, p2, HALO_COLOR, t + 2, cv2.LINE_AA)
            cv2.rectangle(canvas, p1, p2, person_colors[i] or BOX_COLOR, t, cv2.LINE_AA)
            text = [] if track_ids is None else [f"#{int(track_ids[i])}"]
            if box_scores is not None:
                text.append(f"{float(np.ravel(box_scores)[i]):.2f}")
            if text:
                _label(canvas, " ".join(text), p1, image_size, person_colors[i])

    # Draw the biggest people first, so the small (usually farther) ones stay on top.
    for i in np.argsort(-sizes, kind="stable"):
        t = _line_width(sizes[i], image_size)
        halo = max(1, (t + 1) // 2)
        radius = t + 1
        limbs = [(a, b, person_colors[i] or SIDE_COLORS[side])
                 for (a, b), side in zip(meta.skeleton, meta.limb_sides)
                 if visible[i, a] and visible[i, b]]
        for a, b, _ in limbs:
            cv2.line(canvas, _pt(keypoints[i, a]), _pt(keypoints[i, b]), HALO_COLOR,
                     t + 2 * halo, cv2.LINE_AA)
        for a, b, color in limbs:
            cv2.line(canvas, _pt(keypoints[i, a]), _pt(keypoints[i, b]), color, t, cv2.LINE_AA)
        for k in np.flatnonzero(visible[i]):
            center = _pt(keypoints[i, k])
            cv2.circle(canvas, center, radius + halo, HALO_COLOR, -1, cv2.LINE_AA)
            cv2.circle(canvas, center, radius, SIDE_COLORS[meta.keypoint_sides[k]], -1,
                       cv2.LINE_AA)
    return canvas


def _label(canvas, text, corner, image_size, color=None):
    """Text (white, or ``color``) on a dark box just above ``corner`` (inside the image)."""
    font_scale = float(np.clip(image_size / 900.0, 0.4, 2.0))
    thickness = max(1, int(round(font_scale * 1.5)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
    x = int(np.clip(corner[0], 0, max(0, canvas.shape[1] - tw - 4)))
    y = int(np.clip(corner[1] - 3, th + base + 2, canvas.shape[0] - 1))
    cv2.rectangle(canvas, (x, y - th - base - 2), (x + tw + 4, y), HALO_COLOR, -1)
    cv2.putText(canvas, text, (x + 2, y - base), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                color or BOX_COLOR, thickness, cv2.LINE_AA)


# --------------------------------------------------------------------------- heatmaps


def _as_uint8_crop(crop):
    crop = np.asarray(crop)
    if crop.dtype == np.uint8:
        return crop[..., :3]
    crop = crop.astype(np.float32)
    if crop.min() < 0.0:  # ImageNet-normalized network input: undo the normalization
        from datasets.transforms import IMAGENET_MEAN, IMAGENET_STD

        crop = (crop * IMAGENET_STD + IMAGENET_MEAN) * 255.0
    elif crop.max() <= 1.0:
        crop = crop * 255.0
    return np.clip(crop[..., :3] + 0.5, 0, 255).astype(np.uint8)


def draw_heatmaps(crop_rgb, heatmaps, meta, panel_width=None, columns=6):
    """A grid of the crop with each joint's heatmap overlaid, each panel titled by its joint.

    The first panel overlays the maximum over all joints ("all"); the others follow
    ``meta.keypoint_names``. Heatmaps are resized to the crop, clipped to [0, 1] and
    shown with the JET colour map (opacity 25 % at 0 rising to 85 % at 1).

    Args:
        crop_rgb: (H, W, 3) crop: uint8 RGB, floats in [0, 1], or the ImageNet-normalized
            network input (detected by negative values and un-normalized).
        heatmaps: (h, w, K) heatmaps of that crop.
        meta: ``DatasetMeta`` (joint names).
        panel_width: int, width of one panel in pixels; default ``max(W, 128)``.
        columns: int, panels per row. Default 6.

    Returns:
        (rows·(ph + title), columns·pw, 3) uint8 RGB image.
    """
    crop = _as_uint8_crop(crop_rgb)
    heatmaps = np.asarray(heatmaps, np.float32)
    if heatmaps.ndim != 3 or heatmaps.shape[-1] != meta.num_keypoints:
        raise ValueError(f"heatmaps must be (h, w, {meta.num_keypoints}), "
                         f"got shape {heatmaps.shape}")
    pw = int(panel_width or max(crop.shape[1], 128))
    ph = int(round(crop.shape[0] * pw / crop.shape[1]))
    base = cv2.resize(crop, (pw, ph), interpolation=cv2.INTER_LINEAR)
    title_h = 18
    maps = [heatmaps.max(axis=-1)] + [heatmaps[..., k] for k in range(meta.num_keypoints)]
    names = ["all"] + list(meta.keypoint_names)
    columns = max(1, min(int(columns), len(maps)))
    rows = int(math.ceil(len(maps) / columns))
    grid = np.full((rows * (ph + title_h), columns * pw, 3), 255, np.uint8)
    for j, (hm, name) in enumerate(zip(maps, names)):
        hm = cv2.resize(np.clip(np.nan_to_num(hm), 0.0, 1.0), (pw, ph),
                        interpolation=cv2.INTER_LINEAR)
        colour = cv2.applyColorMap((hm * 255).astype(np.uint8), cv2.COLORMAP_JET)
        colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)
        alpha = (0.25 + 0.6 * hm)[..., None]  # the peaks stand out, the crop stays visible
        panel = (base * (1.0 - alpha) + colour * alpha + 0.5).astype(np.uint8)
        r, c = divmod(j, columns)
        y0, x0 = r * (ph + title_h), c * pw
        grid[y0 + title_h:y0 + title_h + ph, x0:x0 + pw] = panel
        scale = 0.4
        (tw, _), _ = cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        cv2.putText(grid, name, (x0 + max(2, (pw - tw) // 2), y0 + title_h - 5),
                    cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return grid


# --------------------------------------------------------------------------- plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig, out_png):
    plt = _pyplot()
    try:
        with atomic_path(out_png, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
    return os.fspath(out_png)


def _read_log(csv_path):
    """Columns of a Keras ``CSVLogger`` file as float arrays (repeated headers skipped;
    for an epoch logged twice, after a resume, the last row wins)."""
    csv_path = os.fspath(csv_path)
    if not os.path.isfile(csv_path):
        raise FileNotFoundError(f"training log not found: {csv_path}")
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    by_epoch = {}
    for row in rows:
        try:
            epoch = float(row.get("epoch", ""))
        except (TypeError, ValueError):
            continue  # a header repeated by an appending resume, or a broken line
        by_epoch[epoch] = row
    if not by_epoch:
        raise ValueError(f"{csv_path}: no epoch rows (expected a Keras CSVLogger file with "
                         "an 'epoch' column)")
    epochs = sorted(by_epoch)
    columns = {}
    for name in rows[0].keys():
        values = []
        for e in epochs:
            try:
                values.append(float(by_epoch[e].get(name) or "nan"))
            except ValueError:
                values.append(float("nan"))
        columns[name] = np.asarray(values)
    columns["epoch"] = np.asarray(epochs)
    return columns


def plot_training_curves(csv_path, out_png):
    """Plot loss, learning rate and validation AP per epoch from a training ``log.csv``.

    Reads the Keras ``CSVLogger`` file the training engine writes (columns ``epoch``,
    ``loss``, ``learning_rate``, ``val_AP``, ...); ``val_loss`` is drawn with ``loss``
    when present; epochs with a NaN (or missing) value are skipped in that panel.

    Args:
        csv_path: the CSV log.
        out_png: the PNG to write (atomically).

    Returns:
        str, ``out_png``.
    """
    log = _read_log(csv_path)
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    epoch = log["epoch"] + 1  # CSVLogger counts from 0; people count from 1

    def series(ax, name, label=None, **kw):
        if name not in log:
            return False
        ok = np.isfinite(log[name])
        if not ok.any():
            return False
        ax.plot(epoch[ok], log[name][ok], marker="o" if ok.sum() < 30 else None,
                markersize=3, label=label or name, **kw)
        return True

    ax = axes[0]
    drawn = series(ax, "loss", "train loss")
    drawn |= series(ax, "val_loss", "val loss")
    ax.set_title("loss")
    if drawn:
        ax.legend()
    ax = axes[1]
    if series(ax, "learning_rate", color="tab:green"):
        positive = log["learning_rate"][np.isfinite(log["learning_rate"])]
        if positive.size and positive.min() > 0 and positive.max() / positive.min() > 20:
            ax.set_yscale("log")
    ax.set_title("learning rate")
    ax = axes[2]
    if not series(ax, "val_AP", "val AP", color="tab:red"):
        ax.text(0.5, 0.5, "no validation AP yet", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_title("validation AP")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save_figure(fig, out_png)


def plot_comparison(rows, out_png, metrics=("AP", "AP50", "AP75", "APM", "APL"),
                    differences=None):
    """The PSA comparison chart: grouped bars per metric (std error bars) and, with
    ``differences``, beside them a forest plot of each pair's difference with its interval.

    Args:
        rows: list of dicts ``{"variant": str, "<metric>_mean": float, "<metric>_std":
            float, ...}`` (a missing std draws no error bar; a missing mean is an error).
        out_png: the PNG to write (atomically).
        metrics: metric names, the groups on the x axis. Default the five AP columns.
        differences: optional list of ``{"reference": str, "variant": str, "stats":
            {metric: {"difference", "low", "high", "shown"}}}`` (from
            ``pose.evaluation.bootstrap.paired_differences``); the forest plot shows every
            metric it holds.

    Returns:
        str, ``out_png``.

    Example:
        >>> plot_comparison([{"variant": "none", "AP_mean": 0.70, "AP_std": 0.01},
        ...                  {"variant": "psa_p", "AP_mean": 0.72, "AP_std": 0.01}],
        ...                 "out/psa.png", metrics=("AP",))
    """
    rows = list(rows)
    if not rows:
        raise ValueError("plot_comparison needs at least one row")
    metrics = tuple(metrics)
    for row in rows:
        missing = [m for m in metrics if f"{m}_mean" not in row]
        if "variant" not in row or missing:
            raise ValueError(f"row {row!r} lacks 'variant' or "
                             f"{', '.join(m + '_mean' for m in missing)}")
    plt = _pyplot()
    n = len(rows)
    bar_width = max(6.0, 1.3 * len(metrics) * max(1, n / 2))
    if differences:
        fig, (ax, forest) = plt.subplots(
            1, 2, figsize=(bar_width + 5.5, 4.2), gridspec_kw={"width_ratios": [bar_width, 5.5]})
    else:
        fig, ax = plt.subplots(figsize=(bar_width, 4.2))
    _comparison_bars(ax, rows, metrics, plt.get_cmap("tab10"))
    if differences:
        _forest_plot(forest, differences)
    fig.tight_layout()
    return _save_figure(fig, out_png)


def _comparison_bars(ax, rows, metrics, cmap):
    n = len(rows)
    group = np.arange(len(metrics), dtype=np.float64)
    width = 0.8 / n
    top = 0.0
    for i, row in enumerate(rows):
        means = np.array([float(row[f"{m}_mean"]) for m in metrics])
        stds = np.array([float(row.get(f"{m}_std", np.nan)) for m in metrics])
        err = np.where(np.isfinite(stds), stds, 0.0)
        x = group - 0.4 + width * (i + 0.5)
        bars = ax.bar(x, means, width * 0.92, yerr=err, capsize=3, color=cmap(i % 10),
                      label=str(row["variant"]), error_kw={"elinewidth": 1})
        for bar, mean, e in zip(bars, means, err):
            ax.annotate(f"{mean:.3f}", (bar.get_x() + bar.get_width() / 2, mean + e),
                        xytext=(0, 2), textcoords="offset points", ha="center",
                        va="bottom", fontsize=7, rotation=90 if n > 3 else 0)
        finite = means[np.isfinite(means)] + err[np.isfinite(means)]
        top = max(top, float(finite.max()) if finite.size else 0.0)
    ax.set_xticks(group)
    ax.set_xticklabels(metrics)
    ax.set_ylabel("COCO keypoint metric")
    ax.set_ylim(0, top * 1.25 if top > 0 else 1.0)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="variant", fontsize=8, ncol=min(n, 4))
    ax.set_title("PSA variants (mean ± std over runs)")


def _forest_plot(ax, differences):
    """One line per (pair, metric): the difference (dot) and its interval (bar); filled
    dots where a difference is shown (an interval with the training noise in it excludes
    zero; an undefined interval draws the dot alone)."""
    labels, y = [], 0
    for p, pair in enumerate(differences):
        color = f"C{p % 10}"
        for metric, stat in pair["stats"].items():
            below = np.nan_to_num(stat["difference"] - stat["low"])
            above = np.nan_to_num(stat["high"] - stat["difference"])
            ax.errorbar(stat["difference"], -y, xerr=[[max(below, 0.0)], [max(above, 0.0)]],
                        fmt="o", color=color, capsize=3, markersize=5,
                        markerfacecolor=color if stat["shown"] else "white")
            labels.append(f"{pair['variant']} − {pair['reference']}: {metric}")
            y += 1
    ax.axvline(0.0, color="0.3", linewidth=1, linestyle="--")
    ax.set_yticks(-np.arange(y))
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_xlabel("difference (95% interval, seeds and images)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("differences (filled: shown across seeds)", fontsize=9)
