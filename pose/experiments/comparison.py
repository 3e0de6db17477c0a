"""Does PSA earn its cost? Train and evaluate variants on the same data and seeds, tabulate.

``run_comparison`` trains every variant (none / parallel / sequential PSA, each PSA variant
in the config's form or a named one: ``official-parallel``, ``port-sequential``, see
``parse_variant``) for every seed
with ``pose.engine.training.train`` (a finished run is reused, an interrupted one resumes),
evaluates the final model of each with ``pose.evaluation.evaluator.evaluate_config``, and
summarises AP/AR per seed and as mean ± std over seeds next to parameters, MACs and
batch-1 latency, and every pair of variants by its AP/AR differences with paired 95%
intervals that hold both the training noise (seed ``s`` of one variant paired with seed
``s`` of the other) and the choice of validation images (a paired bootstrap):
``pose.evaluation.bootstrap.seed_aware_interval``. A difference is called *shown* only
when that interval excludes 0; one seed per variant gives an image-only interval and no
verdict, since the same variant retrained with another seed, or on another CPU kind,
moves AP by more than PSA does at demo scale (BENCHMARKS.md, "Training noise").
``compare_checkpoints`` does the same for models trained elsewhere (e.g. on full COCO).
``pose.experiments.comparison_report`` turns the result into the verdict lines, the
Markdown report and the files.
"""

import csv
import dataclasses
import itertools
import json
import logging
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from datasets.coco import load_coco
from datasets.metadata import DatasetMeta
from pose.config import save_config
from pose.engine.checkpoint import load_model
from pose.engine.training import train
from pose.errors import UserError
from pose.evaluation.bootstrap import (
    PerImageMatches,
    check_resample_memory,
    paired_differences,
    resample_image_counts,
    resampled_stats,
    seed_aware_interval,
)
from pose.evaluation.diagnosis import (
    KEYPOINT_CLASSES,
    RESULT_STEPS,
    class_counts_by_image,
    corrected_results,
    match_and_classify,
)
from pose.evaluation.evaluator import evaluate_config
from pose.evaluation.metrics import STAT_NAMES, run_cocoeval
from pose.experiments.benchmark import make_forward, time_forward
from pose.models.complexity import describe_model
from psa import PSA_FORMS, PSA_MODES

logger = logging.getLogger(__name__)

VARIANTS = ("none", "parallel", "sequential")  # the default variants (the config's PSA form)
DEFAULT_SEEDS = 3  # training seeds per variant of tools/compare_psa.py and the demo
PLACEMENTS = ("branch", "block")


def parse_variant(variant):
    """A variant name → ``(mode, form)``; ``(None, None)`` for ``"none"``.

    ``"parallel"``/``"sequential"`` keep the config's ``model.psa_form`` (form None);
    ``"FORM-MODE"`` names the form too: ``"official-parallel"``, ``"port-sequential"``,
    ``"paper-parallel"`` (``psa.PSA_FORMS``).

    Raises:
        ValueError: naming the variant and the names allowed.
    """
    if variant == "none":
        return None, None
    form, _, mode = variant.rpartition("-") if isinstance(variant, str) else ("", "", None)
    if mode in PSA_MODES and (form == "" or form in PSA_FORMS):
        return mode, form or None
    raise ValueError(f"variant must be 'none', a PSA mode {PSA_MODES} or FORM-MODE with FORM "
                     f"in {PSA_FORMS} (e.g. 'official-parallel'), got {variant!r}")


def expand_forms(variants, forms):
    """Each PSA variant without a form once per form in ``forms`` (``FORM-MODE``), the
    others as they are: ``(none, parallel)`` × ``(paper, port)`` → ``none,
    paper-parallel, port-parallel``."""
    expanded = []
    for variant in variants:
        mode, form = parse_variant(variant)
        if mode is None or form is not None:
            expanded.append(variant)
        else:
            expanded.extend(f"{f}-{mode}" for f in forms)
    for form in forms:
        if form not in PSA_FORMS:
            raise ValueError(f"form must be one of {PSA_FORMS}, got {form!r}")
    return list(dict.fromkeys(expanded))


def variant_config(config, variant, placement="branch", seed=None):
    """``config`` with the model's PSA set to ``variant`` (see ``parse_variant``) and,
    optionally, the seed."""
    mode, form = parse_variant(variant)
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
    model = dataclasses.replace(
        config.model,
        psa_placement="none" if mode is None else placement,
        psa_mode=mode or "parallel",
        psa_form=form or config.model.psa_form)
    train_section = config.train if seed is None else dataclasses.replace(config.train, seed=seed)
    return dataclasses.replace(config, model=model, train=train_section)


def _finished(run_dir, epochs):
    log = os.path.join(run_dir, "log.csv")
    if not (os.path.isfile(log) and os.path.isfile(os.path.join(run_dir, "last.keras"))):
        return False
    with open(log, newline="") as f:
        epochs_done = [int(row["epoch"]) for row in csv.DictReader(f)]
    return bool(epochs_done) and epochs_done[-1] + 1 >= epochs


def measure_latency_ms(model, repeats=10):
    """Median batch-1 forward time of ``model`` in milliseconds (predict_on_batch)."""
    width, height = model.input_size
    image = np.random.default_rng(0).normal(size=(1, height, width, 3)).astype("float32")
    return time_forward(make_forward(model, "predict_on_batch"), image,
                        repeats=repeats).median_s * 1e3


def per_image_matches(results_file, annotation_file, oks_sigmas):
    """The run's COCOeval per-image matches for the bootstrap; None when it has no results."""
    if not os.path.isfile(results_file):
        return None
    coco = load_coco(annotation_file)
    sigmas = DatasetMeta.from_coco(coco, sigmas=oks_sigmas).sigmas_array
    try:
        return PerImageMatches.from_cocoeval(run_cocoeval(coco, results_file, sigmas))
    except ValueError:  # no results at all: nothing to resample
        return None


def _keypoint_errors(results_file, annotation_file, config):
    """The run's per-image keypoint error counts (``pose.evaluation.diagnosis``), or None
    when it has no results: ``{"image_ids": (I,), "counts": (I, 5)}``."""
    if not os.path.isfile(results_file):
        return None
    coco = load_coco(annotation_file)
    meta = DatasetMeta.from_coco(coco, data=config.data)
    with open(results_file, encoding="utf-8") as f:
        results = json.load(f)
    if not results:
        return None
    classified = match_and_classify(coco, results, meta)  # once for both below
    image_ids, counts = class_counts_by_image(coco, results, meta, classified)
    # the per-image matches of the results with each error fixed, for the AP intervals
    fixed = {step: PerImageMatches.from_cocoeval(run_cocoeval(coco, step_results,
                                                              meta.sigmas_array))
             for step, step_results
             in corrected_results(coco, results, meta, classified).items()}
    return {"image_ids": image_ids, "counts": counts, "fixed": fixed, "meta": meta}


def _evaluate_run(label, model, config, out_dir, verbose):
    """A run's row without its latency (timed separately, when nothing else runs)."""
    metrics = evaluate_config(model, config, out_dir=out_dir, verbose=verbose)
    return {"variant": label, **describe_model(model),
            "metrics": {name: metrics[name] for name in STAT_NAMES},
            "boxes": metrics["boxes"], "flip_test": metrics["flip_test"],
            **read_run_results(os.path.join(out_dir, "keypoints_results.json"),
                               metrics["annotations"], config)}


def read_run_results(results_file, annotation_file, config):
    """What the comparison takes from a run's results file: ``matches`` (COCOeval's
    per-image matches, :func:`per_image_matches`), ``errors`` (the per-image keypoint error
    counts and the matches with each error fixed) and ``sources`` (where the results,
    annotations and images are, and the keypoint metadata: what ``report.html`` reads
    again for its gallery); each None when the run has no results. Only ``config.data``
    is read."""
    matches = per_image_matches(results_file, annotation_file, config.data.oks_sigmas)
    errors = _keypoint_errors(results_file, annotation_file, config)
    sources = None if errors is None else {
        "results": os.path.abspath(results_file),
        "annotations": os.path.abspath(annotation_file),
        "images": os.path.abspath(config.data.resolve(config.data.val_images)),
        "keypoints": keypoint_metadata(errors["meta"])}
    return {"matches": matches, "errors": errors, "sources": sources}


def keypoint_metadata(meta):
    """A ``DatasetMeta`` as JSON-ready fields (0-based index pairs) that
    :func:`metadata_from_fields` turns back into it: what the comparison keeps so that its
    report classifies keypoints as the comparison did (the run's sigmas and flip pairs)."""
    return {"keypoint_names": list(meta.keypoint_names),
            "skeleton": [list(pair) for pair in meta.skeleton],
            "flip_pairs": [list(pair) for pair in meta.flip_pairs],
            "sigmas": list(meta.sigmas)}


def metadata_from_fields(fields):
    """The ``DatasetMeta`` of :func:`keypoint_metadata`'s fields."""
    return DatasetMeta(tuple(fields["keypoint_names"]),
                       tuple(tuple(pair) for pair in fields["skeleton"]),
                       tuple(fields["sigmas"]),
                       tuple(tuple(pair) for pair in fields["flip_pairs"]))


def run_comparison(config, workdir, variants=VARIANTS, placement="branch", seeds=1,
                   verbose=1, num_resamples=1000, bootstrap_seed=0, jobs=1, a_a=False):
    """Train and evaluate each variant for seeds 0..seeds-1; returns the comparison
    (see :func:`summarize_comparison`).

    ``jobs`` > 1 trains up to that many runs at once, each in its own ``tools/train.py``
    process with ``cores // jobs`` TensorFlow threads (``_train_in_processes``); 1 (the
    default) trains them one after another in this process. On few cores parallel runs
    use the machine better: each run's first-step trace is mostly single-threaded Python,
    and a small model's step does not keep two threads busy. A run that finishes while
    others still train is evaluated at once, on the cores it leaves free; the latencies
    are timed at the end, when nothing else runs.
    """
    planned = []
    for variant in variants:
        for seed in range(seeds):
            run_config = variant_config(config, variant, placement, seed)
            planned.append((variant, seed, run_config,
                            os.path.join(workdir, variant, f"seed{seed}")))
    pending = [(variant, seed, run_config, run_dir)
               for variant, seed, run_config, run_dir in planned
               if not _finished(run_dir, run_config.train.epochs)]
    evaluated = {}  # run_dir: (model, its row without latency)

    def evaluate(run_dir):
        variant, _, run_config, _ = next(run for run in planned if run[3] == run_dir)
        model, _ = load_model(os.path.join(run_dir, "last.keras"))
        evaluated[run_dir] = model, _evaluate_run(variant, model, run_config,
                                                  os.path.join(run_dir, "test"), verbose)

    train_seconds = {}  # a finished run is reused: its training is not timed here
    if jobs > 1 and len(pending) > 1:
        train_seconds = _train_in_processes(pending, jobs, verbose, on_trained=evaluate)
    else:
        for variant, seed, run_config, run_dir in pending:
            if verbose:
                logger.info("\n=== %s PSA, seed %d -> %s", variant, seed, run_dir)
            start = time.perf_counter()
            train(run_config, run_dir, verbose=verbose, validate=False)
            train_seconds[run_dir] = time.perf_counter() - start
    runs = []
    for _, _, _, run_dir in planned:
        if run_dir not in evaluated:
            evaluate(run_dir)
        model, row = evaluated[run_dir]
        runs.append({**row, "latency_ms": measure_latency_ms(model),
                     "train_seconds": train_seconds.get(run_dir)})
    return summarize_comparison(runs, num_resamples, bootstrap_seed, a_a=a_a)


def _train_in_processes(pending, jobs, verbose, on_trained=None):
    """Train ``pending`` runs, ``jobs`` at a time, each in a ``tools/train.py`` process
    (its output in ``RUN_DIR/train.log``); returns ``{run_dir: wall seconds}``.
    ``on_trained(run_dir)`` is called for each run that finishes while others still
    train (the caller's work on it overlaps their training); not for the ones that end last.

    Raises:
        RuntimeError: a run failed (its log's tail is in the message).
    """
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    env = dict(os.environ, TF_NUM_INTRAOP_THREADS=threads, TF_NUM_INTEROP_THREADS=threads,
               TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    tool = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "train.py")
    queue, running, seconds = list(pending), [], {}
    trained = []  # finished runs not yet handed to on_trained
    try:
        while queue or running:
            while queue and len(running) < jobs:
                variant, seed, run_config, run_dir = queue.pop(0)
                os.makedirs(run_dir, exist_ok=True)
                requested = os.path.join(run_dir, "requested.yaml")
                save_config(run_config, requested)
                log = open(os.path.join(run_dir, "train.log"), "w", encoding="utf-8")
                if verbose:
                    logger.info("=== %s PSA, seed %d -> %s (own process, %s thread(s), log "
                                "train.log)", variant, seed, run_dir, threads)
                process = subprocess.Popen(
                    [sys.executable, tool, "--config", requested, "--workdir", run_dir,
                     "--no-validate"], stdout=log, stderr=subprocess.STDOUT, env=env)
                running.append((process, log, run_dir, time.perf_counter()))
            if trained and running:  # after the launches, so that it overlaps training
                on_trained(trained.pop(0))
                continue
            finished = [entry for entry in running if entry[0].poll() is not None]
            if not finished:
                time.sleep(0.5)
                continue
            process, log, run_dir, start = finished[0]
            running.remove(finished[0])
            log.close()
            seconds[run_dir] = time.perf_counter() - start
            if process.returncode != 0:
                with open(os.path.join(run_dir, "train.log"), encoding="utf-8") as f:
                    tail = f.read()[-3000:]
                raise RuntimeError(f"training {run_dir} failed (exit {process.returncode}):"
                                   f"\n{tail}")
            if verbose:
                logger.info("%s trained in %.0f s", run_dir, seconds[run_dir])
            if on_trained is not None:
                trained.append(run_dir)
    finally:  # a failed run, an error or Ctrl-C here: no training left running unseen
        for process, log, _, _ in running:  # (each resumes from its backup when rerun)
            process.kill()
            process.wait()
            log.close()
    return seconds


def compare_checkpoints(checkpoints, config=None, out_dir=None, verbose=1, num_resamples=1000,
                        bootstrap_seed=0, a_a=False):
    """Evaluate ``[(label, path), ...]``; several paths with one label count as seeds.

    Each checkpoint is evaluated with its own config (``NAME.yaml`` beside it) unless
    ``config`` is given. Returns the comparison (see :func:`summarize_comparison`).
    """
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        for i, (label, path) in enumerate(checkpoints):
            model, saved = load_model(path)
            run_config = config or saved
            if run_config is None:
                raise UserError(f"{path} has no config beside it; pass a config")
            run_out = os.path.join(out_dir or scratch, checkpoint_run_name(i, label))
            run = _evaluate_run(label, model, run_config, run_out, verbose)
            if out_dir is None:  # its results go with the scratch folder
                run["sources"] = None
            runs.append({**run, "latency_ms": measure_latency_ms(model)})
    return summarize_comparison(runs, num_resamples, bootstrap_seed, a_a=a_a)


def summarize_comparison(runs, num_resamples=1000, bootstrap_seed=0, confidence=0.95,
                         a_a=False):
    """The rows of :func:`summarize` and every pair's paired differences; with ``a_a``,
    each variant's A/A check (:func:`a_a_check`, for variants of at least 4 seeds).

    Returns:
        dict ``{"variants": rows, "differences": [...] (see
        ``pose.evaluation.bootstrap.paired_differences``), "bootstrap": settings}`` and,
        with ``a_a``, ``"a_a": [check, ...]``; ``differences`` is empty, with the reason in
        ``bootstrap["skipped"]``, when there is a single variant or a run without any
        result; ``"keypoint_errors"`` (:func:`keypoint_error_differences`) and
        ``"sources"`` (:func:`run_sources`: the results files the report's gallery
        draws) where every run has them.
    """
    rows = summarize(runs)
    matches = {}
    for run in runs:
        matches.setdefault(run["variant"], []).append(run.get("matches"))
    settings = {"resamples": num_resamples, "seed": bootstrap_seed, "confidence": confidence,
                "images": None, "skipped": None}
    differences = []
    resampled = dict(num_resamples=num_resamples, seed=bootstrap_seed, confidence=confidence)
    complete = not any(m is None for group in matches.values() for m in group)
    if complete:
        settings["images"] = len(runs[0]["matches"].image_ids)
    if len(matches) < 2:
        settings["skipped"] = "a single variant has nothing to be compared with"
    elif not complete:
        settings["skipped"] = "a run has no results to resample"
    else:
        differences = paired_differences(matches, **resampled)
    comparison = {"variants": rows, "differences": differences, "bootstrap": settings}
    if complete and len(matches) >= 2:
        errors = keypoint_error_differences(runs, **resampled)
        if errors is not None:
            comparison["keypoint_errors"] = errors
    sources = run_sources(runs)
    if sources is not None:
        comparison["sources"] = sources
    if a_a:
        short = [label for label, group in matches.items() if len(group) < MIN_SEEDS_FOR_A_A]
        if short or not complete:
            raise UserError(
                f"an A/A check needs at least {MIN_SEEDS_FOR_A_A} seeds of each variant, all "
                f"with results; {', '.join(short) or 'a run has no results'}")
        comparison["a_a"] = [a_a_check(label, group, **resampled)
                             for label, group in matches.items()]
    return comparison


def run_sources(runs):
    """Where the runs' results are, for the report's gallery: ``{"annotations", "images",
    "keypoints" (:func:`keypoint_metadata`), "runs": [{"variant", "seed", "results"}]}``
    (seed: the run's place among its variant's runs), or None when a run has no results
    file kept or the runs were evaluated on other annotations or images."""
    kept = [run.get("sources") for run in runs]
    if not kept or any(source is None for source in kept):
        return None
    shared = {key: kept[0][key] for key in ("annotations", "images", "keypoints")}
    if any({key: source[key] for key in shared} != shared for source in kept):
        return None
    seeds = {}
    listed = []
    for run, source in zip(runs, kept):
        seed = seeds[run["variant"]] = seeds.get(run["variant"], -1) + 1
        listed.append({"variant": run["variant"], "seed": seed, "results": source["results"]})
    return {**shared, "runs": listed}


def keypoint_error_differences(runs, num_resamples=1000, seed=0, confidence=0.95):
    """Where the variants' keypoints go wrong, and how each variant differs from the first.

    Each run's matched keypoints are classified as good, jitter, inversion, swap or miss
    (``pose.evaluation.diagnosis``, Ronchi & Perona); a class's *share* is its count over
    all matched keypoints. Per variant: the shares, averaged over its seeds. Per variant
    after the first (the reference, ``none`` in a PSA comparison): the difference of each
    share with ``seed_aware_interval`` — the per-seed shares on the full set, and the
    seed-averaged difference over paired image resamples (the same resampled images for
    every run, as the AP intervals; a share is a ratio of sums, so a resample's share is
    ``(w · counts) / (w · totals)`` with ``w`` its image multiplicities).

    Args:
        runs: the runs of :func:`summarize_comparison`, each with ``errors``
            (``_keypoint_errors``) on the same images.
        num_resamples, seed, confidence: of the image bootstrap.

    Returns:
        ``{"variants": {label: {"shares", "counts"}}, "differences": [{"reference",
        "variant", "shares": {class: interval}}]}``, or None when a run has no errors.
    """
    if any(run.get("errors") is None for run in runs):
        return None
    groups = {}
    for run in runs:
        groups.setdefault(run["variant"], []).append(run["errors"])
    image_ids = runs[0]["errors"]["image_ids"]
    if any(not np.array_equal(e["image_ids"], image_ids) for g in groups.values() for e in g):
        raise ValueError("every run's keypoint errors must be on the same images")
    check_resample_memory(num_resamples, len(image_ids))
    weights = resample_image_counts(len(image_ids), num_resamples,
                                    np.random.default_rng(seed))  # (B, I)

    def shares(counts, w=None):
        """(5,) shares of the full set, or (B, 5) of each resample with ``w``."""
        totals = counts.sum(axis=1)  # (I,) matched keypoints per image
        if w is None:
            return counts.sum(axis=0) / max(int(totals.sum()), 1)
        return (w @ counts) / np.maximum(w @ totals, 1)[:, None]  # (B, 5)

    per_seed = {label: np.array([shares(e["counts"]) for e in group])  # (S, 5)
                for label, group in groups.items()}
    replicates = {label: np.mean([shares(e["counts"], weights) for e in group], axis=0)
                  for label, group in groups.items()}  # (B, 5) seed-averaged
    labels = list(groups)
    report = {"variants": {label: {
        "shares": dict(zip(KEYPOINT_CLASSES, per_seed[label].mean(axis=0).tolist())),
        "counts": dict(zip(KEYPOINT_CLASSES, np.mean(
            [e["counts"].sum(axis=0) for e in groups[label]], axis=0).tolist()))}
        for label in labels}, "differences": []}
    reference = labels[0]
    for label in labels[1:]:
        report["differences"].append({"reference": reference, "variant": label, "shares": {
            name: seed_aware_interval(per_seed[reference][:, c], per_seed[label][:, c],
                                      replicates[label][:, c] - replicates[reference][:, c],
                                      confidence)
            for c, name in enumerate(KEYPOINT_CLASSES)}, "ap_after_fixing": {}})
    if all("fixed" in e for group in groups.values() for e in group):
        for step in RESULT_STEPS:  # each step's AP difference, the AP intervals' way
            pairs = paired_differences(
                {label: [e["fixed"][step] for e in groups[label]] for label in labels},
                num_resamples=num_resamples, seed=seed, confidence=confidence, stats=("AP",))
            for entry, pair in zip(report["differences"],
                                   [p for p in pairs if p["reference"] == reference]):
                entry["ap_after_fixing"][step] = pair["stats"]["AP"]
    return report


MIN_SEEDS_FOR_A_A = 4  # two seeds against two


def a_a_check(label, matches, metric="AP", num_resamples=1000, seed=0, confidence=0.95):
    """The variant against itself: how often an interval finds a difference where there is
    none, with and without the training noise in it.

    Every pair of single seeds gets the image-only interval (one seed against one, as a
    one-seed comparison sees it), and every split of all the seeds into two halves (of
    ``ceil(S/2)`` and ``floor(S/2)``: paired in seed order when equal, unpaired otherwise)
    gets the seed-aware interval of ``pose.evaluation.bootstrap.seed_aware_interval``.
    With seeds in the interval, a difference should be shown in about 5% of splits or
    fewer; the image-only intervals show how far one seed's AP moves with training noise
    alone.

    Args:
        label: str, the variant's name.
        matches: list of ``PerImageMatches``, one per seed (at least ``MIN_SEEDS_FOR_A_A``).
        metric: str, the stat (default AP). The rest: as ``paired_differences``.

    Returns:
        dict with ``variant``, ``metric``, ``per_seed`` (the metric of each seed), ``mean``,
        ``std`` (sample), ``single_seed_pairs`` and ``seed_splits`` (each an interval dict
        with the seeds it compares under ``seeds``/``a``+``b``), and the counts
        ``single_excluding_zero`` and ``splits_shown``.
    """
    if len(matches) < MIN_SEEDS_FOR_A_A:
        raise UserError(f"an A/A check needs at least {MIN_SEEDS_FOR_A_A} seeds, got "
                         f"{len(matches)}")
    resampled = dict(num_resamples=num_resamples, seed=seed, confidence=confidence,
                     stats=(metric,))
    column = STAT_NAMES.index(metric)
    everything = np.ones(len(matches[0].image_ids), np.int64)
    per_seed = [float(resampled_stats(m, everything)[0, column]) for m in matches]
    seeds = range(len(matches))
    single = []
    for i, j in itertools.combinations(seeds, 2):
        (pair,) = paired_differences({f"seed {i}": [matches[i]], f"seed {j}": [matches[j]]},
                                     **resampled)
        single.append({"seeds": [i, j], **pair["stats"][metric]})
    splits = []
    for group_a in itertools.combinations(seeds, (len(matches) + 1) // 2):
        group_b = [s for s in seeds if s not in group_a]
        if len(group_b) == len(group_a) and group_b[0] < group_a[0]:  # each split once
            continue
        (pair,) = paired_differences({"a": [matches[s] for s in group_a],
                                      "b": [matches[s] for s in group_b]}, **resampled)
        splits.append({"a": list(group_a), "b": group_b, **pair["stats"][metric]})
    return {"variant": label, "metric": metric, "per_seed": per_seed,
            "mean": float(np.mean(per_seed)), "std": float(np.std(per_seed, ddof=1)),
            "single_seed_pairs": single, "seed_splits": splits,
            "single_excluding_zero": sum(stat["excludes_zero"] for stat in single),
            "splits_shown": sum(stat["shown"] for stat in splits)}


def summarize(runs):
    """One row per variant label: every stat per run (``NAME_per_seed``), as mean and
    sample std over the runs, plus cost."""
    rows = []
    for label in dict.fromkeys(run["variant"] for run in runs):
        group = [run for run in runs if run["variant"] == label]
        row = {key: group[0][key] for key in ("variant", "width", "input", "psa", "params",
                                              "macs_g", "boxes", "flip_test")}
        row["seeds"] = len(group)
        row["latency_ms"] = float(np.median([run["latency_ms"] for run in group]))
        timed = [run["train_seconds"] for run in group if run.get("train_seconds") is not None]
        row["train_seconds"] = float(np.median(timed)) if timed else None
        for name in STAT_NAMES:
            values = np.array([run["metrics"][name] for run in group], np.float64)
            row[f"{name}_mean"] = float(values.mean())
            row[f"{name}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            row[f"{name}_per_seed"] = values.tolist()  # in seed (or checkpoint) order
        rows.append(row)
    return rows


COMPARISON_FILES = (*(f"comparison.{ext}" for ext in ("md", "json", "png")),
                    "report.html")  # report.html: pose.experiments.comparison_html


def checkpoint_run_name(index, label):
    """The folder of the ``index``-th checkpoint's evaluation in ``compare_checkpoints``."""
    return f"{index:02d}_{label}"


def comparison_outputs(variants=None, checkpoint_labels=()):
    """What a comparison writes at the top of its folder: a folder per trained variant
    (``variants``) or per evaluated checkpoint, and the report files."""
    runs = (list(variants) if variants is not None else
            [checkpoint_run_name(i, label) for i, label in enumerate(checkpoint_labels)])
    return (*runs, *COMPARISON_FILES)
