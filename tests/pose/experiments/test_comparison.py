"""PSA comparison: variants trained on the same data, summarized as mean ± std, files written."""

import os

import pytest

from pose.evaluation.metrics import STAT_NAMES
from pose.experiments.comparison import (
    comparison_markdown,
    run_comparison,
    summarize,
    variant_config,
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
    table = comparison_markdown(rows)
    assert "0.600 ± 0.141" in table and "| 0.600 " in table.replace("0.600 ± 0.141", "")


def test_variant_config_sets_placement_mode_and_seed(tiny_config):
    config = variant_config(tiny_config, "sequential", placement="block", seed=3)
    assert (config.model.psa_placement, config.model.psa_mode, config.train.seed) == \
        ("block", "sequential", 3)
    assert variant_config(tiny_config, "none").model.psa_placement == "none"
    with pytest.raises(ValueError, match="'serial'"):
        variant_config(tiny_config, "serial")


def test_comparison_trains_evaluates_and_reuses_finished_runs(tmp_path, tiny_config):
    rows = run_comparison(tiny_config, str(tmp_path), variants=("none", "parallel"),
                          seeds=1, verbose=0)
    assert [row["variant"] for row in rows] == ["none", "parallel"]
    assert rows[0]["params"] < rows[1]["params"]  # PSA adds weights
    assert all(0.0 <= row["AP_mean"] <= 1.0 for row in rows)
    log = tmp_path / "none" / "seed0" / "log.csv"
    before = log.read_text()
    again = run_comparison(tiny_config, str(tmp_path), variants=("none",), seeds=1, verbose=0)
    assert log.read_text() == before  # finished: not trained again
    assert again[0]["AP_mean"] == rows[0]["AP_mean"]

    paths = write_comparison(rows, str(tmp_path / "out"))
    assert sorted(os.listdir(tmp_path / "out")) == ["comparison.json", "comparison.md",
                                                    "comparison.png"]
    assert "| parallel" in open(paths["md"]).read()
