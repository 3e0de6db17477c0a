"""Serve the pose model over HTTP: a JSON API, a web page for photos and the live webcam.

    python tools/serve.py --weights RUN/best.keras|MODEL.tflite|MODEL.onnx
                          [--detector FILE.onnx|FILE.tflite|hog | --whole-image]
                          [--host 127.0.0.1] [--port 8000] [--queue 8] [--timeout 30]
                          [--max-upload-mib 20] [--access-log FILE] ...

Loads the model (and the person detector) once and serves, until Ctrl-C:

- ``GET /``: a page to drop or choose a photo (skeletons drawn over it with scores) or to
  start the webcam (frames go over a WebSocket, skeletons come back with track ids,
  One-Euro smoothed per connection; frames per second and latency shown).
- ``POST /v1/pose`` (an image as the body or a multipart upload; ``?boxes=``,
  ``?ignore_exif=1``, ``?overlay=1`` for the drawn PNG), ``GET /v1/model``,
  ``GET /healthz``, ``WS /v1/stream``; the OpenAPI schema at ``/openapi.json``.

The numbers are ``tools/infer.py``'s on the same image, model and boxes (its estimator,
box clipping, rescoring and rounding; photos upright by their EXIF orientation). A
``.tflite`` runs on LiteRT and an ``.onnx`` on ONNX Runtime, without TensorFlow. The
server listens on 127.0.0.1 (this machine only) unless ``--host`` says otherwise. Limits:
``--max-upload-mib`` (413 beyond), ``--queue`` requests queued or running (503 with
Retry-After beyond, before the body is read), ``--timeout`` seconds per request (503).
Person boxes: ``--detector`` (``tools/infer.py``'s detector options) or the whole image
(the default). ``--access-log FILE`` appends one JSON line per HTTP request.
"""

import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pose.errors import UserError, hide_native_output
from pose.options import ToolArgumentParser, add_model_arguments

if __name__ == "__main__":  # first: TensorFlow's C++ start-up lines must not reach stderr
    hide_native_output()


def parse_args(argv=None):
    from pose.apis.detector import add_detector_arguments

    parser = ToolArgumentParser(tool="serve", description=__doc__.splitlines()[0])
    add_model_arguments(parser, batching=False)
    boxes = parser.add_mutually_exclusive_group()
    boxes.add_argument("--detector", metavar="FILE|hog",
                       help="detect people with an object-detection model file (.onnx, "
                            ".tflite; tools/infer.py's layouts) or 'hog' (OpenCV 4)")
    boxes.add_argument("--whole-image", action="store_true",
                       help="one person box = the whole image (the default)")
    add_detector_arguments(parser)
    parser.add_argument("--threshold", type=float, default=0.3,
                        help="draw keypoints scoring above this (default 0.3)")
    parser.add_argument("--box-threshold", type=float, default=0.5,
                        help="draw people whose box score is at least this; all people go "
                             "to the JSON (default 0.5)")
    server = parser.add_argument_group("server")
    server.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; "
                             "0.0.0.0 for every network)")
    server.add_argument("--port", type=int, default=8000,
                        help="port (default 8000; 0: any free port)")
    server.add_argument("--queue", type=int, default=8,
                        help="requests queued or running at once; more get 503 with "
                             "Retry-After (default 8)")
    server.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="time limit of a request, waiting included (default 30)")
    server.add_argument("--max-upload-mib", type=int, default=20,
                        help="largest request body (an image) in MiB; larger get 413 "
                             "(default 20)")
    server.add_argument("--stream-max-age", type=float, default=1.0, metavar="SECONDS",
                        help="webcam: seconds a lost person keeps their track id (default 1)")
    server.add_argument("--smooth-min-cutoff", type=float, default=1.0, metavar="HZ",
                        help="webcam One-Euro cutoff at rest (default 1.0)")
    server.add_argument("--smooth-beta", type=float, default=0.007,
                        help="webcam One-Euro speed coefficient (default 0.007)")
    server.add_argument("--smooth-d-cutoff", type=float, default=1.0, metavar="HZ",
                        help="webcam One-Euro cutoff of the speed estimate (default 1.0)")
    server.add_argument("--access-log", metavar="FILE", output="file",
                        help="append one JSON line per HTTP request (time, method, path, "
                             "status, ms) to FILE")
    parser.add_argument("--overwrite", action="store_true",
                        help="append to --access-log even when this tool did not write it")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of a user error")
    return parser, parser.parse_args(argv)


def main(argv=None):
    parser, args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    from pose.apis.boxes import HogBoxes, WholeImageBoxes
    from pose.apis.detector import detector_from_args
    from pose.apis.runtimes import RuntimeChoiceError, choose_runtime
    from pose.apis.smoothing import OneEuroParams
    from pose.checks import claim_output_file

    if not args.host.strip():
        raise UserError("--host is empty: give an address such as 127.0.0.1 or 0.0.0.0")
    try:
        choose_runtime(args.weights, args.runtime)
    except RuntimeChoiceError as exc:
        raise UserError(str(exc)) from None
    smooth = OneEuroParams(args.smooth_min_cutoff, args.smooth_beta, args.smooth_d_cutoff)
    log_outputs = None
    if args.access_log:
        log_outputs = claim_output_file(args.access_log, "tools/serve.py",
                                        [args.weights, args.config, args.detector],
                                        overwrite=args.overwrite, option="--access-log")
    if args.detector == "hog":
        source = HogBoxes()
    elif args.detector:
        source = detector_from_args(args, threads=args.threads)
    else:
        source = WholeImageBoxes()

    # Lazy imports: a .tflite/.onnx model never loads TensorFlow or Keras.
    from pose.apis.estimator import PoseEstimator, load_network, runtime_description
    from pose.config import resolve_config
    from pose.serving.app import create_app, serve
    from pose.serving.service import PoseService

    model, saved_config = load_network(args.weights, args.runtime, args.threads,
                                       input_size=args.input_size, optimize_graph=False,
                                       trace_ahead=True)
    config = resolve_config(args.config, saved_config, args.overrides, source=args.weights)
    estimator = PoseEstimator.from_config(model, config,
                                          flip=False if args.no_flip else None,
                                          batch_size=args.batch_size)
    service = PoseService(estimator, source, weights=args.weights, threads=args.threads,
                          threshold=args.threshold, box_threshold=args.box_threshold,
                          queue_size=args.queue, timeout=args.timeout,
                          max_bytes=args.max_upload_mib << 20,
                          stream_max_age=args.stream_max_age, smooth=smooth)
    service.warm_up()
    print(runtime_description(model, args.threads), flush=True)
    print(f"person boxes: {source.name}", flush=True)
    app = create_app(service, access_log=args.access_log)
    if log_outputs is not None:
        log_outputs.record(os.path.basename(args.access_log))

    def started(url):
        print(f"serving on {url} (the page; API: {url}v1/pose, schema: {url}openapi.json); "
              "Ctrl-C stops", flush=True)

    stopped_by = serve(app, args.host, args.port, max_bytes=service.max_bytes,
                       on_started=started)
    print(f"stopped{' by a signal' if stopped_by else ''}; {service.work.completed} "
          f"request(s) served, {service.work.rejected} refused as busy", flush=True)
    return 0


if __name__ == "__main__":
    from pose.errors import run_tool

    sys.exit(run_tool(main))
