"""Train a pose model: python tools/train.py --config CFG --workdir DIR [--set k=v ...]

Re-running the same command after an interruption resumes from the last finished epoch.
"""

import argparse
import logging
import os
import sys

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) would hide this tool's
# own output; an explicit setting by the user wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pose.config import load_config
from pose.engine.training import STRATEGIES, train


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML config, e.g. configs/coco/...")
    parser.add_argument("--workdir", required=True, help="folder for checkpoints and logs")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE", help="override a config value")
    parser.add_argument("--strategy", default="default", choices=STRATEGIES,
                        help="tf.distribute strategy; batch_size is per replica")
    parser.add_argument("--no-validate", action="store_true",
                        help="skip the validation AP runs during training")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    config = load_config(args.config, args.overrides)
    train(config, args.workdir, strategy=args.strategy, validate=not args.no_validate)


if __name__ == "__main__":
    main()
