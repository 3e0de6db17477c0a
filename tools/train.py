"""Train a pose model: python tools/train.py --config CFG --workdir DIR [--set k=v ...]

Re-running the same command after an interruption resumes from the last finished epoch
(and says from which); re-running a finished run says so and changes nothing (--force
retrains from epoch 1). Bad input ends in one line ``error: ...`` and exit code 2
(--debug shows the traceback).
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

from pose.config import load_config
from pose.engine.distribution import STRATEGIES
from pose.engine.training import train
from pose.errors import run_tool


def main(argv=None):
    parser = ToolArgumentParser(tool="train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML config, e.g. configs/coco/...")
    parser.add_argument("--workdir", required=True, output="folder",
                        help="folder for checkpoints and logs")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE", help="override a config value")
    parser.add_argument("--strategy", default="default", choices=STRATEGIES,
                        help="tf.distribute strategy; batch_size is per replica")
    parser.add_argument("--no-validate", action="store_true",
                        help="skip the validation AP runs during training")
    parser.add_argument("--force", action="store_true",
                        help="retrain a finished run (or one with another config) from epoch 1")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of a user error")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    config = load_config(args.config, args.overrides)
    train(config, args.workdir, strategy=args.strategy, validate=not args.no_validate,
          force=args.force, source=args.config)
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
