"""The comparison as one self-contained ``report.html``: its tables, figures and a gallery.

One file that opens in any browser, offline, and can be mailed or archived alone:

- the verdict lines, the per-variant table (AP per seed, AP/AR mean ± std, costs) and
  every pair's differences with their intervals (the tables of ``comparison.md``, from
  ``pose.experiments.comparison_report``);
- where the keypoints go wrong: each variant's share of good, jitter, inversion, swap and
  miss keypoints, each variant against the first with the intervals of every share and of
  the AP after each error is fixed, and per variant the diagnosis figures of
  ``pose.evaluation.diagnosis`` (error shares per keypoint, precision-recall with each
  error fixed) with its AP after each correction;
- per pair of variants (the first against each other one) a gallery of the validation
  images where their predictions differ most: the two predictions side by side over the
  image, each keypoint coloured by its error class, the ground truth drawn thin.

Every figure is embedded as a data URI (PNG; the gallery's drawings JPEG) and the page
carries a Content-Security-Policy that allows nothing but data-URI images and its own
inline style, so the browser fetches nothing from the network (no CDN, no fonts).

How "differ most" is ranked (:func:`rank_images`): each labelled keypoint of each counted
ground-truth person (not crowd, with keypoints) has a class in each variant's results —
good, jitter, inversion, swap or miss as ``pose.evaluation.diagnosis`` classifies it, or
*unmatched* when no detection of that variant is matched to the person at OKS 0.1 — and an
image's score is the number of its keypoints whose class differs between the two
variants; most first, ties by the larger change in good keypoints, then by image id.
Images where nothing changes class are left out. The runs compared and drawn are the first
seed (checkpoint) of each variant.
"""

import base64
import html
import logging
import os
import re
import tempfile
import time

import cv2
import numpy as np

from datasets.coco import load_coco
from datasets.images import read_image_rgb
from pose.errors import UserError
from pose.evaluation.diagnosis import KEYPOINT_CLASSES, diagnose, match_and_classify
from pose.evaluation.diagnosis_files import (  # the figures' palette: the gallery reads alike
    CLASS_COLOURS,
    DIAGNOSIS_OUTPUTS,
    load_results,
    write_diagnosis,
)
from pose.experiments.comparison import metadata_from_fields
from pose.experiments.comparison_report import (
    KEYPOINT_SHARES_NOTE,
    a_a_summary,
    a_a_table,
    differences_note,
    differences_table,
    keypoint_differences_table,
    keypoint_shares_table,
    variants_note,
    variants_table,
    verdict_lines,
)
from pose.fileio import write_text

logger = logging.getLogger(__name__)

REPORT_FILE = "report.html"
GALLERY_SIZE = 8  # images per pair of variants
PANEL_SIDE = 560  # the longer side of a gallery drawing, in pixels
JPEG_QUALITY = 90

UNMATCHED = len(KEYPOINT_CLASSES)  # the class index of a person no detection is matched to
CHANGE_CLASSES = (*KEYPOINT_CLASSES, "unmatched")
UNLABELLED_COLOUR = "#A0A0A0"  # a detected keypoint the ground truth does not label
LIMB_COLOUR = "#FFFFFF"  # the detections' limbs (their joints carry the classes)
TRUTH_COLOUR = "#66CCFF"  # the ground truth, thin (a hue no class has)
HALO_COLOUR = "#000000"

# Nothing but data-URI images and the page's own style: nothing is fetched.
CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em auto;
       max-width: 1280px; padding: 0 1em; color: #1b1b1b; line-height: 1.4; }
h1, h2, h3 { line-height: 1.2; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #c8c8c8; padding: 0.25em 0.5em; text-align: left;
         vertical-align: top; }
th { background: #f0f0f0; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; }
figcaption, .note { color: #444; font-size: 0.9em; }
ul.verdicts li { margin-bottom: 0.4em; }
.variants { display: flex; flex-wrap: wrap; gap: 1.5em; }
.variants section { flex: 1 1 560px; min-width: 0; }
.pair { border-top: 1px solid #c8c8c8; padding-top: 0.6em; }
.panels { display: flex; flex-wrap: wrap; gap: 0.8em; }
.panel { flex: 1 1 420px; }
.panel .label { font-weight: 600; }
.legend span.swatch { display: inline-block; width: 0.9em; height: 0.9em;
                      border-radius: 50%; border: 1px solid #000; margin: 0 0.3em 0 0.9em;
                      vertical-align: middle; }
.legend span.truth { display: inline-block; width: 1.6em; height: 0; margin: 0 0.3em 0 0.9em;
                     border-top: 2px solid; vertical-align: middle; }
.problem { color: #8c2a1c; }
"""


def _rgb(colour):
    """``"#RRGGBB"`` → (r, g, b)."""
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def classes_by_person(classified):
    """``{ground-truth id: (K,) classes}`` of ``match_and_classify``'s result (a matched
    detection's classes belong to the person it is matched to; detection ``i + 1`` is entry
    ``i`` of the results, as COCO's ``loadRes`` numbers them)."""
    dt_to_gt, classes = classified
    return {int(dt_to_gt[entry + 1]): labels for entry, labels in classes.items()}


def rank_images(coco, classified_a, classified_b):
    """The images ordered by how much two results' keypoint classes differ (module doc).

    Args:
        coco: ``pycocotools.coco.COCO`` of the annotations.
        classified_a, classified_b: ``match_and_classify``'s results of the two results sets.

    Returns:
        list of ``{"image_id", "changed", "counts"}``, most changed first, only images
        with a change: ``changed`` is the number of labelled keypoints whose class differs,
        ``counts`` a (2, 6) int array: each results set's labelled keypoints of the image
        per class of ``CHANGE_CLASSES`` (the five classes and unmatched).
    """
    people = classes_by_person(classified_a), classes_by_person(classified_b)
    images = {}
    for ann in coco.dataset.get("annotations", []):
        if ann.get("iscrowd", 0) or not ann.get("num_keypoints", 0) or not ann.get("keypoints"):
            continue  # COCOeval does not count them; the diagnosis classifies none
        labelled = np.asarray(ann["keypoints"], np.float64).reshape(-1, 3)[:, 2] > 0  # (K,)
        entry = images.setdefault(int(ann["image_id"]), {
            "changed": 0, "counts": np.zeros((2, len(CHANGE_CLASSES)), np.int64)})
        per_set = []
        for row, found in enumerate(people):
            labels = found.get(int(ann["id"]))
            labels = (np.full(int(labelled.sum()), UNMATCHED, np.int64) if labels is None
                      else np.asarray(labels, np.int64)[labelled])
            np.add.at(entry["counts"][row], labels, 1)
            per_set.append(labels)
        entry["changed"] += int((per_set[0] != per_set[1]).sum())
    good = KEYPOINT_CLASSES.index("good")
    ranked = sorted(images.items(), key=lambda item: (
        -item[1]["changed"], -abs(int(item[1]["counts"][1, good] - item[1]["counts"][0, good])),
        item[0]))
    return [{"image_id": image_id, **entry} for image_id, entry in ranked if entry["changed"]]


def draw_classified(image, truths, detections, meta, side=PANEL_SIDE):
    """One gallery panel: the image scaled to ``side`` pixels on its longer side, the
    ground truth thin (one pixel, ``TRUTH_COLOUR``), each detection's limbs white and its
    keypoints filled in the colour of their class (``CLASS_COLOURS``; grey where the ground
    truth does not label the keypoint), each over a dark halo.

    Args:
        image: (H, W, 3) uint8 RGB.
        truths: list of (K, 3) ground-truth keypoints (x, y, visibility) of the image.
        detections: list of ((K, 3) detected x, y, score, (K,) class indices into
            ``KEYPOINT_CLASSES``, -1 where the ground truth does not label the keypoint).
        meta: ``DatasetMeta`` (skeleton).
        side: int, the longer side of the drawing. Default ``PANEL_SIDE``.

    Returns:
        ``(drawing (h, w, 3) uint8 RGB, scale)``: image coordinates times ``scale`` are
        drawing coordinates.
    """
    height, width = image.shape[:2]
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    canvas = np.ascontiguousarray(cv2.resize(
        image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR))
    limit = 4 * side  # far-away points must not overflow cv2's int coordinates

    def point(xy):
        x, y = np.clip(np.nan_to_num(np.asarray(xy, np.float64) * scale), -limit, limit)
        return int(round(x)), int(round(y))

    truth_colour, halo = _rgb(TRUTH_COLOUR), _rgb(HALO_COLOUR)
    for keypoints in truths:
        labelled = keypoints[:, 2] > 0
        for a, b in meta.skeleton:
            if labelled[a] and labelled[b]:
                cv2.line(canvas, point(keypoints[a, :2]), point(keypoints[b, :2]),
                         truth_colour, 1, cv2.LINE_AA)
        for k in np.flatnonzero(labelled):
            cv2.circle(canvas, point(keypoints[k, :2]), 3, truth_colour, 1, cv2.LINE_AA)
    colours = [_rgb(CLASS_COLOURS[name]) for name in KEYPOINT_CLASSES]
    for keypoints, classes in detections:
        for a, b in meta.skeleton:
            ends = point(keypoints[a, :2]), point(keypoints[b, :2])
            cv2.line(canvas, *ends, halo, 4, cv2.LINE_AA)
            cv2.line(canvas, *ends, _rgb(LIMB_COLOUR), 2, cv2.LINE_AA)
        for k in np.argsort(np.asarray(classes) >= 0, kind="stable"):  # classified on top
            centre = point(keypoints[k, :2])
            labelled = classes[k] >= 0
            radius = 5 if labelled else 3
            cv2.circle(canvas, centre, radius + 2, halo, -1, cv2.LINE_AA)
            cv2.circle(canvas, centre, radius,
                       colours[classes[k]] if labelled else _rgb(UNLABELLED_COLOUR), -1,
                       cv2.LINE_AA)
    return canvas, scale


def _data_uri(data, mime):
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _jpeg_uri(image_rgb):
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("OpenCV could not encode a gallery drawing as JPEG")
    return _data_uri(encoded.tobytes(), "image/jpeg")


def _text(markdown):
    """Escaped prose with Markdown's ``**strong**`` and ``*emphasis*`` as HTML."""
    text = html.escape(markdown)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"\*(.+?)\*", r"<em>\1</em>", text)


def _table(rows, columns):
    """``format_table``'s arguments as an HTML table, every cell escaped."""
    head = "".join(f"<th>{html.escape(header)}</th>" for _, header, _ in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt.format(row[key]))}</td>"
                                    for key, _, fmt in columns) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(png, alt, caption):
    return (f'<figure><img src="{_data_uri(png, "image/png")}" alt="{html.escape(alt)}">'
            f"<figcaption>{_text(caption)}</figcaption></figure>")


class _Runs:
    """The annotations, metadata and the first seed's results of each variant, read once
    from the comparison's ``sources``; ``problem`` says why not when they cannot be read."""

    def __init__(self, sources):
        self.coco = self.meta = None
        self.results, self.classified, self.problem = {}, {}, None
        if not sources:
            self.problem = ("the comparison kept no results files to read (a comparison of "
                            "checkpoints without an output folder, or a run without results)")
            return
        self.images = sources["images"]
        try:
            self.coco = load_coco(sources["annotations"])
            self.meta = metadata_from_fields(sources["keypoints"])
            for run in sources["runs"]:
                if run["variant"] not in self.results:  # the first seed of each variant
                    self.results[run["variant"]] = load_results(run["results"], self.coco,
                                                                self.meta.num_keypoints)
        except (UserError, ValueError, OSError) as exc:  # moved or deleted since
            self.problem = f"the runs' files cannot be read again: {exc}"
            self.results = {}

    def classified_of(self, variant):
        if variant not in self.classified:
            self.classified[variant] = match_and_classify(self.coco, self.results[variant],
                                                          self.meta)
        return self.classified[variant]


def _diagnosis_section(runs):
    """Per variant (first seed): the diagnosis figures and its AP after each correction."""
    if not runs.results:
        return f'<p class="note problem">No per-variant diagnosis: {_text(runs.problem)}.</p>'
    parts = []
    for variant, results in runs.results.items():
        report = diagnose(runs.coco, results, runs.meta)
        with tempfile.TemporaryDirectory() as scratch:  # the figures analyze.py draws
            write_diagnosis(report, scratch)
            figures = {name: open(os.path.join(scratch, name), "rb").read()
                       for name in DIAGNOSIS_OUTPUTS if name.endswith(".png")}
        background = report["background"]
        steps = [{"step": step, **{k: f"{v:.3f}" for k, v in values.items()}}
                 for step, values in report["ap_steps"].items()]
        parts.append(
            f'<section class="diagnosis"><h3>{html.escape(variant)} (seed 0)</h3>'
            f"<p>{report['matched_detections']} detections matched at OKS 0.1; background: "
            f"{background['false_positives']} false positives of "
            f"{background['detections']} detections, {background['false_negatives']} false "
            "negatives.</p>"
            + "".join(_figure(png, f"{variant}: {name}", caption) for name, png, caption in (
                ("error shares", figures["diagnosis_errors.png"],
                 "Share of each error class per keypoint type (all: every keypoint)."),
                ("precision-recall", figures["diagnosis_pr.png"],
                 "Precision–recall at OKS 0.5 after each error is corrected in turn.")))
            + "<p>AP after correcting each error in turn (each step on top of the ones "
            "before):</p>" + _table(steps, [("step", "step", "{}"), ("AP", "AP", "{}"),
                                             ("AP50", "AP50", "{}"), ("AP75", "AP75", "{}")])
            + "</section>")
    return '<div class="variants">' + "".join(parts) + "</div>"


def _legend():
    swatches = "".join(f'<span class="swatch" style="background:{colour}"></span>{name}'
                       for name, colour in CLASS_COLOURS.items())
    return (f'<p class="legend">Keypoints:{swatches}<span class="swatch" style="background:'
            f'{UNLABELLED_COLOUR}"></span>not labelled in the ground truth'
            f'<span class="truth" style="border-color:{TRUTH_COLOUR}"></span>ground truth '
            '(thin)</p>')


def _panel(runs, image_info, variant, counts):
    """One variant's drawing of one image, as HTML."""
    k = runs.meta.num_keypoints
    image_id = image_info["id"]
    truths = [np.asarray(a["keypoints"], np.float64).reshape(k, 3)
              for a in runs.coco.loadAnns(runs.coco.getAnnIds(imgIds=image_id))
              if a.get("keypoints") and not a.get("iscrowd", 0)]
    _, classes = runs.classified_of(variant)
    results = runs.results[variant]
    detections = [(np.asarray(results[entry]["keypoints"], np.float64).reshape(k, 3), labels)
                  for entry, labels in classes.items()
                  if int(results[entry]["image_id"]) == image_id]
    path = os.path.join(runs.images, image_info["file_name"])
    note = ""
    try:
        image = read_image_rgb(path)
    except (OSError, ValueError) as exc:  # drawn on grey, and said so
        image = np.full((int(image_info.get("height") or 480),
                         int(image_info.get("width") or 640), 3), 128, np.uint8)
        note = f'<div class="problem">{html.escape(str(exc))}</div>'
    drawing, scale = draw_classified(image, truths, detections, runs.meta)
    tally = " · ".join(f"{name} {int(n)}" for name, n in zip(CHANGE_CLASSES, counts))
    return (f'<div class="panel"><div class="label">{html.escape(variant)}</div>'
            f'<img src="{_jpeg_uri(drawing)}" data-variant="{html.escape(variant)}" '
            f'data-scale="{scale:.6f}" alt="{html.escape(variant)} on image {image_id}">'
            f'<div class="note">{tally}</div>{note}</div>')


def _gallery(runs, reference, variant, size):
    ranked = rank_images(runs.coco, runs.classified_of(reference),
                         runs.classified_of(variant))
    title = (f"<h3>{html.escape(variant)} against {html.escape(reference)} (seed 0 of each)"
             "</h3>")
    if not ranked:
        return title + "<p>No labelled keypoint changes class between the two: nothing to " \
                       "show.</p>"
    items = []
    for place, entry in enumerate(ranked[:size], start=1):
        info = runs.coco.imgs[entry["image_id"]]
        good = KEYPOINT_CLASSES.index("good")
        items.append(
            f'<figure class="pair" data-image-id="{entry["image_id"]}" '
            f'data-changed="{entry["changed"]}"><figcaption>#{place}: image '
            f'{entry["image_id"]} ({html.escape(info["file_name"])}): {entry["changed"]} '
            f"labelled keypoints change class; good {entry['counts'][0, good]} → "
            f"{entry['counts'][1, good]}</figcaption><div class=\"panels\">"
            + _panel(runs, info, reference, entry["counts"][0])
            + _panel(runs, info, variant, entry["counts"][1]) + "</div></figure>")
    return (title + f"<p>The {min(size, len(ranked))} images of {len(ranked)} with a change "
            "where the two differ most.</p>" + "".join(items))


def _gallery_section(comparison, runs, size):
    head = ("<h2>Gallery: where the variants differ most</h2><p>Ranked by the number of "
            "labelled ground-truth keypoints whose error class differs between the two "
            "variants' predictions (a person that no detection of a variant is matched to at "
            "OKS 0.1 counts each of its labelled keypoints as <em>unmatched</em> there); "
            "ties by the larger change in good keypoints, then by image id. Drawn: the "
            "detections matched to a person, each keypoint in the colour of its class, the "
            "ground truth thin; under each drawing the image's labelled keypoints per "
            "class.</p>" + _legend())
    if not runs.results:
        return head + f'<p class="note problem">No gallery: {_text(runs.problem)}.</p>'
    labels = [row["variant"] for row in comparison["variants"]]
    if len(labels) < 2:
        return head + "<p>A single variant has nothing to be compared with.</p>"
    return head + "".join(_gallery(runs, labels[0], variant, size) for variant in labels[1:])


def report_html(comparison, chart_png=None, gallery_size=GALLERY_SIZE):
    """The comparison (:func:`pose.experiments.comparison.summarize_comparison`) as one
    self-contained HTML page (module doc); ``chart_png``: ``comparison.png``'s bytes."""
    start = time.perf_counter()
    runs = _Runs(comparison.get("sources"))
    parts = ["<h1>PSA comparison</h1>",
             '<p class="note">A self-contained report: every figure is in this file, '
             "nothing is loaded from the network. The same tables in Markdown: "
             "comparison.md; the numbers: comparison.json.</p>"]
    verdicts = verdict_lines(comparison)
    if verdicts:
        parts.append('<ul class="verdicts">' + "".join(f"<li>{html.escape(line)}</li>"
                                                      for line in verdicts) + "</ul>")
    parts += ["<h2>AP and cost per variant</h2>", f"<p>{_text(variants_note(comparison))}</p>",
              _table(*variants_table(comparison))]
    if chart_png is not None:
        parts.append(_figure(chart_png, "AP per variant and the paired differences",
                             "AP/AR per variant (error bars: std over seeds) and, beside "
                             "them, each difference with its 95% interval (filled dots: "
                             "shown across seeds)."))
    parts.append("<h2>Paired differences</h2>")
    if comparison["differences"]:
        parts += [f"<p>{_text(differences_note(comparison))}</p>",
                  _table(*differences_table(comparison))]
    else:
        parts.append(f"<p>Not computed: {html.escape(comparison['bootstrap']['skipped'])}.</p>")
    parts.append("<h2>Where the keypoints go wrong (Ronchi &amp; Perona)</h2>")
    if comparison.get("keypoint_errors"):
        parts += [f"<p>{_text(KEYPOINT_SHARES_NOTE)}.</p>",
                  _table(*keypoint_shares_table(comparison)),
                  "<p>Each variant against the first: each share's change in points, and "
                  "the AP after each error is fixed in turn (jitter, inversion, swap, miss, "
                  "then scoring), each with its 95% interval (the same kind as the AP "
                  "differences').</p>", _table(*keypoint_differences_table(comparison))]
    else:
        parts.append("<p>No breakdown: a run has no results to classify.</p>")
    parts += ["<h3>Each variant's diagnosis</h3>", _diagnosis_section(runs),
              _gallery_section(comparison, runs, gallery_size)]
    for check in comparison.get("a_a", []):
        summary = a_a_summary(check).split("\n", 2)  # title, blank, the rest
        parts += [f"<h2>{html.escape(summary[0].lstrip('# '))}</h2>",
                  "".join(f"<p>{_text(line.lstrip('- '))}</p>"
                          for line in summary[2].splitlines() if line.strip()),
                  _table(*a_a_table(check))]
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>PSA comparison</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")
    logger.info("report.html built in %.1f s", time.perf_counter() - start)
    return page


def write_report_html(comparison, out_dir, chart_png=None, gallery_size=GALLERY_SIZE):
    """Write ``out_dir/report.html`` (:func:`report_html`); returns its path. ``chart_png``:
    the path of ``comparison.png`` to embed, or None."""
    chart = None
    if chart_png is not None:
        with open(chart_png, "rb") as f:
            chart = f.read()
    path = os.path.join(out_dir, REPORT_FILE)
    write_text(report_html(comparison, chart, gallery_size), path)
    return path


__all__ = ["REPORT_FILE", "CLASS_COLOURS", "CHANGE_CLASSES", "classes_by_person",
           "rank_images", "draw_classified", "report_html", "write_report_html"]
