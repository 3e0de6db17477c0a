"""Start-up time of tools/infer.py: process start → first overlay on disk, per model.

    python tools/benchmark_startup.py [--configs CFG ...] [--images DIR] [--boxes DET.json]
                                      [--repeats 2] [--formats keras tflite onnx tflite:int8]
                                      [--export-args "..."] [--workdir work/startup] [--json OUT]
                                      [--detectors onnx tflite] [--people 1 8]

For every config a checkpoint with random weights is saved once (its start-up cost is the
same as a trained one's), then ``tools/infer.py`` runs in a fresh process and this script
polls the output folder: the time from ``Popen`` to the first complete overlay file (the
tool writes each under a temporary name and renames it, so a visible file is complete).
The tool's own report splits out "model ready" (imports + checkpoint load) and its first
line names the runtime. A ``.tflite`` runs on LiteRT and an ``.onnx`` on ONNX Runtime
without importing TensorFlow. Prints a table and writes JSON.

``--detectors onnx tflite --people 1 8``: the person boxes come, in the same run, from a
boxes file with that many people per image (pose alone) and from a YOLOv8n-shaped
detector file (``pose.experiments.detector_benchmark``: 3.2 M parameters at 640x640,
random weights, exported as Ultralytics exports it) capped at that many people
(``--max-people``): the detector's cost per image and at start-up, next to pose alone.
"""

import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from pose.errors import hide_native_output
from pose.fileio import write_json
from pose.options import ToolArgumentParser

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
    boxes = re.search(r"person boxes took [\d.]+ s \((\d+) ms per image", stdout)
    return {"runtime": stdout.splitlines()[0] if stdout else None,
            "first_overlay_s": round(first if first is not None else total, 2),
            "exit_s": round(total, 2),
            "model_ready_s": float(ready.group(1)) if ready else None,
            "images_per_s": float(rate.group(1)) if rate else None,
            "people_per_s": float(rate.group(2)) if rate else None,
            "box_ms_per_image": float(boxes.group(1)) if boxes else 0.0}


def main(argv=None):
    parser = ToolArgumentParser(tool="benchmark_startup", description=__doc__.splitlines()[0])
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
    parser.add_argument("--workdir", output="folder", default="work/startup")
    parser.add_argument("--json", output="file", default=None, help="default: WORKDIR/startup.json")
    parser.add_argument("--infer-args", default="", help="extra arguments for infer.py")
    parser.add_argument("--detectors", nargs="+", choices=["onnx", "tflite"], default=[],
                        help="also run with a YOLOv8n-shaped detector file of these formats "
                             "(pose.experiments.detector_benchmark; random weights) against "
                             "a boxes file of as many people, for each --people")
    parser.add_argument("--people", nargs="+", type=int, default=[1, 8],
                        help="people per image of the --detectors rows (default 1 8)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --json and write into --workdir even when this tool "
                             "did not write them")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    from pose.checks import check_input_file, claim_output_file, claim_output_folder

    workdir = Path(args.workdir)
    scratch = claim_output_folder(workdir, "tools/benchmark_startup.py",
                                  [*args.images, args.boxes], overwrite=args.overwrite,
                                  option="--workdir")
    out = Path(args.json) if args.json else workdir / "startup.json"
    outputs = claim_output_file(out, "tools/benchmark_startup.py", [*args.images, args.boxes],
                                overwrite=args.overwrite, option="--json")
    workdir.mkdir(parents=True, exist_ok=True)
    extra = args.infer_args.split()
    # (label, people, infer.py arguments) of every box source compared
    if args.boxes:
        check_input_file(args.boxes, "boxes file")
    sources = [("boxes file", None, ["--boxes", args.boxes] if args.boxes else [])]
    detectors = {}
    if args.detectors:
        from pose.experiments.detector_benchmark import make_detector_file, people_boxes

        for det_fmt in args.detectors:
            detectors[det_fmt] = make_detector_file(workdir, det_fmt)
        sizes = {Path(p).name: cv2_size(p) for p in args.images}
        sources = []
        for people in args.people:
            boxes_path = workdir / f"boxes_{people}_people.json"
            write_json(people_boxes(sizes, people), boxes_path)
            sources.append((f"{people} per image, boxes file", people,
                            ["--boxes", str(boxes_path)]))
            sources.extend((f"{people} per image, detector {det_fmt}", people,
                            ["--detector", detectors[det_fmt][0], "--max-people", str(people)])
                           for det_fmt in args.detectors)
    rows = []
    for config, fmt in [(c, f) for c in args.configs for f in args.formats]:
        weights = make_checkpoint(REPO / config if not os.path.isabs(config) else config,
                                  workdir)
        if fmt != "keras":
            base, _, quantize = fmt.partition(":")
            weights = make_export(weights, base, quantize or None, args.export_args.split())
        # Alternating rounds over the box sources: the load of a shared machine spreads
        # over all of them alike.
        runs = {label: [] for label, _, _ in sources}
        for round_index in range(args.repeats):
            for label, _, source_args in sources:
                run = time_first_overlay(weights, args.images, workdir / "out",
                                         [*source_args, *extra])
                runs[label].append(run)
                print(f"  round {round_index + 1}, {label}: first overlay "
                      f"{run['first_overlay_s']} s, {run['images_per_s']} images/s, boxes "
                      f"{run['box_ms_per_image']} ms/image", flush=True)
        for label, people, _ in sources:
            row = {"config": config, "weights": fmt, "boxes": label, "people": people,
                   "runs": runs[label]}
            for key in ("first_overlay_s", "exit_s", "model_ready_s", "images_per_s",
                        "people_per_s", "box_ms_per_image"):
                values = [r[key] for r in runs[label] if r[key] is not None]
                row[key] = round(statistics.median(values), 2) if values else None
            rows.append(row)
            print(f"{config} ({fmt}, {label}): first overlay {row['first_overlay_s']} s "
                  f"(model ready {row['model_ready_s']} s), exit {row['exit_s']} s, "
                  f"{row['images_per_s']} images/s, boxes {row['box_ms_per_image']} ms/image; "
                  f"{runs[label][0]['runtime']}", flush=True)

    header = (f"| {'config':45} | weights     | {'boxes':28} | first overlay s | "
              "model ready s | exit s | images/s | people/s | boxes ms/image |")
    print("\n" + header + "\n|" + "-" * 47 + "|-------------|" + "-" * 30 + "|"
          "-----------------|---------------|--------|----------|----------|----------------|")
    for row in rows:
        print(f"| {row['config']:45} | {row['weights']:11} | {row['boxes']:28} | "
              f"{row['first_overlay_s']:15} | {row['model_ready_s']!s:13} | "
              f"{row['exit_s']:6} | {row['images_per_s']!s:8} | {row['people_per_s']!s:8} | "
              f"{row['box_ms_per_image']!s:14} |")
    result = {"inputs": args.images, "boxes": args.boxes or "whole image",
              "infer_args": extra, "repeats": args.repeats, "cpu_count": os.cpu_count(),
              "python": sys.version.split()[0],
              "detectors": {fmt: {"path": path, "params": params}
                            for fmt, (path, params) in detectors.items()},
              "rows": rows}
    write_json(result, out)
    outputs.record(out.name)
    scratch.record(*os.listdir(workdir))
    print(f"wrote {out}")


def cv2_size(path):
    """``(w, h)`` of an image file."""
    import cv2

    image = cv2.imread(str(path))
    if image is None:
        raise OSError(f"cannot read image {path}")
    return image.shape[1], image.shape[0]


if __name__ == "__main__":
    from pose.errors import run_tool

    sys.exit(run_tool(main))
