"""The options of tools/psa_insertion.py and tools/demo.py reach what they configure
(issue 30): each tool runs in this process with its work captured at the call that takes
the options, with and without each option. The work itself is tested in
tests/pose/experiments/ (the demo end to end in tests/tools/test_compare_psa.py)."""

import json
import runpy
from pathlib import Path

import numpy as np
import pytest

from pose.errors import run_tool

ROOT = Path(__file__).resolve().parents[2]


class _Reached(BaseException):
    """The tool handed its work to the captured call."""


def _main(tool):
    return runpy.run_path(str(ROOT / "tools" / f"{tool}.py"), run_name="tool")["main"]


ROW = {"placement": "branch", "mode": "parallel", "batchnorm": "kept", "rel_l2": 0.5,
       "rel_l2_std": 0.1, "norm_ratio": 1.2, "argmax_agreement": 0.9,
       "argmax_agreement_std": 0.01}


def test_psa_insertion_measures_the_checkpoint_and_references_asked(tmp_path, monkeypatch):
    import pose.experiments.psa_insertion as psa_insertion

    seen = []

    def measure(checkpoint, images, seeds):
        seen.append((checkpoint, images.tolist(), seeds))
        return [ROW]

    monkeypatch.setattr(psa_insertion, "measure_psa_insertion", measure)
    for name, value in (("a", 1.0), ("b", 2.0)):
        (tmp_path / f"{name}.pth").write_bytes(name.encode())
        np.savez(tmp_path / f"{name}.npz", input_nhwc=np.full((1, 2, 2, 3), value, np.float32))
    main = _main("psa_insertion")

    def run(checkpoint="a.pth", reference="a.npz", *options):
        seen.clear()
        assert run_tool(main, [str(tmp_path / checkpoint), "--reference",
                               str(tmp_path / reference), *map(str, options)]) == 0
        return seen[0]

    base = run()
    assert base[0] == str(tmp_path / "a.pth") and base[2] == (0, 1, 2)
    assert run("b.pth")[0] == str(tmp_path / "b.pth")
    assert run("a.pth", "b.npz")[1] == np.full((1, 2, 2, 3), 2.0).tolist() != base[1]
    assert run("a.pth", "a.npz", "--seeds", 5)[2] == (0, 1, 2, 3, 4)
    before = set(tmp_path.iterdir())
    run("a.pth", "a.npz", "--json", tmp_path / "rows.json")
    assert json.loads((tmp_path / "rows.json").read_text()) == [ROW]
    run()
    assert set(tmp_path.iterdir()) - before == {tmp_path / "rows.json",
                                                tmp_path / ".psa-pose-outputs.json"}


@pytest.mark.parametrize("options, key, value", [
    (["--train", 7], "num_train", 7),
    (["--val", 5], "num_val", 5),
    (["--seed", 3], "seed", 3),
    (["--seeds", 4], "training_seeds", 4),
    (["--set", "train.lr=0.5"], "overrides", ["train.lr=0.5"]),
    (["--config", "other.yaml"], "config_path", "other.yaml"),
    (["--workdir", "elsewhere"], "workdir", "elsewhere"),
])
def test_demo_hands_each_option_to_the_demo(tmp_path, monkeypatch, options, key, value):
    seen = {}

    def run_demo(config_path, workdir, num_train, num_val, seed=0, overrides=(),
                 training_seeds=3):
        seen.update(config_path=Path(config_path).name, workdir=workdir,
                    num_train=num_train, num_val=num_val, seed=seed,
                    overrides=list(overrides), training_seeds=training_seeds)
        raise _Reached()

    monkeypatch.setattr("pose.experiments.demo.run_demo", run_demo)
    for name in ("tiny.yaml", "other.yaml"):
        (tmp_path / name).write_text("model: {width: 8}\n")
    main = _main("demo")
    monkeypatch.chdir(tmp_path)

    def run(*extra):
        seen.clear()
        with pytest.raises(_Reached):
            run_tool(main, ["--config", "tiny.yaml", "--workdir", f"d{len(extra)}",
                            *map(str, extra)])
        return dict(seen)

    with_option, without = run(*options), run()
    assert with_option[key] == value != without[key]
