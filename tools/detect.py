"""Detect people in a folder of images with a detector file; write COCO detection results.

    python tools/detect.py --detector FILE.onnx|FILE.tflite --images DIR --out dets.json
                           [--annotations ANN.json] [--recursive] [--threads N]
                           [--detector-threshold 0.3] [--detector-format ...] [...]

The output has the form of HRNet's released person detections
(``COCO_val2017_detections_AP_H_56_person.json``: ``image_id``, ``category_id`` 1,
``bbox`` x, y, w, h, ``score``) plus each image's ``file_name``: evaluate with it
(``tools/test.py --boxes dets.json``) or estimate poses (``tools/infer.py --boxes
dets.json``, matched by file name). ``image_id`` comes from ``--annotations`` (by file
name; images it does not list are skipped), else from a COCO-style file name, else a
stable id from the file name. The detector runs on ONNX Runtime or LiteRT (no
TensorFlow); its options are those of ``tools/infer.py --detector`` (see README: person
detectors). The file is written atomically, never over one of the command's inputs (an
image, the detector or the annotation file), and over an existing file only when this
tool wrote it before or with ``--overwrite``. Bad input ends in one line ``error:
...`` and exit code 2 (--debug shows the traceback).
"""

import os
import sys

from pose.options import ToolArgumentParser


def main(argv=None):
    from pose.apis.detection_results import detect_images
    from pose.apis.detector import add_detector_arguments, detector_from_args
    from pose.apis.inputs import collect_inputs
    from pose.checks import claim_output_file

    parser = ToolArgumentParser(tool="detect", description=__doc__.splitlines()[0])
    parser.add_argument("--detector", required=True, metavar="FILE",
                        help="object-detection model (.onnx on ONNX Runtime, .tflite on LiteRT)")
    parser.add_argument("--images", required=True, nargs="+", metavar="DIR",
                        help="image folders, files or glob patterns")
    parser.add_argument("--annotations", help="COCO annotation file whose image ids to use")
    parser.add_argument("--out", required=True, output="file",
                        help="the detection-results JSON to write")
    parser.add_argument("--ignore-exif", action="store_true",
                        help="read photos as stored, not upright by their EXIF orientation")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out even when this tool did not write it")
    parser.add_argument("--recursive", action="store_true", help="search sub-folders too")
    parser.add_argument("--threads", type=int, help="runtime threads (default: core count)")
    parser.add_argument("--quiet", action="store_true", help="no progress")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of a user error")
    add_detector_arguments(parser)
    args = parser.parse_args(argv)

    inputs = collect_inputs(args.images, recursive=args.recursive)  # InputError: a UserError
    outputs = claim_output_file(args.out, "tools/detect.py", [item.path for item in inputs]
                                + [args.detector, args.annotations, *args.images],
                                overwrite=args.overwrite)
    source = detector_from_args(args, threads=args.threads)
    print(f"person boxes: {source.name}", flush=True)
    report = detect_images(source, inputs, args.out, annotation_file=args.annotations,
                           verbose=0 if args.quiet else 1,
                           exif_orientation=not args.ignore_exif)
    outputs.record(os.path.basename(args.out))
    print(report.summary())
    return 0


if __name__ == "__main__":
    from pose.errors import run_tool

    sys.exit(run_tool(main))
