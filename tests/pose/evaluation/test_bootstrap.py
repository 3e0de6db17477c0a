"""Paired bootstrap: re-accumulated resamples against pycocotools itself, paired intervals."""

import contextlib
import copy
import io
import itertools
import json

import numpy as np
import pytest

from datasets.metadata import COCO_SIGMAS
from pose.evaluation.bootstrap import (
    AreaMatches,
    PerImageMatches,
    RankedMatches,
    paired_differences,
    resample_image_counts,
    resampled_stats,
    seed_aware_interval,
)
from pose.evaluation.metrics import STAT_NAMES, run_cocoeval


def _accumulate_summarize(cocoeval):
    with contextlib.redirect_stdout(io.StringIO()):
        cocoeval.accumulate()
        cocoeval.summarize()
    return cocoeval.stats


def _noisy_ground_truth(annotations, noise, seed, shift_joint=None, shift=0.0):
    """Each labelled person as a prediction: keypoints + Gaussian noise (σ = ``noise`` ×
    box size), distinct random scores, optionally one joint moved right by ``shift`` × box."""
    rng = np.random.default_rng(seed)
    results = []
    for ann in annotations["annotations"]:
        if ann.get("num_keypoints", 0) == 0:
            continue
        keypoints = np.asarray(ann["keypoints"], np.float64).reshape(-1, 3)  # (K, 3)
        size = max(ann["bbox"][2], ann["bbox"][3])
        keypoints[:, :2] += rng.normal(size=(len(keypoints), 2)) * noise * size
        if shift_joint is not None:
            keypoints[shift_joint, 0] += shift * size
        keypoints[:, 2] = 1.0
        results.append({"image_id": ann["image_id"], "category_id": 1,
                        "keypoints": keypoints.ravel().tolist(),
                        "score": float(rng.uniform(0.2, 1.0))})
    # a false positive in some images: a labelled person's pose moved far away
    for ann in annotations["annotations"][::3]:
        keypoints = np.asarray(ann["keypoints"], np.float64).reshape(-1, 3)
        keypoints[:, :2] += 500.0
        keypoints[:, 2] = 1.0
        results.append({"image_id": ann["image_id"], "category_id": 1,
                        "keypoints": keypoints.ravel().tolist(),
                        "score": float(rng.uniform(0.0, 0.5))})
    return results


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A 300-image annotation-only generated set (COCO's mix of empty and crowded images)."""
    from datasets.synthetic import generate_coco

    root = tmp_path_factory.mktemp("bootstrap_set")
    generate_coco(root, 0, 300, 7, write_images=False, empty_image_rate=0.4,
                  people_per_image=2.4)
    path = root / "annotations" / "person_keypoints_val2017.json"
    return path, json.loads(path.read_text())


def _matches(annotation_file, results):
    return PerImageMatches.from_cocoeval(run_cocoeval(annotation_file, results, COCO_SIGMAS))


def test_full_set_equals_cocoeval_summarize_exactly(coco_sample_dir, generated):
    sample = coco_sample_dir / "person_keypoints_sample.json"
    for annotation_file, decimals in ((sample, None), (generated[0], None), (generated[0], 1)):
        results = _noisy_ground_truth(json.loads(annotation_file.read_text()), 0.02, 0)
        if decimals is not None:  # many equal scores: the order of ties must be COCOeval's
            for r in results:
                r["score"] = round(r["score"], decimals)
        cocoeval = run_cocoeval(annotation_file, results, COCO_SIGMAS)
        matches = PerImageMatches.from_cocoeval(cocoeval)
        ours = resampled_stats(matches, np.ones(len(matches.image_ids), np.int64))
        expected = _accumulate_summarize(copy.deepcopy(cocoeval))
        assert ours.shape == (1, len(STAT_NAMES))
        np.testing.assert_array_equal(ours[0], expected)  # bit for bit
        assert 0.2 < expected[0] < 1.0  # a real, imperfect AP


def test_resample_with_repeated_images_equals_pycocotools_on_the_repeated_list(generated):
    """A resample counts a drawn-twice image twice: pycocotools' accumulate over an
    ``evalImgs`` list holding that image twice is the reference."""
    annotation_file, annotations = generated
    cocoeval = run_cocoeval(annotation_file, _noisy_ground_truth(annotations, 0.02, 1),
                            COCO_SIGMAS)
    matches = PerImageMatches.from_cocoeval(cocoeval)
    num_images, num_areas = len(matches.image_ids), len(matches.area_labels)
    counts = resample_image_counts(num_images, 3, np.random.default_rng(5))
    ours = resampled_stats(matches, counts)
    for row, image_counts in enumerate(counts):
        assert image_counts.max() >= 2 and (image_counts == 0).any()
        drawn = np.repeat(np.arange(num_images), image_counts)
        repeated = copy.deepcopy(cocoeval)
        repeated.evalImgs = [cocoeval.evalImgs[a * num_images + i]
                             for a in range(num_areas) for i in drawn]
        repeated.params.imgIds = [int(matches.image_ids[i]) for i in drawn]
        repeated._paramsEval.imgIds = repeated.params.imgIds
        np.testing.assert_array_equal(ours[row], _accumulate_summarize(repeated))


def test_identical_predictions_give_exactly_zero(generated):
    annotation_file, annotations = generated
    seeds = [_matches(annotation_file, _noisy_ground_truth(annotations, 0.02, s))
             for s in (0, 1)]
    for runs in ([seeds[0]], seeds):  # one seed, and two seeds (second resampling level)
        (pair,) = paired_differences({"a": runs, "b": list(runs)}, num_resamples=200)
        assert pair["seeds"] == [len(runs)] * 2
        for name, stat in pair["stats"].items():
            assert (stat["difference"], stat["low"], stat["high"]) == (0.0, 0.0, 0.0), name
            assert not stat["excludes_zero"] and stat["undefined"] == 0


def test_injected_keypoint_error_gives_a_negative_difference_excluding_zero(generated):
    annotation_file, annotations = generated
    clean = _matches(annotation_file, _noisy_ground_truth(annotations, 0.02, 0))
    # the same predictions with the left wrist moved by 10% of the box (OKS drops)
    broken = _matches(annotation_file, _noisy_ground_truth(annotations, 0.02, 0,
                                                           shift_joint=9, shift=0.1))
    (pair,) = paired_differences({"clean": [clean], "broken": [broken]}, num_resamples=300)
    assert (pair["reference"], pair["variant"]) == ("clean", "broken")
    ap = pair["stats"]["AP"]
    assert ap["low"] <= ap["difference"] <= ap["high"] < 0.0
    assert ap["excludes_zero"]
    # paired: the interval is much narrower than either variant's own spread over images
    counts = resample_image_counts(len(clean.image_ids), 300, np.random.default_rng(0))
    own = np.quantile(resampled_stats(clean, counts)[:, 0], [0.025, 0.975])
    assert ap["high"] - ap["low"] < 0.5 * (own[1] - own[0])


def test_resampling_is_seeded_and_reproducible(generated):
    annotation_file, annotations = generated
    runs = {"a": [_matches(annotation_file, _noisy_ground_truth(annotations, 0.02, 0))],
            "b": [_matches(annotation_file, _noisy_ground_truth(annotations, 0.03, 0))]}
    first = paired_differences(runs, num_resamples=100, seed=3)
    assert paired_differences(runs, num_resamples=100, seed=3) == first
    other = paired_differences(runs, num_resamples=100, seed=4)
    assert other[0]["stats"]["AP"]["low"] != first[0]["stats"]["AP"]["low"]
    assert other[0]["stats"]["AP"]["difference"] == first[0]["stats"]["AP"]["difference"]
    np.testing.assert_array_equal(resample_image_counts(10, 4, np.random.default_rng(1)),
                                  resample_image_counts(10, 4, np.random.default_rng(1)))
    assert resample_image_counts(10, 4, np.random.default_rng(1)).sum(axis=1).tolist() == \
        [10] * 4


def test_runs_on_different_images_are_refused(coco_sample_dir, generated):
    sample = coco_sample_dir / "person_keypoints_sample.json"
    a = _matches(sample, _noisy_ground_truth(json.loads(sample.read_text()), 0.02, 0))
    b = _matches(generated[0], _noisy_ground_truth(generated[1], 0.02, 0))
    with pytest.raises(ValueError, match="same images"):
        paired_differences({"a": [a], "b": [b]}, num_resamples=10)


def test_the_interval_is_the_central_95_percent_of_the_resampled_differences(generated):
    """One seed per variant: the replicates are the differences of the two variants' stats
    on the same drawn image sets (drawn first from ``default_rng(seed)``), and the default
    interval is their 2.5 and 97.5 percentiles (a 90% interval would be narrower)."""
    annotation_file, annotations = generated
    a = _matches(annotation_file, _noisy_ground_truth(annotations, 0.02, 0))
    b = _matches(annotation_file, _noisy_ground_truth(annotations, 0.03, 1))
    (pair,) = paired_differences({"a": [a], "b": [b]}, num_resamples=400, seed=11)
    counts = resample_image_counts(len(a.image_ids), 400, np.random.default_rng(11))
    diffs = resampled_stats(b, counts)[:, 0] - resampled_stats(a, counts)[:, 0]  # AP
    low, high = np.quantile(diffs, [0.025, 0.975])
    assert (pair["stats"]["AP"]["low"], pair["stats"]["AP"]["high"]) == (low, high)
    narrower = np.quantile(diffs, [0.05, 0.95])
    assert low < narrower[0] and narrower[1] < high  # the percentiles tell 95% from 90%


def test_the_seeds_widen_the_interval_by_their_spread(generated):
    """Variant b's two seeds disagree (one clean, one with a wrist moved by 30% of the
    box), a's two agree: the difference is half the drop, and the interval is
    ``seed_aware_interval`` of the per-seed full-set APs and the replicates of the
    seed-averaged difference on the same drawn image sets; the seeds' disagreement makes it
    wide enough to hold 0, so nothing is shown, where averaging the seeds over the images
    alone (the image term) would exclude 0."""
    annotation_file, annotations = generated
    clean = [_matches(annotation_file, _noisy_ground_truth(annotations, 0.02, s))
             for s in (0, 1, 2)]
    broken = _matches(annotation_file, _noisy_ground_truth(annotations, 0.02, 3,
                                                           shift_joint=9, shift=0.3))
    (pair,) = paired_differences({"a": clean[:2], "b": [clean[2], broken]},
                                 num_resamples=400, seed=0)
    ap = pair["stats"]["AP"]
    full = np.ones(len(broken.image_ids), np.int64)
    seed_ap = {name: [resampled_stats(m, full)[0, 0] for m in runs]
               for name, runs in (("a", clean[:2]), ("b", [clean[2], broken]))}
    drop = seed_ap["b"][1] - seed_ap["b"][0]
    assert drop < -0.05  # the broken seed is clearly worse
    counts = resample_image_counts(len(broken.image_ids), 400, np.random.default_rng(0))
    replicates = (np.mean([resampled_stats(m, counts)[:, 0] for m in (clean[2], broken)], 0)
                  - np.mean([resampled_stats(m, counts)[:, 0] for m in clean[:2]], 0))
    expected = seed_aware_interval(seed_ap["a"], seed_ap["b"], replicates)
    assert {key: ap[key] for key in expected} == pytest.approx(expected)
    assert ap["difference"] == pytest.approx(np.mean(seed_ap["b"]) - np.mean(seed_ap["a"]))
    assert ap["interval"] == "seeds+images" and ap["paired"] and ap["undefined"] == 0
    assert ap["low"] < 0.0 < ap["high"] and not ap["shown"]
    image_only = 1.959964 * replicates.std(ddof=1)
    assert abs(ap["difference"]) > image_only  # the images alone would have called it


T_975 = {1: 12.706205, 2: 4.302653, 4: 2.776445}  # Student's t tables, 97.5th percentile
Z_975 = 1.959964


# Training noise as it looks in a COCO evaluation: every seed of a variant ends with its own
# systematic error (one joint placed off by its own amount), on top of per-keypoint noise.
# (seed, joint, shift as a share of the box), three seeds per label, the same distribution.
A_A_SEEDS = {"a": [(10, 9, 0.00), (11, 5, 0.15), (12, 13, 0.08)],
             "b": [(20, 7, 0.12), (21, 9, 0.02), (22, 15, 0.18)]}


@pytest.fixture(scope="module")
def a_a_runs(generated):
    """Per-image matches of the six seeds of ``A_A_SEEDS`` (by label)."""
    annotation_file, annotations = generated
    return {label: [_matches(annotation_file, _noisy_ground_truth(
        annotations, 0.02, seed, shift_joint=joint, shift=shift))
        for seed, joint, shift in seeds] for label, seeds in A_A_SEEDS.items()}


def test_a_a_check_through_pycocotools_holds_zero_only_with_the_seeds(a_a_runs):
    """The same variant twice (labels a and b, three seeds each, all scored by COCOeval):
    the image-only interval of one seed against one seed calls a difference where there
    is none (all three pairs, as the issue's demo seeds did), the interval with the seeds
    in it holds 0 — and the mean difference lies outside the image term alone, so an
    interval that dropped the seeds would call it."""
    runs = a_a_runs
    single = [paired_differences({"a": [a], "b": [b]}, num_resamples=300)[0]["stats"]["AP"]
              for a, b in zip(runs["a"], runs["b"])]
    assert all(stat["excludes_zero"] for stat in single)  # three false "differences"
    assert not any(stat["shown"] for stat in single)  # ... that is never called shown
    (pair,) = paired_differences(runs, num_resamples=300)
    ap = pair["stats"]["AP"]
    assert pair["seeds"] == [3, 3] and ap["interval"] == "seeds+images"
    assert ap["low"] <= 0.0 <= ap["high"] and not ap["shown"]
    assert abs(ap["difference"]) > Z_975 * ap["image_std"]


def test_the_a_a_check_of_the_comparison_counts_every_pair_and_split(a_a_runs):
    """``a_a_check`` on the six seeds: 15 single-seed pairs (image-only intervals, as
    ``paired_differences`` gives them one by one), 10 splits into 3 + 3 seeds (each split
    once), and no split shows a difference."""
    from pose.errors import UserError
    from pose.experiments.comparison import a_a_check
    from pose.experiments.comparison_report import a_a_markdown

    seeds = a_a_runs["a"] + a_a_runs["b"]
    check = a_a_check("a", seeds, num_resamples=100)
    assert len(check["single_seed_pairs"]) == 15 and len(check["seed_splits"]) == 10
    assert {tuple(sorted((tuple(split["a"]), tuple(split["b"]))))
            for split in check["seed_splits"]} == {
        tuple(sorted(((0, *rest), tuple(s for s in range(1, 6) if s not in rest))))
        for rest in itertools.combinations(range(1, 6), 2)}
    first = check["single_seed_pairs"][0]
    (pair,) = paired_differences({"0": [seeds[0]], "1": [seeds[1]]}, num_resamples=100,
                                 stats=("AP",))
    assert first["seeds"] == [0, 1] and first["low"] == pair["stats"]["AP"]["low"]
    assert check["single_excluding_zero"] == sum(p["excludes_zero"]
                                                 for p in check["single_seed_pairs"]) >= 10
    assert check["splits_shown"] == 0
    full = np.ones(len(seeds[0].image_ids), np.int64)
    assert check["per_seed"] == [resampled_stats(m, full)[0, 0] for m in seeds]
    assert check["std"] == pytest.approx(np.std(check["per_seed"], ddof=1))
    text = a_a_markdown(check)
    assert f"**{check['single_excluding_zero']} of 15** pairs exclude 0" in text
    assert "3 seeds against 3, interval with the seeds in it: **0 of 10** splits" in text
    with pytest.raises(UserError, match="needs at least 4 seeds, got 3"):
        a_a_check("a", seeds[:3])


# ---------------------------------------- the seed-aware interval, by hand and simulated


def test_seed_aware_interval_worked_by_hand():
    """Paired seeds: per-seed differences 0.03, 0.00, 0.04 → mean 0.023333, sample std
    0.020817 (variance 8.6667e-4 / 2); seed half-width t(2) · 0.020817 / sqrt(3) =
    0.051713. Replicates ±0.01 around the difference: std 0.014142, image half-width
    1.959964 · 0.014142 = 0.027718. In quadrature: 0.058673."""
    reference, variant = [0.50, 0.52, 0.54], [0.53, 0.52, 0.58]
    replicates = 0.0233333 + np.array([-0.01, 0.01])
    result = seed_aware_interval(reference, variant, replicates)
    seed_half = T_975[2] * 0.0208167 / np.sqrt(3)
    image_half = Z_975 * 0.0141421
    half = np.sqrt(seed_half ** 2 + image_half ** 2)
    assert half == pytest.approx(0.058673, abs=2e-6)
    assert result["difference"] == pytest.approx(0.0233333, abs=1e-6)
    assert (result["low"], result["high"]) == pytest.approx((0.0233333 - half,
                                                             0.0233333 + half), abs=1e-6)
    assert result["seed_std"] == pytest.approx(0.0208167, abs=1e-6)
    assert result["image_std"] == pytest.approx(0.0141421, abs=1e-6)
    assert (result["interval"], result["paired"], result["df"]) == ("seeds+images", True, 2.0)
    assert not result["excludes_zero"] and not result["shown"]
    # 90% is narrower: the confidence reaches both quantiles
    narrower = seed_aware_interval(reference, variant, replicates, confidence=0.90)
    assert narrower["high"] - narrower["low"] < half * 2


def test_seeds_needed_is_the_first_count_whose_interval_excludes_zero():
    """The seeds above with replicates ±0.005 (std 0.0070711, image half-width 0.013859):
    at n seeds per variant the half-width is sqrt((t(n-1) · 0.020817 / sqrt(n))² +
    0.013859²): n = 7 gives t(6) = 2.446912 → 0.023722, which holds the difference
    0.023333; n = 8 gives t(7) = 2.364624 → 0.022247, which does not."""
    result = seed_aware_interval([0.50, 0.52, 0.54], [0.53, 0.52, 0.58],
                                 0.0233333 + np.array([-0.005, 0.005]))
    assert not result["shown"]
    for n, t, half in ((7, 2.446912, 0.023722), (8, 2.364624, 0.022247)):
        assert np.hypot(t * 0.0208167 / np.sqrt(n), Z_975 * 0.0070711) == pytest.approx(
            half, abs=2e-6)
    assert result["seeds_needed"] == 8
    # images alone wider than the difference: no number of seeds helps
    assert seed_aware_interval([0.5, 0.5, 0.5], [0.51, 0.52, 0.50],
                               0.01 + np.array([-0.02, 0.02]))["seeds_needed"] is None
    # shown: nothing more is needed
    shown = seed_aware_interval([0.50, 0.51, 0.52], [0.60, 0.61, 0.63],
                                0.1033 + np.array([-0.001, 0.001]))
    assert shown["shown"] and shown["seeds_needed"] is None


def test_one_seed_gives_an_image_only_interval_and_no_verdict():
    replicates = np.linspace(-0.05, -0.01, 41)  # every replicate below zero
    result = seed_aware_interval([0.55], [0.52], replicates)
    assert result["interval"] == "images" and result["excludes_zero"]
    assert not result["shown"] and result["seeds_needed"] is None
    assert (result["low"], result["high"]) == pytest.approx(
        tuple(np.quantile(replicates, [0.025, 0.975])))
    # one seed on one side only: still no spread for that side
    assert seed_aware_interval([0.55, 0.56], [0.52], replicates)["interval"] == "images"


def test_unequal_seed_counts_are_compared_unpaired_with_welch_degrees_of_freedom():
    """a: 0.50, 0.52 (variance 2e-4), b: 0.53, 0.55, 0.57 (variance 4e-4): seed variance
    2e-4/2 + 4e-4/3 = 2.3333e-4, Welch df = (2.3333e-4)² / ((1e-4)²/1 + (1.3333e-4)²/2)
    = 5.4444e-8 / 1.8889e-8 = 2.8824; no image noise."""
    from scipy import stats

    result = seed_aware_interval([0.50, 0.52], [0.53, 0.55, 0.57], np.zeros(50))
    assert not result["paired"] and result["seed_std"] is None
    assert result["df"] == pytest.approx(2.8824, abs=1e-4)
    half = stats.t.ppf(0.975, 2.8824) * np.sqrt(2.3333e-4)
    assert result["difference"] == pytest.approx(0.04)
    assert (result["low"], result["high"]) == pytest.approx((0.04 - half, 0.04 + half),
                                                            abs=1e-5)


def _simulated_a_a(trials, seeds, seed_noise, image_noise, rng):
    """Share of simulated A/A comparisons (the same variant twice, independent seeds, a
    validation set shared by all runs) whose interval holds 0."""
    held = 0
    for _ in range(trials):
        a = rng.normal(0.0, seed_noise, seeds)
        b = rng.normal(0.0, seed_noise, seeds) + rng.normal(0.0, image_noise)  # the set
        replicates = b.mean() - a.mean() + rng.normal(0.0, image_noise, 200)
        result = seed_aware_interval(a, b, replicates)
        held += result["low"] <= 0.0 <= result["high"]
        assert result["shown"] == (not result["low"] <= 0.0 <= result["high"])
    return held / trials


@pytest.mark.parametrize("seeds, seed_noise, image_noise", [
    (3, 0.025, 0.010),  # the demo's case: training noise dominates
    (3, 0.010, 0.010),  # both matter
    (5, 0.005, 0.010),  # the images dominate
])
def test_a_a_comparisons_hold_zero_at_the_nominal_rate(seeds, seed_noise, image_noise):
    """The A/A check on simulated runs: at least 94% of 1,500 trials hold 0 (binomial
    standard error 0.5% at 95%); a t quantile replaced by the normal one (82–90% with 3
    seeds), a dropped image term or a dropped seed term fails it; at most 99%, so an
    interval cannot pass by being absurdly wide."""
    held = _simulated_a_a(1500, seeds, seed_noise, image_noise, np.random.default_rng(5))
    assert 0.94 <= held <= 0.99


def test_documented_defaults_and_an_unevaluated_cocoeval(coco_sample_dir, generated):
    """README: 1,000 resamples, seed 0, 95% intervals; from_cocoeval needs evaluate()."""
    from pycocotools.cocoeval import COCOeval

    sample = coco_sample_dir / "person_keypoints_sample.json"
    annotations = json.loads(sample.read_text())
    runs = {"a": [_matches(sample, _noisy_ground_truth(annotations, 0.02, 0))],
            "b": [_matches(sample, _noisy_ground_truth(annotations, 0.05, 1))]}
    assert paired_differences(runs) == paired_differences(runs, num_resamples=1000, seed=0,
                                                          confidence=0.95)
    cocoeval = run_cocoeval(generated[0], _noisy_ground_truth(generated[1], 0.02, 0),
                            COCO_SIGMAS)
    unevaluated = COCOeval(cocoeval.cocoGt, cocoeval.cocoDt, "keypoints")
    with pytest.raises(ValueError) as error:
        PerImageMatches.from_cocoeval(unevaluated)
    assert str(error.value) == "COCOeval has no per-image results: run evaluate() first"


# --------------------------------------------- COCOeval.accumulate restated, many counts
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, 101)  # pycocotools' Params.recThrs
OKS_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # pycocotools' Params.iouThrs


def _one_person_per_image(num_images, large, seed):
    """Image i holds one person and one detection ranked i-th by score, a true positive at
    the OKS thresholds its quality passes; areas all and medium count every image,
    large only the images in ``large``. Returns (matches, tp (T, I) bool, images per area)."""
    rng = np.random.default_rng(seed)
    # better detections score higher (precision falls along the ranking), with noise
    quality = np.linspace(1.0, 0.4, num_images) + rng.normal(0, 0.1, num_images)
    tp = quality[None, :] > OKS_THRESHOLDS[:, None] + 0.02  # (T, I)
    areas = [np.arange(num_images), np.arange(num_images), np.asarray(large)]
    positives = np.zeros((3, num_images), np.int64)
    ranked = []
    for a, images in enumerate(areas):
        positives[a, images] = 1
        per_threshold = []
        for t in range(len(OKS_THRESHOLDS)):
            at = np.flatnonzero(tp[t, images])  # ranks (within the area) of the TPs
            per_threshold.append(RankedMatches(images[at], at, np.zeros(0, np.int64),
                                               np.zeros(len(at), np.int64)))
        ranked.append(AreaMatches(images, tuple(per_threshold)))
    matches = PerImageMatches(np.arange(num_images), positives, tuple(ranked), OKS_THRESHOLDS,
                              RECALL_THRESHOLDS, ("all", "medium", "large"))
    return matches, tp, areas


def _pycocotools_stats(tp, areas, counts):
    """COCOeval.accumulate + summarize (keypoints) as pycocotools writes them, for one
    resample: image i's detection repeated counts[i] times in score order."""
    precision, recall = [], []
    for images in areas:
        npig = counts[images].sum()
        q = -np.ones((len(OKS_THRESHOLDS), len(RECALL_THRESHOLDS)))
        r = -np.ones(len(OKS_THRESHOLDS))
        if npig > 0:
            for t in range(len(OKS_THRESHOLDS)):
                status = np.repeat(tp[t, images], counts[images])
                tps, fps = np.cumsum(status), np.cumsum(~status)
                rc = tps / npig
                pr = (tps / (fps + tps + np.spacing(1))).tolist()
                for i in range(len(pr) - 1, 0, -1):
                    pr[i - 1] = max(pr[i - 1], pr[i])
                inds = np.searchsorted(rc, RECALL_THRESHOLDS, side="left")
                q[t] = [pr[i] if i < len(pr) else 0.0 for i in inds]
                r[t] = rc[-1] if len(rc) else 0.0
        precision.append(q)
        recall.append(r)

    def mean(values):
        return -1.0 if values.ravel()[0] < 0 else float(values.mean())

    return [mean(precision[0]), mean(precision[0][0]), mean(precision[0][5]),
            mean(precision[1]), mean(precision[2]), mean(recall[0]), mean(recall[0][:1]),
            mean(recall[0][5:6]), mean(recall[1]), mean(recall[2])]


def test_resampled_stats_equal_pycocotools_formulas_for_every_number_of_people():
    """Resamples with 0 to 120 people (a single person, images drawn several times, images
    left out) against pycocotools' accumulate restated above: the recall-threshold
    crossings are exact whatever the count, including where recall * count rounds up."""
    matches, tp, areas = _one_person_per_image(60, large=[0, 5], seed=4)
    rng = np.random.default_rng(5)
    counts = resample_image_counts(60, 150, rng) * (rng.uniform(size=(150, 1)) >
                                                    rng.uniform(size=(150, 60)))
    # Counts where recall_threshold * count, in floating point, misses the integer it
    # equals (0.28 * 25 rounds up, 0.2 * 20 ...): 20, 25, 40, 50, 75, 100 people.
    exact = [(np.arange(60) < n).astype(np.int64) + (np.arange(60) < n - 60)
             for n in (20, 25, 40, 50, 75, 100)]
    counts = np.concatenate([counts, exact, np.eye(60, dtype=np.int64)[:3],  # one person
                             np.full((1, 60), 2), np.zeros((1, 60), np.int64)])
    got = resampled_stats(matches, counts)
    want = np.array([_pycocotools_stats(tp, areas, c) for c in counts])
    assert len(set(counts.sum(axis=1))) > 50  # many different numbers of people
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_replicates_without_people_in_an_area_are_counted_as_undefined():
    """Only images 0 and 1 hold a large person: the replicates that draw neither have no
    APL (pycocotools' -1); they are left out of the interval and counted as undefined."""
    a, _, _ = _one_person_per_image(10, large=[0, 1], seed=1)
    b, _, _ = _one_person_per_image(10, large=[0, 1], seed=2)
    (pair,) = paired_differences({"a": [a], "b": [b]}, num_resamples=200, seed=3,
                                 stats=("AP", "APL"))
    counts = resample_image_counts(10, 200, np.random.default_rng(3))
    without = int(np.sum(counts[:, :2].sum(axis=1) == 0))
    assert 0 < without < 200
    assert pair["stats"]["APL"]["undefined"] == without
    assert pair["stats"]["AP"]["undefined"] == 0
    drawn = counts[counts[:, :2].sum(axis=1) > 0]
    diffs = resampled_stats(b, drawn)[:, 4] - resampled_stats(a, drawn)[:, 4]
    assert pair["stats"]["APL"]["low"] == np.quantile(diffs, 0.025)


def test_bootstrap_errors_say_what_is_wrong(generated):
    matches, _, _ = _one_person_per_image(4, large=[0], seed=0)
    two = "paired_differences needs at least two variants with one run each"
    for runs in ({"a": [matches]}, {"a": [matches], "b": []}, {"a": [], "b": [matches]}):
        with pytest.raises(ValueError) as error:
            paired_differences(runs, num_resamples=5)
        assert str(error.value) == two
    with pytest.raises(ValueError) as error:
        paired_differences({"a": [matches], "b": [matches]}, num_resamples=5,
                           stats=("AP", "mAP", "APs"))
    assert str(error.value) == (
        "unknown stats ['mAP', 'APs']; choose among ('AP', 'AP50', 'AP75', 'APM', 'APL', "
        "'AR', 'AR50', 'AR75', 'ARM', 'ARL')")
    with pytest.raises(ValueError) as error:
        resampled_stats(matches, np.ones((2, 5), np.int64))
    assert str(error.value) == "counts has 5 images, the matches have 4"
    cocoeval = run_cocoeval(generated[0], _noisy_ground_truth(generated[1], 0.02, 0),
                            COCO_SIGMAS)
    for field, value, shown in (("iouType", "bbox", "iouType='bbox', catIds=[1], "
                                 "maxDets=[20]"),
                                ("catIds", [1, 2], "iouType='keypoints', catIds=[1, 2], "
                                 "maxDets=[20]"),
                                ("maxDets", [1, 20], "iouType='keypoints', catIds=[1], "
                                 "maxDets=[1, 20]")):
        changed = copy.copy(cocoeval)
        changed.params = copy.copy(cocoeval.params)
        changed.params.catIds = [1]  # plain ints (run_cocoeval's are NumPy's)
        setattr(changed.params, field, value)
        with pytest.raises(ValueError) as error:
            PerImageMatches.from_cocoeval(changed)
        assert str(error.value) == ("the bootstrap re-implements keypoint COCOeval with one "
                                    f"category and one maxDets; got {shown}")


def test_images_without_people_or_detections_give_pycocotools_minus_one(generated):
    """Evaluated images that hold neither people nor detections (every ``evalImgs`` entry
    None, as pycocotools leaves them): every stat is -1, as COCOeval.summarize gives."""
    cocoeval = run_cocoeval(generated[0], _noisy_ground_truth(generated[1], 0.02, 0),
                            COCO_SIGMAS)
    empty = copy.copy(cocoeval)
    empty.evalImgs = [None] * len(cocoeval.evalImgs)
    matches = PerImageMatches.from_cocoeval(empty)
    counts = np.concatenate([np.ones((1, len(matches.image_ids)), np.int64),
                             resample_image_counts(len(matches.image_ids), 3,
                                                   np.random.default_rng(0))])
    want = _accumulate_summarize(empty)
    assert list(want) == [-1.0] * 10
    assert resampled_stats(matches, counts).tolist() == [list(want)] * 4


def test_a_resample_count_beyond_memory_is_refused_before_allocating(monkeypatch):
    """Three (B, I) int64 arrays at the peak: refused when that is more than half the
    machine's memory (a machine of 1 GiB here), with the numbers in the message."""
    from pose.errors import UserError

    matches, _, _ = _one_person_per_image(10, large=[0], seed=0)
    pages = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 2 ** 30 // 4096}
    monkeypatch.setattr("os.sysconf", lambda name: pages[name])
    # 10 images: 3 * 8 * 10 * B bytes against 512 MiB → B = 2,236,962 fits, one more not
    limit_resamples = (2 ** 29) // (3 * 8 * 10)
    with pytest.raises(UserError) as error:
        paired_differences({"a": [matches], "b": [matches]},
                           num_resamples=limit_resamples + 1)
    assert str(error.value) == ("2,236,963 resamples of 10 images need about 0.5 GiB for "
                                "the image counts, more than half of this machine's memory "
                                "(0.5 GiB): ask for fewer resamples")
    from pose.evaluation import bootstrap

    bootstrap.check_resample_memory(limit_resamples, 10)  # the limit itself passes
