"""Evaluate a checkpoint with COCO keypoint AP (pycocotools), flip test and OKS-NMS.

    python tools/test.py --weights RUN/best.keras|M.tflite|M.onnx [--config CFG]
                         [--gt-boxes | --boxes DET.json]
                         [--no-flip] [--set k=v ...] [--diagnose] --out DIR

The config defaults to the one saved beside the checkpoint (RUN/best.yaml), which also
carries the dataset metadata (keypoints, flip pairs, sigmas). --weights may also be a
PyTorch HRNet checkpoint (pose_hrnet_w32_256x192.pth of the official model zoo, or an
mmpose one): the architecture is read from it, the input size from --input-size or the
file name, and the rest of the config is the COCO default unless --config is given.

--weights may also be what tools/export.py wrote: a .tflite (float32, float16, dynamic or
int8) or .onnx (float32 or int8) file runs on LiteRT / ONNX Runtime, a SavedModel folder on
TensorFlow, each with the config export wrote beside it, the same boxes, flip test,
decoding, OKS-NMS and pycocotools evaluation: the AP of the file that ships. metrics.json
records the file, runtime and precision under "model". --diagnose also writes the keypoint
error diagnosis of these results into --out (what tools/analyze.py writes: diagnosis.json,
diagnosis.md, two figures). Bad input ends in one line ``error: ...`` and exit code 2
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

from datasets.metadata import DatasetMeta
from pose.apis.estimator import load_network, runtime_description, runtime_info
from pose.checks import claim_output_folder
from pose.config import resolve_config
from pose.errors import run_tool
from pose.evaluation.diagnosis_files import DIAGNOSIS_OUTPUTS, diagnose_files
from pose.evaluation.evaluator import (
    EVALUATION_OUTPUTS,
    check_evaluation_output,
    evaluate_config,
)


def main(argv=None):
    parser = ToolArgumentParser(tool="test", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True,
                        help="a .keras checkpoint, a PyTorch HRNet .pth, or an export of "
                             "tools/export.py (.tflite, .onnx, SavedModel folder)")
    parser.add_argument("--threads", type=int,
                        help="runtime threads of an exported file (default: core count)")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("W", "H"),
                        help="input size of a .pth model (default: from its file name)")
    parser.add_argument("--config", help="YAML config (default: the one beside --weights)")
    boxes = parser.add_mutually_exclusive_group()
    boxes.add_argument("--gt-boxes", action="store_true", help="use ground-truth person boxes")
    boxes.add_argument("--boxes", help="COCO detection-results JSON of person boxes")
    parser.add_argument("--no-flip", action="store_true", help="disable the flip test")
    parser.add_argument("--annotations", help="annotation file (default: data.val_annotations)")
    parser.add_argument("--images", help="image folder (default: data.val_images)")
    parser.add_argument("--diagnose", action="store_true",
                        help="also diagnose the keypoint errors of the results (as "
                             "tools/analyze.py) into --out")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE", help="override a config value")
    parser.add_argument("--out", required=True, output="folder",
                        help="folder for results and metrics.json")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into --out even when it holds files this tool did not "
                             "write (those of the same names are replaced)")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of a user error")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)

    check_evaluation_output(args.out, args.images, [args.weights, args.annotations, args.boxes],
                            option="--out")
    outputs = claim_output_folder(args.out, "tools/test.py",
                                  [args.weights, args.annotations, args.boxes],
                                  overwrite=args.overwrite)
    model, saved_config = load_network(args.weights, threads=args.threads,
                                       input_size=args.input_size)
    print(f"{args.weights}: {runtime_description(model, args.threads)}", flush=True)
    config = resolve_config(args.config, saved_config, args.overrides, source=args.weights)
    report = evaluate_config(model, config, out_dir=args.out, annotation_file=args.annotations,
                             image_dir=args.images, detections=args.boxes,
                             use_gt_boxes=True if args.gt_boxes else None,
                             flip_test=False if args.no_flip else None,
                             model_info={"weights": args.weights, **runtime_info(model)})
    outputs.record(*EVALUATION_OUTPUTS)
    print(f"wrote {args.out}/metrics.json and keypoints_results.json")
    if args.diagnose:
        results = os.path.join(args.out, "keypoints_results.json")
        meta = DatasetMeta.from_coco(report["annotations"], data=config.data)
        diagnose_files(report["annotations"], results, args.out, meta=meta)
        outputs.record(*DIAGNOSIS_OUTPUTS)
        print(f"wrote {args.out}/diagnosis.json, diagnosis.md and the figures")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
