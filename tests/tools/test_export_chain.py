"""The model-zoo path end to end on the official fixture: ``.pth`` → ``tools/convert.py`` →
``tools/export.py`` (tflite and onnx, float32 and dynamic, default flags) →
``tools/infer.py`` on a real COCO image with its ground-truth boxes, against
``tools/infer.py`` on the ``.pth`` itself."""

import contextlib
import io
import json
import os
import re
import runpy
import shutil
import subprocess
import sys

import numpy as np
import pytest

from pose.errors import run_tool
from pose.evaluation.metrics import STAT_NAMES

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGE_ID = 197388  # five people, one of them cut by the image border

# float32: the keypoints of every person within 0.5 px of the .pth's own (rounding only).
MAX_FLOAT32_SHIFT_PX = 0.5
# dynamic (int8 weights, activations quantized on the fly): the fixture's random weights and
# BatchNorm statistics give flat heatmaps, and the quantization error (relative RMS of the
# heatmaps 0.25 on ONNX Runtime) moves some maxima far. Measured over the image's 85
# keypoints: LiteRT 74% and ONNX Runtime 62% stay within 0.5 px (median 0 px; the others
# jump to another local maximum). Bounded at half; an unrelated network keeps ~0%.
MIN_DYNAMIC_KEPT = 0.5


def _export(capsys, *args):
    """``tools/export.py`` in this process (TensorFlow is already imported): (code, stdout)."""
    main = runpy.run_path(os.path.join(REPO, "tools", "export.py"), run_name="export")["main"]
    code = run_tool(main, [str(a) for a in args])
    return code, capsys.readouterr().out


def _tool(name, *args):
    return subprocess.run([sys.executable, os.path.join(REPO, "tools", name), *map(str, args)],
                          capture_output=True, text=True, timeout=600, cwd=REPO)


def _tool_here(name, *args):
    """``tools/NAME``'s ``main`` in this process: (code, stderr). The real processes of
    tools/convert.py and tools/infer.py on a .pth run in tests/tools/test_pretrained_tools.py;
    the graph-optimizer setting tools/infer.py makes (process-wide) is put back."""
    import tensorflow as tf

    main = runpy.run_path(os.path.join(REPO, "tools", name), run_name="tool")["main"]
    options = tf.config.optimizer.get_experimental_options()
    err = io.StringIO()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            code = run_tool(main, [str(a) for a in args])
    finally:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": False,
                                                      **options})
    return code, err.getvalue()


def _keypoints(out_dir):
    """{box: (17, 2) keypoints} of an infer.py run (the box identifies the person)."""
    predictions = json.loads((out_dir / "predictions.json").read_text())
    return {tuple(round(v, 3) for v in p["box"]):
            np.asarray(p["keypoints"], np.float64).reshape(-1, 3)[:, :2] for p in predictions}


@pytest.fixture(scope="module")
def chain(official_hrnet_dir, coco_sample_dir, tmp_path_factory):
    """The converted checkpoint, the ground-truth boxes file, and the .pth's keypoints."""
    folder = tmp_path_factory.mktemp("chain")
    annotations = json.loads((coco_sample_dir / "person_keypoints_sample.json").read_text())
    boxes = [{"image_id": IMAGE_ID, "category_id": 1, "bbox": a["bbox"], "score": 1.0}
             for a in annotations["annotations"] if a["image_id"] == IMAGE_ID]
    boxes_file = folder / "gt_boxes.json"
    boxes_file.write_text(json.dumps(boxes))
    image = coco_sample_dir / "images" / f"{IMAGE_ID:012d}.jpg"
    pth = official_hrnet_dir / "pose_hrnet_tiny.pth"

    code, err = _tool_here("convert.py", pth, "--out", folder / "tiny.keras",
                           "--input-size", 64, 96)
    assert code == 0, err[-2000:]
    code, err = _tool_here("infer.py", "--weights", pth, "--input-size", 64, 96, image,
                           "--boxes", boxes_file, "--out", folder / "pth", "--quiet")
    assert code == 0, err[-2000:]
    reference = _keypoints(folder / "pth")
    assert len(reference) == len(boxes) == 5
    return dict(folder=folder, keras=folder / "tiny.keras", pth=pth, image=image,
                boxes=boxes_file, reference=reference)


@pytest.fixture(scope="module")
def exports(chain):
    """``exports(capsys, fmt, quantize=None, source="keras")``: tools/export.py run once per
    module on the converted checkpoint (or the .pth itself), on an AVX2-only CPU whatever
    this host is: (code, stdout, path).

    The .pth's network is the converted checkpoint's: the tool's export call for the .pth
    is answered with the converted checkpoint's export (made first), once the network it
    hands over is checked to be that network (input, weights); the tool's parity check,
    its config and the infer.py run on the file are the .pth run's own."""
    made = {}

    def answer_with_export_of_keras(fmt, quantize, capsys):
        code, out, keras_path = get(capsys, fmt, quantize, "keras")
        assert code == 0, out[-2000:]
        from pose.engine.checkpoint import load_model

        converted = load_model(chain["keras"])[0]
        asked = []

        def export_model(model, path, fmt_, quantize=None, calibration=None, float_ops=()):
            asked.append((fmt_, quantize))
            assert model.input_shape == converted.input_shape
            want = converted.get_weights()
            assert len(model.get_weights()) == len(want)
            assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), want))
            shutil.copyfile(keras_path, path)
            return os.path.abspath(path)
        return export_model, asked

    def get(capsys, fmt, quantize=None, source="keras"):
        if (fmt, quantize, source) not in made:
            path = chain["folder"] / f"{source}_{quantize or 'float32'}.{fmt}"
            weights = ([chain["keras"]] if source == "keras" else
                       [chain["pth"], "--input-size", 64, 96])
            quantized = ["--quantize", quantize] if quantize else []
            answer = (answer_with_export_of_keras(fmt, quantize, capsys) if source == "pth"
                      else None)
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr("pose.apis.cpu_features.cpu_flags", lambda: ["avx", "avx2", "fma"])
                if answer:
                    patch.setattr("pose.apis.export.export_model", answer[0])
                code, out = _export(capsys, "--weights", *weights, "--format", fmt,
                                    "--out", path, *quantized)
            if answer:
                assert answer[1] == [(fmt, quantize)]
            made[fmt, quantize, source] = code, out, path
        return made[fmt, quantize, source]
    return get


@pytest.mark.parametrize("fmt,quantize,source", [
    ("tflite", None, "keras"), ("onnx", None, "keras"),
    ("tflite", "dynamic", "keras"), ("onnx", "dynamic", "keras"),
    ("onnx", None, "pth")])  # tools/export.py takes the .pth itself too
def test_official_checkpoint_to_fast_runtime(chain, exports, capsys, fmt, quantize, source):
    # An AVX2-only CPU, whatever this host is: the tool says a quantized file may be slow.
    folder = chain["folder"]
    code, out, path = exports(capsys, fmt, quantize, source)
    name = path.name
    assert code == 0, out[-2000:]
    assert ("note: this CPU has no int8 dot-product instructions" in out) == bool(quantize)
    if quantize is None:  # default flags pass, although the outputs are large
        parity = re.search(r"max \|keras - \w+\| = (\S+) on a random input, outputs up to "
                           r"(\S+) .*: OK", out)
        assert parity, out
        assert float(parity.group(2)) > 20  # the fixture's scale: an absolute 1e-4 fails

    run = _tool("infer.py", "--weights", folder / name, chain["image"], "--boxes",
                chain["boxes"], "--out", folder / f"infer_{name}", "--quiet")
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"runtime {'litert' if fmt == 'tflite' else 'onnx'}" in run.stdout
    got = _keypoints(folder / f"infer_{name}")
    assert got.keys() == chain["reference"].keys()
    shifts = np.concatenate([np.linalg.norm(got[box] - chain["reference"][box], axis=1)
                             for box in got])  # (5 people × 17,) px
    if quantize is None:
        assert shifts.max() <= MAX_FLOAT32_SHIFT_PX, shifts.max()
    else:
        assert np.mean(shifts <= 0.5) >= MIN_DYNAMIC_KEPT, np.sort(shifts)


def test_the_ap_of_an_export_is_the_ap_of_the_checkpoint(chain, exports, coco_sample_dir,
                                                         capsys):
    """tools/test.py on the float32 .onnx export of the converted checkpoint: the same
    boxes, flip test, decoding and pycocotools evaluation give the .keras model's AP to
    within 0.002 on every metric and the same keypoints to float rounding; metrics.json
    names the runtime and precision that ran. (A .tflite goes through the same
    ``predict_on_batch`` of ``pose.apis.runtimes``; its export takes 15 s more here.)"""
    folder = chain["folder"]
    test_main = runpy.run_path(os.path.join(REPO, "tools", "test.py"), run_name="test")["main"]
    evaluation = ["--annotations", coco_sample_dir / "person_keypoints_sample.json",
                  "--images", coco_sample_dir / "images", "--gt-boxes"]
    runs = {}
    for fmt in ("keras", "onnx"):
        weights = chain["keras"]
        if fmt != "keras":  # the export of test_official_checkpoint_to_fast_runtime
            code, out, weights = exports(capsys, fmt)
            assert code == 0, out[-2000:]
        out_dir = folder / f"ap_{fmt}"
        assert run_tool(test_main, [str(a) for a in ["--weights", weights, *evaluation,
                                                     "--out", out_dir]]) == 0
        runtime = fmt
        first_line = capsys.readouterr().out.splitlines()[0]
        assert first_line.startswith(f"{weights}: runtime {runtime} "), first_line
        metrics = json.loads((out_dir / "metrics.json").read_text())
        results = json.loads((out_dir / "keypoints_results.json").read_text())
        runs[fmt] = metrics, [(r["image_id"], np.reshape(r["keypoints"], (-1, 3))[:, :2])
                              for r in results]
    keras_metrics, keras_keypoints = runs["keras"]
    assert keras_metrics["model"] == {"weights": str(chain["keras"]), "runtime": "keras",
                                      "package": "tensorflow", "precision": "float32"}
    assert keras_metrics["num_results"] > 0
    for fmt, runtime in (("onnx", "onnx"),):
        metrics, keypoints = runs[fmt]
        assert metrics["model"]["runtime"] == runtime, metrics["model"]
        assert metrics["model"]["precision"] == "float32", metrics["model"]
        for stat in STAT_NAMES:
            assert abs(metrics[stat] - keras_metrics[stat]) <= 0.002, (fmt, stat)
        assert metrics["num_results"] == keras_metrics["num_results"]
        # each person of the .keras run against the nearest of the same image here (px)
        shifts = [min(np.abs(theirs - ours).max() for image, theirs in keypoints
                      if image == image_id) for image_id, ours in keras_keypoints]
        assert max(shifts) <= MAX_FLOAT32_SHIFT_PX, (fmt, max(shifts))
