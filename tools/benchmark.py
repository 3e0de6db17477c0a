"""Benchmarks that print a table and write JSON; results belong in BENCHMARKS.md.

    python tools/benchmark.py model [--width 32] [--input 192x256] [--sweep] [--out FILE]
    python tools/benchmark.py eval-scale [--images 5000] [--out FILE]
    python tools/benchmark.py bootstrap [--images 5000] [--resamples 1000] [--out FILE]

``model``: trainable parameters, conv MACs, forward latency at batch 1 and 8 (median of
``--repeats`` calls after a warm-up), first-call (tracing) time and peak memory, for every
PSA variant (none, branch/block × parallel/sequential). With ``--sweep`` it first measures
the runtime settings (oneDNN on/off, thread pools, predict_on_batch vs tf.function vs XLA)
on the model without PSA. Every measurement runs in a fresh process.

``eval-scale``: at COCO val2017 size (5k images, ~100k detector boxes, annotation-only
generated data), the time and peak memory of everything evaluation does after the
network: heatmap decoding and un-warping, rescoring + OKS-NMS, pycocotools COCOeval.

``bootstrap``: on the same kind of set, two simulated variants matched once each by
COCOeval, then the paired bootstrap intervals of their differences from ``--resamples``
re-accumulated resamples of the images (``pose.evaluation.bootstrap``).
"""

import argparse
import dataclasses
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) would hide this tool's
# own output; an explicit setting by the user wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pose.experiments.benchmark import (
    RUNNERS,
    RuntimeSetting,
    benchmark_bootstrap,
    benchmark_evaluation_scale,
    measure_in_subprocess,
)
from pose.models.complexity import format_table

VARIANTS = (("none", "parallel"), ("branch", "parallel"), ("branch", "sequential"),
            ("block", "parallel"), ("block", "sequential"))

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
    for placement, mode in VARIANTS:
        label = "none" if placement == "none" else f"{placement}/{mode}"
        _measure(f"W{args.width} {label} ({default.label()})", default,
                 dict(base, psa_placement=placement, psa_mode=mode), args.repeats, rows,
                 results)
    print()
    print(f"HRNet-W{args.width} at {input_h}x{input_w}, {_cpu_name()}")
    print(format_table(rows, COLUMNS))
    report = {"machine": {"cpu": _cpu_name(), "python": platform.python_version()},
              "model": base, "results": results}
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
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
    print(f"peak RSS: {result['peak_memory_mib']:.0f} MiB")
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
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
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    model.add_argument("--out", default="benchmark_model.json")
    scale = sub.add_parser("eval-scale", help="post-processing + COCOeval at val2017 size")
    scale.add_argument("--images", type=int, default=5000)
    scale.add_argument("--out", default="benchmark_eval_scale.json")
    intervals = sub.add_parser("bootstrap", help="paired bootstrap intervals at val2017 size")
    intervals.add_argument("--images", type=int, default=5000)
    intervals.add_argument("--resamples", type=int, default=1000)
    intervals.add_argument("--out", default="benchmark_bootstrap.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    if args.benchmark == "model":
        benchmark_model(args)
    elif args.benchmark == "eval-scale":
        benchmark_eval_scale(args)
    else:
        benchmark_bootstrap_intervals(args)


if __name__ == "__main__":
    main()
