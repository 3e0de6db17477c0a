"""A realistically sized person detector for the detector + pose benchmark
(``tools/benchmark_startup.py --detectors``), and the box files of its pose-alone rows.

No detector weights can be downloaded here, so the benchmark builds the network users
run: a YOLOv8n-shaped detector (Ultralytics' ``yolov8n.yaml``: a C2f/SPPF backbone, a PAN
neck, the decoupled head with 16-bin DFL box regression over strides 8, 16, 32; 80
classes; 3.2 M parameters at width 0.25, depth 0.33) with random weights (speed does not
depend on the values), exported the way Ultralytics exports it: an ``.onnx`` with an NCHW
float input and a (1, 84, 8400) output in input pixels, a ``.tflite`` with an NHWC input
and the boxes divided by the input size. ``PERSON_BIAS`` makes every candidate a person;
``--max-people`` then fixes the people per image.
"""

import os

import keras
import numpy as np
from keras import layers, ops

STRIDES = (8, 16, 32)
REG_MAX = 16  # DFL bins per box side
# Random weights score every class about 0.5; a person-class bias of 2 (score ~0.88) makes
# person the best class of every candidate, so there are always people to cap at
# --max-people (all 8400 candidates then go through the threshold and NMS: 26 ms of
# cv2.dnn.NMSBoxes on this machine, a worst case next to a trained detector's few hundred).
PERSON_BIAS = 2.0


def _conv(x, filters, kernel=1, strides=1, name=None):
    """Ultralytics' ``Conv``: convolution (no bias), batch norm, SiLU."""
    x = layers.Conv2D(filters, kernel, strides, padding="same", use_bias=False,
                      name=f"{name}_conv")(x)
    x = layers.BatchNormalization(epsilon=1e-3, momentum=0.97, name=f"{name}_bn")(x)
    return layers.Activation("silu", name=f"{name}_act")(x)


def _c2f(x, filters, blocks, shortcut, name):
    """``C2f``: a 1x1 convolution split in two halves (here two 1x1 convolutions, the
    same arithmetic), ``blocks`` bottlenecks on the second, all concatenated, 1x1 out."""
    half = filters // 2
    parts = [_conv(x, half, name=f"{name}_cv1a"), _conv(x, half, name=f"{name}_cv1b")]
    for i in range(blocks):
        y = _conv(parts[-1], half, 3, name=f"{name}_m{i}_cv1")
        y = _conv(y, half, 3, name=f"{name}_m{i}_cv2")
        parts.append(layers.Add(name=f"{name}_m{i}_add")([parts[-1], y]) if shortcut else y)
    x = layers.Concatenate(name=f"{name}_cat")(parts)
    return _conv(x, filters, name=f"{name}_cv2")


def _sppf(x, filters, name):
    x = _conv(x, filters // 2, name=f"{name}_cv1")
    pools = [x]
    for i in range(3):
        pools.append(layers.MaxPooling2D(5, 1, padding="same", name=f"{name}_pool{i}")(
            pools[-1]))
    return _conv(layers.Concatenate(name=f"{name}_cat")(pools), filters, name=f"{name}_cv2")


class YoloDecode(layers.Layer):
    """YOLOv8's ``Detect`` inference: DFL expectation of the 16 bins per side, distances
    from the anchor points to ``cx, cy, w, h`` times the stride (divided by the input
    size when ``normalised``, as Ultralytics' TFLite export does), sigmoid class scores;
    (B, 4 + C, N)."""

    def __init__(self, input_size, normalised=False, **kwargs):
        super().__init__(**kwargs)
        self.input_size, self.normalised = int(input_size), bool(normalised)
        anchors, strides = [], []
        for s in STRIDES:
            side = self.input_size // s
            xv, yv = np.meshgrid(np.arange(side) + 0.5, np.arange(side) + 0.5)
            anchors.append(np.stack([xv, yv], -1).reshape(-1, 2))  # (side*side, 2)
            strides.append(np.full((side * side, 1), s))
        self.anchors = np.concatenate(anchors).astype("float32")  # (N, 2)
        self.strides = np.concatenate(strides).astype("float32")  # (N, 1)

    def call(self, inputs):
        boxes, scores = inputs  # (B, N, 4 * REG_MAX), (B, N, C)
        n = ops.shape(boxes)[1]
        bins = ops.softmax(ops.reshape(boxes, (-1, n, 4, REG_MAX)), axis=-1)  # (B, N, 4, 16)
        dist = ops.sum(bins * ops.arange(REG_MAX, dtype="float32"), axis=-1)  # (B, N, 4)
        lt, rb = dist[..., :2], dist[..., 2:]
        xy1, xy2 = self.anchors - lt, self.anchors + rb
        xywh = ops.concatenate([(xy1 + xy2) / 2, xy2 - xy1], axis=-1) * self.strides
        if self.normalised:
            xywh = xywh / float(self.input_size)
        out = ops.concatenate([xywh, ops.sigmoid(scores)], axis=-1)  # (B, N, 4 + C)
        return ops.transpose(out, (0, 2, 1))  # (B, 4 + C, N)

    def get_config(self):
        return {**super().get_config(), "input_size": self.input_size,
                "normalised": self.normalised}


def yolov8_like(input_size=640, width=0.25, depth=0.33, num_classes=80, channels_first=True,
                normalised=False, seed=0):
    """The YOLOv8-shaped detector (``yolov8n.yaml`` at width 0.25, depth 0.33), random
    weights. ``channels_first``: an NCHW input as in Ultralytics' ONNX files."""
    keras.utils.set_random_seed(seed)

    def ch(c):
        return max(16, int(round(c * width / 8)) * 8)

    def n(b):
        return max(1, round(b * depth))

    if channels_first:
        inputs = keras.Input((3, input_size, input_size), name="images")
        x = layers.Permute((2, 3, 1), name="to_nhwc")(inputs)  # (B, H, W, 3)
    else:
        inputs = x = keras.Input((input_size, input_size, 3), name="images")
    x = _conv(x, ch(64), 3, 2, name="b0")
    x = _conv(x, ch(128), 3, 2, name="b1")
    x = _c2f(x, ch(128), n(3), True, "b2")
    x = _conv(x, ch(256), 3, 2, name="b3")
    p3 = _c2f(x, ch(256), n(6), True, "b4")
    x = _conv(p3, ch(512), 3, 2, name="b5")
    p4 = _c2f(x, ch(512), n(6), True, "b6")
    x = _conv(p4, ch(1024), 3, 2, name="b7")
    x = _c2f(x, ch(1024), n(3), True, "b8")
    p5 = _sppf(x, ch(1024), "b9")
    x = layers.Concatenate(name="n10")([layers.UpSampling2D(name="up10")(p5), p4])
    h4 = _c2f(x, ch(512), n(3), False, "n12")
    x = layers.Concatenate(name="n13")([layers.UpSampling2D(name="up13")(h4), p3])
    o3 = _c2f(x, ch(256), n(3), False, "n15")
    x = layers.Concatenate(name="n17")([_conv(o3, ch(256), 3, 2, name="n16"), h4])
    o4 = _c2f(x, ch(512), n(3), False, "n18")
    x = layers.Concatenate(name="n20")([_conv(o4, ch(512), 3, 2, name="n19"), p5])
    o5 = _c2f(x, ch(1024), n(3), False, "n21")

    c2, c3 = max(16, ch(256) // 4, 4 * REG_MAX), max(ch(256), min(num_classes, 100))
    boxes, scores = [], []
    for i, feat in enumerate((o3, o4, o5)):
        b = _conv(_conv(feat, c2, 3, name=f"h{i}_box0"), c2, 3, name=f"h{i}_box1")
        b = layers.Conv2D(4 * REG_MAX, 1, name=f"h{i}_box2")(b)
        c = _conv(_conv(feat, c3, 3, name=f"h{i}_cls0"), c3, 3, name=f"h{i}_cls1")
        c = layers.Conv2D(num_classes, 1, name=f"h{i}_cls2")(c)
        boxes.append(layers.Reshape((-1, 4 * REG_MAX), name=f"h{i}_box_flat")(b))  # (B, hw, 64)
        scores.append(layers.Reshape((-1, num_classes), name=f"h{i}_cls_flat")(c))  # (B, hw, C)
    boxes = layers.Concatenate(axis=1, name="boxes")(boxes)  # (B, N, 64)
    scores = layers.Concatenate(axis=1, name="scores")(scores)  # (B, N, C)
    out = YoloDecode(input_size, normalised, name="detect")([boxes, scores])
    return keras.Model(inputs, out, name="yolov8_like")


def make_detector_file(workdir, fmt, input_size=640):
    """The benchmark detector as a user's file: ``yolov8_like.onnx`` (NCHW, pixels) or
    ``yolov8_like.tflite`` (NHWC, normalised) in ``workdir``, made once; its path and
    parameter count."""
    from pose.apis.export import export_model

    path = os.path.join(os.fspath(workdir), f"yolov8_like_{input_size}.{fmt}")
    model = yolov8_like(input_size, channels_first=fmt == "onnx", normalised=fmt == "tflite")
    for i in range(len(STRIDES)):  # people everywhere: person the best class of every box
        bias = model.get_layer(f"h{i}_cls2").bias
        bias.assign(ops.convert_to_tensor(np.eye(1, bias.shape[0])[0] * PERSON_BIAS, "float32"))
    if not os.path.isfile(path):
        export_model(model, path, fmt)
    return path, int(model.count_params())


def people_boxes(image_sizes, people):
    """``people`` boxes per image as detection entries (matched by file name) for the
    pose-alone rows: a grid of equal boxes over each image, score 0.9."""
    entries = []
    cols = int(np.ceil(np.sqrt(people)))
    rows = int(np.ceil(people / cols))
    for image_id, (name, (w, h)) in enumerate(sorted(image_sizes.items()), start=1):
        bw, bh = w / cols, h / rows
        for k in range(people):
            r, c = divmod(k, cols)
            entries.append({"image_id": image_id, "category_id": 1, "score": 0.9,
                            "file_name": name,
                            "bbox": [c * bw + 2, r * bh + 2, bw - 4, bh - 4]})
    return entries


def ultralytics_input(image_bgr, size=640):
    """Ultralytics' own pre-processing of one photo for a fixed-size ``size`` file,
    restated from its predictor without torch (the reference cost of building the input):
    ``LetterBox(auto=False)`` (``cv2.resize`` to ``round(w * r)``, ``cv2.copyMakeBorder``
    with 114), then ``preprocess``: ``im[..., ::-1].transpose(0, 3, 1, 2)`` (BGR to RGB,
    NCHW), ``np.ascontiguousarray``, float, ``/= 255``."""
    import cv2

    h, w = image_bgr.shape[:2]
    r = min(size / h, size / w)
    new_w, new_h = int(round(w * r)), int(round(h * r))
    dw, dh = (size - new_w) / 2, (size - new_h) / 2
    im = cv2.resize(image_bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    im = cv2.copyMakeBorder(im, top, bottom, left, right, cv2.BORDER_CONSTANT,
                            value=(114, 114, 114))
    im = np.stack([im])[..., ::-1].transpose((0, 3, 1, 2))  # (1, 3, size, size)
    im = np.ascontiguousarray(im).astype(np.float32)
    im /= 255
    return im


def time_detector_input(image_rgb, size=640, repeats=50):
    """Median milliseconds to build a detector input from one decoded photo: this
    project's ``fit_image`` + ``make_input`` (the ``ultralytics`` preset, NCHW float32, as
    ``DetectorBoxes`` runs them) against ``ultralytics_input`` on the same pixels (BGR, as
    Ultralytics reads them), alternating call by call; the largest difference of the two
    inputs is returned too (they must be the same input)."""
    import time

    from pose.apis.detector_layouts import PRESETS, fit_image, make_input
    from pose.apis.runtimes import TensorInfo

    preset = PRESETS["ultralytics"]
    info = TensorInfo("images", (1, 3, size, size), np.dtype(np.float32))
    image_bgr = np.ascontiguousarray(image_rgb[..., ::-1])

    def project():
        canvas, _ = fit_image(image_rgb, (size, size), preset, keep_rgb=True)
        return make_input(canvas, info, preset, True, from_rgb=True)

    def reference():
        return ultralytics_input(image_bgr, size)

    difference = float(np.abs(project() - reference()).max())
    times = {"project": [], "ultralytics": []}
    for _ in range(repeats):
        for name, build in (("project", project), ("ultralytics", reference)):
            start = time.perf_counter()
            build()
            times[name].append((time.perf_counter() - start) * 1000)
    result = {f"{name}_ms": float(np.median(values)) for name, values in times.items()}
    result["max_abs_difference"] = difference
    return result
