"""The comparison in words and files: the verdict lines, the Markdown report and
``comparison.{md,json,png}``.

``pose.experiments.comparison`` trains, evaluates and computes the intervals; this module
only says what they mean: ``verdict_lines`` (one line per pair, read first),
``keypoint_error_lines`` (where the keypoints go wrong), ``comparison_markdown`` (every
table; each table's rows also by its own function, for ``report.html``) and
``write_comparison``.
"""

import os

import numpy as np

from pose.evaluation.bootstrap import INTERVAL_STATS, MIN_SEEDS_FOR_A_VERDICT
from pose.evaluation.diagnosis import KEYPOINT_CLASSES
from pose.evaluation.metrics import STAT_NAMES
from pose.experiments.comparison import DEFAULT_SEEDS
from pose.fileio import write_json, write_text
from pose.models.complexity import format_table


def a_a_markdown(check):
    """An A/A check (:func:`a_a_check`) as a Markdown section."""
    return a_a_summary(check) + format_table(*a_a_table(check)) + "\n"


def a_a_summary(check):
    """The A/A check's title and what it found, in Markdown (``**`` marks the counts)."""
    metric = check["metric"]
    single, splits = check["single_seed_pairs"], check["seed_splits"]
    widths = {name: np.median([stat["high"] - stat["low"] for stat in group])
              for name, group in (("single", single), ("splits", splits))}
    return (f"## A/A check: {check['variant']} against itself ({len(check['per_seed'])} "
            f"seeds)\n\n{metric} per seed: "
            + " ".join(f"{v:.3f}" for v in check["per_seed"])
            + f" (mean {check['mean']:.3f}, std {check['std']:.3f}).\n\n"
            f"- One seed against one, image-only interval: **{check['single_excluding_zero']} "
            f"of {len(single)}** pairs exclude 0 — differences that training noise alone "
            f"made (median width {widths['single']:.3f}).\n"
            f"- {len(splits[0]['a'])} seeds against {len(splits[0]['b'])}, interval with "
            f"the seeds in it: **{check['splits_shown']} of {len(splits)}** splits show a "
            f"difference (median width {widths['splits']:.3f}).\n\n")


def a_a_table(check):
    """``(rows, columns)`` of the A/A check's intervals (``format_table``'s arguments)."""
    metric = check["metric"]
    single, splits = check["single_seed_pairs"], check["seed_splits"]
    table = [{"compared": f"seed {stat['seeds'][1]} − seed {stat['seeds'][0]}",
              "interval": "images only", "difference": _signed(stat["difference"]),
              "ci": _interval_text(stat), "zero": "excludes 0" if stat["excludes_zero"]
              else "holds 0"} for stat in single]
    table += [{"compared": "seeds " + ",".join(map(str, stat["b"])) + " − seeds "
               + ",".join(map(str, stat["a"])), "interval": "seeds + images",
               "difference": _signed(stat["difference"]), "ci": _interval_text(stat),
               "zero": "excludes 0" if stat["excludes_zero"] else "holds 0"}
              for stat in splits]
    columns = [("compared", "compared", "{}"), ("interval", "interval over", "{}"),
               ("difference", f"{metric} difference", "{}"), ("ci", "95% interval", "{}"),
               ("zero", "0", "{}")]
    return table, columns


def comparison_markdown(comparison):
    """The comparison as Markdown: the verdict line of each pair first, then AP per seed and
    AP/AR as mean ± std with the costs, then each pair's differences with their intervals."""
    verdicts = "\n".join(f"- {line}" for line in verdict_lines(comparison))
    return ("# PSA comparison\n\n" + (verdicts + "\n\n" if verdicts else "")
            + variants_note(comparison) + "\n\n" + format_table(*variants_table(comparison))
            + "\n\n" + differences_markdown(comparison) + keypoint_errors_markdown(comparison)
            + "".join("\n" + a_a_markdown(check) for check in comparison.get("a_a", [])))


def variants_table(comparison):
    """``(rows, columns)`` of the per-variant table: AP per seed, AP/AR as mean ± std over
    seeds, the costs (``format_table``'s arguments)."""
    table_rows = []
    for row in comparison["variants"]:
        cells = {"variant": row["variant"], "psa": row["psa"], "seeds": row["seeds"],
                 "ap_per_seed": " ".join(f"{v:.3f}" for v in row.get("AP_per_seed", []))}
        for name in STAT_NAMES:  # one seed has no spread to show
            cells[name] = f"{row[f'{name}_mean']:.3f}" + (
                f" ± {row[f'{name}_std']:.3f}" if row["seeds"] > 1 else "")
        cells.update(params=row["params"], macs_g=row["macs_g"], latency_ms=row["latency_ms"],
                     train_minutes="–" if row.get("train_seconds") is None
                     else f"{row['train_seconds'] / 60:.1f}")
        table_rows.append(cells)
    columns = ([("variant", "variant", "{}"), ("psa", "PSA (placement/mode/form)", "{}"),
                ("seeds", "seeds", "{}"), ("ap_per_seed", "AP per seed", "{}")]
               + [(name, name, "{}") for name in STAT_NAMES]
               + [("params", "params", "{:,}"), ("macs_g", "MACs (G)", "{:.3f}"),
                  ("latency_ms", "batch-1 latency (ms)", "{:.1f}"),
                  ("train_minutes", "training (min)", "{}")])
    return table_rows, columns


def variants_note(comparison):
    """What the per-variant table holds and how it was measured, in one paragraph."""
    source = comparison["variants"][0]
    return (f"HRNet-W{source['width']} at {source['input']}; boxes: {source['boxes']}; "
            f"flip test: {'on' if source['flip_test'] else 'off'}. PSA forms (psa/layers.py): "
            "paper = the paper's equations, official = DeLightCMU/PSA's PSA_p/PSA_s code, "
            "port = the common Keras port. AP per seed in seed order (checkpoints: in the "
            "order given); AP/AR: mean ± sample std over seeds (one seed: the value; "
            "pycocotools COCOeval); latency and training time (median over seeds, including "
            "the first step's trace; – for a run reused from an earlier call) on this "
            "machine's CPU.")


def keypoint_errors_markdown(comparison):
    """Where the keypoints go wrong (``keypoint_error_differences``): each variant's share
    of good, jitter, inversion, swap and miss keypoints, then each variant against the
    first, in points of share with the interval and whether it is shown; "" without."""
    if not comparison.get("keypoint_errors"):
        return ""
    text = ("\n## Where the keypoints go wrong (Ronchi & Perona)\n\n"
            + KEYPOINT_SHARES_NOTE + ":\n\n"
            + format_table(*keypoint_shares_table(comparison)) + "\n")
    return text + "".join(f"\n{line}\n" for line in keypoint_error_lines(comparison))


KEYPOINT_SHARES_NOTE = ("Share of the matched keypoints (OKS 0.1 matching) in each class, "
                        "averaged over seeds (pose.evaluation.diagnosis)")


def keypoint_shares_table(comparison):
    """``(rows, columns)``: each variant's share of each keypoint error class."""
    errors = comparison["keypoint_errors"]
    rows = [{"variant": label, **{name: f"{100 * value:.1f}%"
                                  for name, value in entry["shares"].items()}}
            for label, entry in errors["variants"].items()]
    return rows, [("variant", "variant", "{}"), *((n, n, "{}") for n in KEYPOINT_CLASSES)]


def keypoint_differences_table(comparison):
    """``(rows, columns)``: for each variant against the first, each class's change of
    share (points) and each "AP after fixing" difference, with the 95% interval and what
    it says (the contents of :func:`keypoint_error_lines` as a table)."""
    rows = []
    for pair in comparison["keypoint_errors"]["differences"]:
        name = f"{pair['variant']} − {pair['reference']}"
        for cls, stat in pair["shares"].items():
            rows.append({"pair": name, "what": f"share of {cls} (points)",
                         "difference": f"{100 * stat['difference']:+.1f}",
                         "interval": f"[{100 * stat['low']:+.1f}, {100 * stat['high']:+.1f}]",
                         "verdict": _share_state(stat)})
        for step, stat in pair.get("ap_after_fixing", {}).items():
            rows.append({"pair": name, "what": f"AP after fixing: {step}",
                         "difference": _signed(stat["difference"]),
                         "interval": _interval_text(stat), "verdict": _verdict(pair, stat)})
    columns = [("pair", "pair", "{}"), ("what", "difference of", "{}"),
               ("difference", "difference", "{}"), ("interval", "95% interval", "{}"),
               ("verdict", "verdict", "{}")]
    return rows, columns


def _share_state(stat):
    return "shown" if stat["shown"] else (
        "images only" if stat["interval"] == "images" else "not shown")


def keypoint_error_lines(comparison):
    """One line per variant against the first: each error class's change of share in
    points with its 95% interval and whether it is shown (what the demo and
    ``tools/compare_psa.py`` print beside the AP verdict); [] without a breakdown."""
    errors = comparison.get("keypoint_errors")
    lines = []
    for pair in (errors or {}).get("differences", []):
        cells = []
        for name, stat in pair["shares"].items():
            cells.append(f"{name} {100 * stat['difference']:+.1f} "
                         f"[{100 * stat['low']:+.1f}, {100 * stat['high']:+.1f}] "
                         f"({_share_state(stat)})")
        lines.append(f"Keypoint errors, {pair['variant']} − {pair['reference']} (points of "
                     "share of the matched keypoints, 95%): " + "; ".join(cells))
        if pair.get("ap_after_fixing"):
            lines.append(
                f"AP after fixing, {pair['variant']} − {pair['reference']} (each step on top "
                "of the ones before, 95%): " + "; ".join(
                    f"{step} {_signed(stat['difference'])} {_interval_text(stat)}"
                    for step, stat in pair["ap_after_fixing"].items()))
    return lines


_STEP_WORDS = {"score": "scoring"}


def ap_difference_sources(comparison):
    """One line per variant against the first: where its AP difference comes from.

    The AP after fixing each error (``ap_after_fixing``, each fix on top of the ones
    before) gives, step by step, how much of the difference that fix removes: the
    difference before it minus the difference after it. The parts and what is left after
    the last fix add up to the difference itself; the line names the largest part. []
    without a breakdown (or where a step's difference is undefined)."""
    errors = comparison.get("keypoint_errors")
    lines = []
    for pair in (errors or {}).get("differences", []):
        steps = pair.get("ap_after_fixing") or {}
        values = [stat.get("difference") for stat in steps.values()]
        if len(values) < 2 or any(v is None or not np.isfinite(v) for v in values):
            continue
        names = list(steps)
        parts = {_STEP_WORDS.get(step, step): before - after
                 for step, before, after in zip(names[1:], values[:-1], values[1:])}
        largest = max(parts, key=lambda name: abs(parts[name]))
        lines.append(
            f"Where the AP difference {pair['variant']} − {pair['reference']} "
            f"({_signed(values[0])}) comes from (the part each fix removes, fixed in this "
            "order): " + ", ".join(f"{name} {_signed(v)}" for name, v in parts.items())
            + f"; left after every fix {_signed(values[-1])}; most from {largest}")
    return lines


def _signed(value):
    return "n/a" if value is None or not np.isfinite(value) else f"{value:+.3f}"


def _interval_text(stat):
    return f"[{_signed(stat['low'])}, {_signed(stat['high'])}]"


def _verdict(pair, stat):
    """What one interval says, in words: shown, not shown (and the seeds that would show
    it), or no verdict (an image-only interval)."""
    if stat["interval"] == "images":
        held = "excludes 0" if stat["excludes_zero"] else "holds 0"
        return (f"no verdict: one seed (the image-only interval {held}; training noise is "
                f"not in it; a verdict needs ≥ {MIN_SEEDS_FOR_A_VERDICT} seeds per variant, "
                f"{DEFAULT_SEEDS} or more in practice)")
    if stat["shown"]:
        direction = "higher" if stat["difference"] > 0 else "lower"
        return f"shown: {pair['variant']} {direction} than {pair['reference']}"
    if stat["seeds_needed"] is not None:
        return (f"no difference shown (a difference this size, with this spread, needs about "
                f"{stat['seeds_needed']} seeds per variant)")
    if stat["difference"] == 0.0:
        return "no difference shown"
    return ("no difference shown (the validation images alone are too few to show one "
            "this size)")


def verdict_lines(comparison, metric="AP"):
    """One line per pair, the first thing to read: every seed's ``metric`` of both
    variants, the difference with its interval (and what is in it) and the verdict."""
    rows = {row["variant"]: row for row in comparison["variants"]}
    lines = []
    for pair in comparison["differences"]:
        stat = pair["stats"][metric]
        reference, variant = rows[pair["reference"]], rows[pair["variant"]]
        count_a, count_b = pair["seeds"]
        seeds = (f"{count_a} seed{'s' if count_a > 1 else ''} per variant"
                 if count_a == count_b else f"{count_a} and {count_b} seeds")
        noise = ("training noise and images" if stat["interval"] == "seeds+images"
                 else "images only")
        per_seed = " · ".join(
            f"{row['variant']} " + " ".join(f"{v:.3f}" for v in row[f"{metric}_per_seed"])
            for row in (reference, variant))
        lines.append(
            f"{metric} verdict, {pair['variant']} − {pair['reference']}: "
            f"{_signed(stat['difference'])} {_interval_text(stat)} (95%, {seeds}, {noise}) "
            f"→ {_verdict(pair, stat)}. {metric} per seed: {per_seed}")
    return lines


def differences_markdown(comparison):
    """The paired differences section of ``comparison.md``."""
    settings = comparison["bootstrap"]
    if not comparison["differences"]:
        return f"## Paired differences\n\nNot computed: {settings['skipped']}.\n"
    return (f"## Paired differences ({settings['confidence']:.0%} intervals over training "
            "seeds and validation images)\n\n" + differences_note(comparison) + "\n\n"
            + format_table(*differences_table(comparison)) + "\n")


def differences_note(comparison):
    """How the paired differences and their intervals are made (Markdown: ``*`` marks a
    word in italics)."""
    settings = comparison["bootstrap"]
    return ("Each difference is the later variant minus the earlier one: the mean over seeds "
            "on the full validation set. Its interval holds two kinds of noise. Training: "
            "seed s of one variant is paired with seed s of the other (the same data order), "
            "and the spread of the per-seed differences enters with Student's t on seeds − 1 "
            "degrees of freedom (variants with unequal seed counts: unpaired, Welch). Images: "
            f"{settings['resamples']:,} paired bootstrap resamples of the "
            f"{settings['images']:,} validation images (seed {settings['seed']}), every run "
            "scored on the same resampled images. The two half-widths are added in "
            "quadrature (pose/evaluation/bootstrap.py says why). A difference is *shown* "
            "only when this interval excludes 0. With one seed per variant the interval "
            "covers the choice of validation images only, not training noise — the same "
            "variant retrained with another seed, or on another CPU kind, moves AP by more "
            "than that — so no verdict is drawn from it.")


def differences_table(comparison):
    """``(rows, columns)`` of every pair's differences with their intervals."""
    level = f"{comparison['bootstrap']['confidence']:.0%}"
    table = []
    for pair in comparison["differences"]:
        name = f"{pair['variant']} − {pair['reference']}"
        for metric in INTERVAL_STATS:
            stat = pair["stats"][metric]
            undefined = (f" ({stat['undefined']} resamples without people in the range)"
                         if stat["undefined"] else "")
            table.append({"pair": name, "metric": metric,
                          "difference": _signed(stat["difference"]),
                          "interval": _interval_text(stat),
                          "seeds": "/".join(str(n) for n in pair["seeds"]),
                          "seed_std": "–" if stat["seed_std"] is None
                          else f"{stat['seed_std']:.3f}",
                          "image_std": f"{stat['image_std']:.3f}",
                          "verdict": _verdict(pair, stat) + undefined})
    columns = [("pair", "pair", "{}"), ("metric", "metric", "{}"),
               ("difference", "difference", "{}"), ("interval", f"{level} interval", "{}"),
               ("seeds", "seeds", "{}"),
               ("seed_std", "std of the per-seed differences", "{}"),
               ("image_std", "std over image resamples", "{}"),
               ("verdict", "verdict", "{}")]
    return table, columns


def write_comparison(comparison, out_dir):
    """``comparison.md``, ``comparison.json``, ``comparison.png`` and ``report.html`` (the
    self-contained report with a gallery: ``pose.experiments.comparison_html``) in
    ``out_dir``; returns ``{"md", "json", "png", "html": path}``."""
    from pose.experiments.comparison_html import write_report_html
    from pose.visualization import plot_comparison

    os.makedirs(out_dir, exist_ok=True)
    paths = {name: os.path.join(out_dir, f"comparison.{name}") for name in ("md", "json", "png")}
    write_text(comparison_markdown(comparison), paths["md"])
    write_json(comparison, paths["json"])
    plot_comparison(comparison["variants"], paths["png"],
                    differences=comparison["differences"])
    paths["html"] = write_report_html(comparison, out_dir, chart_png=paths["png"])
    return paths
