"""Estimate poses on images, folders, glob patterns and videos; write overlays and JSON.

    python tools/infer.py --weights RUN/best.keras INPUT [INPUT ...] --out DIR
                          [--config CFG] [--detector FILE.onnx|FILE.tflite|hog | --boxes
                          DET.json | --whole-image] [--detector-threshold 0.3] [...]
                          [--no-flip] [--recursive] [--threshold 0.3] [--batch-size N]
                          [--runtime auto|keras|litert|onnx] [--threads N]
                          [--detect-every N] [--smooth] [--track-metric oks|iou] ...

The config defaults to the one saved beside the checkpoint (RUN/best.yaml). --weights may
also be an export of tools/export.py with its .yaml beside it: a .tflite runs on LiteRT
and an .onnx on ONNX Runtime, without importing TensorFlow or Keras at all (the fast
start-up); a SavedModel folder runs on TensorFlow. The first line printed names the
runtime, its threads (--threads, default: the core count) and the precision. Person boxes
come from an object-detection model file (--detector: mmdeploy RTMDet/YOLOX end2end.onnx,
Ultralytics YOLOv5/YOLOv8/YOLO11 .onnx/.tflite, YOLOX .onnx, TFLite SSD/EfficientDet-Lite;
run by ONNX Runtime or LiteRT, no TensorFlow; see pose.apis.detector), a COCO
detection-results JSON (--boxes, matched by file name or image id), OpenCV's HOG people
detector (--detector hog, OpenCV 4 only), or the whole image (the default when none is
given). The second line printed names the box source: for a detector file its layout,
input size, pre-processing and threshold.
Writes DIR/<name> overlays, DIR/predictions.json (COCO results + file name, box, scores),
DIR/summary.json (counts, skipped files, dropped boxes) and, per video, DIR/<stem>.mp4 and
DIR/<stem>.jsonl, whose people carry a track_id that follows each person through the
video (--track-*, --smooth, --detect-every: ``pose.apis.tracking``). See ``pose.apis``.
DIR must be new, empty, or hold only what an earlier run of this tool wrote there (its
``.psa-pose-outputs.json`` lists it); --overwrite writes among other files. The skeleton,
colours, flip pairs and sigmas are the model's (its config carries the dataset metadata).
Bad input, or nothing processed, ends in one line ``error: ...`` and exit code 2 (--debug
shows the traceback).
"""

import logging
import os
import sys
import time

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) would hide this tool's
# own output when TensorFlow is used (.keras, SavedModel); an explicit setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pose.errors import hide_native_output, one_line
from pose.options import ToolArgumentParser, add_model_arguments

if __name__ == "__main__":  # first: TensorFlow's C++ start-up lines must not reach stderr
    hide_native_output()

_START = time.perf_counter()  # before the heavy imports: start-up is measured from here


def parse_args(argv=None):
    from pose.apis.detector import add_detector_arguments

    parser = ToolArgumentParser(tool="infer", description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image files, folders, glob patterns or video files")
    add_model_arguments(parser)
    parser.add_argument("--out", required=True, output="folder", help="output folder")
    parser.add_argument("--ignore-exif", action="store_true",
                        help="read photos as stored, not upright by their EXIF orientation")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into --out even when it holds files this tool did not "
                             "write (those of the same names are replaced)")
    boxes = parser.add_mutually_exclusive_group()
    boxes.add_argument("--boxes", metavar="DET.json",
                       help="COCO detection results with the person boxes")
    boxes.add_argument("--detector", metavar="FILE|hog",
                       help="detect people with an object-detection model file (.onnx on "
                            "ONNX Runtime, .tflite on LiteRT; layouts: mmdeploy end2end, "
                            "YOLOv5, YOLOv8/11, YOLOX, TFLite SSD), or 'hog' for OpenCV's HOG "
                            "detector (OpenCV 4)")
    boxes.add_argument("--whole-image", action="store_true",
                       help="one person box = the whole image (the default)")
    add_detector_arguments(parser)
    parser.add_argument("--recursive", action="store_true",
                        help="search folders (and ** in patterns) recursively")
    parser.add_argument("--threshold", type=float, default=0.3,
                        help="draw keypoints scoring above this (default 0.3)")
    parser.add_argument("--box-threshold", type=float, default=0.5,
                        help="draw people whose box score is at least this; all people go "
                             "to the JSON (default 0.5)")
    video = parser.add_argument_group(
        "videos", "people are followed from frame to frame (a track_id per person in the "
        "JSONL, overlay coloured by id); see pose.apis.tracking")
    video.add_argument("--track-metric", choices=["oks", "iou"], default="oks",
                       help="match people to tracks by keypoint similarity with the "
                            "dataset's sigmas (default) or by box IoU")
    video.add_argument("--track-threshold", type=float, default=0.3,
                       help="least OKS/IoU of a match (default 0.3)")
    video.add_argument("--track-max-age", type=int, default=30, metavar="FRAMES",
                       help="frames a lost person is remembered; back later = new id "
                            "(default 30)")
    video.add_argument("--detect-every", type=int, default=1, metavar="N",
                       help="run the box source on every N-th frame only; between, each "
                            "person's box comes from their last keypoints (default 1)")
    video.add_argument("--track-min-score", type=float, default=0.3,
                       help="with --detect-every: drop a person found in a propagated box "
                            "whose mean keypoint score is below this (default 0.3)")
    video.add_argument("--smooth", action="store_true",
                       help="smooth keypoints over time with a One-Euro filter per track")
    video.add_argument("--smooth-min-cutoff", type=float, default=1.0, metavar="HZ",
                       help="One-Euro cutoff at rest: lower = less jitter, more lag "
                            "(default 1.0)")
    video.add_argument("--smooth-beta", type=float, default=0.007,
                       help="One-Euro speed coefficient: higher = less lag in fast motion "
                            "(default 0.007)")
    video.add_argument("--smooth-d-cutoff", type=float, default=1.0, metavar="HZ",
                       help="One-Euro cutoff of the speed estimate (default 1.0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of a user error")
    return parser, parser.parse_args(argv)


def main(argv=None):
    parser, args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    # Fast, model-free checks first, so a typo costs no TensorFlow start-up.
    from pose.apis.boxes import DetectionBoxes, HogBoxes, WholeImageBoxes
    from pose.apis.detector import detector_from_args
    from pose.apis.inputs import InputError, collect_inputs
    from pose.apis.runtimes import RuntimeChoiceError, choose_runtime
    from pose.apis.smoothing import OneEuroParams
    from pose.apis.tracking import TrackingParams
    from pose.checks import claim_output_folder

    try:
        choose_runtime(args.weights, args.runtime)
        smooth = (OneEuroParams(args.smooth_min_cutoff, args.smooth_beta, args.smooth_d_cutoff)
                  if args.smooth else None)
        tracking = TrackingParams(metric=args.track_metric,
                                  match_threshold=args.track_threshold,
                                  max_age=args.track_max_age, detect_every=args.detect_every,
                                  min_score=args.track_min_score, smooth=smooth)
        inputs = collect_inputs(args.inputs, recursive=args.recursive)
        outputs = claim_output_folder(
            args.out, "tools/infer.py", [item.path for item in inputs]
            + [args.weights, args.boxes, args.detector if args.detector != "hog" else None],
            overwrite=args.overwrite)
        if args.boxes:
            source = DetectionBoxes(args.boxes)
            why = "given by --boxes"
        elif args.detector == "hog":
            source = HogBoxes()
            why = "given by --detector hog"
        elif args.detector:
            source = detector_from_args(args, threads=args.threads)
            why = "given by --detector"
        else:
            source = WholeImageBoxes()
            why = ("given by --whole-image" if args.whole_image else
                   "no --detector or --boxes given; for several people per image pass "
                   "--detector FILE.onnx|FILE.tflite or --boxes DET.json")
    except (InputError, RuntimeChoiceError, ValueError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2

    # Lazy imports: a .tflite/.onnx run never loads TensorFlow or Keras.
    from pose.apis.estimator import PoseEstimator, load_network, runtime_description
    from pose.apis.runner import run_inference
    from pose.config import resolve_config

    model, saved_config = load_network(args.weights, args.runtime, args.threads,
                                       input_size=args.input_size, optimize_graph=False,
                                       trace_ahead=args.batching == "dynamic")
    print(runtime_description(model, args.threads), flush=True)
    print(f"person boxes: {source.name} ({why})", flush=True)
    config = resolve_config(args.config, saved_config, args.overrides, source=args.weights)
    estimator = PoseEstimator.from_config(model, config,
                                          flip=False if args.no_flip else None,
                                          batch_size=args.batch_size, batching=args.batching)
    ready = time.perf_counter() - _START
    report = run_inference(estimator, inputs, args.out, source,
                           threshold=args.threshold, box_threshold=args.box_threshold,
                           verbose=0 if args.quiet else 1, tracking=tracking,
                           exif_orientation=not args.ignore_exif)
    written = [*report.overlays, report.predictions_file, report.summary_file,
               *(path for pair in report.videos for path in pair)]
    outputs.record(*(os.path.relpath(path, args.out) for path in written if path))
    print(report.summary())
    first = ("-" if report.first_output_seconds is None
             else f"{ready + report.first_output_seconds:.1f} s")
    print(f"start-up: model ready {ready:.1f} s, first overlay {first} after process start; "
          f"flip test {'on' if estimator.flip else 'off'}, batch {estimator.batch_size}")
    if report.predictions_file:
        print(f"wrote {len(report.overlays)} overlay(s) and {report.predictions_file}")
    for video, lines in report.videos:
        print(f"wrote {video} and {lines}")
    return 0


if __name__ == "__main__":
    from pose.errors import run_tool

    sys.exit(run_tool(main))
