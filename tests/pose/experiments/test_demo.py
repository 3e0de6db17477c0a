"""Demo helpers: data generated once and reused; overlays drawn from COCO results."""

import json
import logging
import os

from pose.experiments.demo import draw_results, ensure_synthetic_data, export_and_infer


def test_synthetic_data_is_generated_once(tmp_path):
    ensure_synthetic_data(tmp_path, 3, 2, seed=1, image_size=(160, 128))
    annotations = tmp_path / "annotations" / "person_keypoints_val2017.json"
    stamp = os.stat(annotations).st_mtime_ns
    ensure_synthetic_data(tmp_path, 3, 2, seed=1, image_size=(160, 128))
    assert os.stat(annotations).st_mtime_ns == stamp
    ensure_synthetic_data(tmp_path, 3, 2, seed=2, image_size=(160, 128))  # other request
    assert os.stat(annotations).st_mtime_ns != stamp


def test_overlays_from_ground_truth_results_on_the_real_sample(tmp_path, coco_sample_dir):
    annotations = coco_sample_dir / "person_keypoints_sample.json"
    data = json.loads(annotations.read_text())
    results = [{"image_id": a["image_id"], "category_id": 1, "score": 1.0,
                "keypoints": [v if i % 3 != 2 else float(v > 0)
                              for i, v in enumerate(a["keypoints"])]}
               for a in data["annotations"] if a["num_keypoints"] > 0]
    results_file = tmp_path / "results.json"
    results_file.write_text(json.dumps(results))
    written = draw_results(results_file, annotations, coco_sample_dir / "images",
                           tmp_path / "overlays", max_images=2)
    assert len(written) == 2 and all(os.path.getsize(p) > 0 for p in written)


def test_export_and_infer_runs_the_tflite_through_the_tool(tmp_path, synthetic_coco,
                                                           tiny_config, tiny_exports, caplog,
                                                           monkeypatch):
    """The checkpoint's model goes to ``export_model`` as a float32 .tflite, whose tool run
    draws every image. The export call is answered with the session's .tflite of the same
    model (``tiny_exports``: what ``export_model`` writes is tested in
    tests/pose/apis/test_export.py)."""
    import shutil

    import numpy as np

    import pose.apis.export as export_module
    from pose.engine.checkpoint import save_model

    asked = []

    def shared_export(model, path, fmt, quantize=None, calibration=None, float_ops=()):
        asked.append((fmt, quantize))
        assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(),
                                                          tiny_exports.model.get_weights()))
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)  # as it does
        shutil.copyfile(tiny_exports.path(fmt, quantize), path)
        return os.path.abspath(path)

    monkeypatch.setattr(export_module, "export_model", shared_export)
    caplog.set_level(logging.INFO, logger="pose.experiments.demo")
    checkpoint = tmp_path / "tiny.keras"
    assert tiny_exports.config.model == tiny_config.model
    save_model(tiny_exports.model, checkpoint, tiny_config)
    startup = export_and_infer(checkpoint, synthetic_coco / "val2017",
                               synthetic_coco / tiny_config.test.detections, tmp_path / "tfl")
    assert asked == [("tflite", None)]
    assert startup.startswith("start-up: model ready") and "first overlay" in startup
    printed = caplog.text
    assert "runtime litert (ai-edge-litert" in printed and "first overlay" in printed
    images = sorted(os.listdir(synthetic_coco / "val2017"))
    overlays = sorted(os.listdir(tmp_path / "tfl" / "overlays"))
    overlays.remove("predictions.json")
    overlays.remove("summary.json")  # the run report
    overlays.remove(".psa-pose-outputs.json")  # what tools/infer.py wrote there
    assert overlays == images and (tmp_path / "tfl" / "model.yaml").is_file()
