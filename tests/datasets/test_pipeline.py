"""tf.data pipeline: targets through the real codec, augmentation geometry, determinism,
skipped images, evaluation metadata, Keras fit and tf.distribute with the global batch."""

import dataclasses
import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
import tensorflow as tf

from datasets.coco import PoseRecords, load_eval_records, load_train_records
from datasets.images import read_image_rgb
from datasets.pipeline import (
    DecodedImageCache,
    PipelineStats,
    build_dataset,
    build_eval_dataset,
)
from datasets.transforms import IMAGENET_MEAN, IMAGENET_STD, affine_points, get_affine_transform
from pose.codec import HeatmapCodec

INPUT = (48, 64)    # (w, h)
HEATMAP = (12, 16)
STRIDE = 4.0
CODEC = HeatmapCodec(INPUT, HEATMAP, sigma=2.0)


def denormalize(images):
    return (np.asarray(images) * IMAGENET_STD + IMAGENET_MEAN) * 255.0


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from datasets import synthetic
    root = tmp_path_factory.mktemp("synth")
    synthetic.generate_coco(root, num_train=6, num_val=2, seed=11, image_size=(160, 120))
    records = load_train_records(root / "annotations" / "person_keypoints_train2017.json",
                                 root / "train2017", INPUT)
    assert len(records) >= 6
    return root, records


def collect(ds):
    parts = list(ds.as_numpy_iterator())
    return [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))]


def test_heatmap_peaks_at_encoded_positions(synth):
    _, records = synth
    # Shrink one crop so that some joints fall far outside it.
    scales = records.scales.copy()
    scales[0] *= 0.3
    records = dataclasses.replace(records, scales=scales)
    images, heatmaps, weights = collect(build_dataset(records, CODEC, 4, training=False))
    assert images.shape == (len(records), 64, 48, 3) and images.dtype == np.float32
    assert heatmaps.shape == (len(records), 16, 12, 17) and weights.shape == (len(records), 17)
    outside_checked = 0
    for i in range(len(records)):
        m = get_affine_transform(records.centers[i], records.scales[i], 0.0, INPUT)
        crop_xy = affine_points(records.keypoints[i, :, :2], m)
        visible = records.keypoints[i, :, 2] > 0
        inside = np.all((crop_xy >= 0) & (crop_xy <= np.array(INPUT) - 1), axis=1)
        far = np.any((crop_xy < -8 * STRIDE) | (crop_xy > np.array(INPUT) + 8 * STRIDE), axis=1)
        np.testing.assert_array_equal(weights[i][~visible], 0)
        assert np.all(heatmaps[i][..., ~visible] == 0)
        np.testing.assert_array_equal(weights[i][visible & inside], 1)
        np.testing.assert_array_equal(weights[i][far], 0)
        outside_checked += int((visible & far).sum())
        for k in np.flatnonzero(visible & inside):
            mu = np.trunc(crop_xy[k] / STRIDE + 0.5).astype(int)
            mu = np.minimum(mu, np.array(HEATMAP) - 1)
            peak = np.unravel_index(np.argmax(heatmaps[i, :, :, k]), (16, 12))
            assert (peak[1], peak[0]) == tuple(mu)
            assert heatmaps[i, peak[0], peak[1], k] == pytest.approx(1.0)
        # The image is the plain crop, ImageNet-normalized.
        expect = cv2.warpAffine(read_image_rgb(records.image_paths[i]), m, INPUT,
                                flags=cv2.INTER_LINEAR)
        np.testing.assert_allclose(denormalize(images[i]), expect, atol=1e-3)
    assert outside_checked > 0


def _blob_dataset(tmp_path, n):
    """n images, each a black 160x120 picture with a white disc at the left wrist only."""
    rng = np.random.default_rng(0)
    paths, kpts = [], np.zeros((n, 17, 3), np.float32)
    for i in range(n):
        base = rng.uniform([50, 30], [110, 90], size=(17, 2))
        kpts[i, :, :2] = base
        kpts[i, :12, 2] = 2
        kpts[i, 10, 2] = 0  # right wrist unlabelled: the flip must move the wrist to 10
        image = np.zeros((120, 160, 3), np.uint8)
        cv2.circle(image, (int(round(base[9, 0] * 16)), int(round(base[9, 1] * 16))), 3 * 16,
                   (255, 255, 255), -1, lineType=cv2.LINE_AA, shift=4)
        path = str(tmp_path / f"blob{i}.png")
        cv2.imwrite(path, image)
        paths.append(path)
    return PoseRecords(
        image_paths=np.array(paths), image_ids=np.arange(n), annotation_ids=np.arange(n),
        boxes=np.tile([[40, 20, 80, 80]], (n, 1)).astype(np.float32),
        centers=np.tile([[80.0, 60.0]], (n, 1)).astype(np.float32),
        scales=np.tile([[90.0, 120.0]], (n, 1)).astype(np.float32), keypoints=kpts,
        areas=np.full(n, 6400, np.float32), scores=np.ones(n, np.float32),
        image_sizes=np.tile([[160, 120]], (n, 1)).astype(np.int32))


def test_augmented_image_and_targets_agree(tmp_path):
    """Under random scale/rotation/flip/half-body the drawn wrist sits at its heatmap peak."""
    records = _blob_dataset(tmp_path, 16)
    ds = build_dataset(records, CODEC, 8, training=True, seed=3)
    flips = set()
    checked = 0
    for epoch in range(2):
        images, heatmaps, weights = collect(ds)
        for img, hm, w in zip(images, heatmaps, weights):
            assert w[9] == 0 or w[10] == 0
            k = 9 if w[9] else 10 if w[10] else None
            if k is None:
                continue
            flips.add(k)
            grey = denormalize(img).mean(-1)
            if grey.max() < 128 or grey[0].max() > 10 or grey[-1].max() > 10 \
                    or grey[:, 0].max() > 10 or grey[:, -1].max() > 10:
                continue  # the disc is cut by the crop border: its centroid is biased
            g = np.where(grey > 20, grey, 0)
            ys, xs = np.mgrid[0:64, 0:48]
            centroid = np.array([(g * xs).sum(), (g * ys).sum()]) / g.sum()
            peak = np.unravel_index(np.argmax(hm[..., k]), (16, 12))
            assert np.abs(np.array([peak[1], peak[0]]) - centroid / STRIDE).max() <= 0.75
            checked += 1
    assert flips == {9, 10}
    assert checked >= 10


def test_seeded_reproducible_and_reshuffled(tmp_path):
    records = _blob_dataset(tmp_path, 8)

    def epochs(seed, deterministic=True):
        ds = build_dataset(records, CODEC, 4, training=True, seed=seed,
                           deterministic=deterministic)
        return [collect(ds) for _ in range(2)]

    a, b, c = epochs(5), epochs(5), epochs(6)
    for x, y in zip(a[0] + a[1], b[0] + b[1]):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0][0], c[0][0])
    assert not np.array_equal(a[0][0], a[1][0])  # a new order and new draws every epoch
    # Non-deterministic order: the same samples (heatmap sums identify them).
    d = epochs(5, deterministic=False)[0]
    np.testing.assert_allclose(np.sort(d[1].sum(axis=(1, 2, 3))),
                               np.sort(a[0][1].sum(axis=(1, 2, 3))), rtol=1e-6)


def test_pipelines_run_without_the_autotuning_thread(tmp_path):
    # TensorFlow 2.21 does not wake that thread when an iterator is deleted: every fit and
    # evaluation then ended by waiting out its sleep (up to 60 s; see _options).
    records = _blob_dataset(tmp_path, 4)
    train = build_dataset(records, CODEC, 2, training=True)
    evaluation = build_eval_dataset(records, CODEC.input_size, 2)
    assert train.options().autotune.enabled is False
    assert evaluation.options().autotune.enabled is False


def test_corrupt_and_missing_images_are_skipped_and_counted(tmp_path):
    records = _blob_dataset(tmp_path, 7)
    with open(records.image_paths[2], "r+b") as f:  # corrupt: header kept, body garbage
        f.seek(40)
        f.write(b"\x00garbage" * 20)
        f.truncate()
    os.remove(records.image_paths[5])                # vanished after loading
    stats = PipelineStats()
    ds = build_dataset(records, CODEC, 2, training=True, seed=0, stats=stats)
    images, _, _ = collect(ds)
    assert len(images) == 4  # 5 good samples, drop_remainder with batch 2
    assert (stats.decode_errors, stats.missing_files) == (1, 1)
    stats = PipelineStats()
    images, meta = collect_eval(build_eval_dataset(records, INPUT, 3, stats=stats))
    assert sorted(meta["index"].tolist()) == [0, 1, 3, 4, 6]
    assert (stats.decode_errors, stats.missing_files) == (1, 1)
    assert records.image_paths[2] in stats.as_dict()["failed_paths"]
    collect_eval(build_eval_dataset(records, INPUT, 3, stats=stats))  # the same files again
    assert (stats.decode_errors, stats.missing_files) == (2, 2)  # counted per sample read,
    assert sorted(stats.as_dict()["failed_paths"]) == sorted(  # but each path listed once
        [records.image_paths[2], records.image_paths[5]])


def test_decoded_image_cache_gives_the_same_batches_within_its_budget(tmp_path):
    records = _blob_dataset(tmp_path, 8)
    plain = [collect(build_dataset(records, CODEC, 4, training=True, seed=5))]
    ds = build_dataset(records, CODEC, 4, training=True, seed=5, image_cache_mib=1)
    cached = [collect(ds)]
    for path in records.image_paths:  # the second epoch must come from memory
        os.remove(path)
    cached.append(collect(ds))
    plain_ds = build_dataset(_blob_dataset(tmp_path, 8), CODEC, 4, training=True, seed=5)
    plain.append([collect(plain_ds) for _ in range(2)][1])
    for got, want in zip(cached, plain):
        for x, y in zip(got, want):
            np.testing.assert_array_equal(x, y)

    image_bytes = 120 * 160 * 3
    records = _blob_dataset(tmp_path, 3)
    cache, stats = DecodedImageCache(2 * image_bytes + 1), PipelineStats()
    for path in records.image_paths:
        assert cache.get(path, stats).shape == (120, 160, 3)
    assert cache.bytes == 2 * image_bytes  # the third image did not fit: read, not kept
    os.remove(records.image_paths[2])
    assert cache.get(records.image_paths[0], stats) is not None  # kept
    assert cache.get(records.image_paths[2], stats) is None  # not kept: read again, missing
    assert cache.get(records.image_paths[2], stats) is None  # failures are not cached
    assert stats.missing_files == 2
    with pytest.raises(ValueError, match="image_cache_mib"):
        build_dataset(records, CODEC, 4, training=True, image_cache_mib=-1)


def collect_eval(ds):
    parts = list(ds.as_numpy_iterator())
    images = np.concatenate([p[0] for p in parts])
    meta = {k: np.concatenate([p[1][k] for p in parts]) for k in parts[0][1]}
    return images, meta


def test_eval_dataset_carries_mapping_metadata(synth):
    root, _ = synth
    records = load_eval_records(
        root / "annotations" / "person_keypoints_val2017.json", root / "val2017", INPUT,
        detections=root / "annotations" / "person_detection_results_val2017.json")
    images, meta = collect_eval(build_eval_dataset(records, INPUT, 5))
    np.testing.assert_array_equal(meta["index"], np.arange(len(records)))
    np.testing.assert_array_equal(meta["image_id"], records.image_ids)
    np.testing.assert_allclose(meta["center"], records.centers)
    np.testing.assert_allclose(meta["scale"], records.scales)
    np.testing.assert_allclose(meta["score"], records.scores)
    i = len(records) - 1
    m = get_affine_transform(records.centers[i], records.scales[i], 0.0, INPUT)
    expect = cv2.warpAffine(read_image_rgb(records.image_paths[i]), m, INPUT,
                            flags=cv2.INTER_LINEAR)
    np.testing.assert_allclose(denormalize(images[i]), expect, atol=1e-3)


def _tiny_model():
    import keras

    inputs = keras.Input((64, 48, 3))
    outputs = keras.layers.Conv2D(17, 3, strides=4, padding="same")(inputs)
    return keras.Model(inputs, outputs)


def per_joint_mse(y_true, y_pred):
    import keras

    return keras.ops.mean(keras.ops.square(y_true - y_pred), axis=(1, 2))  # (B, K)


def test_keras_fit_consumes_sample_weight_format(tmp_path):
    records = _blob_dataset(tmp_path, 8)
    ds = build_dataset(records, CODEC, 4, training=True, seed=0)
    model = _tiny_model()
    model.compile(optimizer="sgd", loss=per_joint_mse)
    history = model.fit(ds, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])
    # The weights mask joints: Keras' weighted loss equals the hand-computed masked MSE.
    x, hm, w = next(iter(ds))
    pred = model.predict_on_batch(x)
    expect = np.mean(np.mean((hm.numpy() - pred) ** 2, axis=(1, 2)) * w.numpy())
    got = model.compute_loss(x=x, y=hm, y_pred=tf.constant(pred), sample_weight=w)
    np.testing.assert_allclose(float(got), expect, rtol=1e-5)
    x, y = next(iter(build_dataset(records, CODEC, 4, training=True, target_format="dict")))
    assert set(y) == {"heatmaps", "target_weight"}


MIRRORED = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from datasets.coco import load_train_records
    from datasets.pipeline import build_dataset
    from pose.codec import HeatmapCodec
    root = sys.argv[1]
    records = load_train_records(root + "/annotations/person_keypoints_train2017.json",
                                 root + "/train2017", (48, 64))
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    ds = build_dataset(records, HeatmapCodec((48, 64), (12, 16)), 4, training=True, seed=0)
    dist = strategy.experimental_distribute_dataset(ds)
    x, hm, w = next(iter(dist))
    shapes = [tuple(t.shape) for t in strategy.experimental_local_results(x)]
    assert shapes == [(2, 64, 48, 3)] * 2, shapes
    assert [tuple(t.shape) for t in strategy.experimental_local_results(w)] == [(2, 17)] * 2
    with strategy.scope():
        inputs = keras.Input((64, 48, 3))
        model = keras.Model(inputs, keras.layers.Conv2D(17, 3, strides=4, padding="same")(inputs))
        model.compile(optimizer="sgd", loss=lambda t, p: keras.ops.mean(
            keras.ops.square(t - p), axis=(1, 2)))
    history = model.fit(ds, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])
    # Per-pipeline construction: the same global batch, split per replica.
    dist = strategy.distribute_datasets_from_function(lambda ctx: build_dataset(
        records, HeatmapCodec((48, 64), (12, 16)), 4, training=True, input_context=ctx))
    x, hm, w = next(iter(dist))
    assert [tuple(t.shape) for t in strategy.experimental_local_results(hm)] == \
        [(2, 16, 12, 17)] * 2
    print("MIRRORED_OK", shapes)
""")


def test_mirrored_strategy_splits_the_global_batch(synth):
    root, _ = synth
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, "-c", MIRRORED, str(root)], capture_output=True,
                            text=True, timeout=180, env=env)
    assert result.returncode == 0 and "MIRRORED_OK" in result.stdout, \
        result.stdout[-2000:] + result.stderr[-4000:]
