"""Extract poses from a large set of images and videos on Ray Data, resumable, locally or on
a cluster; Parquet shards out.

    python tools/extract.py --weights MODEL.onnx [INPUT ...] [--list FILES.txt ...]
                            --out DIR [--detector FILE.onnx | --boxes DET.json |
                            --whole-image] [--address HOST:PORT] [--threads N]
                            [--actors N] [--coco-results FILE] [--strict] ...

Inputs are what tools/infer.py takes (image and video files, folders with --recursive, glob
patterns) and input lists (--list: one path per line; relative paths from the list's
folder). The model is any --weights tools/infer.py takes; exported .onnx/.tflite files
run on ONNX Runtime/LiteRT in the workers, without TensorFlow. Person boxes come from a
detector file, a COCO detection-results JSON, or the whole image, as in tools/infer.py.

Without --address (or Ray's RAY_ADDRESS), Ray is started on this machine and stopped at the
end; with it, the job runs on that cluster (every node needs this package installed and
the inputs at the same paths). Pipeline: read and decode → person boxes (an actor pool when
a detector file runs) → crop and estimate (an actor pool; --threads runtime threads per
actor) → Parquet shards written by this process.

DIR gets poses/part-NNNNNN.parquet (one row per person: input, source, frame, image_id,
width, height, person, box, box_score, score, keypoints_x/y/score lists; keypoint names in
the schema metadata), errors.parquet (input, source, frame range, reason of every input
that could not be read), inputs.txt and manifest.json. Re-running the same command into
DIR resumes: written shards are kept, the others are done; a re-run with other inputs,
model, boxes or flags is refused, naming the first difference. Missing or unreadable
inputs are counted, not fatal (--strict: a missing listed file is an error before
anything runs). Bad input ends in one line ``error: ...`` and exit code 2.
"""

import logging
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pose.errors import hide_native_output
from pose.options import ToolArgumentParser, add_model_arguments

if __name__ == "__main__":
    hide_native_output()

TOOL = "tools/extract.py"


def parse_args(argv=None):
    from pose.apis.detector import add_detector_arguments

    parser = ToolArgumentParser(tool="extract", description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="image files, folders, glob patterns or video files")
    parser.add_argument("--list", dest="lists", action="append", default=[], metavar="FILE",
                        help="a text file listing input paths, one per line (repeatable)")
    add_model_arguments(parser, threads=False, weights_help=(
        "the pose model: .onnx/.tflite export (no TensorFlow in the workers), .keras, "
        "PyTorch HRNet .pth, SavedModel folder"))
    parser.add_argument("--out", required=True, output="folder",
                        help="output folder: new, empty, or an earlier run of this command "
                             "(resumed)")
    parser.add_argument("--coco-results", output="file", metavar="FILE",
                        help="also write the images' COCO keypoint results JSON at the end")
    boxes = parser.add_mutually_exclusive_group()
    boxes.add_argument("--boxes", metavar="DET.json",
                       help="COCO detection results with the person boxes")
    boxes.add_argument("--detector", metavar="FILE",
                       help="detect people with an object-detection model file (.onnx, "
                            ".tflite; the layouts of tools/infer.py --detector)")
    boxes.add_argument("--whole-image", action="store_true",
                       help="one person box = the whole image (the default)")
    add_detector_arguments(parser)
    parser.add_argument("--recursive", action="store_true",
                        help="search folders (and ** in patterns) recursively")
    parser.add_argument("--ignore-exif", action="store_true",
                        help="read photos as stored, not upright by their EXIF orientation")
    ray_group = parser.add_argument_group("Ray")
    ray_group.add_argument("--address", metavar="HOST:PORT",
                           help="a Ray cluster's address (default: RAY_ADDRESS, else a "
                                "local Ray started on this machine)")
    ray_group.add_argument("--threads", type=int, default=1,
                           help="runtime threads of each actor, and the CPUs Ray gives it "
                                "(default 1)")
    ray_group.add_argument("--actors", type=int,
                           help="actors per pool (default: from 1 up to the cluster's CPUs "
                                "/ --threads, as Ray Data scales them)")
    ray_group.add_argument("--num-cpus", type=int,
                           help="CPUs of the local Ray (default: all; not with a cluster)")
    ray_group.add_argument("--object-store-memory", type=int, metavar="BYTES",
                           help="object store of the local Ray (default: Ray's)")
    ray_group.add_argument("--shard-size", type=int, default=256,
                           help="inputs per output shard, the unit of resuming (default 256)")
    ray_group.add_argument("--frames-per-task", type=int, default=32,
                           help="video frames per task: one long video spreads over "
                                "workers (default 32)")
    ray_group.add_argument("--images-per-task", type=int,
                           help="images per task (default 8, more for lists longer than "
                                "~32k inputs: about 4096 tasks, since Ray Data keeps ~5 KiB "
                                "per task on the driver)")
    parser.add_argument("--strict", action="store_true",
                        help="a missing listed input is an error before anything runs")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of a user error")
    return parser, parser.parse_args(argv)


def _box_spec(args):
    if args.boxes:
        return {"kind": "boxes", "file": os.path.abspath(args.boxes)}
    if args.detector:
        return {"kind": "detector", "file": os.path.abspath(args.detector),
                "layout": args.detector_format, "preset": args.detector_preset,
                "size": args.detector_size, "mean": args.detector_mean,
                "std": args.detector_std, "threshold": args.detector_threshold,
                "person_class": args.person_class, "nms_iou": args.detector_nms_iou,
                "max_people": args.max_people, "nms_classes": args.detector_nms_classes,
                "threads": args.threads}
    return {"kind": "whole"}


def _model_config(args):
    """The resolved config of --weights, as the workers will resolve it (the one beside
    the file or --config, with --set); an export is opened (fast, and it checks that the
    file is a pose model), a checkpoint only when it has no config beside it."""
    from pose.apis.estimator import load_network
    from pose.apis.runtimes import choose_runtime
    from pose.config import config_path_for, load_config, resolve_config
    from pose.errors import CheckpointError

    runtime = choose_runtime(args.weights, args.runtime)
    if not os.path.exists(args.weights):
        raise CheckpointError(f"model not found: {args.weights}")
    beside = config_path_for(args.weights)
    if runtime in ("onnx", "litert") or not (args.config or os.path.isfile(beside)):
        _, saved = load_network(args.weights, args.runtime, 1, input_size=args.input_size)
    else:
        saved = load_config(beside) if os.path.isfile(beside) else None
    config = resolve_config(args.config, saved, args.overrides, source=args.weights)
    config_file = args.config or (beside if os.path.isfile(beside) else None)
    return config, config_file


def main(argv=None):
    parser, args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    from datasets.metadata import DatasetMeta
    from pose.batch import extraction, plan
    from pose.checks import (
        OutputManifest,
        check_output_file,
        check_output_folder,
        claim_output_file,
        claim_run_folder,
    )

    start = time.perf_counter()
    # Model-free and cluster-free checks first: a typo costs no Ray start-up.
    corpus = plan.collect_corpus(args.inputs, args.lists, recursive=args.recursive,
                                 strict=args.strict)
    from pose.apis.boxes import WholeImageBoxes
    from pose.apis.runtimes import RuntimeChoiceError
    from pose.batch.stages import make_box_source
    from pose.errors import UserError, one_line

    box_spec = _box_spec(args)
    try:
        config, config_file = _model_config(args)
        # the box file is read here once: its mistakes are one line before Ray starts
        source = (make_box_source(box_spec) if box_spec["kind"] != "whole"
                  else WholeImageBoxes())
    except (RuntimeChoiceError, ValueError) as exc:  # as tools/infer.py: the user's choice
        raise UserError(one_line(exc)) from None
    meta = DatasetMeta.from_config(config.data, num_keypoints=config.model.num_keypoints)
    digests = {"weights": plan.file_digest(args.weights)}
    if config_file:
        digests["config"] = plan.file_digest(config_file)
    if box_spec.get("file"):
        digests["boxes"] = plan.file_digest(box_spec["file"])
    settings = extraction.Settings(
        pose={"weights": os.path.abspath(args.weights), "runtime": args.runtime,
              "threads": args.threads, "input_size": args.input_size,
              "config": os.path.abspath(args.config) if args.config else None,
              "overrides": list(args.overrides), "flip": False if args.no_flip else None,
              "batch_size": args.batch_size, "batching": args.batching},
        boxes=box_spec, keypoint_names=list(meta.keypoint_names),
        exif_orientation=not args.ignore_exif, shard_size=args.shard_size,
        frames_per_task=args.frames_per_task,
        images_per_task=args.images_per_task or plan.default_images_per_task(
            corpus.count, args.shard_size),
        threads=args.threads, actors=args.actors, digests=digests)
    named = [*args.inputs, *args.lists, args.weights, args.config, args.boxes,
             args.detector]
    # the output checks before Ray starts (they write nothing; the claims come after it)
    check_output_folder(args.out, named)
    OutputManifest(args.out, TOOL).check_folder(False, "--out")
    if args.coco_results:
        check_output_file(args.coco_results, named, "--coco-results")
        OutputManifest(os.path.dirname(os.path.abspath(args.coco_results)), TOOL).check_file(
            os.path.basename(args.coco_results), False, "--coco-results")
    extraction.check_resume(args.out, settings, corpus)
    local = extraction.connect(args.address, args.num_cpus, args.object_store_memory)
    try:
        claim_run_folder(args.out, TOOL, extraction.OUTPUT_NAMES, inputs=named)
        coco_claim = (claim_output_file(args.coco_results, TOOL, inputs=named,
                                        option="--coco-results")
                      if args.coco_results else None)
        print(f"{corpus.count} input(s); person boxes: {source.name}; "
              f"Ray: {'local' if local else extraction._address_text(args.address)}",
              flush=True)
        report = extraction.run_extraction(
            settings, corpus, args.out, command=[TOOL, *(argv or sys.argv[1:])],
            coco_results=args.coco_results,
            progress=None if args.quiet else (lambda text: print(text, flush=True)))
    finally:
        import ray

        ray.shutdown()  # stops a local Ray; leaves a cluster, disconnected
    if coco_claim is not None:
        coco_claim.record(os.path.basename(args.coco_results))
    print(report.summary())
    print(f"wrote {os.path.join(args.out, extraction.POSES)} "
          f"({report.shards} shard(s)) in {time.perf_counter() - start:.1f} s"
          + (f" and {report.coco_results}" if report.coco_results else ""))
    return 0


if __name__ == "__main__":
    from pose.errors import run_tool

    sys.exit(run_tool(main))
