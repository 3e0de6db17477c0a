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


def test_a_short_last_batch_is_padded_so_the_model_sees_one_batch_shape(tiny_config,
                                                                        synthetic_coco,
                                                                        randomized):
    """predict_records pads a short last batch with blank crops and drops their outputs:
    the model gets a single batch shape (one trace of its predict function, not two), and
    every box keeps the keypoints of a plain, unpadded run of the same crops; a set of one
    batch is not padded."""
    import numpy as np

    from datasets.coco import load_eval_records
    from datasets.metadata import DatasetMeta
    from pose.codec import codec_for_model
    from pose.evaluation.evaluator import predict_records
    from pose.evaluation.predictor import Predictor

    model = randomized(build_model(tiny_config.model), seed=2)
    codec = codec_for_model(model, sigma=tiny_config.data.sigma)
    flip_index = DatasetMeta.from_config(tiny_config.data).flip_index_array
    records = load_eval_records(
        str(synthetic_coco / "annotations" / "person_keypoints_val2017.json"),
        str(synthetic_coco / "val2017"), codec.input_size)
    batch_size = 4  # 10 boxes: 4, 4 and 2
    assert len(records) % batch_size, "the set must leave a short last batch"
    shapes = []
    plain_predict = model.predict_on_batch

    def spy(images):
        shapes.append(images.shape)
        return plain_predict(images)

    model.predict_on_batch = spy
    padded, _ = predict_records(model, records, codec, batch_size, flip_index=flip_index,
                                verbose=0)
    assert len(padded.keypoints) == len(records)
    assert set(shapes) == {(2 * batch_size, *codec.input_size[::-1], 3)}  # flip: 2 per crop
    # the reference: each batch as it comes, the last one short
    from datasets.pipeline import build_eval_dataset

    predictor = Predictor(model, codec, flip_index=flip_index)
    reference = np.concatenate([
        predictor.predict(images.numpy(), meta["center"].numpy(), meta["scale"].numpy())[0]
        for images, meta in build_eval_dataset(records, codec.input_size, batch_size)])
    np.testing.assert_allclose(padded.keypoints, reference, atol=1e-3)

    # a set that fits in one batch has one shape anyway: it is not padded
    shapes.clear()
    predict_records(model, records, codec, 16, flip_index=flip_index, verbose=0)
    assert shapes == [(2 * len(records), *codec.input_size[::-1], 3)]
