"""The demo: generated COCO data → train the small HRNet with and without PSA → AP → overlays.

    python tools/demo.py [--workdir work/demo] [--train 1200 --val 100] [--seeds 3]
                         [--set k=v ...]

Each variant is trained with ``--seeds`` seeds; the last line printed is the verdict: every
seed's AP and PSA − none with its 95% interval over training seeds and validation images.

Re-running reuses the generated data and finished models, and resumes interrupted ones.
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

from pose.checks import claim_run_folder
from pose.config import load_config
from pose.experiments.comparison import DEFAULT_SEEDS
from pose.experiments.demo import DEMO_OUTPUTS, run_demo


def main(argv=None):
    parser = ToolArgumentParser(tool="demo", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/demo/hrnet_small_128x96.yaml")
    parser.add_argument("--workdir", output="folder", default="work/demo")
    parser.add_argument("--train", type=int, default=1200, help="generated training images")
    parser.add_argument("--val", type=int, default=100, help="generated validation images")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated data")
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS,
                        help=f"training seeds per variant (default {DEFAULT_SEEDS}; a "
                             "verdict needs at least 2)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE", help="override a config value")
    parser.add_argument("--overwrite", action="store_true",
                        help="use --workdir even when it holds files this tool did not write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    load_config(args.config, args.overrides)  # a mistake in it: before anything is written
    claim_run_folder(args.workdir, "tools/demo.py", DEMO_OUTPUTS, inputs=[args.config],
                     overwrite=args.overwrite)
    run_demo(args.config, args.workdir, args.train, args.val, seed=args.seed,
             overrides=args.overrides, training_seeds=args.seeds)


if __name__ == "__main__":
    from pose.errors import run_tool

    sys.exit(run_tool(main))
