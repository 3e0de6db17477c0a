"""Evaluate a checkpoint with COCO keypoint AP (pycocotools), flip test and OKS-NMS.

    python tools/test.py --weights RUN/best.keras [--config CFG] [--gt-boxes | --boxes DET.json]
                         [--no-flip] [--set k=v ...] --out DIR

The config defaults to the one saved beside the checkpoint (RUN/best.yaml).
"""

import argparse
import logging
import os
import sys

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) would hide this tool's
# own output; an explicit setting by the user wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pose.config import resolve_config
from pose.engine.checkpoint import load_model
from pose.evaluation.evaluator import evaluate_config


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="a .keras checkpoint")
    parser.add_argument("--config", help="YAML config (default: the one beside --weights)")
    boxes = parser.add_mutually_exclusive_group()
    boxes.add_argument("--gt-boxes", action="store_true", help="use ground-truth person boxes")
    boxes.add_argument("--boxes", help="COCO detection-results JSON of person boxes")
    parser.add_argument("--no-flip", action="store_true", help="disable the flip test")
    parser.add_argument("--annotations", help="annotation file (default: data.val_annotations)")
    parser.add_argument("--images", help="image folder (default: data.val_images)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE", help="override a config value")
    parser.add_argument("--out", required=True, help="folder for results and metrics.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)

    model, saved_config = load_model(args.weights)
    config = resolve_config(args.config, saved_config, args.overrides, source=args.weights)
    evaluate_config(model, config, out_dir=args.out, annotation_file=args.annotations,
                    image_dir=args.images, detections=args.boxes,
                    use_gt_boxes=True if args.gt_boxes else None,
                    flip_test=False if args.no_flip else None)
    print(f"wrote {args.out}/metrics.json and keypoints_results.json")


if __name__ == "__main__":
    main()
