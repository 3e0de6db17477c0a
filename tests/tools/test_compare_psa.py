"""tools/compare_psa.py on checkpoints: a repeated label is that variant's seeds, and the
verdict line — every seed's AP, the interval and what is in it — is printed last."""

import json
import runpy
from pathlib import Path

from pose.errors import run_tool

ROOT = Path(__file__).resolve().parents[2]


def test_repeated_checkpoint_labels_are_seeds_and_the_verdict_is_printed_last(
        tmp_path, tiny_config, randomized, capsys):
    from pose.engine.checkpoint import build_model, save_model

    for i in range(3):
        save_model(randomized(build_model(tiny_config.model), seed=i),
                   tmp_path / f"m{i}.keras", tiny_config)
    main = runpy.run_path(str(ROOT / "tools" / "compare_psa.py"), run_name="tool")["main"]
    # a: two seeds, b: two seeds (paired in the order given), c: one seed
    checkpoints = ",".join(f"{label}={tmp_path / name}.keras" for label, name in
                           (("a", "m0"), ("a", "m1"), ("b", "m2"), ("b", "m0"), ("c", "m1")))
    code = run_tool(main, ["--checkpoints", checkpoints, "--workdir", str(tmp_path / "out"),
                           "--resamples", "50"])
    assert code == 0, capsys.readouterr().err
    lines = capsys.readouterr().out.strip().splitlines()
    verdicts = lines[-3:]
    assert [line.split(":")[0] for line in verdicts] == [
        "AP verdict, b − a", "AP verdict, c − a", "AP verdict, c − b"]
    assert "(95%, 2 seeds per variant, training noise and images)" in verdicts[0]
    assert "(95%, 2 and 1 seeds, images only) → no verdict: one seed" in verdicts[1]
    comparison = json.loads((tmp_path / "out" / "comparison.json").read_text())
    assert [pair["seeds"] for pair in comparison["differences"]] == [[2, 2], [2, 1], [2, 1]]
    rows = {row["variant"]: row for row in comparison["variants"]}
    assert [len(rows[label]["AP_per_seed"]) for label in "abc"] == [2, 2, 1]
    # report.html's gallery reads each label's first checkpoint's results, kept in --workdir
    assert [(run["variant"], run["seed"]) for run in comparison["sources"]["runs"]] == [
        ("a", 0), ("a", 1), ("b", 0), ("b", 1), ("c", 0)]
    assert all(run["results"].startswith(str(tmp_path / "out"))
               for run in comparison["sources"]["runs"])
    assert "b against a (seed 0 of each)" in (tmp_path / "out" / "report.html").read_text()
    markdown = (tmp_path / "out" / "comparison.md").read_text()
    assert markdown.splitlines()[2] == "- " + verdicts[0]
    # just before the verdicts: where the keypoints go wrong, each variant against a
    errors = lines[-7:-3]
    assert [line.split(" (")[0] for line in errors] == [
        "Keypoint errors, b − a", "AP after fixing, b − a", "Keypoint errors, c − a",
        "AP after fixing, c − a"]
    assert all(line in markdown for line in errors)
    assert errors[2].count("(images only)") == 5  # c has one seed: no verdict


def test_a_seed_count_below_one_is_refused(tmp_path, tiny_config, capsys):
    from pose.config import save_config

    save_config(tiny_config, tmp_path / "exp.yaml")
    for tool in ("compare_psa", "demo"):
        main = runpy.run_path(str(ROOT / "tools" / f"{tool}.py"), run_name="tool")["main"]
        args = ["--seeds", "0", "--workdir", str(tmp_path / tool)]
        code = run_tool(main, args + (["--config", str(tmp_path / "exp.yaml")]
                                      if tool == "compare_psa" else []))
        assert code == 2
        assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
            "error: --seeds must be an integer in [1, 100], got 0")
        assert not (tmp_path / tool).exists()


def test_an_a_a_check_with_too_few_seeds_is_refused_before_any_work(tmp_path, tiny_config,
                                                                    capsys):
    from pose.config import save_config

    save_config(tiny_config, tmp_path / "exp.yaml")
    main = runpy.run_path(str(ROOT / "tools" / "compare_psa.py"), run_name="tool")["main"]
    for args, message in (
            (["--config", str(tmp_path / "exp.yaml"), "--variants", "none", "--seeds", "3"],
             "error: --a-a needs --seeds 4 or more, got 3"),
            (["--checkpoints", "a=x.keras,a=y.keras,b=z.keras,b=w.keras,b=v.keras,b=u.keras"],
             "error: --a-a needs at least 4 checkpoints of each label; a has 2")):
        assert run_tool(main, args + ["--a-a", "--workdir", str(tmp_path / "w")]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith(message), line
        assert not (tmp_path / "w").exists()


class _Reached(BaseException):
    """The tool handed its work to the comparison: the call is captured."""


def test_each_training_option_reaches_the_comparison(tmp_path, tiny_config, monkeypatch):
    """--placement, --forms, --variants, --seeds, --jobs, --resamples, --bootstrap-seed,
    --a-a and --set each change what tools/compare_psa.py hands to ``run_comparison``
    (captured there instead of training: the training itself is tested in
    tests/pose/experiments/test_comparison.py)."""
    from pose.config import save_config

    save_config(tiny_config, tmp_path / "exp.yaml")
    main = runpy.run_path(str(ROOT / "tools" / "compare_psa.py"), run_name="tool")["main"]
    calls = []

    def capture(config, workdir, **kwargs):
        calls.append({"config": config, **kwargs})
        raise _Reached()

    monkeypatch.setitem(main.__globals__, "run_comparison", capture)

    def handed(*options):
        work = tmp_path / f"w{len(calls)}"
        try:
            run_tool(main, ["--config", str(tmp_path / "exp.yaml"), "--workdir", str(work),
                            *map(str, options)])
        except _Reached:
            return calls[-1]
        raise AssertionError(f"{options}: the comparison was not reached")

    base = handed()
    for options, key, value in [
        (["--placement", "block"], "placement", "block"),
        (["--variants", "none,parallel"], "variants", ["none", "parallel"]),
        (["--forms", "paper,port"], "variants",
         ["none", "paper-parallel", "port-parallel", "paper-sequential", "port-sequential"]),
        (["--seeds", 4], "seeds", 4),
        (["--jobs", 2], "jobs", 2),
        (["--resamples", 77], "num_resamples", 77),
        (["--bootstrap-seed", 9], "bootstrap_seed", 9),
        (["--a-a", "--seeds", 4], "a_a", True),
    ]:
        got = handed(*options)
        assert got[key] == value != base[key], options
    assert handed("--set", "train.lr=0.5")["config"].train.lr == 0.5 != base["config"].train.lr
