"""Export a checkpoint's network (crops → heatmaps), optionally quantized, and check parity.

    python tools/export.py --weights RUN/best.keras|MODEL.pth [--input-size W H]
                           --format saved_model|tflite|onnx --out PATH
                           [--quantize float16|dynamic|int8]
                           [--calibration ANN.json --calibration-images DIR]
                           [--calibration-count 300] [--float-ops [OP ...]]

Only the network is exported: decoding (flip test, heatmap → keypoints, back to the image)
stays in Python (``pose.evaluation.predictor.Predictor`` with
``pose.apis.export.ExportedModel`` or ``pose.apis.runtimes.open_network``). The
checkpoint's config is written beside the export (PATH.yaml, or NAME.yaml for
NAME.tflite), so that ``tools/infer.py --weights PATH`` runs the export directly: a
.tflite on LiteRT, an .onnx on ONNX Runtime, neither importing TensorFlow.

Quantization: ``float16`` (TFLite), ``dynamic`` (int8 weights; TFLite, ONNX) and ``int8``
(weights and activations; TFLite, ONNX), calibrated on real crops of --calibration (COCO
keypoint annotations; default: the config's training set) through the evaluation data
pipeline. A TFLite int8 export keeps the PSA softmax ops in float32 (--float-ops). A mode
the format cannot run is refused (exit status 2) before anything is loaded.

A PyTorch HRNet ``.pth`` (official model zoo, mmpose) is converted on the fly, as
``tools/infer.py`` and ``tools/test.py`` do: the architecture from the file, the input size
from --input-size or the file name.

Parity: float32 exports are compared with the Keras model on a random input (exit status
1 when the max absolute difference exceeds --tolerance × max(1, max |output|), default
1e-4: relative to the output's scale, as float32 rounding is). Quantized exports
are compared on real crops (the calibration set, or random input without one) and their
relative RMS difference printed; --tolerance, when given, bounds it. ONNX needs the
``onnx`` extra (pip install .[onnx]); without it the tool says so and exits with status 2.
"""

import logging
import os
import sys

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) would hide this tool's
# own output; an explicit setting by the user wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pose.errors import hide_native_output, one_line
from pose.options import ToolArgumentParser

if __name__ == "__main__":  # first: TensorFlow's C++ start-up lines must not reach stderr
    hide_native_output()


def parse_args(argv=None):
    parser = ToolArgumentParser(tool="export", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True,
                        help="a .keras checkpoint or a PyTorch HRNet .pth (official model zoo, "
                             "mmpose; converted on the fly)")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("W", "H"),
                        help="input size of a .pth model (default: from its file name, e.g. "
                             "..._256x192.pth is 192 256)")
    parser.add_argument("--format", required=True, choices=["saved_model", "tflite", "onnx"])
    parser.add_argument("--out", required=True, output="file",
                        help="SavedModel folder, or .tflite / .onnx file")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out and the config beside it even when this tool did "
                             "not write them")
    parser.add_argument("--quantize", choices=["float16", "dynamic", "int8"],
                        help="quantize the export (default: float32)")
    parser.add_argument("--calibration", metavar="ANN.json",
                        help="COCO keypoint annotations whose person crops calibrate int8 "
                             "(and measure quantized parity); default: the config's "
                             "training annotations")
    parser.add_argument("--calibration-images", metavar="DIR",
                        help="the images of --calibration (required with it)")
    parser.add_argument("--calibration-count", type=int, default=300,
                        help="crops drawn from --calibration (default 300)")
    parser.add_argument("--float-ops", nargs="*", metavar="OP",
                        help="TFLite ops an int8 .tflite keeps in float32 (default: the PSA "
                             "softmax, pose.apis.export.INT8_FLOAT_OPS; none given: every "
                             "op in int8)")
    parser.add_argument("--tolerance", type=float,
                        help="float32: largest acceptable max abs difference relative to "
                             "max(1, max |output|) (default 1e-4); "
                             "quantized: largest acceptable relative RMS difference "
                             "(default: none, only printed)")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of a user error")
    return parser.parse_args(argv)


def _calibration_files(args, config):
    """(annotations, images) for the calibration crops, or None when there are none."""
    if args.calibration:
        return args.calibration, args.calibration_images
    if config is None:
        return None
    return (config.data.resolve(config.data.train_annotations),
            config.data.resolve(config.data.train_images))


def _calibration(args, config, model):
    """Real crops for int8 calibration and quantized parity, or None (float32/no data)."""
    from pose.apis.export import ExportError, calibration_crops

    if args.quantize is None:
        return None
    files = _calibration_files(args, config)
    if files is None or not os.path.isfile(files[0]):
        if args.quantize != "int8":
            return None  # parity on random input instead
        where = files[0] if files else "the checkpoint has no config beside it"
        raise ExportError(f"int8 needs calibration crops: {where} not found; pass "
                          "--calibration ANN.json --calibration-images DIR")
    h, w = model.input_shape[1:3]
    udp = config is not None and config.data.encoding == "udp"
    crops = calibration_crops(files[0], files[1], (w, h), count=args.calibration_count,
                              udp=udp)
    print(f"calibration: {len(crops)} crops of {files[0]}", flush=True)
    return crops


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    from pose.apis.export import ExportError, check_export, check_export_output
    from pose.checks import claim_output_files
    from pose.config import config_path_for

    try:  # before loading anything: a missing package, an unsupported mode, a bad --out
        check_export(args.format, args.quantize)
        check_export_output(args.out, args.format,
                            [args.weights, args.calibration, args.calibration_images])
        record_outputs = claim_output_files([args.out, config_path_for(args.out)],
                                            "tools/export.py", overwrite=args.overwrite)
        if args.calibration and not os.path.isfile(args.calibration):
            raise ValueError(f"--calibration {args.calibration}: no such file")
        if args.calibration and not args.calibration_images:
            raise ValueError("--calibration needs --calibration-images DIR (its images)")
        if args.float_ops is not None and (args.format, args.quantize) != ("tflite", "int8"):
            raise ValueError("--float-ops is for --format tflite --quantize int8")
    except (ExportError, ValueError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2

    from pose.apis.export import (
        FLOAT32_PARITY_TOLERANCE,
        INT8_FLOAT_OPS,
        export_model,
        parity,
        parity_bound,
    )
    from pose.config import save_config
    from pose.engine.pretrained import load_any_checkpoint

    model, config = load_any_checkpoint(args.weights, input_size=args.input_size)
    if args.quantize:  # int8 is faster than float32 only with int8 dot products
        from pose.apis.cpu_features import cpu_flags, quantized_speed_note

        flags = cpu_flags()
        print(f"CPU flags: {' '.join(flags) or 'unknown'}", flush=True)
        note = quantized_speed_note(args.quantize, flags, args.format)
        if note:
            print(f"note: {note}", flush=True)
    try:
        crops = _calibration(args, config, model)
        float_ops = INT8_FLOAT_OPS if args.float_ops is None else tuple(args.float_ops)
        path = export_model(model, args.out, args.format, quantize=args.quantize,
                            calibration=crops, float_ops=float_ops)
    except (ExportError, ValueError, OSError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    if config is not None:  # beside the export, so tools/infer.py --weights PATH works
        save_config(config, config_path_for(path))
    record_outputs()
    h, w = model.input_shape[1:3]
    size = (f", {os.path.getsize(path) / 2**20:.2f} MiB" if os.path.isfile(path) else "")
    print(f"exported {args.format} ({args.quantize or 'float32'}{size}) to {path}: input "
          f"(B, {h}, {w}, 3) float32 ImageNet-normalized RGB crops → heatmaps "
          f"{tuple(model.output_shape[1:])}")
    if args.quantize is None:
        check = parity(model, path, args.format)
        tolerance = FLOAT32_PARITY_TOLERANCE if args.tolerance is None else args.tolerance
        bound = parity_bound(check, tolerance)
        ok = check["max_abs_diff"] <= bound
        print(f"parity: max |keras - {args.format}| = {check['max_abs_diff']:.3g} on a random "
              f"input, outputs up to {check['max_abs_output']:.3g} (relative "
              f"{check['relative']:.3g}); bound {tolerance:g} × max(1, "
              f"{check['max_abs_output']:.3g}) = {bound:.3g}: {'OK' if ok else 'FAILED'}")
        return 0 if ok else 1
    sample = crops[:64] if crops is not None else None
    check = parity(model, path, args.format, batch_size=8, x=sample)
    ok = args.tolerance is None or check["relative_rms"] <= args.tolerance
    verdict = ("" if args.tolerance is None else
               f" (tolerance {args.tolerance:g}: {'OK' if ok else 'FAILED'})")
    on = f"{len(sample)} real crops" if sample is not None else "a random input"
    print(f"parity: relative RMS |keras - {args.format} {args.quantize}| = "
          f"{check['relative_rms']:.3g} on {on}, max abs {check['max_abs_diff']:.3g} of "
          f"outputs up to {check['max_abs_output']:.3g}{verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    from pose.errors import run_tool

    sys.exit(run_tool(main))
