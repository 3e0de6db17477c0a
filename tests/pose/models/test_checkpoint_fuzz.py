"""The checkpoint reader under fuzzing: seeded corruptions of the official fixtures and
hostile pickles through every route, each in a worker under memory/CPU/wall limits
(``tests/fuzz/checkpoint_fuzz.py``). ``make fuzz`` runs a longer Hypothesis-driven set."""

import collections

from tests.fuzz.checkpoint_fuzz import (
    CLEAN,
    MUTATIONS,
    malicious_cases,
    run_cases,
    seeded_cases,
)

PER_KIND = 14  # x 9 mutations x 2 fixtures = 252 corruptions


def test_corrupted_and_malicious_checkpoints_end_cleanly(tmp_path, official_hrnet_dir):
    markers = tmp_path / "markers"
    markers.mkdir()
    evil = malicious_cases(tmp_path / "evil", markers)
    cases = seeded_cases(PER_KIND, seed=2026) + evil
    outcomes = run_cases(cases, official_hrnet_dir, markers)
    unclean = [(case, outcome) for case, outcome in zip(cases, outcomes)
               if outcome[0] not in CLEAN]
    assert not unclean, f"{len(unclean)} unclean outcomes, e.g. {unclean[:5]}"
    assert not list(markers.iterdir())
    by_case = list(zip(cases, outcomes))
    # The harness sees loads: the unmodified fixtures load inside their bounds.
    assert [o[0] for c, o in by_case if c.get("kind") == "none"] == ["loaded", "loaded"]
    # Every kind of corruption is noticed somewhere (the test is not blind to errors).
    errors = collections.Counter(c["kind"] for c, o in by_case
                                 if "kind" in c and o[0] == "error")
    assert set(errors) == set(MUTATIONS), errors
    wrong = [(c["label"], o) for c, o in by_case if "expect" in c and c["expect"] != "clean"
             and o[0] != c["expect"]]
    assert not wrong, wrong
    assert len(evil) >= 100
