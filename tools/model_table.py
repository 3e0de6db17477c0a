"""Build the model of every given config and print its parameters and MACs.

    python tools/model_table.py configs/coco/*.yaml configs/demo/*.yaml [--json OUT]
"""

import logging
import os
import sys
import time

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) would hide this tool's
# own output; an explicit setting by the user wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pose.errors import hide_native_output
from pose.options import ToolArgumentParser

if __name__ == "__main__":  # first: TensorFlow's C++ start-up lines must not reach stderr
    hide_native_output()

from pose.checks import claim_output_file
from pose.config import load_config
from pose.engine.checkpoint import build_model
from pose.fileio import write_json
from pose.models.complexity import describe_model, format_table

COLUMNS = [("config", "config", "{}"), ("width", "W", "{}"), ("input", "input", "{}"),
           ("psa", "PSA", "{}"), ("params", "trainable params", "{:,}"),
           ("macs_g", "conv MACs (G)", "{:.3f}"), ("build_s", "build (s)", "{:.1f}")]


def main(argv=None):
    parser = ToolArgumentParser(tool="model_table", description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+", help="YAML config files")
    parser.add_argument("--json", output="file", help="also write the rows to this JSON file")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --json even when this tool did not write it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    outputs = args.json and claim_output_file(args.json, "tools/model_table.py", args.configs,
                                              overwrite=args.overwrite, option="--json")
    rows = []
    for i, path in enumerate(args.configs, 1):
        config = load_config(path)
        print(f"[{i}/{len(args.configs)}] building {path}", flush=True)
        start = time.perf_counter()
        model = build_model(config.model)
        row = {"config": os.path.relpath(path), **describe_model(model),
               "build_s": time.perf_counter() - start}
        rows.append(row)
    print(format_table(rows, COLUMNS))
    if args.json:
        write_json(rows, args.json)
        outputs.record(os.path.basename(args.json))


if __name__ == "__main__":
    from pose.errors import run_tool

    sys.exit(run_tool(main))
