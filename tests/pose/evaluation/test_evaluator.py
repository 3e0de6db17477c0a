"""pose.evaluation.evaluator: what metrics.json reports about skipped images."""

import json
import shutil

from pose.engine.checkpoint import build_model
from pose.evaluation.evaluator import evaluate_config


def test_metrics_count_images_the_loader_dropped_as_missing(tmp_path, tiny_config,
                                                            synthetic_coco, randomized):
    images = tmp_path / "val2017"
    shutil.copytree(synthetic_coco / "val2017", images)
    annotations = synthetic_coco / "annotations" / "person_keypoints_val2017.json"
    used = sorted({a["image_id"] for a in json.loads(annotations.read_text())["annotations"]
                   if a["num_keypoints"] > 0})
    gone = images / f"{used[0]:012d}.jpg"
    gone.unlink()
    model = randomized(build_model(tiny_config.model))
    report = evaluate_config(model, tiny_config, out_dir=tmp_path / "out", image_dir=str(images),
                             use_gt_boxes=True, verbose=0)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["skipped_images"] == report["skipped_images"]
    assert metrics["skipped_images"]["missing_files"] == 1
    assert metrics["skipped_images"]["failed_paths"] == [str(gone)]
