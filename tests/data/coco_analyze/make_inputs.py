"""Write this folder's annotations.json and results.json (see README.md).

    python tests/data/coco_analyze/make_inputs.py

Annotations: the project's synthetic generator (COCO's 17 keypoints, annotation-only,
seed 27), without the people's outlines (``segmentation``), which keypoint evaluation
does not read. Results: for every person a detection whose labelled keypoints are each made,
by draw, good, a jitter, a left/right inversion, a swap with another person of the image
or a miss (placed at a drawn keypoint similarity ks from its target, so that every class
occurs); some people are missed, some detected twice (the second time closely), and
every image gets background false positives; scores are random (scoring errors). At most
20 detections per image, coordinates rounded to 0.01 px.
"""

import json
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.abspath(os.path.join(HERE, "..", "..", "..")))

from datasets.metadata import DatasetMeta  # noqa: E402
from datasets.synthetic import generate_coco  # noqa: E402

SEED = 27
IMAGES = 120
# class of each labelled keypoint: good, jitter, inversion, swap, miss
CLASS_PROBABILITIES = (0.55, 0.2, 0.08, 0.07, 0.1)
# a second detection of a person is close to it (so that its best OKS, the rescored
# score, can rank it above a true detection, and soft-NMS matters)
DUPLICATE_PROBABILITIES = (0.9, 0.1, 0.0, 0.0, 0.0)
KS_RANGES = {"good": (0.86, 1.0), "jitter": (0.52, 0.84), "near": (0.6, 1.0),
             "miss": (0.0, 0.3)}


def _offset(rng, ks, area, sigma):
    """A random direction at the distance whose keypoint similarity is ``ks``."""
    distance = np.sqrt(-2.0 * np.log(max(ks, 1e-12)) * area * (2 * sigma) ** 2)
    angle = rng.uniform(0, 2 * np.pi)
    return distance * np.array([np.cos(angle), np.sin(angle)])


def _detection(rng, person, others, meta, probabilities=CLASS_PROBABILITIES):
    keypoints = np.asarray(person["keypoints"], np.float64).reshape(-1, 3)
    area = float(person["area"])
    x, y, w, h = person["bbox"]
    out = np.zeros_like(keypoints)
    out[:, 2] = rng.uniform(0.05, 1.0, size=len(out))  # keypoint scores
    for k, (sigma, flip) in enumerate(zip(meta.sigmas_array, meta.flip_index_array)):
        if keypoints[k, 2] == 0:  # not labelled: anywhere in the box
            out[k, :2] = (x + rng.uniform() * w, y + rng.uniform() * h)
            continue
        kind = rng.choice(5, p=probabilities)
        target = keypoints[k, :2]
        ks_range = KS_RANGES["good"]
        if kind == 1:
            ks_range = KS_RANGES["jitter"]
        elif kind == 2 and keypoints[flip, 2] > 0 and flip != k:
            target, ks_range = keypoints[flip, :2], KS_RANGES["near"]
        elif kind == 3 and others:
            other = others[rng.integers(len(others))]
            other_keypoints = np.asarray(other["keypoints"], np.float64).reshape(-1, 3)
            if other_keypoints[k, 2] > 0:
                target, ks_range = other_keypoints[k, :2], KS_RANGES["near"]
                area = float(other["area"])
        elif kind == 4:
            ks_range = KS_RANGES["miss"]
        out[k, :2] = target + _offset(rng, rng.uniform(*ks_range), area, sigma)
        area = float(person["area"])
    return out


def _background(rng, people_pool, width, height):
    """A person-shaped false positive: a random annotated pose moved to a random place."""
    person = people_pool[rng.integers(len(people_pool))]
    keypoints = np.asarray(person["keypoints"], np.float64).reshape(-1, 3)
    x, y, w, h = person["bbox"]
    shift = np.array([rng.uniform(0, width) - x, rng.uniform(0, height) - y])
    out = np.zeros_like(keypoints)
    out[:, :2] = np.array([x + w / 2, y + h / 2]) + shift + rng.normal(size=(len(out), 2)) * (
        np.array([w, h]) / 4 + 5)
    out[:, 2] = rng.uniform(0.05, 1.0, size=len(out))
    return out


def main():
    rng = np.random.default_rng(SEED)
    with tempfile.TemporaryDirectory() as tmp:
        generate_coco(tmp, 0, IMAGES, SEED, write_images=False, people_per_image=2.5,
                      empty_image_rate=0.15, false_positives_per_image=0.0)
        with open(os.path.join(tmp, "annotations", "person_keypoints_val2017.json")) as f:
            data = json.load(f)
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = data
    coco.createIndex()
    meta = DatasetMeta.from_coco(coco)
    pool = [a for a in data["annotations"] if a.get("num_keypoints", 0) > 0]
    results = []
    for image in data["images"]:
        people = [a for a in coco.imgToAnns[image["id"]]
                  if not a.get("iscrowd", 0) and a.get("num_keypoints", 0) > 0]
        dets = []
        for person in people:
            if rng.uniform() < 0.08:  # a missed person
                continue
            others = [p for p in people if p is not person]
            dets.append(_detection(rng, person, others, meta))
            if rng.uniform() < 0.12:  # a second, worse detection of the same person
                dets.append(_detection(rng, person, others, meta, DUPLICATE_PROBABILITIES))
        for _ in range(rng.poisson(1.5)):
            dets.append(_background(rng, pool, image["width"], image["height"]))
        for keypoints in dets[:20]:
            results.append({"image_id": image["id"], "category_id": 1,
                            "keypoints": [round(float(v), 2) for v in keypoints.reshape(-1)],
                            "score": round(float(rng.uniform(0.05, 1.0)), 6)})
    for a in data["annotations"]:  # the keypoint evaluation does not read the outlines
        a.pop("segmentation", None)
    with open(os.path.join(HERE, "annotations.json"), "w") as f:
        json.dump(data, f, separators=(",", ":"))
    with open(os.path.join(HERE, "results.json"), "w") as f:
        json.dump(results, f, separators=(",", ":"))
    print(f"{len(data['images'])} images, {len(data['annotations'])} annotations, "
          f"{len(results)} results")


if __name__ == "__main__":
    main()
