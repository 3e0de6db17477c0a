"""The README's main command: the whole system on generated data, on a CPU, in minutes.

1. generate a COCO-format set (``datasets.synthetic``) unless it is already there;
2. train the small HRNet without and with PSA on the same data, each with seeds 0..S-1
   (``DEFAULT_SEEDS``): one seed cannot tell PSA's effect from training noise;
3. evaluate every run with pycocotools (detector boxes, the config's test settings) and
   write the comparison table, chart and ``report.html`` (``pose.experiments.comparison``,
   ``comparison_html``), whose verdict
   line (every seed's AP, PSA − none with its interval over seeds and images) is printed
   last;
4. draw seed 0's predictions of each variant on validation images (``pose.visualization``);
5. export seed 0's PSA model to ``.tflite`` and run ``tools/infer.py`` on the validation
   images with it (LiteRT, no TensorFlow), printing the time from process start to first
   overlay.
"""

import collections
import contextlib
import json
import logging
import os
import time

import numpy as np

from datasets.coco import load_coco
from datasets.images import read_image_rgb
from datasets.metadata import DatasetMeta
from datasets.synthetic import generate_coco
from pose.config import load_config
from pose.experiments.benchmark import speed_reference_ms
from pose.experiments.comparison import (
    DEFAULT_SEEDS,
    run_comparison,
)
from pose.experiments.comparison_report import (
    ap_difference_sources,
    comparison_markdown,
    keypoint_error_lines,
    verdict_lines,
    write_comparison,
)
from pose.fileio import save_image, write_json
from pose.visualization import draw_pose, plot_training_curves

logger = logging.getLogger(__name__)


def ensure_synthetic_data(root, num_train, num_val, seed, image_size=(640, 480)):
    """Generate the data set into ``root`` unless a complete one is there already."""
    annotations = os.path.join(root, "annotations")
    wanted = {"person_keypoints_train2017.json": num_train,
              "person_keypoints_val2017.json": num_val}
    marker = os.path.join(root, "generated.json")
    request = {"num_train": num_train, "num_val": num_val, "seed": seed,
               "image_size": list(image_size)}
    if os.path.isfile(marker) and all(os.path.isfile(os.path.join(annotations, name))
                                      for name in wanted):
        with open(marker, encoding="utf-8") as f:
            if json.load(f) == request:
                logger.info("using the generated data in %s", root)
                return
    logger.info("generating %d training and %d validation images in %s ...", num_train,
                num_val, root)
    summary = generate_coco(root, num_train, num_val, seed, image_size=image_size,
                            workers=os.cpu_count() or 1)
    logger.info("  done in %.0f s", summary["seconds"])
    write_json(request, marker)


def draw_results(results_file, annotation_file, image_dir, out_dir, max_images=6,
                 threshold=0.3, min_score=0.2):
    """Overlay COCO keypoint results on the first ``max_images`` images that have any."""
    coco = load_coco(annotation_file)
    meta = DatasetMeta.from_coco(coco)
    with open(results_file, encoding="utf-8") as f:
        results = [r for r in json.load(f) if r["score"] >= min_score]
    by_image = collections.defaultdict(list)
    for result in results:
        by_image[result["image_id"]].append(result)
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for image_id in sorted(by_image)[:max_images]:
        people = by_image[image_id]
        flat = np.array([p["keypoints"] for p in people], np.float64)
        flat = flat.reshape(len(people), meta.num_keypoints, 3)  # (N, K, [x, y, score])
        info = coco.imgs[image_id]
        image = read_image_rgb(os.path.join(image_dir, info["file_name"]))
        overlay = draw_pose(image, flat[..., :2], flat[..., 2], meta, threshold=threshold)
        path = os.path.join(out_dir, os.path.splitext(info["file_name"])[0] + ".jpg")
        save_image(overlay, path)
        written.append(path)
    return written


def export_and_infer(checkpoint, image_dir, detections, out_dir):
    """Export ``checkpoint`` to ``.tflite`` (config beside it) and run ``tools/infer.py`` on
    ``image_dir`` with it in a fresh process; returns the tool's start-up line."""
    import subprocess
    import sys

    from pose.apis.export import export_model
    from pose.config import config_path_for, save_config
    from pose.engine.checkpoint import load_model

    model, config = load_model(checkpoint)
    tflite = export_model(model, os.path.join(out_dir, "model.tflite"), "tflite")
    save_config(config, config_path_for(tflite))
    tool = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "infer.py")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, tool, "--weights", tflite, image_dir, "--boxes",
                           detections, "--out", os.path.join(out_dir, "overlays"), "--quiet"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"tools/infer.py on {tflite} failed:\n{done.stderr[-3000:]}")
    lines = done.stdout.splitlines()
    startup = next((line for line in lines if line.startswith("start-up:")), "")
    logger.info("tools/infer.py on %s (%s): %s; %.1f s in all for %s", tflite, lines[0],
                startup[len("start-up: "):], time.perf_counter() - start, image_dir)
    return startup


@contextlib.contextmanager
def _timed(phases, name):
    """Adds the seconds spent in the ``with`` block to ``phases[name]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        phases[name] = phases.get(name, 0.0) + time.perf_counter() - start


# What the demo writes at the top of its workdir.
DEMO_OUTPUTS = ("data", "comparison", "overlays", "tflite", "timings.json")


def run_demo(config_path, workdir, num_train, num_val, seed=0, overrides=(),
             reference_model=None, training_seeds=DEFAULT_SEEDS):
    """Everything the README's demo command does; returns the paths it wrote.

    ``seed`` seeds the generated data; ``training_seeds`` is the number of training seeds
    per variant (0..N-1).

    Before anything else it times the speed yardstick (``speed_reference_ms``; HRNet-W32
    unless ``reference_model`` gives other ``HRNet`` arguments) so that the demo's time is
    reported beside this machine's speed.
    """
    start = time.perf_counter()
    phases = {}
    with _timed(phases, "speed reference (build and time HRNet-W32)"):
        reference_ms = speed_reference_ms(reference_model)
    logger.info("speed reference: %s batch-1 forward %.0f ms on this machine (BENCHMARKS.md "
                "lists it for the machine the demo was timed on)",
                "HRNet-W32 256x192" if reference_model is None else "reference model",
                reference_ms)
    data_root = os.path.join(workdir, "data")
    with _timed(phases, "data (generate, or check the existing set)"):
        ensure_synthetic_data(data_root, num_train, num_val, seed)
    config = load_config(config_path, [f"data.root={data_root}", *overrides])

    comparison_dir = os.path.join(workdir, "comparison")
    jobs = min(2, os.cpu_count() or 1)  # two runs at once, one process each
    with _timed(phases, f"train + evaluate {training_seeds} seed(s) of both variants, "
                        "intervals"):
        comparison = run_comparison(
            config, comparison_dir, variants=("none", "parallel"),
            placement=config.model.psa_placement
            if config.model.psa_placement != "none" else "branch", seeds=training_seeds,
            jobs=jobs)
        paths = write_comparison(comparison, comparison_dir)
    for row in comparison["variants"]:
        if row["train_seconds"] is not None:
            phases[f"  of which one run of {row['variant']}, median ("
                   + ("two at a time, " if jobs > 1 else "")
                   + "start-up and first-step trace included)"] = row["train_seconds"]

    annotation_file = config.data.resolve(config.data.val_annotations)
    image_dir = config.data.resolve(config.data.val_images)
    overlays = {}
    with _timed(phases, "overlays and training curves"):
        for variant in ("none", "parallel"):
            run_dir = os.path.join(comparison_dir, variant, "seed0")
            overlays[variant] = draw_results(
                os.path.join(run_dir, "test", "keypoints_results.json"), annotation_file,
                image_dir, os.path.join(workdir, "overlays", variant))
            plot_training_curves(os.path.join(run_dir, "log.csv"),
                                 os.path.join(run_dir, "training_curves.png"))

    with _timed(phases, "export .tflite + tools/infer.py on it"):
        export_and_infer(os.path.join(comparison_dir, "parallel", "seed0", "last.keras"),
                         image_dir, os.path.join(data_root, config.test.detections),
                         os.path.join(workdir, "tflite"))
    total = time.perf_counter() - start
    timings = {"total_seconds": total, "speed_reference_ms": reference_ms, "phases": phases}
    write_json(timings, os.path.join(workdir, "timings.json"))
    logger.info("\n%s", comparison_markdown(comparison))
    logger.info("\nwhere the demo's time went (%s):\n%s", os.path.join(workdir, "timings.json"),
                "\n".join(f"  {name:<58} {seconds:6.1f} s" for name, seconds in phases.items()))
    logger.info("demo finished in %.1f min (speed reference: W32 batch-1 forward %.0f ms). "
                "Outputs:", total / 60, reference_ms)
    logger.info("  data set (COCO format):   %s", data_root)
    logger.info("  comparison table / chart: %s  %s", paths["md"], paths["png"])
    logger.info("  the report to browse:     %s (tables, figures, where the variants "
                "differ most)", paths["html"])
    for variant in overlays:
        run_dir = os.path.join(comparison_dir, variant, "seed0")
        logger.info("  %8s PSA models:    %s/last.keras  (log.csv, training_curves.png, "
                    "tensorboard/, test/metrics.json; seed1.. beside it)", variant, run_dir)
        logger.info("  %8s PSA overlays:  %s (seed 0)", variant,
                    os.path.join(workdir, "overlays", variant))
    for line in keypoint_error_lines(comparison):  # where the keypoints go wrong
        logger.info("\n%s", line)
    for line in ap_difference_sources(comparison):  # where the AP difference comes from
        logger.info("\n%s", line)
    verdicts = verdict_lines(comparison)
    for line in verdicts:  # last, where the eye lands
        logger.info("\n%s", line)
    return {"comparison": paths, "overlays": overlays, "speed_reference_ms": reference_ms,
            "timings": timings, "verdicts": verdicts}

