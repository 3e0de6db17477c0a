"""The diagnosis' files: a COCO keypoint results file read and checked against its
annotations, and a report of :func:`pose.evaluation.diagnosis.diagnose` written as
``diagnosis.json``, ``diagnosis.md`` and the paper's two figures (``tools/analyze.py``,
``tools/test.py --diagnose``, the comparison's report).
"""

from __future__ import annotations

import io
import json
import os
from types import SimpleNamespace

import numpy as np

from datasets.coco import load_coco
from datasets.metadata import DatasetMeta
from pose.errors import UserError
from pose.evaluation.diagnosis import KEYPOINT_CLASSES, LOCALIZATION_OKS, diagnose
from pose.fileio import write_bytes, write_json, write_text

DIAGNOSIS_OUTPUTS = ("diagnosis.json", "diagnosis.md", "diagnosis_errors.png",
                     "diagnosis_pr.png")


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


def format_diagnosis(report: dict, source: str = "") -> str:
    """``diagnosis.md``: the report's tables in Markdown."""
    lines = ["# Keypoint error diagnosis (Ronchi & Perona, ICCV 2017)", ""]
    if source:
        lines += [source, ""]
    if report.get("definitions", "issue") != "issue":
        lines += [f"Definitions: {report['definitions']}'s own (classes, corrections, "
                  "rescoring and background steps as its code has them)", ""]

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


# The keypoint classes' colours in the figures (and the comparison report's gallery).
CLASS_COLOURS = {"good": "#4F9D69", "jitter": "#8C4646", "inversion": "#D96459",
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
               color=CLASS_COLOURS[name])
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


def diagnose_files(annotations, results, out_dir, meta=None, dataset=None,
                   definitions: str = "issue") -> dict:
    """Diagnose a results file against an annotation file; write the outputs.

    Args:
        annotations: COCO keypoint annotation file (or its ``COCO`` object).
        results: COCO keypoint results JSON.
        out_dir: folder for ``DIAGNOSIS_OUTPUTS``.
        meta: ``DatasetMeta``, or None: from the annotations' category, with the sigmas
            and flip pairs of ``dataset`` (a preset name or metadata YAML) when given,
            else COCO's sigmas.
        dataset: str or None, see ``meta``.
        definitions: as :func:`diagnose`.

    Returns:
        the report of :func:`diagnose`.
    """
    coco = load_coco(annotations) if isinstance(annotations, (str, os.PathLike)) else annotations
    if meta is None:
        meta = DatasetMeta.from_coco(
            coco, data=SimpleNamespace(dataset=dataset) if dataset else None)
    report = diagnose(coco, load_results(results, coco, meta.num_keypoints), meta,
                      definitions=definitions)
    write_diagnosis(report, out_dir, source=f"{os.fspath(results)} against "
                    f"{getattr(coco, 'annotation_file', 'the annotations')}")
    return report
