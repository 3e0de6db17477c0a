"""The one-line summary of where a variant's AP difference comes from (the demo prints it)."""

import pytest

from pose.experiments.comparison_report import ap_difference_sources


def _stat(difference):
    return {"difference": difference, "low": difference - 0.01, "high": difference + 0.01}


def test_each_fix_gets_the_part_of_the_difference_it_removes():
    """Differences worked out by hand: −0.012 before any fix, −0.004 after fixing jitter
    (so jitter is −0.008 of it), unchanged by inversions, −0.003 after swaps, −0.001
    after misses, +0.0005 after rescoring."""
    after = {"original": -0.012, "jitter": -0.004, "inversion": -0.004, "swap": -0.003,
             "miss": -0.001, "score": 0.0005}
    comparison = {"keypoint_errors": {"differences": [
        {"variant": "parallel", "reference": "none",
         "ap_after_fixing": {step: _stat(v) for step, v in after.items()}}]}}
    (line,) = ap_difference_sources(comparison)
    assert line.startswith("Where the AP difference parallel − none (-0.012) comes from")
    parts = line.split("order): ")[1].split("; ")[0].split(", ")
    assert parts == ["jitter -0.008", "inversion +0.000", "swap -0.001", "miss -0.002",
                     "scoring -0.002"]
    assert line.endswith("; left after every fix +0.001; most from jitter")
    # the parts and what is left add up to the difference
    values = [float(p.split(" ")[1]) for p in parts]
    assert sum(values) + 0.0005 == pytest.approx(-0.012, abs=2e-3)


def test_no_breakdown_no_line():
    assert ap_difference_sources({}) == []
    undefined = {"keypoint_errors": {"differences": [
        {"variant": "b", "reference": "a",
         "ap_after_fixing": {"original": _stat(0.01), "jitter": {"difference": None}}}]}}
    assert ap_difference_sources(undefined) == []
