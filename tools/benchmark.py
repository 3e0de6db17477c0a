"""Benchmarks that print a table and write JSON; results belong in BENCHMARKS.md.

    python tools/benchmark.py model [--width 32] [--input 192x256] [--sweep]
                                    [--forms paper,official,port] [--placements branch,block]
                                    [--out FILE]
    python tools/benchmark.py eval-scale [--images 5000] [--out FILE]
    python tools/benchmark.py bootstrap [--images 5000] [--resamples 1000] [--out FILE]
    python tools/benchmark.py runtimes --weights TRAINED.keras [--latency-config CFG]
                                       [--rounds 2] [--repeats 10] [--workdir DIR] [--out FILE]
    python tools/benchmark.py video --weights W32.tflite [--frames 40] [--size 1280x720]
                                    [--boxes DET.json | --detector FILE | --make-detector FMT]
                                    [--max-people 4] [--rounds 2] [--workdir DIR] [--out FILE]
    python tools/benchmark.py serve --weights W32.tflite [--clients 1 4 32] [--seconds 10]
                                    [--frames 40] [--threads N] [--out FILE]

``model``: trainable parameters, conv MACs, forward latency at batch 1 and 8 (median of
``--repeats`` calls after a warm-up), first-call (tracing) time and peak memory, for every
PSA variant (none, branch/block × parallel/sequential, in each PSA form of ``--forms``:
paper, official, port; default paper), and each variant's batch-8 time as a ratio to the
model without PSA in the same run. With ``--sweep`` it first measures
the runtime settings (oneDNN on/off, thread pools, predict_on_batch vs tf.function vs XLA)
on the model without PSA. Every measurement runs in a fresh process.

``eval-scale``: at COCO val2017 size (5k images, ~100k detector boxes, annotation-only
generated data), the time and peak memory of everything evaluation does after the
network: heatmap decoding and un-warping, rescoring + OKS-NMS, pycocotools COCOeval; and
the keypoint error diagnosis of the same results, as a multiple of COCOeval's time.

``bootstrap``: on the same kind of set, two simulated variants matched once each by
COCOeval, then the paired bootstrap intervals of their differences from ``--resamples``
re-accumulated resamples of the images (``pose.evaluation.bootstrap``).

``runtimes``: every runtime × precision (float32 Keras, LiteRT, ONNX Runtime; float16,
dynamic, int8 exports): file size and forward latency at batch 1 and 8 of the
``--latency-config`` model (random weights, W32 by default), each variant in a fresh
process, in one run; and the COCO AP of the same exports of the trained ``--weights``
on its config's validation set next to the float32 AP (``pose.experiments.runtime_benchmark``).

``serve``: the pose server (``tools/serve.py`` in its own process, clients on loopback)
against calling the same runtime in-process: requests per second and p50 / p95 latency at
each ``--clients`` count (one 640x480 photo, one person), and webcam frames per second
over the WebSocket at 320x240 and 640x480 (``pose.experiments.serve_benchmark``).

``video``: frames per second of ``tools/infer.py``'s video path on a generated clip with
four people (720p by default): person boxes on every frame vs ``--detect-every 5``, each
with and without ``--smooth``, and the time tracking and smoothing take per frame
(``pose.experiments.video_benchmark``). The box source is ``--boxes`` (default: the
clip's true boxes as a detection file), a detector file (``--detector FILE`` with
``tools/infer.py``'s detector options), or ``--make-detector onnx|tflite``: the
YOLOv8n-shaped detector of ``pose.experiments.detector_benchmark`` (3.2 M parameters,
640x640, random weights) exported to that format in ``--workdir``; give it
``--max-people 4``, as its random weights find people everywhere.
"""

import argparse
import dataclasses
import logging
import os
import platform
import subprocess
import sys
import tempfile

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) would hide this tool's
# own output; an explicit setting by the user wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pose.errors import UserError, hide_native_output
from pose.options import ToolArgumentParser

if __name__ == "__main__":  # first: TensorFlow's C++ start-up lines must not reach stderr
    hide_native_output()

from pose.apis.detector import add_detector_arguments
from pose.experiments.benchmark import (
    RUNNERS,
    RuntimeSetting,
    benchmark_bootstrap,
    benchmark_evaluation_scale,
    measure_in_subprocess,
)
from pose.fileio import write_json
from pose.models.complexity import format_table

VARIANTS = (("none", "parallel"), ("branch", "parallel"), ("branch", "sequential"),
            ("block", "parallel"), ("block", "sequential"))
PSA_FORMS = ("paper", "official", "port")  # psa.PSA_FORMS, without importing Keras here

COLUMNS = [("label", "setting / variant", "{}"), ("params", "params", "{:,}"),
           ("macs_g", "MACs (G)", "{:.3f}"), ("b1_ms", "batch 1 (ms)", "{:.0f}"),
           ("b8_ms", "batch 8 (ms)", "{:.0f}"), ("first_s", "first call b1 (s)", "{:.1f}"),
           ("build_s", "build (s)", "{:.1f}"), ("peak_mib", "peak RSS (MiB)", "{:.0f}")]


def _row(label, result):
    return {"label": label, "params": result["params"], "macs_g": result["macs"] / 1e9,
            "b1_ms": result["batch1"]["median_s"] * 1e3,
            "b8_ms": result["batch8"]["median_s"] * 1e3,
            "first_s": result["batch1"]["first_call_s"], "build_s": result["build_s"],
            "peak_mib": result["peak_memory_mib"]}


def _cpu_name():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines()
                    if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor()


def _measure(label, setting, model_kwargs, repeats, rows, results):
    print(f"measuring {label} ...", flush=True)
    result = measure_in_subprocess(setting, model_kwargs, repeats=repeats)
    rows.append(_row(label, result))
    results.append({"label": label, **result})
    print(format_table(rows[-1:], COLUMNS).splitlines()[-1], flush=True)


def benchmark_model(args):
    from pose.apis.cpu_features import cpu_flags

    input_w, input_h = (int(s) for s in args.input.split("x"))
    base = dict(width=args.width, input_size=(input_w, input_h))
    rows, results = [], []
    default = RuntimeSetting(onednn=args.onednn, intra_op=args.intra, inter_op=args.inter,
                             runner=args.runner)
    if args.sweep:
        none_model = dict(base, psa_placement="none")
        sweep = [RuntimeSetting(onednn=o, runner=r) for o in ("0", "1") for r in RUNNERS]
        sweep += [dataclasses.replace(default, intra_op=i, inter_op=j)
                  for i, j in ((2, 1), (1, 1))]
        for setting in sweep:
            _measure(setting.label(), setting, none_model, args.repeats, rows, results)
    variants = [("none", "parallel", "paper")] + [
        (placement, mode, form) for placement, mode in VARIANTS if placement != "none"
        and placement in args.placements for form in args.forms]
    for placement, mode, form in variants:
        label = "none" if placement == "none" else f"{placement}/{mode}/{form}"
        _measure(f"W{args.width} {label} ({default.label()})", default,
                 dict(base, psa_placement=placement, psa_mode=mode, psa_form=form),
                 args.repeats, rows, results)
    none_b8 = rows[len(rows) - len(variants)]["b8_ms"]  # the first variant: no PSA
    for row in rows[len(rows) - len(variants):]:
        row["b8_ratio"] = row["b8_ms"] / none_b8
    print()
    print(f"HRNet-W{args.width} at {input_h}x{input_w}, {_cpu_name()}, flags "
          f"{' '.join(cpu_flags())}, load average {os.getloadavg()[0]:.1f}")
    for row in rows:  # the --sweep rows have no ratio
        row["b8_vs_none"] = f"{row['b8_ratio']:.3f}" if "b8_ratio" in row else "–"
    print(format_table(rows, COLUMNS[:5] + [("b8_vs_none", "b8 × none", "{}")] + COLUMNS[5:]))
    report = {"machine": {"cpu": _cpu_name(), "flags": cpu_flags(),
                          "python": platform.python_version(),
                          "load_average_1min_at_end": os.getloadavg()[0]},
              "model": base, "results": results,
              "b8_ratio_to_none": {row["label"]: row.get("b8_ratio") for row in rows}}
    write_json(report, args.out)
    print(f"\nwrote {args.out}")


def benchmark_eval_scale(args):
    with tempfile.TemporaryDirectory() as tmp:
        result = benchmark_evaluation_scale(tmp, num_images=args.images)
    result["machine"] = {"cpu": _cpu_name(), "python": platform.python_version()}
    rows = [{"step": k[:-2], "seconds": v} for k, v in result.items() if k.endswith("_s")]
    print(f"{result['images']} images, {result['people_with_keypoints']} people, "
          f"{result['boxes']:,} boxes -> {result['results']:,} results after OKS-NMS "
          f"(simulated AP {result['AP_of_simulated_predictions']:.3f}), {_cpu_name()}")
    print(format_table(rows, [("step", "step", "{}"), ("seconds", "seconds", "{:.2f}")]))
    print(f"keypoint error diagnosis: {result['diagnosis_over_cocoeval']:.2f}x COCOeval's "
          f"time (target: at most 2x); counts {result['diagnosis_counts']}")
    print(f"peak RSS: {result['peak_memory_mib']:.0f} MiB")
    write_json(result, args.out)
    print(f"wrote {args.out}")


def benchmark_bootstrap_intervals(args):
    with tempfile.TemporaryDirectory() as tmp:
        result = benchmark_bootstrap(tmp, num_images=args.images, num_resamples=args.resamples)
    result["machine"] = {"cpu": _cpu_name(), "python": platform.python_version(),
                         "load_average_1min": os.getloadavg()[0]}
    rows = [{"step": k[:-2], "seconds": v} for k, v in result.items() if k.endswith("_s")]
    print(f"{result['images']} images, {result['people_with_keypoints']} people, "
          f"{result['boxes']:,} boxes, {args.resamples} paired resamples, {_cpu_name()}, "
          f"load average {result['machine']['load_average_1min']:.1f}")
    print(format_table(rows, [("step", "step", "{}"), ("seconds", "seconds", "{:.2f}")]))
    for pair in result["differences"]:
        print(f"{pair['variant']} - {pair['reference']}: " + ", ".join(
            f"{name} {s['difference']:+.4f} [{s['low']:+.4f}, {s['high']:+.4f}]"
            for name, s in pair["stats"].items()))
    print(f"peak RSS: {result['peak_memory_mib']:.0f} MiB")
    write_json(result, args.out)
    print(f"wrote {args.out}")
def benchmark_detector_input(args):
    from datasets.images import read_image_rgb
    from pose.apis.cpu_features import cpu_flags
    from pose.experiments.detector_benchmark import time_detector_input

    rows = []
    for path in args.images:
        image = read_image_rgb(path)
        timing = time_detector_input(image, args.size, args.repeats)
        rows.append({"image": os.path.basename(path),
                     "size": f"{image.shape[1]}x{image.shape[0]}", **timing,
                     "ratio": timing["project_ms"] / timing["ultralytics_ms"]})
    print(f"detector input {args.size}x{args.size} NCHW float32 from a decoded photo, median of "
          f"{args.repeats} alternating calls; {_cpu_name()}, flags {' '.join(cpu_flags())}")
    print(format_table(rows, [("image", "image", "{}"), ("size", "size", "{}"),
                              ("project_ms", "project (ms)", "{:.2f}"),
                              ("ultralytics_ms", "Ultralytics restated (ms)", "{:.2f}"),
                              ("ratio", "ratio", "{:.2f}"),
                              ("max_abs_difference", "max |diff|", "{:.1e}")]))
    write_json({"machine": {"cpu": _cpu_name(), "flags": cpu_flags(),
                            "cores": os.cpu_count()}, "size": args.size,
                "repeats": args.repeats, "rows": rows}, args.out)
    print(f"wrote {args.out}")


def _short_labels(paths):
    """The shortest names that tell ``paths`` apart: their path parts without the ones all
    share at the start and the end (``work/demo/comparison/none/seed0/last.keras`` and
    ``.../parallel/seed0/last.keras`` → ``none``, ``parallel``)."""
    parts = [os.path.normpath(p).split(os.sep) for p in paths]
    if len(parts) == 1:
        return [os.path.normpath(paths[0])]
    head = 0
    while all(len(p) > head + 1 for p in parts) and len({p[head] for p in parts}) == 1:
        head += 1
    tail = 0
    while all(len(p) > head + tail + 1 for p in parts) and len({p[-1 - tail] for p in parts}) == 1:
        tail += 1
    return ["/".join(p[head:len(p) - tail]) for p in parts]


def benchmark_runtimes(args):
    from pose.apis.cpu_features import cpu_flags, quantized_speed_note
    from pose.apis.export import calibration_crops
    from pose.config import load_config
    from pose.engine.checkpoint import build_model, load_model, save_model
    from pose.experiments.runtime_benchmark import (
        evaluate_variants,
        export_variants,
        parse_variants,
        time_variants,
        variant_name,
    )

    variants = parse_variants(args.variants)
    os.makedirs(args.workdir, exist_ok=True)
    labels = _short_labels(args.weights)
    accuracy, sizes_acc, calibration = {}, {}, None
    for label, weights in zip(labels, args.weights):
        model, config = load_model(weights)
        if config is None:
            raise UserError(f"{weights} has no config beside it (the AP needs its validation "
                            "set)")
        ann = config.data.resolve(config.data.train_annotations)
        images = config.data.resolve(config.data.train_images)
        calibration = calibration or (ann, images)
        if args.latency_only:
            break
        h, w = model.input_shape[1:3]
        print(f"accuracy model {label} ({weights}): exports, then AP on its validation set",
              flush=True)
        crops = calibration_crops(ann, images, (w, h), count=args.calibration_count)
        folder = os.path.join(args.workdir, "accuracy", label.replace("/", "_"))
        paths = export_variants(model, config, folder, "accuracy", crops, variants)
        accuracy[label] = evaluate_variants(model, config, paths,
                                            os.path.join(folder, "evaluation"),
                                            threads=args.threads)
        sizes_acc[label] = {key: os.path.getsize(p) for key, p in paths.items()}
        sizes_acc[label][("keras", None)] = os.path.getsize(weights)

    latency_config = load_config(args.latency_config)
    checkpoint = os.path.join(args.workdir, "latency.keras")
    if not os.path.isfile(checkpoint):
        save_model(build_model(latency_config.model), checkpoint, latency_config)
    latency_model, _ = load_model(checkpoint)
    lh, lw = latency_model.input_shape[1:3]
    print(f"latency model {args.latency_config} (random weights): exports", flush=True)
    lat_crops = calibration_crops(*calibration, (lw, lh), count=args.latency_calibration_count)
    lat_paths = {("keras", None): checkpoint,
                 **export_variants(latency_model, latency_config, args.workdir, "latency",
                                   lat_crops, variants)}
    del latency_model
    print("latency, each variant in a fresh process:", flush=True)
    latency = time_variants(lat_paths, rounds=args.rounds, repeats=args.repeats,
                            threads=args.threads)

    base = latency[("keras", None)]
    rows = []
    for key in lat_paths:
        lat = latency[key]
        row = {"variant": variant_name(*key), "size": os.path.getsize(lat_paths[key]) / 2**20,
               "b1": lat["b1_ms"], "b1_ratio": lat["b1_ms"] / base["b1_ms"],
               "b8": lat["b8_ms"], "b8_ratio": lat["b8_ms"] / base["b8_ms"],
               "load": lat["load_s"]}
        for i, label in enumerate(accuracy):
            ap = accuracy[label][key]
            row[f"size_{i}"] = sizes_acc[label][key] / 2**20
            row[f"ap_{i}"] = ap["AP"]
            row[f"dap_{i}"] = ("–" if ap["dAP"] is None else
                               f"{ap['dAP'] * 100:+.1f} [{ap['dAP_low'] * 100:+.1f}, "
                               f"{ap['dAP_high'] * 100:+.1f}]")
        rows.append(row)
    columns = [("variant", "runtime / precision", "{}"), ("size", "file (MiB)", "{:.1f}"),
               ("b1", "batch 1 (ms)", "{:.0f}"), ("b1_ratio", "× Keras", "{:.2f}"),
               ("b8", "batch 8 (ms)", "{:.0f}"), ("b8_ratio", "× Keras", "{:.2f}"),
               ("load", "load (s)", "{:.2f}")]
    for i, label in enumerate(accuracy):  # not with --latency-only
        columns += [(f"size_{i}", f"{label} file (MiB)", "{:.2f}"),
                    (f"ap_{i}", f"{label} AP", "{:.3f}"),
                    (f"dap_{i}", f"{label} ΔAP points [95%]", "{}")]
    print()
    print(f"{args.latency_config} latency ({lw}x{lh}, random weights), AP of "
          f"{', '.join(args.weights)}; {_cpu_name()}, flags {' '.join(cpu_flags())}, "
          f"{os.cpu_count()} cores")
    print(format_table(rows, columns))
    notes = [note for fmt, q in lat_paths
             if (note := quantized_speed_note(q, cpu_flags(), fmt))]
    for note in notes:  # the same advice tools/export.py gives
        print(f"note: {note}")
    report = {"machine": {"cpu": _cpu_name(), "flags": cpu_flags(),
                          "cores": os.cpu_count(), "python": platform.python_version()},
              "latency_config": args.latency_config, "weights": args.weights,
              "rows": rows,
              "latency": {variant_name(*k): v for k, v in latency.items()},
              "ap": {label: {variant_name(*k): v for k, v in ap.items()}
                     for label, ap in accuracy.items()}}
    write_json(report, args.out)
    print(f"\nwrote {args.out}")


def benchmark_video_inference(args):
    from pose.apis.boxes import DetectionBoxes
    from pose.apis.cpu_features import cpu_flags
    from pose.apis.detector import detector_from_args
    from pose.apis.estimator import PoseEstimator, load_network, runtime_description
    from pose.config import resolve_config
    from pose.experiments.video_benchmark import (
        COLUMNS,
        benchmark_video,
        four_people_clip,
        variant_rows,
    )

    width, height = (int(v) for v in args.size.split("x"))
    os.makedirs(args.workdir, exist_ok=True)
    clip, detections, _ = four_people_clip(args.workdir, args.frames, (width, height))
    if args.make_detector:
        from pose.experiments.detector_benchmark import make_detector_file

        args.detector, _ = make_detector_file(args.workdir, args.make_detector)
    if args.detector:
        boxes = detector_from_args(args, threads=args.threads)
    else:
        boxes = DetectionBoxes(args.boxes or detections)
    model, saved = load_network(args.weights, threads=args.threads, optimize_graph=False,
                                trace_ahead=True)
    config = resolve_config(None, saved, [], source=args.weights)
    estimator = PoseEstimator.from_config(model, config)
    runtime = runtime_description(model, args.threads)
    print(f"{runtime}; {clip}: {args.frames} frames {width}x{height}, 4 people; person "
          f"boxes: {boxes.name}; flip test {'on' if estimator.flip else 'off'}", flush=True)
    results = benchmark_video(estimator, clip, boxes, args.workdir, rounds=args.rounds,
                              min_score=args.track_min_score,
                              keypoint_threshold=args.keypoint_threshold)
    rows = variant_rows(results)
    print()
    print(f"{args.weights}: {runtime}; {_cpu_name()}, flags {' '.join(cpu_flags())}, "
          f"{os.cpu_count()} cores")
    print(format_table(rows, COLUMNS))
    report = {"machine": {"cpu": _cpu_name(), "flags": cpu_flags(), "cores": os.cpu_count(),
                          "python": platform.python_version(),
                          "load_average": os.getloadavg()},
              "weights": args.weights, "runtime": runtime, "clip": clip,
              "frames": args.frames, "size": [width, height], "box_source": boxes.name,
              "max_people": args.max_people if args.detector else None,
              "flip_test": estimator.flip, "track_min_score": args.track_min_score,
              "keypoint_threshold": args.keypoint_threshold, "rows": rows,
              "results": results}
    write_json(report, args.out)
    print(f"\nwrote {args.out}")


def benchmark_serve(args):
    from pose.apis.cpu_features import cpu_flags
    from pose.experiments.serve_benchmark import COLUMNS, benchmark_serving

    report = benchmark_serving(args.weights, clients=args.clients, seconds=args.seconds,
                               frames=args.frames, threads=args.threads)
    print()
    print(f"{args.weights}: {report['runtime']}; {_cpu_name()}, flags "
          f"{' '.join(cpu_flags())}, {os.cpu_count()} cores")
    print(format_table(report["rows"], COLUMNS))
    report["machine"] = {"cpu": _cpu_name(), "flags": cpu_flags(), "cores": os.cpu_count(),
                         "python": platform.python_version(),
                         "load_average": os.getloadavg()}
    write_json(report, args.out)
    print(f"\nwrote {args.out}")


def _choices(allowed):
    """An argparse type: a comma-separated list of names from ``allowed``."""
    def parse(text):
        names = [name.strip() for name in text.split(",") if name.strip()]
        if not names or any(name not in allowed for name in names):
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of "
                                             f"{', '.join(allowed)}, got {text!r}")
        return names
    return parse


def main(argv=None):
    parser = ToolArgumentParser(tool="benchmark", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="benchmark", required=True)
    model = sub.add_parser("model", help="parameters, MACs, latency of every PSA variant")
    model.add_argument("--width", type=int, default=32)
    model.add_argument("--input", default="192x256", help="crop WIDTHxHEIGHT")
    model.add_argument("--sweep", action="store_true", help="also measure runtime settings")
    model.add_argument("--onednn", default="1", choices=("0", "1"))
    model.add_argument("--intra", type=int, default=2)
    model.add_argument("--inter", type=int, default=2)
    model.add_argument("--runner", default="predict_on_batch", choices=RUNNERS)
    model.add_argument("--repeats", type=int, default=5)
    model.add_argument("--forms", type=_choices(PSA_FORMS), default=["paper"],
                       help="comma-separated PSA forms of the PSA variants (default paper)")
    model.add_argument("--placements", type=_choices(("branch", "block")),
                       default=["branch", "block"],
                       help="comma-separated PSA placements (default branch,block)")
    model.add_argument("--out", output="file", default="benchmark_model.json")
    scale = sub.add_parser("eval-scale", help="post-processing + COCOeval at val2017 size")
    scale.add_argument("--images", type=int, default=5000)
    scale.add_argument("--out", output="file", default="benchmark_eval_scale.json")
    intervals = sub.add_parser("bootstrap", help="paired bootstrap intervals at val2017 size")
    intervals.add_argument("--images", type=int, default=5000)
    intervals.add_argument("--resamples", type=int, default=1000)
    intervals.add_argument("--out", output="file", default="benchmark_bootstrap.json")
    runtimes = sub.add_parser("runtimes", help="runtime × precision: size, latency, AP")
    runtimes.add_argument("--weights", required=True, nargs="+",
                          help="trained .keras checkpoints (each with its .yaml) for the AP "
                               "columns, e.g. the demo's none and parallel PSA models")
    runtimes.add_argument("--latency-config", default="configs/coco/hrnet_w32_256x192_psa_p.yaml")
    runtimes.add_argument("--calibration-count", type=int, default=300,
                          help="int8 calibration crops of the trained model (default 300)")
    runtimes.add_argument("--latency-calibration-count", type=int, default=64,
                          help="int8 calibration crops of the random-weight latency model")
    runtimes.add_argument("--variants", nargs="+", metavar="FORMAT[:MODE]",
                          help="what to measure (the Keras baseline is always included): "
                               "keras, tflite, onnx, tflite:float16, tflite:dynamic, "
                               "onnx:dynamic, tflite:int8, onnx:int8 (default: all)")
    runtimes.add_argument("--latency-only", action="store_true",
                          help="skip the AP column (no exports of --weights, which then "
                               "only supplies the calibration data)")
    runtimes.add_argument("--rounds", type=int, default=2)
    runtimes.add_argument("--repeats", type=int, default=10)
    runtimes.add_argument("--threads", type=int, default=None,
                          help="LiteRT/ONNX Runtime threads (default: the core count)")
    runtimes.add_argument("--workdir", output="folder", default="work/runtimes")
    runtimes.add_argument("--out", output="file", default="benchmark_runtimes.json")
    detector_input = sub.add_parser("detector-input",
                                    help="ms to build a detector input: this project against "
                                         "Ultralytics' pre-processing restated")
    detector_input.add_argument("--images", nargs="+", required=True, metavar="PHOTO")
    detector_input.add_argument("--size", type=int, default=640, help="square input side")
    detector_input.add_argument("--repeats", type=int, default=50)
    detector_input.add_argument("--out", output="file", default="benchmark_detector_input.json")
    video = sub.add_parser("video", help="video frames/s: detection every frame vs every 5, "
                                         "tracking and smoothing")
    video.add_argument("--weights", required=True, help="the pose model (.tflite, .onnx, "
                                                        ".keras) with its .yaml beside it")
    video.add_argument("--frames", type=int, default=40)
    video.add_argument("--size", default="1280x720", help="clip WIDTHxHEIGHT")
    video_boxes = video.add_mutually_exclusive_group()
    video_boxes.add_argument("--boxes", help="COCO detection results for the clip's frames "
                                             "(default: its true boxes)")
    video_boxes.add_argument("--detector", help="person boxes from this detector file "
                                                "(.onnx/.tflite, tools/infer.py's options)")
    video_boxes.add_argument("--make-detector", choices=["onnx", "tflite"],
                             help="person boxes from the YOLOv8n-shaped random-weight "
                                  "detector exported to this format (use --max-people 4)")
    add_detector_arguments(video)
    video.add_argument("--rounds", type=int, default=2)
    video.add_argument("--track-min-score", type=float, default=0.0,
                       help="tools/infer.py's --track-min-score; 0 (default) keeps every "
                            "person between detections (random weights score near 0)")
    video.add_argument("--keypoint-threshold", type=float, default=0.0,
                       help="keypoints above this make the propagated boxes (default 0: "
                            "all, for random weights; tools/infer.py uses 0.3)")
    video.add_argument("--threads", type=int, default=None)
    video.add_argument("--workdir", output="folder", default="work/video_benchmark")
    video.add_argument("--out", output="file", default="benchmark_video.json")
    serve = sub.add_parser("serve", help="the pose server against the runtime in-process: "
                                         "req/s, p50/p95 at N clients, webcam fps")
    serve.add_argument("--weights", required=True, help="the pose model (.tflite, .onnx, "
                                                        ".keras) with its .yaml beside it")
    serve.add_argument("--clients", type=int, nargs="+", default=[1, 4, 32])
    serve.add_argument("--seconds", type=float, default=10.0,
                       help="seconds per API setting (default 10)")
    serve.add_argument("--frames", type=int, default=40, help="webcam frames per size")
    serve.add_argument("--threads", type=int, default=None)
    serve.add_argument("--out", output="file", default="benchmark_serve.json")
    for subparser in (model, scale, intervals, runtimes, video, detector_input, serve):
        subparser.add_argument("--overwrite", action="store_true",
                               help="replace --out even when this tool did not write it")
    args = parser.parse_args(argv)
    from pose.checks import claim_output_file, claim_output_folder

    weights = getattr(args, "weights", None)
    inputs = weights if isinstance(weights, list) else [weights]
    outputs = claim_output_file(args.out, "tools/benchmark.py", inputs,
                                overwrite=args.overwrite)
    workdir = getattr(args, "workdir", None)  # runtimes, video: exports and clips
    scratch = workdir and claim_output_folder(workdir, "tools/benchmark.py", inputs,
                                              overwrite=args.overwrite, option="--workdir")
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    if args.benchmark == "model":
        benchmark_model(args)
    elif args.benchmark == "eval-scale":
        benchmark_eval_scale(args)
    elif args.benchmark == "bootstrap":
        benchmark_bootstrap_intervals(args)
    elif args.benchmark == "video":
        benchmark_video_inference(args)
    elif args.benchmark == "detector-input":
        benchmark_detector_input(args)
    elif args.benchmark == "serve":
        benchmark_serve(args)
    else:
        benchmark_runtimes(args)
    outputs.record(os.path.basename(args.out))
    if scratch:
        scratch.record(*os.listdir(workdir))


if __name__ == "__main__":
    from pose.errors import run_tool

    sys.exit(run_tool(main))
