"""Time the input pipeline's image path: OpenCV in a numpy_function vs TF-native image ops.

Generates a small synthetic COCO set (640x480 JPEGs by default), then times samples/s of

- ``opencv``: ``datasets.images.read_image_rgb`` (cv2.imdecode) + ``cv2.warpAffine`` inside
  ``tf.numpy_function``;
- ``tf``: ``tf.io.decode_jpeg`` + ``tf.raw_ops.ImageProjectiveTransformV3`` (bilinear);
- ``full``: ``datasets.pipeline.build_dataset`` (OpenCV path + augmentation + codec).

Each runs with ``num_parallel_calls=AUTOTUNE``, batches, normalizes, and is timed for
``--epochs`` passes after one warm-up pass, the three paths interleaved round-robin
(median reported). Prints a table and writes JSON.

    python tools/benchmark_pipeline.py --out benchmark_pipeline.json
"""

import logging
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) would hide this tool's
# own output; an explicit setting by the user wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pose.errors import hide_native_output
from pose.options import ToolArgumentParser

if __name__ == "__main__":  # first: TensorFlow's C++ start-up lines must not reach stderr
    hide_native_output()

from datasets.coco import load_train_records
from datasets.images import read_image_rgb
from datasets.pipeline import build_dataset, normalize_batch
from datasets.synthetic import generate_coco
from datasets.transforms import crop_image, get_affine_transform
from pose.codec import HeatmapCodec
from pose.fileio import write_json

AUTOTUNE = tf.data.AUTOTUNE


def opencv_dataset(records, input_size, batch_size):
    paths = [str(p) for p in records.image_paths]
    w, h = input_size

    def load(i):
        i = int(i)
        return crop_image(read_image_rgb(paths[i]), records.centers[i], records.scales[i],
                          input_size)[0]

    def tf_load(i):
        image = tf.numpy_function(load, [i], tf.uint8, stateful=False)
        image.set_shape((h, w, 3))
        return image

    ds = tf.data.Dataset.range(len(records)).map(tf_load, num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size).map(normalize_batch, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def tf_dataset(records, input_size, batch_size):
    w, h = input_size
    transforms = []
    for c, s in zip(records.centers, records.scales):
        inv = get_affine_transform(c, s, 0.0, input_size, inverse=True)  # crop -> image
        transforms.append([inv[0, 0], inv[0, 1], inv[0, 2], inv[1, 0], inv[1, 1], inv[1, 2],
                           0.0, 0.0])
    transforms = np.asarray(transforms, np.float32)
    paths = np.asarray([str(p) for p in records.image_paths])

    def load(path, transform):
        image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        out = tf.raw_ops.ImageProjectiveTransformV3(
            images=image[None], transforms=transform[None], output_shape=tf.constant([h, w]),
            fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")
        return out[0]

    ds = tf.data.Dataset.from_tensor_slices((paths, transforms))
    ds = ds.map(load, num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size).map(normalize_batch, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def _one_pass(ds):
    t0 = time.perf_counter()
    n = 0
    for batch in ds:
        n += int(batch[0].shape[0] if isinstance(batch, tuple) else batch.shape[0])
    return n / (time.perf_counter() - t0), n


def time_datasets(datasets, epochs):
    """Median samples/s of each dataset; passes interleaved round-robin so that load from
    other processes on a shared machine hits every path alike."""
    for ds in datasets.values():
        _one_pass(ds)  # warm-up (tracing, AUTOTUNE, page cache)
    runs = {k: [] for k in datasets}
    for _ in range(epochs):
        for key, ds in datasets.items():
            runs[key].append(_one_pass(ds))
    return {k: {"samples_per_s": statistics.median(r for r, _ in v), "runs": [r for r, _ in v],
                "samples_per_epoch": v[0][1]} for k, v in runs.items()}


def main(argv=None):
    parser = ToolArgumentParser(tool="benchmark_pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--out", output="file", default="benchmark_pipeline.json",
                        help="JSON output path")
    parser.add_argument("--images", type=int, default=64, help="synthetic images to generate")
    parser.add_argument("--image-size", type=int, nargs=2, default=(640, 480), metavar=("W", "H"))
    parser.add_argument("--input-size", type=int, nargs=2, default=(192, 256), metavar=("W", "H"))
    parser.add_argument("--heatmap-size", type=int, nargs=2, default=(48, 64), metavar=("W", "H"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=5, help="timed passes (after a warm-up)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None,
                        help="reuse the data set here, or generate it here when it has none "
                             "(a new or empty folder; default: a temporary one)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out even when this tool did not write it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    from pose.checks import claim_output_file, claim_output_folder

    outputs = claim_output_file(args.out, "tools/benchmark_pipeline.py",
                                overwrite=args.overwrite)

    with tempfile.TemporaryDirectory() as tmp:
        root = args.data_dir or tmp
        if not os.path.isfile(os.path.join(root, "annotations", "person_keypoints_train2017.json")):
            # generated into --data-dir: the output policy holds there (new, empty or ours)
            generated = args.data_dir and claim_output_folder(
                args.data_dir, "tools/benchmark_pipeline.py", overwrite=args.overwrite,
                option="--data-dir")
            generate_coco(root, num_train=args.images, num_val=0, seed=args.seed,
                          image_size=tuple(args.image_size))
            if generated:
                generated.record("annotations", "train2017")
        records = load_train_records(
            os.path.join(root, "annotations", "person_keypoints_train2017.json"),
            os.path.join(root, "train2017"), tuple(args.input_size))
        input_size = tuple(args.input_size)
        codec = HeatmapCodec(input_size, tuple(args.heatmap_size), sigma=2.0)

        cv_ds = opencv_dataset(records, input_size, args.batch_size)
        tf_ds = tf_dataset(records, input_size, args.batch_size)
        a, b = next(iter(cv_ds)).numpy(), next(iter(tf_ds)).numpy()
        agreement = float(np.mean(np.abs(a - b)) * 0.226 * 255)  # mean |diff| in grey levels

        results = time_datasets({
            "opencv": cv_ds,
            "tf": tf_ds,
            "full": build_dataset(records, codec, args.batch_size, training=True,
                                  seed=args.seed),
        }, args.epochs)
    report = {
        "results": results,
        "opencv_vs_tf_mean_abs_diff_grey_levels": agreement,
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()},
        "records": len(records),
        "cpu_count": os.cpu_count(),
        "sched_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "tensorflow": tf.__version__,
        "opencv": __import__("cv2").__version__,
    }
    labels = {"opencv": "decode + warp, OpenCV (numpy_function)",
              "tf": "decode + warp, TF (decode_jpeg + ImageProjectiveTransformV3)",
              "full": "full pipeline (OpenCV + augmentation + codec.encode)"}
    print(f"{len(records)} samples from {args.images} {args.image_size[0]}x{args.image_size[1]} "
          f"JPEGs, crop {input_size[0]}x{input_size[1]}, batch {args.batch_size}, "
          f"{report['sched_cpus']} CPUs")
    print(f"{'path':<64} {'samples/s':>10}")
    for key, label in labels.items():
        print(f"{label:<64} {results[key]['samples_per_s']:>10.1f}")
    print(f"OpenCV vs TF crops: mean |diff| = {agreement:.2f} grey levels")
    write_json(report, args.out)
    outputs.record(os.path.basename(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    from pose.errors import run_tool

    sys.exit(run_tool(main))
