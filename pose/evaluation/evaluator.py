"""COCO keypoint evaluation of a model: crops → keypoints → OKS-NMS → pycocotools AP.

``evaluate`` takes the model, its codec, the dataset metadata and the ``test`` section of
the config (training's ``ValidationAP`` calls it every few epochs); ``evaluate_config``
slices a whole config for it (``tools/test.py``, the PSA comparison):

    records (GT or detector boxes) ──build_eval_dataset──▶ crops
    crops ──Predictor (flip test, decode, un-warp)──▶ image keypoints + scores
    ──rescore + OKS-NMS per image──▶ COCO results JSON ──COCOeval──▶ AP table
"""

import dataclasses
import importlib.metadata
import logging
import os
import time

import keras
import numpy as np

from datasets.coco import AnnotationError, load_coco, load_eval_records
from datasets.metadata import DatasetMeta, MetadataError
from datasets.pipeline import PipelineStats, build_eval_dataset
from pose.checks import check_output_file, check_output_folder
from pose.codec import codec_for_model
from pose.evaluation.metrics import (
    evaluate_coco_keypoints,
    format_ap_table,
    postprocess_predictions,
    write_coco_results,
)
from pose.evaluation.predictor import Predictor
from pose.fileio import write_json

logger = logging.getLogger(__name__)


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
    """Run ``Predictor`` over every record; unreadable images are skipped and counted.

    A short last batch after full ones is padded with blank crops up to ``batch_size``
    (their outputs dropped): every batch has one shape, so the model's predict function is
    traced once, not twice (a W32 trace costs ~10 s on a CPU, more than the padded crops).
    A set that fits in one batch is not padded: its one shape is traced once anyway.
    """
    stats = PipelineStats()
    dataset = build_eval_dataset(records, codec.input_size, batch_size,
                                 udp=codec.encoding == "udp", stats=stats)
    predictor = Predictor(model, codec, flip_index=flip_index, shift_heatmap=shift_heatmap)
    progress = keras.utils.Progbar(len(records), unit_name="box", verbose=verbose)
    parts = []
    for images, meta in dataset:
        meta = {k: v.numpy() for k, v in meta.items()}
        images = images.numpy()  # (n, H, W, 3), n <= batch_size
        count = len(images)
        if parts and count < batch_size:  # the model has seen full batches
            blank = np.zeros((batch_size - count, *images.shape[1:]), images.dtype)
            images = np.concatenate([images, blank])  # (batch_size, H, W, 3)
        heatmaps = predictor.heatmaps(images)[:count]
        keypoints, scores = predictor.keypoints(heatmaps, meta["center"], meta["scale"])
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


def evaluate(model, codec, meta, test_cfg, annotations, image_dir, detections=None, *,
             use_gt_boxes=None, flip_test=None, missing_images="skip", out_dir=None,
             verbose=1, model_info=None):
    """Evaluate ``model`` on a COCO-format set with pycocotools' COCOeval.

    Args:
        model: the heatmap model.
        codec: ``pose.codec.HeatmapCodec`` of the model (``codec_for_model``).
        meta: ``DatasetMeta`` (flip pairs, OKS sigmas), or None to read it from the
            annotations' person category with COCO's sigmas.
        test_cfg: ``pose.config.TestConfig``: flip test, batch size, box source, thresholds
            and NMS.
        annotations: a COCO keypoint annotation file, or the ``COCO`` object
            ``datasets.coco.load_coco`` made of it (read once by a caller that evaluates often).
        image_dir: the images' folder.
        detections: a detection-results JSON of person boxes (the config's
            ``data.resolve(test.detections)``), or None.
        use_gt_boxes: bool or None (None: ``test_cfg.use_gt_boxes``, or True when no
            ``detections`` are given).
        flip_test: bool or None (None: ``test_cfg.flip_test``).
        missing_images: "skip" or "error" (``data.missing_images``). Default "skip".
        out_dir: str or None; when given, ``keypoints_results.json`` (COCO results) and
            ``metrics.json`` (the 10 stats with box source, flip setting, pycocotools
            version, skipped images) are written there.
        verbose: 0 silent, 1 progress bar, and the box summary and AP table logged.
        model_info: dict recorded as the report's ``model`` (the file, runtime and
            precision that ``tools/test.py`` evaluated), or None.

    Returns:
        dict with the 10 stats (AP, AP50, ..., ARL) and the run's settings.
    """
    flip_test = test_cfg.flip_test if flip_test is None else flip_test
    if use_gt_boxes is None:
        use_gt_boxes = test_cfg.use_gt_boxes or detections is None
    if not use_gt_boxes and detections is None:
        raise ValueError("evaluate: use_gt_boxes=False needs a detections file")
    box_file = None if use_gt_boxes else detections

    # Read once: metadata, records and COCOeval share it.
    coco = load_coco(annotations) if isinstance(annotations, (str, os.PathLike)) else annotations
    annotation_file = getattr(coco, "annotation_file", None) or "(COCO object)"
    if out_dir is not None:  # before anything is written: never over an input
        check_evaluation_output(out_dir, image_dir, [annotation_file, box_file])
    if not os.path.isdir(image_dir):
        raise AnnotationError(f"images folder not found: {image_dir} (the images of "
                              f"{annotation_file})")
    meta = meta if meta is not None else DatasetMeta.from_coco(coco)
    records = load_eval_records(coco, image_dir, codec.input_size,
                                detections=box_file,
                                score_threshold=test_cfg.box_score_threshold,
                                missing_images=missing_images)
    # datasets.coco logs the records' load report (INFO, or WARNING with problems).
    if not len(records):  # an AP of -1 (or 0) would look like a result
        raise AnnotationError(f"nothing to evaluate: no usable person box lies on an image "
                              f"of {annotation_file}: {records.report.summary()}")
    start = time.perf_counter()
    predictions, stats = predict_records(
        model, records, codec, test_cfg.batch_size,
        flip_index=meta.flip_index_array if flip_test else None,
        shift_heatmap=test_cfg.shift_heatmap, verbose=verbose)
    if not len(predictions.image_ids):
        raise AnnotationError(
            f"nothing to evaluate: none of the images of {annotation_file} could be read "
            f"from {image_dir} ({stats.missing_files} missing, {stats.decode_errors} not "
            f"decodable), e.g. {list(stats.failed_paths)[:3]}")
    results = postprocess_predictions(
        predictions.keypoints, predictions.scores, predictions.image_ids,
        predictions.box_scores, predictions.areas, meta.sigmas_array,
        score_threshold=test_cfg.keypoint_score_threshold,
        nms_threshold=test_cfg.oks_nms_threshold, soft_nms=test_cfg.soft_nms)
    skipped = stats.as_dict()
    # Images the loader already dropped as missing never reach the pipeline: count them too.
    skipped["missing_files"] += records.report.missing_image_files
    skipped["failed_paths"] = list(dict.fromkeys(
        list(records.report.missing_image_paths) + skipped["failed_paths"]))
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
        **({"model": model_info} if model_info is not None else {}),
    }
    if verbose:
        logger.info(format_ap_table(metrics))
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        write_coco_results(results, os.path.join(out_dir, "keypoints_results.json"))
        write_json(report, os.path.join(out_dir, "metrics.json"))
    return report


EVALUATION_OUTPUTS = ("keypoints_results.json", "metrics.json")


def check_evaluation_output(out_dir, image_dir=None, inputs=(), option="output folder"):
    """Refuse ``out_dir`` for ``evaluate``'s files before anything is written: a file,
    the images folder itself, a place that cannot be written, or a folder where one of
    the written files (``EVALUATION_OUTPUTS``) would replace an input file."""
    check_output_folder(out_dir, [image_dir], option=option)
    for name in EVALUATION_OUTPUTS:
        check_output_file(os.path.join(out_dir, name), inputs, option=option)


def evaluate_config(model, config, out_dir=None, annotation_file=None, image_dir=None,
                    detections=None, use_gt_boxes=None, flip_test=None, verbose=1,
                    model_info=None):
    """``evaluate`` with the slices of an experiment ``Config`` (what ``tools/test.py`` and
    the PSA comparison run): the codec from the model and ``data``/``test``, the validation
    files and detections of ``data``/``test`` unless given, the metadata from the
    annotations checked against ``data`` (``DatasetMeta.from_config``: preset, sigmas).

    Args:
        model: the heatmap model.
        config: ``pose.config.Config``.
        out_dir, use_gt_boxes, flip_test, verbose, model_info: as ``evaluate``.
        annotation_file, image_dir: override the config's validation files.
        detections: a detection-results JSON overriding ``test.detections`` (and then used
            unless ``use_gt_boxes`` is True).

    Returns:
        ``evaluate``'s report.
    """
    data, test = config.data, config.test
    codec = codec_for_model(model, sigma=data.sigma, encoding=data.encoding,
                            decoding=test.decoding, input_size=config.model.input_size)
    coco = load_coco(annotation_file or data.resolve(data.val_annotations))
    meta = DatasetMeta.from_coco(coco, data=data)
    if meta.num_keypoints != config.model.num_keypoints:
        raise MetadataError(f"{coco.annotation_file} has {meta.num_keypoints} keypoints but "
                            f"the model predicts {config.model.num_keypoints}")
    if use_gt_boxes is None and detections is not None:
        use_gt_boxes = False
    return evaluate(model, codec, meta, test, coco, image_dir or data.resolve(data.val_images),
                    detections or data.resolve(test.detections), use_gt_boxes=use_gt_boxes,
                    flip_test=flip_test, missing_images=data.missing_images, out_dir=out_dir,
                    verbose=verbose, model_info=model_info)
