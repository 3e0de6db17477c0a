"""Runtime × precision: file size, forward latency and AP of every export of a model.

For each variant (``VARIANTS``: float32 Keras, LiteRT and ONNX Runtime; float16, dynamic
and int8 exports) ``tools/benchmark.py runtimes``:

- exports the latency model (W32 by default, random weights: latency does not depend on
  the values) and times its forward pass at batch 1 and 8, every variant in a fresh
  process (``latency_in_subprocess``: a LiteRT/ONNX worker never imports TensorFlow, a
  Keras worker gets TensorFlow's defaults), in alternating rounds so that the load of a
  shared machine spreads over all variants alike;
- exports the accuracy model (a trained checkpoint, e.g. the demo's) the same way and
  evaluates every export with ``pose.evaluation.evaluator.evaluate_config`` (the config's
  validation set, boxes and test settings), so the AP cost of a precision is measured.

int8 exports are calibrated on real crops (``pose.apis.export.calibration_crops``).
"""

import json
import logging
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from pose.errors import UserError

# (format, quantization) pairs; format "keras" is the checkpoint itself.
VARIANTS = (("keras", None), ("tflite", None), ("onnx", None), ("tflite", "float16"),
            ("tflite", "dynamic"), ("onnx", "dynamic"), ("tflite", "int8"), ("onnx", "int8"))
RUNTIME_OF = {"keras": "keras", "tflite": "litert", "onnx": "onnx"}

logger = logging.getLogger(__name__)


def parse_variants(names=None):
    """``VARIANTS`` named ``FORMAT[:MODE]`` (``tflite:int8``), in ``VARIANTS`` order, the
    Keras baseline always first; None: all of them.

    Raises:
        UserError: a name that is not a variant (a ``ValueError``; the tool prints it as
            one line).
    """
    if names is None:
        return VARIANTS
    known = {f"{fmt}:{q}" if q else fmt: (fmt, q) for fmt, q in VARIANTS}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise UserError(f"--variants: unknown variant(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(known)}")
    wanted = {known[name] for name in names} | {("keras", None)}
    return tuple(v for v in VARIANTS if v in wanted)


def variant_name(fmt, quantize):
    return f"{RUNTIME_OF[fmt]} {quantize or 'float32'}"


def export_variants(model, config, out_dir, stem, calibration, variants=VARIANTS):
    """Export ``model`` in every variant to ``out_dir/STEM[_Q].EXT`` (existing files are
    reused); ``{(fmt, quantize): path}`` with the checkpoint itself for ``keras``."""
    from pose.apis.export import export_model
    from pose.config import config_path_for, save_config

    paths = {}
    for fmt, quantize in variants:
        if fmt == "keras":
            continue
        path = os.path.join(out_dir, f"{stem}{'_' + quantize if quantize else ''}.{fmt}")
        if not os.path.isfile(path):
            start = time.perf_counter()
            export_model(model, path, fmt, quantize=quantize, calibration=calibration)
            logger.info("  exported %s in %.0f s", path, time.perf_counter() - start)
        save_config(config, config_path_for(path))
        paths[(fmt, quantize)] = path
    return paths


def measure_latency(path, runtime, batch_sizes=(1, 8), repeats=10, threads=None, seed=0):
    """Load ``path`` on ``runtime`` and time its forward pass; a JSON-ready dict."""
    from pose.apis.estimator import load_network
    from pose.experiments.benchmark import peak_memory_mib, time_forward

    start = time.perf_counter()
    model, _ = load_network(path, runtime, threads)
    result = {"load_s": time.perf_counter() - start}
    h, w = (model.input_shape[1:3] if hasattr(model, "input_shape") else model.input_size)
    rng = np.random.default_rng(seed)
    for batch_size in batch_sizes:
        batch = rng.standard_normal((batch_size, h, w, 3)).astype(np.float32)
        latency = time_forward(model.predict_on_batch, batch, repeats=repeats)
        result[f"batch{batch_size}"] = {"first_call_s": latency.first_call_s,
                                        "median_s": latency.median_s, "min_s": latency.min_s}
    result["tensorflow_imported"] = "tensorflow" in sys.modules
    result["peak_memory_mib"] = peak_memory_mib()
    return result


def latency_in_subprocess(path, runtime, repeats=10, threads=None, timeout=1200):
    """``measure_latency`` in a fresh Python (no state shared between variants)."""
    request = {"path": os.fspath(path), "runtime": runtime, "repeats": repeats,
               "threads": threads}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-m", "pose.experiments.runtime_benchmark",
                           json.dumps(request)], env=env, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"latency worker failed for {path} on {runtime}:\n"
                           f"{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def time_variants(paths, rounds=2, repeats=10, threads=None):
    """Latency of every variant: ``rounds`` alternating passes over all of them; per batch
    size the best round's median (the least disturbed by other load)."""
    runs = {key: [] for key in paths}
    for round_index in range(rounds):
        for key, path in paths.items():
            result = latency_in_subprocess(path, RUNTIME_OF[key[0]], repeats, threads)
            runs[key].append(result)
            logger.info("  round %d: %s: batch 1 %.0f ms, batch 8 %.0f ms", round_index + 1,
                        variant_name(*key), result["batch1"]["median_s"] * 1e3,
                        result["batch8"]["median_s"] * 1e3)
    summary = {}
    for key, results in runs.items():
        summary[key] = {
            "b1_ms": min(r["batch1"]["median_s"] for r in results) * 1e3,
            "b8_ms": min(r["batch8"]["median_s"] for r in results) * 1e3,
            "load_s": statistics.median(r["load_s"] for r in results),
            "first_call_s": statistics.median(r["batch1"]["first_call_s"] for r in results),
            "tensorflow_imported": any(r["tensorflow_imported"] for r in results),
            "runs": results}
    return summary


def evaluate_variants(model, config, paths, out_dir, threads=None, num_resamples=1000,
                      bootstrap_seed=0):
    """COCO AP of the Keras model and of every export on the config's validation set, each
    export's difference to the Keras model with its paired 95% interval.

    The interval resamples the validation images (``paired_differences`` with one run per
    side: an image-only interval, which is the right one here: the weights are the same,
    only the arithmetic differs, so there is no training noise to add).

    Args:
        model: the Keras model; paths: ``{(fmt, quantize): export}`` (``export_variants``).
        config: its config (validation set, boxes, test settings).
        out_dir: where each variant's ``keypoints_results.json`` and metrics go.
        threads: runtime threads of the exports. num_resamples, bootstrap_seed: of the
            interval.

    Returns:
        ``{(fmt, quantize): {"AP", "AP50", "AP75", "AR", "dAP", "dAP_low", "dAP_high"}}``
        (the differences None for the Keras model itself).
    """
    from pose.apis.runtimes import open_network
    from pose.evaluation.bootstrap import paired_differences
    from pose.evaluation.evaluator import evaluate_config
    from pose.experiments.comparison import per_image_matches

    results, matches = {}, {}
    for key in [("keras", None), *paths]:
        network = model if key[0] == "keras" else open_network(paths[key], threads=threads)
        run_dir = os.path.join(out_dir, variant_name(*key).replace(" ", "_"))
        stats = evaluate_config(network, config, out_dir=run_dir, verbose=0)
        matches[key] = per_image_matches(os.path.join(run_dir, "keypoints_results.json"),
                                          stats["annotations"], config.data.oks_sigmas)
        results[key] = {k: stats[k] for k in ("AP", "AP50", "AP75", "AR")}
        results[key].update(dAP=None, dAP_low=None, dAP_high=None)
        if key != ("keras", None) and matches[key] is not None and (
                matches[("keras", None)] is not None):
            pair = paired_differences({"keras": [matches[("keras", None)]],
                                       "export": [matches[key]]},
                                      num_resamples=num_resamples, seed=bootstrap_seed,
                                      stats=("AP",))[0]["stats"]["AP"]
            results[key].update(dAP=pair["difference"], dAP_low=pair["low"],
                                dAP_high=pair["high"])
        logger.info("  %s: AP %.4f", variant_name(*key), stats["AP"])
    return results


if __name__ == "__main__":
    request = json.loads(sys.argv[1])
    print(json.dumps(measure_latency(request["path"], request["runtime"],
                                     repeats=request["repeats"],
                                     threads=request["threads"])))
