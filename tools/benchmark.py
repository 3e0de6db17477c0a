"""Benchmarks that print a table and write JSON; results belong in BENCHMARKS.md.

    python tools/benchmark.py model [--width 32] [--input 192x256] [--sweep] [--out FILE]

``model``: trainable parameters, conv MACs, forward latency at batch 1 and 8 (median of
``--repeats`` calls after a warm-up), first-call (tracing) time and peak memory, for every
PSA variant (none, branch/block × parallel/sequential). With ``--sweep`` it first measures
the runtime settings (oneDNN on/off, thread pools, predict_on_batch vs tf.function vs XLA)
on the model without PSA. Every measurement runs in a fresh process.
"""

import argparse
import dataclasses
import json
import platform
import subprocess

from pose.benchmark import RUNNERS, RuntimeSetting, measure_in_subprocess
from pose.complexity import format_table

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
        return next(l.split(":", 1)[1].strip() for l in out.splitlines()
                    if l.startswith("Model name"))
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
    args = parser.parse_args()
    benchmark_model(args)


if __name__ == "__main__":
    main()
