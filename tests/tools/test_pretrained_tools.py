"""tools/convert.py, and tools/infer.py / tools/test.py run on a PyTorch .pth directly."""

import json
import os
import re
import subprocess
import sys

from pose.engine.pretrained import convert_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tool(name, *args, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, os.path.join(REPO, "tools", name), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


def _tool_here(capsys, name, *args):
    """``tools/NAME``'s ``main`` in this process (TensorFlow is already imported), as
    ``_tool`` gives it: ``(returncode, stdout, stderr)``. The graph-optimizer setting of
    tools/infer.py (process-wide) is put back after the run."""
    import runpy
    import types

    import tensorflow as tf

    from pose.errors import run_tool

    main = runpy.run_path(os.path.join(REPO, "tools", name), run_name="tool")["main"]
    options = tf.config.optimizer.get_experimental_options()
    capsys.readouterr()
    try:
        code = run_tool(main, [str(a) for a in args])
    finally:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": False,
                                                      **options})
    out, err = capsys.readouterr()
    return types.SimpleNamespace(returncode=code, stdout=out, stderr=err)


def test_convert_reports_and_checks(official_hrnet_dir, tmp_path, capsys):
    """The real process of tools/convert.py; its refusal in this process."""
    out = tmp_path / "model.keras"
    run = _tool("convert.py", official_hrnet_dir / "checkpoint_dataparallel.pth", "--out", out,
                "--input-size", 64, 96, "--check", official_hrnet_dir / "io.npz")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "layout: official-training" in run.stdout
    assert "HRNet-W6, stem 64, 4 bottlenecks, stage modules (1, 1, 2)" in run.stdout
    assert "tensors loaded: 397" in run.stdout and "tensors skipped: 0" in run.stdout
    assert "missing (left freshly initialised): 0" in run.stdout
    difference = float(re.search(r"max abs difference to the reference output: (\S+)",
                                 run.stdout).group(1))
    assert difference <= 1e-3
    # the two files, and the record that this tool wrote them (a rerun may replace them)
    assert sorted(os.listdir(tmp_path)) == [".psa-pose-outputs.json", "model.keras",
                                            "model.yaml"]
    assert json.loads((tmp_path / ".psa-pose-outputs.json").read_text()) == {
        "files": {"model.keras": "tools/convert.py", "model.yaml": "tools/convert.py"}}

    run = _tool_here(capsys, "convert.py", official_hrnet_dir / "malicious.pth", "--out",
                     tmp_path / "evil.keras")
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "posix.system" in run.stderr and "malicious.pth" in run.stderr
    assert not (tmp_path / "evil.keras").exists()


def test_infer_and_test_take_a_pth(official_hrnet_dir, coco_sample_dir, tmp_path, capsys):
    """The real process of tools/infer.py on a .pth; the converted file's run and
    tools/test.py in this process."""
    weights = official_hrnet_dir / "pose_hrnet_tiny_legacy.pth"
    image = sorted((coco_sample_dir / "images").iterdir())[0]
    run = _tool("infer.py", "--weights", weights, "--input-size", 64, 96, image,
                "--out", tmp_path / "infer", "--no-flip", "--quiet")
    assert run.returncode == 0, run.stderr[-2000:]
    predictions = json.loads((tmp_path / "infer" / "predictions.json").read_text())
    assert len(predictions) == 1 and len(predictions[0]["keypoints"]) == 17 * 3

    # The same weights converted first give the same keypoints: .pth = conversion.
    converted = tmp_path / "tiny.keras"
    convert_checkpoint(weights, converted, input_size=(64, 96))
    run = _tool_here(capsys, "infer.py", "--weights", converted, image, "--out",
                     tmp_path / "again", "--no-flip", "--quiet")
    assert run.returncode == 0, run.stderr[-2000:]
    again = json.loads((tmp_path / "again" / "predictions.json").read_text())
    assert again[0]["keypoints"] == predictions[0]["keypoints"]

    run = _tool_here(capsys, "test.py", "--weights", weights, "--input-size", 64, 96,
                     "--gt-boxes",
                "--annotations", coco_sample_dir / "person_keypoints_sample.json",
                "--images", coco_sample_dir / "images", "--out", tmp_path / "test")
    assert run.returncode == 0, run.stderr[-2000:]
    metrics = json.loads((tmp_path / "test" / "metrics.json").read_text())
    assert metrics["num_boxes"] > 0 and 0.0 <= metrics["AP"] <= 1.0
