"""Forward-pass latency, tracing time and peak memory of a pose model on this machine.

Runtime settings that TensorFlow reads once per process (oneDNN, thread pools) cannot be
changed after start-up, so ``tools/benchmark.py`` runs each setting in a fresh
subprocess (``python -m pose.experiments.benchmark_worker``, see ``measure_in_subprocess``)
that calls ``measure_model`` and prints one JSON line.

Runners:
    predict_on_batch: Keras's own inference entry point (``model.predict_on_batch``).
    tf_function: the model called inside one ``tf.function`` traced per batch shape.
    xla: the same with ``jit_compile=True``.
"""

import dataclasses
import os
import resource
import statistics
import time

import numpy as np

RUNNERS = ("predict_on_batch", "tf_function", "xla")


@dataclasses.dataclass
class LatencyResult:
    batch_size: int
    first_call_s: float  # tracing + first execution, what a user waits for once
    median_s: float
    min_s: float
    repeats: int


def configure_threads(intra_op, inter_op):
    """Set TensorFlow's thread pools (``set_tensorflow_threads``: they take effect only
    before TensorFlow executes anything)."""
    from pose.apis.estimator import set_tensorflow_threads

    set_tensorflow_threads(intra_op, inter_op)


def make_forward(model, runner):
    """A callable image batch → heatmaps for the given runner (see module docstring)."""
    if runner == "predict_on_batch":
        return model.predict_on_batch
    if runner in ("tf_function", "xla"):
        import tensorflow as tf

        function = tf.function(lambda x: model(x, training=False),
                               jit_compile=runner == "xla", reduce_retracing=True)
        return lambda x: function(x).numpy()
    raise ValueError(f"runner must be one of {RUNNERS}, got {runner!r}")


def time_forward(forward, batch, repeats=5, warmup=1):
    """First-call time, then the median and minimum of ``repeats`` timed calls."""
    start = time.perf_counter()
    forward(batch)
    first = time.perf_counter() - start
    for _ in range(warmup):
        forward(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward(batch)
        times.append(time.perf_counter() - start)
    return LatencyResult(batch_size=len(batch), first_call_s=first,
                         median_s=statistics.median(times), min_s=min(times), repeats=repeats)


#: The yardstick model of ``speed_reference_ms``: HRNet-W32 at 256×192 without PSA, whose
#: batch-1 forward time BENCHMARKS.md lists for the machine every timing there was taken on.
SPEED_REFERENCE_MODEL = dict(width=32, input_size=(192, 256), psa_placement="none")


def speed_reference_ms(model_kwargs=None, repeats=5):
    """Median batch-1 forward time (ms) of the yardstick model, measured now.

    Timings of long jobs (the demo, training) vary 2-2.5x between days on shared
    machines; printed beside one, this tells a slow machine from a slow job: compare it
    with the yardstick's time in BENCHMARKS.md. Builds the model (HRNet-W32: about 10 s
    with its first call), times ``repeats`` ``predict_on_batch`` calls after one warm-up.

    Args:
        model_kwargs: ``HRNet`` keyword arguments; default ``SPEED_REFERENCE_MODEL``.
        repeats: int, timed calls. Default 5.
    """
    from pose.models.hrnet import HRNet

    model = HRNet(**(model_kwargs or SPEED_REFERENCE_MODEL))
    width, height = model.input_size
    image = np.random.default_rng(0).normal(size=(1, height, width, 3)).astype("float32")
    return time_forward(make_forward(model, "predict_on_batch"), image,
                        repeats=repeats).median_s * 1e3


def peak_memory_mib():
    """This process's peak resident memory so far (Linux ``ru_maxrss`` is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_model(model_kwargs, batch_sizes=(1, 8), runner="predict_on_batch", repeats=5,
                  seed=0):
    """Build an ``HRNet`` and time its forward pass; returns a JSON-ready dict."""
    from pose.models.complexity import count_macs, count_trainable_params
    from pose.models.hrnet import HRNet

    start = time.perf_counter()
    model = HRNet(**model_kwargs)
    build_s = time.perf_counter() - start
    forward = make_forward(model, runner)
    width, height = model.input_size
    rng = np.random.default_rng(seed)
    results = {
        "params": count_trainable_params(model),
        "macs": count_macs(model),
        "build_s": build_s,
        "runner": runner,
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
    }
    for batch_size in batch_sizes:
        batch = rng.normal(size=(batch_size, height, width, 3)).astype("float32")
        latency = time_forward(forward, batch, repeats=repeats)
        results[f"batch{batch_size}"] = dataclasses.asdict(latency)
    results["peak_memory_mib"] = peak_memory_mib()
    return results


@dataclasses.dataclass(frozen=True)
class RuntimeSetting:
    """Process-wide settings under which one measurement runs."""

    onednn: str = "1"  # TF_ENABLE_ONEDNN_OPTS: "0" or "1"
    intra_op: int = 2
    inter_op: int = 2
    runner: str = "predict_on_batch"

    def label(self):
        return (f"oneDNN={self.onednn} intra={self.intra_op} inter={self.inter_op} "
                f"{self.runner}")


def measure_in_subprocess(setting, model_kwargs, batch_sizes=(1, 8), repeats=5, timeout=900):
    """Run ``measure_model`` in a fresh Python with ``setting`` applied; return its dict."""
    import json
    import subprocess
    import sys

    request = {"setting": dataclasses.asdict(setting), "model": model_kwargs,
               "batch_sizes": list(batch_sizes), "repeats": repeats}
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=setting.onednn, TF_CPP_MIN_LOG_LEVEL="2")
    completed = subprocess.run([sys.executable, "-m", "pose.experiments.benchmark_worker",
                                json.dumps(request)],
                               env=env, capture_output=True, text=True, timeout=timeout)
    if completed.returncode != 0:
        raise RuntimeError(f"benchmark worker failed for {setting.label()}:\n"
                           f"{completed.stderr[-3000:]}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result["setting"] = dataclasses.asdict(setting)
    return result


def _timed(timings, name, fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    timings[name] = time.perf_counter() - start
    return out


def simulated_keypoints(records, gt_records, rng, noise=0.01):
    """Predictions for every box: its best-overlapping GT person's keypoints plus noise
    (σ = ``noise`` × box size), random points in the box for boxes on no one."""
    n, k = len(records), records.num_keypoints
    boxes = records.boxes.astype(np.float64)
    keypoints = boxes[:, None, :2] + rng.uniform(size=(n, k, 2)) * boxes[:, None, 2:]
    gt_by_image = {}
    for j, image_id in enumerate(gt_records.image_ids.tolist()):
        gt_by_image.setdefault(image_id, []).append(j)
    for image_id, members in gt_by_image.items():
        dets = np.flatnonzero(records.image_ids == image_id)
        if not len(dets):
            continue
        gt_boxes = gt_records.boxes[members].astype(np.float64)  # (G, 4)
        det_boxes = boxes[dets]  # (D, 4)
        x1 = np.maximum(det_boxes[:, None, 0], gt_boxes[None, :, 0])
        y1 = np.maximum(det_boxes[:, None, 1], gt_boxes[None, :, 1])
        x2 = np.minimum((det_boxes[:, 0] + det_boxes[:, 2])[:, None],
                        (gt_boxes[:, 0] + gt_boxes[:, 2])[None])
        y2 = np.minimum((det_boxes[:, 1] + det_boxes[:, 3])[:, None],
                        (gt_boxes[:, 1] + gt_boxes[:, 3])[None])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)  # (D, G)
        union = (det_boxes[:, 2:].prod(1)[:, None] + gt_boxes[:, 2:].prod(1)[None] - inter)
        iou = inter / np.maximum(union, 1e-9)
        best = iou.argmax(1)
        matched = iou[np.arange(len(dets)), best] > 0.5
        truth = gt_records.keypoints[np.array(members)[best[matched]], :, :2]  # (M, K, 2)
        size = det_boxes[matched, 2:].max(1)[:, None, None]
        keypoints[dets[matched]] = truth + rng.normal(size=truth.shape) * noise * size
    return keypoints


def _val2017_scale_set(out_dir, num_images, seed, timings):
    """Generate (annotation-only) and load a val2017-like set: its generator summary, the
    annotation and detection files, and the loaded COCO object (times into ``timings``)."""
    from datasets.coco import load_coco
    from datasets.synthetic import generate_coco

    summary = _timed(timings, "generate_annotations_s", generate_coco, out_dir, 0, num_images,
                     seed, write_images=False, empty_image_rate=0.46, people_per_image=2.4,
                     false_positives_per_image=19.5)["val2017"]
    annotations = os.path.join(out_dir, "annotations", "person_keypoints_val2017.json")
    detections = os.path.join(out_dir, "annotations", "person_detection_results_val2017.json")
    coco = _timed(timings, "load_annotations_s", load_coco, annotations)
    return summary, annotations, detections, coco


def benchmark_evaluation_scale(out_dir, num_images=5000, batch_size=512, seed=0):
    """Post-processing and COCOeval time at COCO val2017 size (annotation-only data).

    Generates a val2017-sized set of annotations and ~100k detector boxes, then times the
    evaluation path after the network: loading the boxes, decoding one heatmap batch per
    ``batch_size`` boxes (heatmaps from the codec, so the work is the real decode) and
    mapping to the image, rescoring + OKS-NMS per image, and pycocotools COCOeval on
    predictions simulated around the ground truth; then the keypoint error diagnosis
    (``pose.evaluation.diagnosis.diagnose``) of the same results, and its time over
    COCOeval's. Returns a JSON-ready dict.
    """
    from datasets.coco import load_eval_records
    from datasets.metadata import DatasetMeta
    from pose.codec import HeatmapCodec
    from pose.evaluation.diagnosis import diagnose
    from pose.evaluation.metrics import evaluate_coco_keypoints, postprocess_predictions
    from pose.evaluation.predictor import crop_to_image

    timings = {}
    summary, annotations, detections, coco = _val2017_scale_set(out_dir, num_images, seed,
                                                                 timings)
    meta = DatasetMeta.from_coco(coco)
    records = _timed(timings, "load_detection_records_s", load_eval_records, coco,
                     os.path.join(out_dir, "val2017"), (192, 256), detections=detections,
                     missing_images="unchecked")
    gt_records = load_eval_records(coco, os.path.join(out_dir, "val2017"), (192, 256),
                                   missing_images="unchecked")

    codec = HeatmapCodec((192, 256), (48, 64), sigma=2.0)
    rng = np.random.default_rng(seed)
    encoded = np.stack([codec.encode(rng.uniform([8, 8], [184, 248], size=(17, 2)),
                                     np.full(17, 2))[0] for _ in range(batch_size)])
    start = time.perf_counter()
    for begin in range(0, len(records), batch_size):
        end = min(begin + batch_size, len(records))
        coords, scores = codec.decode(encoded[:end - begin])
        crop_to_image(coords, records.centers[begin:end], records.scales[begin:end],
                      codec.input_size)
    timings["decode_and_unwarp_s"] = time.perf_counter() - start

    keypoints = simulated_keypoints(records, gt_records, rng)
    keypoint_scores = rng.uniform(0.1, 1.0, size=keypoints.shape[:2])
    results = _timed(timings, "rescore_and_oks_nms_s", postprocess_predictions, keypoints,
                     keypoint_scores, records.image_ids, records.scores,
                     records.scales.prod(axis=1), meta.sigmas_array)
    stats = _timed(timings, "cocoeval_s", evaluate_coco_keypoints, coco, results,
                   meta.sigmas_array)
    timings["post_processing_and_cocoeval_s"] = (
        timings["decode_and_unwarp_s"] + timings["rescore_and_oks_nms_s"]
        + timings["cocoeval_s"])
    # the keypoint error diagnosis of the same results (issue 27: at most 2x COCOeval)
    report = _timed(timings, "error_diagnosis_s", diagnose, coco, results, meta)
    if report["ap_steps"]["original"]["AP"] != stats["AP"]:  # the same COCOeval AP
        raise RuntimeError(f"the diagnosis' AP {report['ap_steps']['original']['AP']} is "
                             f"not COCOeval's {stats['AP']}")
    return {"images": summary["images"], "people_with_keypoints":
            summary["people_with_keypoints"], "boxes": len(records), "results": len(results),
            "AP_of_simulated_predictions": stats["AP"], **timings,
            "diagnosis_over_cocoeval": timings["error_diagnosis_s"] / timings["cocoeval_s"],
            "diagnosis_counts": report["counts"], "peak_memory_mib": peak_memory_mib()}


def benchmark_bootstrap(out_dir, num_images=5000, num_resamples=1000, seed=0,
                        noise=(0.01, 0.012)):
    """Paired bootstrap intervals at COCO val2017 size (annotation-only generated data).

    Two "variants" predict every detector box around the ground truth with the keypoint
    noise levels ``noise`` (the second slightly worse); each is matched once by COCOeval,
    then ``num_resamples`` paired resamples of the images are re-accumulated. Returns a
    JSON-ready dict with the timings and the intervals.
    """
    from datasets.coco import load_eval_records
    from datasets.metadata import DatasetMeta
    from pose.evaluation.bootstrap import PerImageMatches, paired_differences
    from pose.evaluation.metrics import postprocess_predictions, run_cocoeval

    timings = {}
    summary, annotations, detections, coco = _val2017_scale_set(out_dir, num_images, seed,
                                                                 timings)
    meta = DatasetMeta.from_coco(coco)
    image_dir = os.path.join(out_dir, "val2017")
    records = load_eval_records(coco, image_dir, (192, 256), detections=detections,
                                missing_images="unchecked")
    gt_records = load_eval_records(coco, image_dir, (192, 256), missing_images="unchecked")
    matches, results_count = {}, {}
    for i, level in enumerate(noise):
        rng = np.random.default_rng(seed + i)
        keypoints = simulated_keypoints(records, gt_records, rng, noise=level)
        scores = rng.uniform(0.1, 1.0, size=keypoints.shape[:2])
        results = postprocess_predictions(keypoints, scores, records.image_ids,
                                          records.scores, records.scales.prod(axis=1),
                                          meta.sigmas_array)
        label = f"noise {level}"
        results_count[label] = len(results)
        cocoeval = _timed(timings, f"cocoeval_evaluate_{i}_s", run_cocoeval, coco, results,
                          meta.sigmas_array)
        matches[label] = [_timed(timings, f"collect_matches_{i}_s",
                                 PerImageMatches.from_cocoeval, cocoeval)]
    pairs = _timed(timings, "bootstrap_s", paired_differences, matches,
                   num_resamples=num_resamples, seed=seed)
    return {"images": summary["images"], "people_with_keypoints":
            summary["people_with_keypoints"], "boxes": len(records), "results": results_count,
            "resamples": num_resamples, "differences": pairs, **timings,
            "peak_memory_mib": peak_memory_mib()}
