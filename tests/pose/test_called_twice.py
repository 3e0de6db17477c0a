"""What a tool, a server or a notebook may call twice in one process is safe twice
(issue 30): hiding native output, creating a runtime (TensorFlow's thread pools included),
and a tool's logging set-up."""

import json
import logging
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from pose.errors import run_tool

ROOT = Path(__file__).resolve().parents[2]


def test_hide_native_output_twice_keeps_one_hidden_file_and_the_terminal():
    """The second call returns the first call's file and changes nothing: fd 2 still goes
    to the hidden file, Python's stderr still reaches the terminal (once per write), and
    the warnings handler is not added twice."""
    script = textwrap.dedent("""
        import logging, os, sys
        from pose.errors import hide_native_output
        first = hide_native_output([])
        target = os.fstat(2).st_ino
        second = hide_native_output([])
        assert second is first and os.fstat(2).st_ino == target
        assert len(logging.getLogger("py.warnings").handlers) == 1
        os.write(2, b"native line\\n")
        print("python line", file=sys.stderr, flush=True)
        first.seek(0)
        assert first.read() == b"native line\\n"
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "python line\n"


def test_a_network_created_twice_with_threads_runs_and_agrees(tmp_path, tiny_config, caplog):
    """``load_network`` with --threads on a Keras file after TensorFlow has run (a second
    model, a server reloading): TensorFlow refuses to resize running thread pools, which
    must not crash the load; the two networks give the same heatmaps."""
    from pose.apis.estimator import load_network
    from pose.engine.checkpoint import build_model, save_model

    model = build_model(tiny_config.model)
    x = np.random.default_rng(0).normal(size=(1, 64, 32, 3)).astype("float32")
    expected = np.asarray(model(x))  # TensorFlow is running from here on
    save_model(model, tmp_path / "m.keras", tiny_config)
    with caplog.at_level(logging.WARNING, logger="pose.apis.estimator"):
        first, _ = load_network(tmp_path / "m.keras", threads=2)
        second, _ = load_network(tmp_path / "m.keras", threads=2)
    np.testing.assert_allclose(np.asarray(first(x)), expected, atol=1e-6)
    np.testing.assert_allclose(np.asarray(second(x)), expected, atol=1e-6)


def test_a_tool_run_twice_in_one_process_writes_the_same_and_logs_once(tmp_path, capsys):
    """tools/make_synthetic_coco.py run twice through ``run_tool``: the same annotations,
    and its logging set-up (``logging.basicConfig``) adds no second handler: the second run
    prints what the first printed, no line twice."""
    import runpy

    main = runpy.run_path(str(ROOT / "tools" / "make_synthetic_coco.py"), run_name="tool")["main"]
    outputs, handlers, printed_lines = [], [], []
    for name in ("a", "b"):
        assert run_tool(main, ["--out", str(tmp_path / name), "--train", "2", "--val", "1",
                               "--annotations-only"]) == 0
        handlers.append(len(logging.getLogger().handlers))
        outputs.append(json.loads((tmp_path / name / "annotations" /
                                   "person_keypoints_val2017.json").read_text()))
        printed = capsys.readouterr()
        text = (printed.out + printed.err).replace(str(tmp_path / name), "OUT")
        # the run's own timings differ from run to run
        printed_lines.append(re.sub(r'"seconds": [0-9.e+-]+', '"seconds": T', text)
                             .splitlines())
    assert outputs[0] == outputs[1]
    assert handlers[0] == handlers[1]
    assert printed_lines[0] == printed_lines[1]
