"""Measure what fresh PSA layers do at step 0 to a pretrained HRNet's heatmaps.

    python tools/psa_insertion.py CHECKPOINT.pth --reference io.npz [--seeds 3] [--json OUT]

Inserts parallel and sequential PSA (after each branch, inside each block) into the
converted checkpoint, keeps every HRNet weight, and compares the heatmaps on the
reference inputs (input_nhwc of the .npz) with the PSA-free network's; see
pose/experiments/psa_insertion.py for the measures.
"""

import logging
import os
import sys

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) would hide this tool's
# own output; an explicit setting by the user wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pose.errors import hide_native_output
from pose.options import ToolArgumentParser

if __name__ == "__main__":  # first: TensorFlow's C++ start-up lines must not reach stderr
    hide_native_output()

COLUMNS = [("placement", "PSA placement", "{}"), ("mode", "mode", "{}"),
           ("batchnorm", "BatchNorm statistics", "{}"),
           ("rel_l2", "rel. L2 change", "{:.3f}"), ("rel_l2_std", "± (seeds)", "{:.3f}"),
           ("norm_ratio", "norm ratio", "{:.3f}"),
           ("argmax_agreement", "argmax agreement", "{:.3f}"),
           ("argmax_agreement_std", "± (seeds)", "{:.3f}")]


def main(argv=None):
    parser = ToolArgumentParser(tool="psa_insertion", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a PyTorch HRNet pose checkpoint")
    parser.add_argument("--reference", required=True,
                        help=".npz with input_nhwc (normalised network inputs)")
    parser.add_argument("--seeds", type=int, default=3, help="PSA initialisations per variant")
    parser.add_argument("--json", output="file", help="also write the rows to this JSON file")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --json even when this tool did not write it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    from pose.checks import check_input_file, claim_output_file
    from pose.errors import UserError

    outputs = args.json and claim_output_file(
        args.json, "tools/psa_insertion.py", [args.checkpoint, args.reference],
        overwrite=args.overwrite, option="--json")

    import numpy as np

    from pose.experiments.psa_insertion import measure_psa_insertion
    from pose.fileio import write_json
    from pose.models.complexity import format_table

    check_input_file(args.checkpoint, "checkpoint")
    check_input_file(args.reference, "reference .npz")
    try:
        with np.load(args.reference) as data:
            images = data["input_nhwc"]
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise UserError(f"{args.reference}: not an .npz with an input_nhwc array ({exc})") \
            from None
    rows = measure_psa_insertion(args.checkpoint, images, seeds=tuple(range(args.seeds)))
    print(format_table(rows, COLUMNS))
    if args.json:
        write_json(rows, args.json)
        outputs.record(os.path.basename(args.json))
    return 0


if __name__ == "__main__":
    from pose.errors import run_tool

    sys.exit(run_tool(main))
