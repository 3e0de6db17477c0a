"""Export a checkpoint's network (crops → heatmaps) and check parity with the Keras model.

    python tools/export.py --weights RUN/best.keras --format saved_model|tflite|onnx --out PATH

Only the network is exported: decoding (flip test, heatmap → keypoints, back to the image)
stays in Python (``pose.evaluation.predictor.Predictor`` with
``pose.apis.export.ExportedModel``). After
the export the max absolute difference to the Keras model on a random input is printed;
the exit status is 1 when it exceeds --tolerance. The checkpoint's config is written
beside the export (PATH.yaml, or NAME.yaml for NAME.tflite), so that
``tools/infer.py --weights PATH`` runs the export directly (a faster start-up). ONNX
needs the optional packages tf2onnx and onnxruntime (not installed by the project);
without them the tool says so and exits with status 2.
"""

import argparse
import logging
import os
import sys

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) would hide this tool's
# own output; an explicit setting by the user wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="a .keras checkpoint")
    parser.add_argument("--format", required=True, choices=["saved_model", "tflite", "onnx"])
    parser.add_argument("--out", required=True,
                        help="SavedModel folder, or .tflite / .onnx file")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest acceptable max abs difference (default 1e-4)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)

    from pose.apis.export import ExportError, missing_dependencies

    missing = missing_dependencies(args.format)
    if missing:  # before loading anything
        print(f"error: {args.format} export needs the optional package(s) "
              f"{', '.join(missing)}, which are not installed: pip install "
              f"{' '.join(missing)}", file=sys.stderr)
        return 2

    from pose.apis.export import export_model, parity
    from pose.engine.checkpoint import load_model

    model, config = load_model(args.weights)
    try:
        path = export_model(model, args.out, args.format)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if config is not None:  # beside the export, so tools/infer.py --weights PATH works
        from pose.config import save_config
        from pose.engine.checkpoint import config_path_for

        save_config(config, config_path_for(path))
    check = parity(model, path, args.format)
    diff = check["max_abs_diff"]
    h, w = model.input_shape[1:3]
    print(f"exported {args.format} to {path}: input (B, {h}, {w}, 3) float32 "
          f"ImageNet-normalized RGB crops → heatmaps {tuple(model.output_shape[1:])}")
    verdict = "OK" if diff <= args.tolerance else "FAILED"
    print(f"parity: max |keras - {args.format}| = {diff:.3g} on a random input, outputs up "
          f"to {check['max_abs_output']:.3g} (relative {check['relative']:.3g}; tolerance "
          f"{args.tolerance:g} absolute): {verdict}")
    return 0 if diff <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
