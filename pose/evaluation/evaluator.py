"""COCO keypoint evaluation of a model: crops → keypoints → OKS-NMS → pycocotools AP.

``evaluate`` is what ``tools/test.py`` runs and what training calls every few epochs:

    records (GT or detector boxes) ──build_eval_dataset──▶ crops
    crops ──Predictor (flip test, decode, un-warp)──▶ image keypoints + scores
    ──rescore + OKS-NMS per image──▶ COCO results JSON ──COCOeval──▶ AP table
"""

import dataclasses
import importlib.metadata
import os
import time

import keras
import numpy as np

from datasets.coco import load_coco, load_eval_records
from datasets.metadata import DatasetMeta
from datasets.pipeline import PipelineStats, build_eval_dataset
from pose.codec import make_codec
from pose.evaluation.metrics import (
    evaluate_coco_keypoints,
    format_ap_table,
    postprocess_predictions,
    write_coco_results,
)
from pose.evaluation.predictor import Predictor
from pose.fileio import write_json


def data_path(config, relative):
    """A data path of the config: absolute paths stay, others are under ``data.root``."""
    return relative if os.path.isabs(relative) else os.path.join(config.data.root, relative)


@dataclasses.dataclass
class Predictions:
    """Image-space predictions of every evaluated box, in record order."""

    keypoints: np.ndarray  # (N, K, 2) image pixels
    scores: np.ndarray  # (N, K) heatmap maxima
    image_ids: np.ndarray  # (N,)
    box_scores: np.ndarray  # (N,)
    areas: np.ndarray  # (N,) crop region area, for OKS-NMS as HRNet


def predict_records(model, records, codec, batch_size, flip_index=None, shift_heatmap=True,
                    verbose=1):
    """Run ``Predictor`` over every record; unreadable images are skipped and counted."""
    stats = PipelineStats()
    dataset = build_eval_dataset(records, codec.input_size, batch_size,
                                 udp=codec.encoding == "udp", stats=stats)
    predictor = Predictor(model, codec, flip_index=flip_index, shift_heatmap=shift_heatmap)
    progress = keras.utils.Progbar(len(records), unit_name="box", verbose=verbose)
    parts = []
    for images, meta in dataset:
        meta = {k: v.numpy() for k, v in meta.items()}
        keypoints, scores = predictor.predict(images.numpy(), meta["center"], meta["scale"])
        parts.append((keypoints, scores, meta))
        progress.add(len(keypoints))
    if not parts:
        k = records.num_keypoints
        return Predictions(np.zeros((0, k, 2)), np.zeros((0, k)), np.zeros(0, np.int64),
                           np.zeros(0), np.zeros(0)), stats
    metas = [m for _, _, m in parts]
    return Predictions(
        keypoints=np.concatenate([p[0] for p in parts]),
        scores=np.concatenate([p[1] for p in parts]),
        image_ids=np.concatenate([m["image_id"] for m in metas]),
        box_scores=np.concatenate([m["score"] for m in metas]),
        areas=np.concatenate([np.prod(m["scale"], axis=1) for m in metas]),
    ), stats


def evaluate(model, config, out_dir=None, annotation_file=None, image_dir=None,
             detections=None, use_gt_boxes=None, flip_test=None, verbose=1):
    """Evaluate ``model`` on the config's validation set (or the files given) with COCOeval.

    Args:
        model: the heatmap model.
        config: ``pose.config.Config``; ``data`` gives the files and codec, ``test`` the
            flip test, boxes, thresholds and NMS.
        out_dir: str or None; when given, ``keypoints_results.json`` (COCO results) and
            ``metrics.json`` (the 10 stats with box source, flip setting, pycocotools
            version, skipped images) are written there.
        annotation_file, image_dir: override the config's validation files.
        detections: a detection-results JSON overriding ``test.detections``.
        use_gt_boxes: bool or None (None: ``test.use_gt_boxes``, or True when no detection
            file is configured).
        flip_test: bool or None (None: ``test.flip_test``).
        verbose: 0 silent, 1 progress bar and table.

    Returns:
        dict with the 10 stats (AP, AP50, ..., ARL) and the run's settings.
    """
    test = config.test
    annotation_file = annotation_file or data_path(config, config.data.val_annotations)
    image_dir = image_dir or data_path(config, config.data.val_images)
    flip_test = test.flip_test if flip_test is None else flip_test
    if use_gt_boxes is None:
        use_gt_boxes = test.use_gt_boxes and detections is None
    box_file = None if use_gt_boxes else (detections or data_path(config, test.detections))

    coco = load_coco(annotation_file)  # read once: metadata, records and COCOeval share it
    meta = DatasetMeta.from_coco(coco, sigmas=config.data.oks_sigmas)
    codec = make_codec(config)
    records = load_eval_records(coco, image_dir, codec.input_size,
                                detections=box_file,
                                score_threshold=test.box_score_threshold,
                                missing_images=config.data.missing_images)
    if verbose:
        print(records.report.summary(), flush=True)
    start = time.perf_counter()
    if len(records):
        predictions, stats = predict_records(
            model, records, codec, test.batch_size,
            flip_index=meta.flip_index_array if flip_test else None,
            shift_heatmap=test.shift_heatmap, verbose=verbose)
        results = postprocess_predictions(
            predictions.keypoints, predictions.scores, predictions.image_ids,
            predictions.box_scores, predictions.areas, meta.sigmas_array,
            score_threshold=test.keypoint_score_threshold,
            nms_threshold=test.oks_nms_threshold, soft_nms=test.soft_nms)
        skipped = stats.as_dict()
    else:
        results, skipped = [], {}
    predict_s = time.perf_counter() - start
    metrics = evaluate_coco_keypoints(coco, results, meta.sigmas_array)
    report = {
        **metrics,
        "boxes": "ground truth" if box_file is None else os.fspath(box_file),
        "flip_test": bool(flip_test),
        "decoding": codec.decoding,
        "num_boxes": len(records),
        "num_results": len(results),
        "skipped_images": skipped,
        "predict_seconds": round(predict_s, 2),
        "pycocotools": importlib.metadata.version("pycocotools"),
        "annotations": os.fspath(annotation_file),
    }
    if verbose:
        print(format_ap_table(metrics), flush=True)
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        write_coco_results(results, os.path.join(out_dir, "keypoints_results.json"))
        write_json(report, os.path.join(out_dir, "metrics.json"))
    return report


