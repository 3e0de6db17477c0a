"""Convert a PyTorch HRNet checkpoint to a Keras model (.keras with its config beside it).

    python tools/convert.py CHECKPOINT.pth --out model.keras [--input-size W H] [--check io.npz]
        [--allow-non-finite]

CHECKPOINT.pth may be an official pose model (model zoo: pose_hrnet_w32_256x192.pth, either
serialization format), an official training checkpoint, an mmpose checkpoint or an
ImageNet-classification HRNet (its classification head is skipped, the pose head stays
fresh). The architecture comes from the file; the input size from --input-size, else the
HxW in the file name, else 192x256. Nothing in the file is executed: only tensors are read.
--check compares the converted model's output on a reference .npz (input_nhwc,
output_nhwc_fp64) and prints the max abs difference.
"""

import logging
import os
import sys

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) would hide this tool's
# own output; an explicit setting by the user wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pose.errors import hide_native_output, one_line
from pose.options import ToolArgumentParser

if __name__ == "__main__":  # first: TensorFlow's C++ start-up lines must not reach stderr
    hide_native_output()


def main(argv=None):
    parser = ToolArgumentParser(tool="convert", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a PyTorch .pth checkpoint of HRNet")
    parser.add_argument("--out", required=True, output="file", help="the .keras file to write")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out and the config beside it even when this tool did "
                             "not write them")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("W", "H"),
                        help="input crop width and height (default: from the file name, "
                             "else 192 256)")
    parser.add_argument("--check", metavar="REF.npz",
                        help="reference input_nhwc / output_nhwc_fp64 to compare against")
    parser.add_argument("--allow-non-finite", action="store_true",
                        help="convert a checkpoint whose weights hold NaN or inf (refused by "
                             "default)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    if not args.out.endswith(".keras"):
        print(f"error: --out must end in .keras, got {args.out!r}", file=sys.stderr)
        return 2

    from pose.checks import claim_output_files
    from pose.config import config_path_for
    from pose.engine.pretrained import convert_checkpoint
    from pose.models.torch_checkpoint import CheckpointError

    try:
        record_outputs = claim_output_files([args.out, config_path_for(args.out)],
                                            "tools/convert.py", [args.checkpoint, args.check],
                                            overwrite=args.overwrite)
        report = convert_checkpoint(args.checkpoint, args.out, input_size=args.input_size,
                                    reference=args.check,
                                    allow_non_finite=args.allow_non_finite)
    except (CheckpointError, FileNotFoundError, ValueError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    record_outputs()
    print("\n".join(report.lines()))
    print(f"wrote {args.out} and its config beside it")
    return 0


if __name__ == "__main__":
    from pose.errors import run_tool

    sys.exit(run_tool(main))
