"""PSA comparison: variants trained on the same data, summarized as mean ± std with paired
bootstrap differences, files written."""

import csv
import dataclasses
import os

import numpy as np
import pytest

from pose.evaluation.bootstrap import INTERVAL_STATS
from pose.evaluation.metrics import STAT_NAMES
from pose.experiments.comparison import (
    expand_forms,
    parse_variant,
    run_comparison,
    summarize,
    summarize_comparison,
    variant_config,
)
from pose.experiments.comparison_report import (
    comparison_markdown,
    differences_markdown,
    verdict_lines,
    write_comparison,
)


def _run(label, ap, latency=10.0):
    return {"variant": label, "width": 8, "input": "64x32", "psa": label, "params": 100,
            "macs_g": 0.1, "boxes": "ground truth", "flip_test": True, "latency_ms": latency,
            "metrics": {name: ap for name in STAT_NAMES}}


def test_summary_is_mean_and_sample_std_over_seeds():
    rows = summarize([_run("none", 0.5), _run("parallel", 0.6), _run("none", 0.7, 30.0)])
    none, parallel = rows
    assert none["seeds"] == 2 and parallel["seeds"] == 1
    assert none["AP_mean"] == pytest.approx(0.6)
    assert none["AP_std"] == pytest.approx(0.14142136)  # sqrt(((0.1)^2 * 2) / 1)
    assert none["latency_ms"] == pytest.approx(20.0)
    assert none["AP_per_seed"] == [0.5, 0.7] and parallel["AR_per_seed"] == [0.6]
    comparison = summarize_comparison([_run("none", 0.5), _run("parallel", 0.6),
                                       _run("none", 0.7, 30.0)])
    assert comparison["variants"] == rows
    table = comparison_markdown(comparison)
    assert "0.600 ± 0.141" in table and "| 0.600 " in table.replace("0.600 ± 0.141", "")
    assert comparison["differences"] == []  # these runs carry no per-image matches
    assert "Not computed: a run has no results to resample." in table


def _difference(value, low, high, interval="seeds+images", seeds_needed=None, seed_std=0.01):
    excludes_zero = low > 0 or high < 0
    return {"difference": value, "low": low, "high": high, "interval": interval,
            "excludes_zero": excludes_zero,
            "shown": excludes_zero and interval == "seeds+images", "paired": True,
            "seed_std": seed_std if interval == "seeds+images" else None,
            "image_std": 0.004, "df": 2.0, "seeds_needed": seeds_needed, "undefined": 0}


def _comparison(stats, seeds):
    rows = summarize([_run("none", 0.50 + 0.01 * s) for s in range(seeds)]
                     + [_run("parallel", 0.52 + 0.01 * s) for s in range(seeds)])
    return {"variants": rows,
            "differences": [{"reference": "none", "variant": "parallel",
                             "seeds": [seeds, seeds], "stats": stats}],
            "bootstrap": {"resamples": 1000, "seed": 0, "confidence": 0.95,
                          "images": 100, "skipped": None}}


def test_differences_state_plainly_what_is_shown_across_seeds():
    stats = {name: _difference(0.004, -0.002, 0.010, seeds_needed=40)
             for name in INTERVAL_STATS}
    stats["AP"] = _difference(-0.020, -0.031, -0.008)
    stats["AP50"] = _difference(0.015, 0.002, 0.030)
    stats["APL"] = _difference(0.015, -0.002, 0.030, seeds_needed=None)
    comparison = _comparison(stats, seeds=3)
    text = differences_markdown(comparison)
    lines = text.splitlines()
    assert "1,000 paired bootstrap resamples of the 100 validation images" in text
    assert "seed s of one variant is paired with seed s of the other" in text
    ap = next(line for line in lines if "| AP " in line)
    assert "-0.020" in ap and "[-0.031, -0.008]" in ap and "| 3/3 " in ap
    assert "shown: parallel lower than none" in ap and "| 0.010 " in ap and "| 0.004 " in ap
    assert "shown: parallel higher than none" in next(line for line in lines
                                                       if "| AP50 " in line)
    assert ("no difference shown (a difference this size, with this spread, needs about 40 "
            "seeds per variant)") in next(line for line in lines if "| AR " in line)
    assert "validation images alone are too few" in next(line for line in lines
                                                         if "| APL " in line)
    (verdict,) = verdict_lines(comparison)
    assert verdict == ("AP verdict, parallel − none: -0.020 [-0.031, -0.008] (95%, 3 seeds "
                       "per variant, training noise and images) → shown: parallel lower "
                       "than none. AP per seed: none 0.500 0.510 0.520 · parallel 0.520 "
                       "0.530 0.540")
    markdown = comparison_markdown(comparison)
    assert markdown.splitlines()[2] == "- " + verdict  # the first thing under the title
    assert "| 0.500 0.510 0.520 " in markdown  # AP per seed in the table


def test_one_seed_is_never_called_shown():
    """An image-only interval that excludes 0 is still no verdict, and says why."""
    stats = {name: _difference(-0.019, -0.036, -0.001, interval="images")
             for name in INTERVAL_STATS}
    comparison = _comparison(stats, seeds=1)
    (verdict,) = verdict_lines(comparison)
    assert ("(95%, 1 seed per variant, images only) → no verdict: one seed (the "
            "image-only interval excludes 0; training noise is not in it; a verdict needs ≥ 2 "
            "seeds per variant, 3 or more in practice)") in verdict
    assert "shown:" not in differences_markdown(comparison)
    assert "covers the choice of validation images only, not training noise" in \
        differences_markdown(comparison)


def _errors(counts, image_ids=(1, 2, 3, 4)):
    return {"image_ids": np.asarray(image_ids), "counts": np.asarray(counts, np.int64)}


def test_keypoint_error_shares_and_their_paired_intervals_by_hand():
    """``keypoint_error_differences`` against the shares summed image by image in Python:
    each variant's full-set shares (mean over seeds), and for the second variant each
    share's difference with the seed-aware interval of the same paired image resamples."""
    from pose.evaluation.bootstrap import resample_image_counts, seed_aware_interval
    from pose.evaluation.diagnosis import KEYPOINT_CLASSES
    from pose.experiments.comparison import keypoint_error_differences

    rng = np.random.default_rng(5)
    counts = {(label, s): rng.integers(0, 9, size=(4, 5)) for label in ("none", "parallel")
              for s in range(2)}  # (images, classes) per run
    runs = [{"variant": label, "errors": _errors(counts[label, s])}
            for label in ("none", "parallel") for s in range(2)]
    report = keypoint_error_differences(runs, num_resamples=40, seed=7)

    def share(c, column, multiplicity=(1, 1, 1, 1)):
        total = sum(m * c[i].sum() for i, m in enumerate(multiplicity))
        return sum(m * c[i][column] for i, m in enumerate(multiplicity)) / max(total, 1)

    weights = resample_image_counts(4, 40, np.random.default_rng(7))  # (B, I)
    for c, name in enumerate(KEYPOINT_CLASSES):
        for label in ("none", "parallel"):
            assert report["variants"][label]["shares"][name] == pytest.approx(
                np.mean([share(counts[label, s], c) for s in range(2)]))
        seeds = {label: [share(counts[label, s], c) for s in range(2)]
                 for label in ("none", "parallel")}
        replicates = [np.mean([share(counts["parallel", s], c, w) for s in range(2)])
                      - np.mean([share(counts["none", s], c, w) for s in range(2)])
                      for w in weights]
        expected = seed_aware_interval(seeds["none"], seeds["parallel"], replicates)
        got = report["differences"][0]["shares"][name]
        for key in ("difference", "low", "high", "interval", "shown"):
            assert got[key] == pytest.approx(expected[key]), (name, key)
    # one seed each: the image-only interval, the percentiles of the paired replicates
    single = keypoint_error_differences([runs[0], runs[2]], num_resamples=40, seed=7)
    for c, name in enumerate(KEYPOINT_CLASSES):
        replicates = [share(counts["parallel", 0], c, w) - share(counts["none", 0], c, w)
                      for w in weights]
        expected = seed_aware_interval([share(counts["none", 0], c)],
                                       [share(counts["parallel", 0], c)], replicates)
        got = single["differences"][0]["shares"][name]
        assert got["interval"] == "images"
        assert (got["low"], got["high"]) == pytest.approx((expected["low"], expected["high"]))
    runs[0]["errors"] = None  # a run without results: no breakdown
    assert keypoint_error_differences(runs) is None
    runs[0]["errors"] = _errors(counts["none", 0], image_ids=(1, 2, 3, 5))
    with pytest.raises(ValueError, match="same images"):
        keypoint_error_differences(runs)


def test_variant_config_sets_placement_mode_and_seed(tiny_config):
    config = variant_config(tiny_config, "sequential", placement="block", seed=3)
    assert (config.model.psa_placement, config.model.psa_mode, config.train.seed) == \
        ("block", "sequential", 3)
    assert variant_config(tiny_config, "none").model.psa_placement == "none"
    with pytest.raises(ValueError, match="'serial'"):
        variant_config(tiny_config, "serial")


def test_variants_name_the_psa_form(tiny_config):
    assert parse_variant("none") == (None, None)
    assert parse_variant("parallel") == ("parallel", None)  # the config's form
    assert parse_variant("official-sequential") == ("sequential", "official")
    for bad in ("pytorch-parallel", "official", "official-", "port-serial", ""):
        with pytest.raises(ValueError, match=repr(bad)):
            parse_variant(bad)
    official = variant_config(tiny_config, "official-sequential", placement="block")
    assert (official.model.psa_placement, official.model.psa_mode,
            official.model.psa_form) == ("block", "sequential", "official")
    assert variant_config(tiny_config, "parallel").model.psa_form == tiny_config.model.psa_form
    port_config = dataclasses.replace(
        tiny_config, model=dataclasses.replace(tiny_config.model, psa_form="port"))
    assert variant_config(port_config, "parallel").model.psa_form == "port"
    assert variant_config(port_config, "paper-parallel").model.psa_form == "paper"
    assert expand_forms(["none", "parallel", "port-sequential"], ["paper", "official"]) == [
        "none", "paper-parallel", "official-parallel", "port-sequential"]
    with pytest.raises(ValueError, match="'torch'"):
        expand_forms(["parallel"], ["torch"])


def test_comparison_markdown_names_each_variants_form():
    runs = [dict(_run("none", 0.5), psa="none"),
            dict(_run("official-parallel", 0.4), psa="branch/parallel/official")]
    table = comparison_markdown(summarize_comparison(runs))
    assert "PSA (placement/mode/form)" in table
    row = next(line for line in table.splitlines() if line.startswith("| official-parallel "))
    assert row.split("|")[2].strip() == "branch/parallel/official"


@pytest.fixture(scope="module")
def in_process_comparison(tiny_config, tmp_path_factory):
    """``(folder, comparison)``: none against parallel, one seed each, trained in this
    process (made once: the tests below only read its runs)."""
    folder = tmp_path_factory.mktemp("in_process_comparison")
    return folder, run_comparison(tiny_config, str(folder), variants=("none", "parallel"),
                                  seeds=1, verbose=0, num_resamples=50)


# both tests share the in-process comparison: on one xdist worker, it is trained once
@pytest.mark.xdist_group("comparison")
def test_runs_trained_in_parallel_processes_match_the_in_process_training(
        tmp_path, tiny_config, in_process_comparison):
    """Processes against in-process training, and (README) same-machine determinism: one
    seed trained twice in one process gives the same weights bit for bit, another seed
    other weights — as another CPU kind does, which is why the verdict takes seeds."""
    import keras

    from pose.engine.distribution import weights_digest
    from pose.engine.training import train

    # two seeds of one variant, trained at once in two processes
    parallel = run_comparison(tiny_config, str(tmp_path / "jobs2"), variants=("none",),
                              seeds=2, verbose=0, num_resamples=20, jobs=2)
    for seed in (0, 1):
        run = tmp_path / "jobs2" / "none" / f"seed{seed}"
        assert (run / "last.keras").is_file() and (run / "train.log").is_file()
    assert all(row["train_seconds"] > 0 for row in parallel["variants"])
    in_process_folder, in_process = in_process_comparison
    # Same config and seed in another process with other thread counts: the same training
    # up to float reduction order: 1 vs 2 threads choose other kernels, so per-epoch losses
    # agree to about 1e-3, not bit for bit.
    losses = [[float(row["loss"]) for row in csv.DictReader(
        (jobs / "none" / "seed0" / "log.csv").read_text().splitlines())]
        for jobs in (tmp_path / "jobs2", in_process_folder)]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-2)  # measured: 1.5e-3 apart
    assert in_process["variants"][0]["variant"] == "none"
    assert in_process["variants"][0]["train_seconds"] > 0
    assert in_process["variants"][0]["seeds"] == 1

    train(variant_config(tiny_config, "none", seed=0), str(tmp_path / "again"), verbose=0,
          validate=False)
    digests = {name: weights_digest(keras.saving.load_model(path / "last.keras"))
               for name, path in (("seed0", in_process_folder / "none" / "seed0"),
                                  ("seed0 again", tmp_path / "again"),
                                  ("process seed0", tmp_path / "jobs2" / "none" / "seed0"),
                                  ("process seed1", tmp_path / "jobs2" / "none" / "seed1"))}
    assert digests["seed0 again"] == digests["seed0"]
    # the two processes ran with the same thread counts: only the seed tells them apart
    assert digests["process seed1"] != digests["process seed0"]


def test_a_run_that_ends_first_is_handed_over_while_the_others_still_train(tmp_path,
                                                                         tiny_config,
                                                                         monkeypatch):
    from pose.experiments import comparison

    events = []

    class FakeTraining:  # finishes after its given number of polls
        polls_left = {"a": 1, "b": 4, "c": 1}

        def __init__(self, argv, **kwargs):
            self.name = os.path.basename(os.path.dirname(argv[argv.index("--workdir") + 1]))
            self.returncode = None
            events.append(f"start {self.name}")

        def poll(self):
            self.polls_left[self.name] -= 1
            if self.polls_left[self.name] < 0:
                self.returncode = 0
            return self.returncode

    monkeypatch.setattr(comparison.subprocess, "Popen", FakeTraining)
    monkeypatch.setattr(comparison.time, "sleep", lambda seconds: None)
    pending = [(name, 0, tiny_config, str(tmp_path / name / "seed0")) for name in "abc"]
    seconds = comparison._train_in_processes(
        pending, jobs=2, verbose=0,
        on_trained=lambda run_dir: events.append(f"evaluate {run_dir.split(os.sep)[-2]}"))
    # a ends first: c starts in its slot before a is evaluated (b still trains), and c,
    # ending while b trains, is evaluated too; b ends last and is left to the caller.
    assert events == ["start a", "start b", "start c", "evaluate a", "evaluate c"]
    assert sorted(os.path.basename(os.path.dirname(d)) for d in seconds) == ["a", "b", "c"]


def test_a_failing_run_in_its_own_process_is_reported_with_its_log(tmp_path, tiny_config):
    missing = dataclasses.replace(tiny_config.data, root=str(tmp_path / "no-such-data"))
    with pytest.raises(RuntimeError, match=r"failed \(exit 2\)(.|\n)*no-such-data"):
        run_comparison(dataclasses.replace(tiny_config, data=missing), str(tmp_path / "w"),
                       variants=("none", "parallel"), seeds=1, verbose=0, jobs=2)


@pytest.mark.xdist_group("comparison")
def test_comparison_trains_evaluates_and_reuses_finished_runs(tmp_path, tiny_config,
                                                              in_process_comparison):
    folder, comparison = in_process_comparison
    rows = comparison["variants"]
    assert [row["variant"] for row in rows] == ["none", "parallel"]
    assert rows[0]["params"] < rows[1]["params"]  # PSA adds weights
    assert all(0.0 <= row["AP_mean"] <= 1.0 for row in rows)
    assert all(row["train_seconds"] > 0 for row in rows)  # trained in this call: timed
    log = folder / "none" / "seed0" / "log.csv"
    before = log.read_text()
    again = run_comparison(tiny_config, str(folder), variants=("none",), seeds=1, verbose=0)
    assert log.read_text() == before  # finished: not trained again
    assert again["variants"][0]["AP_mean"] == rows[0]["AP_mean"]
    assert again["variants"][0]["train_seconds"] is None  # reused, so not timed
    assert "| –" in comparison_markdown(again).split("## Paired")[0]
    assert again["differences"] == [] and "single variant" in again["bootstrap"]["skipped"]

    (pair,) = comparison["differences"]
    assert (pair["reference"], pair["variant"]) == ("none", "parallel")
    for name in INTERVAL_STATS:  # the full-set difference is the difference of the rows
        stat = pair["stats"][name]
        assert stat["difference"] == pytest.approx(rows[1][f"{name}_mean"]
                                                   - rows[0][f"{name}_mean"], abs=1e-12)
        if not stat["undefined"]:
            assert stat["low"] <= stat["high"]
    paths = write_comparison(comparison, str(tmp_path / "out"))
    assert sorted(os.listdir(tmp_path / "out")) == ["comparison.json", "comparison.md",
                                                    "comparison.png", "report.html"]
    # the trained runs' results files, read again by report.html's gallery
    assert [(run["variant"], run["seed"]) for run in comparison["sources"]["runs"]] == [
        ("none", 0), ("parallel", 0)]
    assert all(os.path.isfile(run["results"]) for run in comparison["sources"]["runs"])
    markdown = open(paths["md"]).read()
    assert "| parallel" in markdown and "| verdict " in markdown
    # where the keypoints go wrong, per variant and parallel − none
    errors = comparison["keypoint_errors"]
    assert list(errors["variants"]) == ["none", "parallel"]
    for entry in errors["variants"].values():  # (a model this short-trained may match none)
        matched = sum(entry["counts"].values())
        assert sum(entry["shares"].values()) == pytest.approx(1.0 if matched else 0.0)
    (error_pair,) = errors["differences"]
    assert error_pair["shares"]["miss"]["interval"] == "images"  # one seed each
    # the AP after each fix; before any fix it is the comparison's own AP interval (the
    # same paired resamples)
    from pose.evaluation.diagnosis import RESULT_STEPS

    assert list(error_pair["ap_after_fixing"]) == list(RESULT_STEPS)
    assert error_pair["ap_after_fixing"]["original"] == pair["stats"]["AP"]
    assert "## Where the keypoints go wrong" in markdown and "parallel − none" in markdown
