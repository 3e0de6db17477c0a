"""tf.data input pipelines for top-down pose estimation (training, validation, evaluation).

``build_dataset`` yields what ``keras.Model.fit`` consumes directly::

    (images, heatmaps, target_weight)            # target_format="sample_weight" (default)
    images:        (B, H_in, W_in, 3)   float32, RGB, ImageNet mean/std normalized
    heatmaps:      (B, H_hm, W_hm, K)   float32, the codec's Gaussian targets
    target_weight: (B, K)               float32, 0 for unlabelled / out-of-crop joints

Keras treats the third element as ``sample_weight``: a loss that returns a per-joint value
of shape (B, K) (the MSE over H and W) is multiplied by it and averaged over B·K, which is
HRNet's ``JointsMSELoss(use_target_weight=True)`` up to its factor 0.5. With
``target_format="dict"`` the targets are ``(images, {"heatmaps": ..., "target_weight":
...})`` instead, for custom training loops.

``build_eval_dataset`` yields ``(images, meta)`` with ``meta`` = ``{"index", "image_id",
"center", "scale", "score", "area"}`` per sample: what the evaluator needs to map the
decoded crop coordinates back to the image (``get_affine_transform(center, scale, 0,
input_size, inverse=True)``) and to write COCO results. ``index`` is the row of the
records, so skipped samples are simply absent.

Per sample (in a ``tf.numpy_function``, ``num_parallel_calls=AUTOTUNE``): read + decode
(``datasets.images.read_image_rgb``), draw the augmentation from
``np.random.default_rng(per-sample seed)``, one ``cv2.warpAffine`` into the crop, move the
keypoints with one matrix product, ``codec.encode``. Batched in TF: uint8 → float32
normalization. An image that is missing or fails to decode is logged, counted in
``PipelineStats`` and filtered out: it never ends an epoch (a batch is then filled from the
next samples; ``drop_remainder`` keeps static shapes for training).

Randomness and determinism: the order comes from ``Dataset.shuffle(seed=seed)``
(reshuffled every epoch); each element is zipped with a seed from ``Dataset.random(seed)``
(re-randomized every epoch) before the parallel map, so a sample's augmentation depends
only on ``seed`` and the epoch, never on thread timing. ``deterministic=True`` also keeps
the output order fixed; ``False`` lets the parallel map emit out of order (same samples).

Distribution: build with the GLOBAL batch size; ``strategy.experimental_distribute_dataset``
(what ``fit`` does under a ``tf.distribute`` strategy) splits each batch across replicas.
Auto-sharding is set to ``DATA`` (there are no files to shard). With several workers that
makes every worker decode every image, so there pass ``input_context`` instead::

    strategy.distribute_datasets_from_function(
        lambda ctx: build_dataset(records, codec, GLOBAL_BATCH, True, input_context=ctx))

which shards the record indices before the map and batches per replica.

Backend choice, OpenCV vs TF-native, by measurement (``tools/benchmark_pipeline.py``;
the numbers and the machine are in BENCHMARKS.md, "Data pipeline"): OpenCV decoding and
warping in a ``numpy_function`` was faster than ``tf.io.decode_jpeg`` +
``ImageProjectiveTransformV3`` on this project's CPUs (the two crops agree to about a grey
level: different IDCT and bilinear rounding). Besides, one ``imdecode`` flag set reads
grey, palette, RGBA and 16-bit images as RGB while ignoring EXIF orientation
(``datasets.coco``); its ``warpAffine`` is the one the reference implementations use;
and the codec and augmentation sampling are NumPy anyway, so a TF-native image path would
still need a ``numpy_function`` per sample.
"""

import logging
import threading
from collections import deque

import numpy as np
import tensorflow as tf

from datasets.images import ImageDecodeError, read_image_rgb
from datasets.metadata import COCO_KEYPOINT_NAMES, DatasetMeta
from datasets.transforms import (
    Augmentation,
    crop_image,
    normalize_image,
    sample_augmentation,
    warp_sample,
)

logger = logging.getLogger(__name__)

AUTOTUNE = tf.data.AUTOTUNE
TARGET_FORMATS = ("sample_weight", "dict")


class PipelineStats:
    """Thread-safe counters of samples the pipeline skipped (read in the same process).

    Attributes:
        missing_files: int, images that did not exist at read time.
        decode_errors: int, images that exist but could not be decoded (corrupt/truncated).
        failed_paths: the failing paths, each once (the most recent 100).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self.missing_files = 0
        self.decode_errors = 0
        self.failed_paths = deque(maxlen=100)
        self._warned = set()

    @property
    def skipped(self):
        return self.missing_files + self.decode_errors

    def record_failure(self, path, exc):
        with self._lock:
            if isinstance(exc, FileNotFoundError):
                self.missing_files += 1
            else:
                self.decode_errors += 1
            first = path not in self._warned
            if first:  # each path listed once, however often it is tried
                self.failed_paths.append(path)
                if len(self._warned) < 10000:
                    self._warned.add(path)
        if first:
            logger.warning("skipping sample, cannot read %s: %s", path, exc)

    def as_dict(self):
        with self._lock:
            return {"missing_files": self.missing_files, "decode_errors": self.decode_errors,
                    "failed_paths": list(self.failed_paths)}

    def __repr__(self):
        return (f"PipelineStats(missing_files={self.missing_files}, "
                f"decode_errors={self.decode_errors})")


def _default_meta(num_keypoints):
    if num_keypoints == len(COCO_KEYPOINT_NAMES):
        return DatasetMeta.coco()
    raise ValueError(f"records have {num_keypoints} keypoints; pass meta=DatasetMeta(...) "
                     "for a non-COCO keypoint set")


class DecodedImageCache:
    """Decoded training images kept in memory, up to ``max_bytes``, for small data sets.

    JPEG decoding is nearly all of the input pipeline's CPU time (a 640×480 image: ~1 ms,
    its crop and heatmaps: ~0.1 ms), and on a 2-core machine the pipeline shares the cores
    with the training step, so a data set that fits in memory trains faster decoded once.
    Images are added until the budget is full, then read from disk as before (no eviction:
    with shuffled epochs every image is equally likely next). Failures are never cached, so
    an unreadable file is retried and counted every time. Thread-safe (the pipeline's
    parallel map calls it from several threads).
    """

    def __init__(self, max_bytes):
        self.max_bytes = int(max_bytes)
        self.bytes = 0
        self._images = {}
        self._lock = threading.Lock()

    def get(self, path, stats):
        image = self._images.get(path)
        if image is not None:
            return image
        image = _load_image(path, stats)
        if image is not None:
            with self._lock:
                if path not in self._images and self.bytes + image.nbytes <= self.max_bytes:
                    image.setflags(write=False)  # shared by every sample of this image
                    self._images[path] = image
                    self.bytes += image.nbytes
        return image


def _load_image(path, stats):
    try:
        return read_image_rgb(path)
    except (OSError, ImageDecodeError) as exc:
        stats.record_failure(path, exc)
        return None


class _TrainSampler:
    """The per-sample NumPy work of ``build_dataset`` (runs inside ``tf.numpy_function``)."""

    def __init__(self, records, codec, training, augmentation, meta, udp, stats, cache=None):
        self.paths = [str(p) for p in records.image_paths]
        self.centers = np.asarray(records.centers, np.float64)
        self.scales = np.asarray(records.scales, np.float64)
        self.keypoints = np.asarray(records.keypoints, np.float64)
        self.codec = codec
        self.input_size = tuple(int(v) for v in codec.input_size)
        self.aspect_ratio = self.input_size[0] / self.input_size[1]
        self.training = training
        self.augmentation = augmentation
        self.flip_index = np.asarray(meta.flip_index, np.int64)
        self.upper_body_ids = np.asarray(meta.upper_body_ids, np.int64)
        self.udp = udp
        self.stats = stats
        self.cache = cache
        w, h = self.input_size
        hw, hh = (int(v) for v in codec.heatmap_size)
        k = self.keypoints.shape[1]
        self.empty = (np.zeros((h, w, 3), np.uint8), np.zeros((hh, hw, k), np.float32),
                      np.zeros((k,), np.float32), np.False_)

    def __call__(self, index, sample_seed):
        i = int(index)
        if self.cache is not None:
            image = self.cache.get(self.paths[i], self.stats)
        else:
            image = _load_image(self.paths[i], self.stats)
        if image is None:
            return self.empty
        kpts = self.keypoints[i]
        center, scale = self.centers[i], self.scales[i]
        rotation, flip = 0.0, False
        if self.training:
            rng = np.random.default_rng(int(sample_seed) & 0xFFFFFFFFFFFFFFFF)
            center, scale, rotation, flip = sample_augmentation(
                rng, center, scale, kpts, kpts[:, 2] > 0, self.aspect_ratio,
                self.upper_body_ids, self.augmentation)
        crop, kpts, _ = warp_sample(image, kpts, center, scale, rotation, flip,
                                    self.input_size, self.flip_index, self.udp)
        heatmaps, weight = self.codec.encode(kpts[:, :2], kpts[:, 2])
        return (crop, heatmaps.astype(np.float32, copy=False),
                weight.astype(np.float32, copy=False), np.True_)


class _EvalSampler:
    def __init__(self, records, input_size, udp, stats):
        self.paths = [str(p) for p in records.image_paths]
        self.centers = np.asarray(records.centers, np.float64)
        self.scales = np.asarray(records.scales, np.float64)
        self.input_size = tuple(int(v) for v in input_size)
        self.udp = udp
        self.stats = stats
        self.empty = (np.zeros((self.input_size[1], self.input_size[0], 3), np.uint8),
                      np.False_)

    def __call__(self, index):
        i = int(index)
        image = _load_image(self.paths[i], self.stats)
        if image is None:
            return self.empty
        crop, _ = crop_image(image, self.centers[i], self.scales[i], self.input_size,
                             udp=self.udp)
        return crop, np.True_


def normalize_batch(images):
    """uint8 RGB batches → float32 in TF: ``datasets.transforms.normalize_image``."""
    return normalize_image(tf.cast(images, tf.float32))


def _options(deterministic):
    options = tf.data.Options()
    options.deterministic = bool(deterministic)
    # No autotuning thread: TensorFlow 2.21 does not wake it when an iterator is deleted,
    # so each deletion (the end of every fit and evaluation) waited for its sleep, which
    # doubles up to 60 s (the demo's trainings ended 27-40 s late in 4 of 8 runs). The
    # AUTOTUNE values then start (and stay) at their defaults: min(16, cores) parallel
    # calls, and a prefetch buffer that grows while the consumer waits.
    options.autotune.enabled = False
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options


def _resolve_udp(codec, udp):
    if udp is None:
        return getattr(codec, "encoding", "standard") == "udp"
    return bool(udp)


def build_dataset(records, codec, batch_size, training, seed=0, meta=None, augmentation=None,
                  shuffle=None, drop_remainder=None, deterministic=True, udp=None,
                  target_format="sample_weight", stats=None, num_parallel_calls=AUTOTUNE,
                  input_context=None, image_cache_mib=0):
    """The training (or validation-loss) dataset of crops and heatmap targets.

    (One function on purpose: its body is the single linear tf.data chain, index →
    sample → filter → batch → normalize, that the module docstring describes.)

    Args:
        records: ``datasets.coco.PoseRecords``.
        codec: ``pose.codec.HeatmapCodec`` (``input_size``, ``heatmap_size``, ``encode``).
        batch_size: int, the GLOBAL batch size (split across replicas by tf.distribute).
        training: bool, random augmentation (and by default shuffling and
            ``drop_remainder``) when True; centred crops otherwise.
        seed: int, seeds the shuffle and every sample's augmentation. Default 0.
        meta: ``DatasetMeta`` for flip pairs and half-body joints; default COCO when K=17.
        augmentation: ``datasets.transforms.Augmentation``; default HRNet's.
        shuffle: bool, default ``training``.
        drop_remainder: bool, default ``training``.
        deterministic: bool, fixed output order. Default True.
        udp: bool, UDP warp; default from ``codec.encoding == "udp"``.
        target_format: ``"sample_weight"`` → ``(x, heatmaps, target_weight)``;
            ``"dict"`` → ``(x, {"heatmaps", "target_weight"})``.
        stats: ``PipelineStats`` to count skipped samples; a new one by default.
        num_parallel_calls: parallelism of the per-sample map. Default AUTOTUNE.
        input_context: ``tf.distribute.InputContext`` from
            ``strategy.distribute_datasets_from_function``: shards the records across input
            pipelines and batches ``get_per_replica_batch_size(batch_size)``. Default None.
        image_cache_mib: keep decoded images in memory up to this many MiB
            (``DecodedImageCache``); 0 (the default) decodes every sample from disk.

    Returns:
        ``tf.data.Dataset`` (see the module docstring), prefetched.

    Example:
        >>> ds = build_dataset(records, HeatmapCodec((48, 64), (12, 16)), 8, training=True)
        >>> model.fit(ds, epochs=1)
    """
    if target_format not in TARGET_FORMATS:
        raise ValueError(f"target_format must be one of {TARGET_FORMATS}, got {target_format!r}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    if len(records) == 0:
        raise ValueError("build_dataset got no records")
    if image_cache_mib < 0:
        raise ValueError(f"image_cache_mib must be >= 0, got {image_cache_mib!r}")
    meta = meta or _default_meta(records.num_keypoints)
    if meta.num_keypoints != records.num_keypoints:
        raise ValueError(f"meta has {meta.num_keypoints} keypoints, records have "
                         f"{records.num_keypoints}")
    shuffle = training if shuffle is None else shuffle
    drop_remainder = training if drop_remainder is None else drop_remainder
    augmentation = augmentation or Augmentation()
    stats = stats if stats is not None else PipelineStats()
    cache = DecodedImageCache(image_cache_mib * 2**20) if image_cache_mib > 0 else None
    sampler = _TrainSampler(records, codec, training, augmentation, meta,
                            _resolve_udp(codec, udp), stats, cache)
    w, h = sampler.input_size
    hw, hh = (int(v) for v in codec.heatmap_size)
    k = records.num_keypoints

    def load(index, sample_seed):
        image, heatmaps, weight, ok = tf.numpy_function(
            sampler, [index, sample_seed], [tf.uint8, tf.float32, tf.float32, tf.bool],
            stateful=False)
        image.set_shape((h, w, 3))
        heatmaps.set_shape((hh, hw, k))
        weight.set_shape((k,))
        ok.set_shape(())
        return image, heatmaps, weight, ok

    def finish(images, heatmaps, weights):
        images = normalize_batch(images)
        if target_format == "dict":
            return images, {"heatmaps": heatmaps, "target_weight": weights}
        return images, heatmaps, weights

    n = len(records)
    indices = tf.data.Dataset.range(n)
    options = _options(deterministic)
    if input_context is not None:
        pipelines, pipeline_id = (input_context.num_input_pipelines,
                                  input_context.input_pipeline_id)
        indices = indices.shard(pipelines, pipeline_id)
        n = len(range(pipeline_id, n, pipelines))
        batch_size = input_context.get_per_replica_batch_size(int(batch_size))
        seed = seed + 1000003 * pipeline_id  # independent draws per pipeline
        options.experimental_distribute.auto_shard_policy = \
            tf.data.experimental.AutoShardPolicy.OFF
    if shuffle:
        indices = indices.shuffle(max(n, 1), seed=seed, reshuffle_each_iteration=True)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    ds = tf.data.Dataset.zip((indices, seeds))
    ds = ds.map(load, num_parallel_calls=num_parallel_calls, deterministic=deterministic)
    ds = ds.filter(lambda image, heatmaps, weight, ok: ok)
    ds = ds.map(lambda image, heatmaps, weight, ok: (image, heatmaps, weight))
    ds = ds.batch(int(batch_size), drop_remainder=drop_remainder)
    ds = ds.map(finish, num_parallel_calls=num_parallel_calls, deterministic=deterministic)
    ds = ds.with_options(options)
    return ds.prefetch(AUTOTUNE)


def build_eval_dataset(records, input_size, batch_size, udp=False, deterministic=True,
                       stats=None, num_parallel_calls=AUTOTUNE):
    """The inference dataset: centred crops plus what maps predictions back to the image.

    Args:
        records: ``PoseRecords`` (ground-truth or detection boxes).
        input_size: ``(w, h)`` of the model input (``codec.input_size``).
        batch_size: int, GLOBAL batch size; the last batch may be smaller.
        udp: bool, UDP warp (``codec.encoding == "udp"``). Default False.
        deterministic: bool. Default True.
        stats: ``PipelineStats``; a new one by default.
        num_parallel_calls: default AUTOTUNE.

    Returns:
        ``tf.data.Dataset`` of ``(images (B, H, W, 3) float32, meta)`` with ``meta`` =
        ``{"index": int64 (B,), "image_id": int64 (B,), "center": float32 (B, 2),
        "scale": float32 (B, 2) pixels, "score": float32 (B,), "area": float32 (B,)}``.
    """
    if len(records) == 0:
        raise ValueError("build_eval_dataset got no records")
    stats = stats if stats is not None else PipelineStats()
    sampler = _EvalSampler(records, input_size, bool(udp), stats)
    w, h = sampler.input_size
    meta = {
        "index": np.arange(len(records), dtype=np.int64),
        "image_id": np.asarray(records.image_ids, np.int64),
        "center": np.asarray(records.centers, np.float32),
        "scale": np.asarray(records.scales, np.float32),
        "score": np.asarray(records.scores, np.float32),
        "area": np.asarray(records.areas, np.float32),
    }

    def load(m):
        image, ok = tf.numpy_function(sampler, [m["index"]], [tf.uint8, tf.bool],
                                      stateful=False)
        image.set_shape((h, w, 3))
        ok.set_shape(())
        return image, m, ok

    ds = tf.data.Dataset.from_tensor_slices(meta)
    ds = ds.map(load, num_parallel_calls=num_parallel_calls, deterministic=deterministic)
    ds = ds.filter(lambda image, m, ok: ok)
    ds = ds.map(lambda image, m, ok: (image, m))
    ds = ds.batch(int(batch_size))
    ds = ds.map(lambda images, m: (normalize_batch(images), m),
                num_parallel_calls=num_parallel_calls, deterministic=deterministic)
    ds = ds.with_options(_options(deterministic))
    return ds.prefetch(AUTOTUNE)
