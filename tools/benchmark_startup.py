"""Start-up time of tools/infer.py: process start → first overlay on disk, per model.

    python tools/benchmark_startup.py [--configs CFG ...] [--images DIR] [--boxes DET.json]
                                      [--repeats 2] [--formats keras tflite onnx tflite:int8]
                                      [--export-args "..."] [--workdir work/startup] [--json OUT]

For every config a checkpoint with random weights is saved once (its start-up cost is the
same as a trained one's), then ``tools/infer.py`` runs in a fresh process and this script
polls the output folder: the time from ``Popen`` to the first complete overlay file (the
tool writes each under a temporary name and renames it, so a visible file is complete).
The tool's own report splits out "model ready" (imports + checkpoint load) and its first
line names the runtime. A ``.tflite`` runs on LiteRT and an ``.onnx`` on ONNX Runtime
without importing TensorFlow. Prints a table and writes JSON.
"""

import json
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from pose.errors import ToolArgumentParser, hide_native_output

if __name__ == "__main__":  # first: TensorFlow's C++ start-up lines must not reach stderr
    hide_native_output()

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "tests" / "data" / "coco_sample"
DEFAULT_CONFIGS = ("configs/coco/hrnet_w32_256x192_psa_p.yaml",
                   "configs/demo/hrnet_small_128x96.yaml")


def make_checkpoint(config_path, workdir):
    """A random-weight checkpoint for ``config_path`` in ``workdir`` (made once)."""
    name = Path(config_path).stem
    path = Path(workdir) / f"{name}.keras"
    if not path.is_file():
        code = ("import sys; from pose.config import load_config; "
                "from pose.engine.checkpoint import build_model, save_model; "
                "c = load_config(sys.argv[1]); save_model(build_model(c.model), sys.argv[2], c)")
        subprocess.run([sys.executable, "-c", code, str(config_path), str(path)], check=True,
                       cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    return path


def make_export(weights, fmt, quantize=None, export_args=()):
    """``tools/export.py`` of ``weights`` to ``fmt`` (``quantize``: its ``--quantize``)
    beside it, made once; its path (``NAME[_QUANTIZE].EXT``)."""
    stem = Path(weights).stem + (f"_{quantize}" if quantize else "")
    path = Path(weights).with_name(stem + {"tflite": ".tflite", "onnx": ".onnx"}.get(fmt, ""))
    if fmt == "saved_model":
        path = path.with_name(path.name + "_saved_model")
    if not path.exists():
        extra = ["--quantize", quantize, *export_args] if quantize else []
        subprocess.run([sys.executable, str(REPO / "tools" / "export.py"), "--weights",
                        str(weights), "--format", fmt, "--out", str(path), *extra], check=True,
                       cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
                       stdout=subprocess.DEVNULL)
    return path


def time_first_overlay(weights, inputs, out_dir, extra_args=(), timeout=900):
    """Run tools/infer.py once; seconds to the first overlay, to exit, and its own report."""
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    cmd = [sys.executable, str(REPO / "tools" / "infer.py"), "--weights", str(weights),
           *map(str, inputs), "--out", str(out_dir), "--quiet", *extra_args]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO, env=env)
    first = None
    while proc.poll() is None and time.perf_counter() - start < timeout:
        if first is None and any(not f.startswith(".") and f != "predictions.json"
                                 for f in os.listdir(out_dir)):
            first = time.perf_counter() - start
        time.sleep(0.01)
    if proc.poll() is None:
        proc.kill()
    stdout, stderr = proc.communicate()
    total = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"infer.py failed ({proc.returncode}):\n{stderr[-3000:]}")
    ready = re.search(r"model ready ([\d.]+) s", stdout)
    rate = re.search(r"([\d.]+) images/s, ([\d.]+) people/s", stdout)
    return {"runtime": stdout.splitlines()[0] if stdout else None,
            "first_overlay_s": round(first if first is not None else total, 2),
            "exit_s": round(total, 2),
            "model_ready_s": float(ready.group(1)) if ready else None,
            "images_per_s": float(rate.group(1)) if rate else None,
            "people_per_s": float(rate.group(2)) if rate else None}


def main(argv=None):
    parser = ToolArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS))
    parser.add_argument("--images", nargs="+",
                        default=[str(SAMPLE / "images" / "000000000785.jpg")],
                        help="inputs for infer.py (default: one COCO sample image)")
    parser.add_argument("--boxes", default=str(SAMPLE / "person_detection_results_sample.json"),
                        help="detections for --boxes ('' for whole-image boxes)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--formats", nargs="+", default=["keras", "tflite", "onnx"],
                        help="what --weights is: keras (the checkpoint), saved_model, tflite "
                             "or onnx, the last two optionally quantized as FORMAT:MODE "
                             "(e.g. tflite:int8, with --export-args for its calibration)")
    parser.add_argument("--export-args", default="",
                        help="extra arguments for tools/export.py of quantized formats")
    parser.add_argument("--workdir", default="work/startup")
    parser.add_argument("--json", default=None, help="default: WORKDIR/startup.json")
    parser.add_argument("--infer-args", default="", help="extra arguments for infer.py")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    extra = args.infer_args.split()
    if args.boxes and Path(args.boxes).is_file():
        extra = ["--boxes", args.boxes, *extra]
    rows = []
    for config, fmt in [(c, f) for c in args.configs for f in args.formats]:
        weights = make_checkpoint(REPO / config if not os.path.isabs(config) else config,
                                  workdir)
        if fmt != "keras":
            base, _, quantize = fmt.partition(":")
            weights = make_export(weights, base, quantize or None, args.export_args.split())
        runs = [time_first_overlay(weights, args.images, workdir / "out", extra)
                for _ in range(args.repeats)]
        row = {"config": config, "weights": fmt, "runs": runs}
        for key in ("first_overlay_s", "exit_s", "model_ready_s", "images_per_s",
                    "people_per_s"):
            values = [r[key] for r in runs if r[key] is not None]
            row[key] = round(statistics.median(values), 2) if values else None
        rows.append(row)
        print(f"{config} ({fmt}): first overlay {row['first_overlay_s']} s "
              f"(model ready {row['model_ready_s']} s), exit {row['exit_s']} s; "
              f"{runs[0]['runtime']}", flush=True)

    header = (f"| {'config':45} | weights     | first overlay s | model ready s | exit s |"
              f" images/s |")
    print("\n" + header + "\n|" + "-" * 47 + "|-------------|-----------------|"
          "---------------|--------|----------|")
    for row in rows:
        print(f"| {row['config']:45} | {row['weights']:11} | {row['first_overlay_s']:15} | "
              f"{row['model_ready_s']!s:13} | {row['exit_s']:6} | "
              f"{row['images_per_s']!s:8} |")
    result = {"inputs": args.images, "boxes": args.boxes or "whole image",
              "infer_args": extra, "repeats": args.repeats, "cpu_count": os.cpu_count(),
              "python": sys.version.split()[0], "rows": rows}
    out = Path(args.json) if args.json else workdir / "startup.json"
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    from pose.errors import run_tool

    sys.exit(run_tool(main))
