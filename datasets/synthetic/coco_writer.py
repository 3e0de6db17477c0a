"""Writing synthetic splits in COCO's directory layout (images, annotations, detections)."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import cv2

from datasets.metadata import COCO_KEYPOINT_NAMES, COCO_SKELETON_1BASED
from datasets.synthetic.config import IDS_PER_SPLIT, SyntheticConfig
from datasets.synthetic.scene import render_sample
from pose.fileio import write_bytes, write_json

_IMAGES_PER_JOB = 16


def person_category():
    """The COCO person category with its 17 keypoint names and 1-based skeleton."""
    return {
        "supercategory": "person",
        "id": 1,
        "name": "person",
        "keypoints": list(COCO_KEYPOINT_NAMES),
        "skeleton": [list(pair) for pair in COCO_SKELETON_1BASED],
    }


def _render_images(job):
    """Render (and write, with an ``image_dir``) images ``start .. stop - 1`` of a split;
    returns their ``(image_info, annotations, detections)``. Runs in worker processes."""
    seed, split, start, stop, config, image_dir = job
    out = []
    for index in range(start, stop):
        sample = render_sample(seed, split, index, config, draw=image_dir is not None)
        if image_dir is not None:
            ok, buf = cv2.imencode(".jpg", sample.image,
                                   [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality])
            if not ok:
                raise RuntimeError(f"JPEG encoding failed for image {sample.image_info['id']}")
            write_bytes(buf.tobytes(), os.path.join(image_dir, sample.image_info["file_name"]))
        out.append((sample.image_info, sample.annotations, sample.detections))
    return out


def _dataset_info(seed, split, config):
    return {"description": f"Synthetic COCO-format person keypoints ({split}, seed {seed})",
            "url": "", "version": "1.0", "year": 2017, "contributor": "datasets.synthetic",
            "date_created": "2017/09/01",
            "generator": {"seed": int(seed), **dataclasses.asdict(config)}}


def _split_counts(split, images, annotations, detections):
    with_people = {a["image_id"] for a in annotations}
    return {
        "images": len(images),
        "empty_images": len(images) - len(with_people),
        "annotations": len(annotations),
        "people_with_keypoints": sum(1 for a in annotations if a["num_keypoints"] > 0),
        "people_without_keypoints": sum(1 for a in annotations
                                        if a["num_keypoints"] == 0 and not a["iscrowd"]),
        "crowd": sum(1 for a in annotations if a["iscrowd"]),
        "detections": len(detections) if split == "val2017" else 0,
    }


def generate_split(out_dir, split, num_images, seed, config=None, *, write_images=True,
                   workers=1):
    """Writes one split (images, keypoint annotations, and detections for val2017).

    Args:
        out_dir: str or Path, the data set root (COCO layout below it).
        split: str, "train2017" or "val2017".
        num_images: int, number of images.
        seed: int >= 0.
        config: SyntheticConfig or None.
        write_images: bool, write the JPEG files (False: JSON only, same content).
        workers: int, processes to use (the output does not depend on it).

    Returns:
        dict of counts for the split.
    """
    config = config or SyntheticConfig()
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed!r}")
    if not 0 <= num_images < IDS_PER_SPLIT - 1:
        raise ValueError(f"num_images must be in [0, {IDS_PER_SPLIT - 1}), got {num_images!r}")
    out_dir = Path(out_dir)
    annotation_dir = out_dir / "annotations"
    annotation_dir.mkdir(parents=True, exist_ok=True)
    image_dir = None
    if write_images:
        image_dir = out_dir / split
        image_dir.mkdir(parents=True, exist_ok=True)
        image_dir = str(image_dir)
    jobs = [(seed, split, i, min(i + _IMAGES_PER_JOB, num_images), config, image_dir)
            for i in range(0, num_images, _IMAGES_PER_JOB)]
    if workers > 1 and len(jobs) > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            results = pool.map(_render_images, jobs, chunksize=1)
    else:
        results = [_render_images(job) for job in jobs]
    images, annotations, detections = [], [], []
    for job_output in results:
        for info, image_annotations, image_detections in job_output:
            images.append(info)
            annotations.extend(image_annotations)
            detections.extend(image_detections)
    write_json({
        "info": _dataset_info(seed, split, config),
        "licenses": [{"url": "", "id": 1, "name": "Synthetic data, free to use"}],
        "images": images, "annotations": annotations, "categories": [person_category()]},
        annotation_dir / f"person_keypoints_{split}.json", indent=None)
    if split == "val2017":
        write_json(detections, annotation_dir / "person_detection_results_val2017.json",
                   indent=None)
    return _split_counts(split, images, annotations, detections)


def generate_coco(out_dir, num_train, num_val, seed, image_size=(640, 480), write_images=True,
                  *, workers=1, **config):
    """Writes a synthetic COCO person-keypoint data set in COCO's directory layout.

    Splits with zero images are not written (existing files are left alone). Annotation
    JSON is written last, atomically, so its presence means the split is complete.

    Args:
        out_dir: str or Path, the data set root.
        num_train: int, images in train2017.
        num_val: int, images in val2017 (also gets ``person_detection_results_val2017.json``).
        seed: int >= 0; the same seed gives byte-identical files.
        image_size: (width, height), default (640, 480).
        write_images: bool, False writes only the JSON files (with the same content).
        workers: int, processes to use; the output does not depend on it. Default 1.
        **config: any :class:`SyntheticConfig` field (``people_per_image``,
            ``false_positives_per_image``, ``empty_image_rate``, ...).

    Returns:
        dict: {"train2017": counts, "val2017": counts, "seconds": float}.

    A set shaped like COCO val2017 (5000 images, 2.7k of them with people, ~6.3k people
    with keypoints, ~100k detector boxes; its speed is in BENCHMARKS.md)::

        generate_coco(out, num_train=0, num_val=5000, seed=0, write_images=False,
                      empty_image_rate=0.46, people_per_image=2.4,
                      false_positives_per_image=19.5)
    """
    width, height = image_size
    config = SyntheticConfig(width=int(width), height=int(height), **config)
    start = time.perf_counter()
    summary = {}
    for split, count in (("train2017", num_train), ("val2017", num_val)):
        if count > 0:
            summary[split] = generate_split(out_dir, split, count, seed, config,
                                            write_images=write_images, workers=workers)
    summary["seconds"] = round(time.perf_counter() - start, 3)
    return summary
