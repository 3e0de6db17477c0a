"""Writes a synthetic COCO-format person keypoint data set (see datasets.synthetic).

Example:
    python tools/make_synthetic_coco.py --out data/synth --train 2000 --val 200 --seed 0
    python tools/make_synthetic_coco.py --out data/synth_val --train 0 --val 5000 --seed 0 \
        --annotations-only --empty-image-rate 0.46 --people-per-image 2.4 \
        --false-positives-per-image 19.5
"""

import json
import logging
import os
import sys

from pose.errors import hide_native_output
from pose.options import ToolArgumentParser

if __name__ == "__main__":  # first: OpenCV's C++ start-up lines must not reach stderr
    hide_native_output()

from datasets.synthetic import SyntheticConfig, generate_coco


def parse_args(argv=None):
    defaults = SyntheticConfig()
    p = ToolArgumentParser(tool="make_synthetic_coco", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, output="folder",
                   help="output root (COCO layout is written below it)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into --out even when it holds files this tool did not write")
    p.add_argument("--train", type=int, default=0, help="number of train2017 images")
    p.add_argument("--val", type=int, default=0, help="number of val2017 images")
    p.add_argument("--seed", type=int, default=0, help="data set seed (>= 0)")
    p.add_argument("--width", type=int, default=defaults.width)
    p.add_argument("--height", type=int, default=defaults.height)
    p.add_argument("--annotations-only", action="store_true",
                   help="write only the JSON files (same content as a full run)")
    p.add_argument("--workers", type=int, default=1, help="processes (output does not change)")
    p.add_argument("--people-per-image", type=float, default=defaults.people_per_image)
    p.add_argument("--empty-image-rate", type=float, default=defaults.empty_image_rate)
    p.add_argument("--false-positives-per-image", type=float,
                   default=defaults.false_positives_per_image)
    p.add_argument("--jpeg-quality", type=int, default=defaults.jpeg_quality)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    from pose.checks import claim_output_folder

    outputs = claim_output_folder(args.out, "tools/make_synthetic_coco.py",
                                  overwrite=args.overwrite)
    summary = generate_coco(
        args.out, args.train, args.val, args.seed, image_size=(args.width, args.height),
        write_images=not args.annotations_only, workers=args.workers,
        people_per_image=args.people_per_image, empty_image_rate=args.empty_image_rate,
        false_positives_per_image=args.false_positives_per_image,
        jpeg_quality=args.jpeg_quality)
    outputs.record(*(name for name in os.listdir(args.out)
                     if name in ("annotations", "train2017", "val2017")))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    from pose.errors import run_tool

    sys.exit(run_tool(main))
