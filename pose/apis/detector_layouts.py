"""The layouts that object-detection files come in: how each is recognised, fed and decoded.

A layout is what an exporter makes of a detector: the input it expects (size, placement of
the image in it, colour order, scaling) and what its outputs mean. ``recognise_layout``
tells them apart from the files' output shapes (and names); the pre-processing of each is
a named ``Preprocess`` preset (``PRESETS``); ``decode`` turns the outputs into candidate
boxes ``x1, y1, x2, y2`` in model-input pixels with a score and a class each.

=========== ================================================ ============================
layout      outputs (B = batch, N = boxes, C = classes)      pre-processing (preset)
=========== ================================================ ============================
``end2end`` mmdeploy ``dets`` (B, N, 5) x1, y1, x2, y2, score    top-left letterbox, pad 114,
            + ``labels`` (B, N); NMS inside                  BGR (``rtmdet``: mean/std;
                                                             ``yolox``: 0-255)
``yolov5``  (B, N, 5 + C): cx, cy, w, h, objectness,         centred letterbox, pad 114,
            class scores; N = 3 anchors x grid cells         RGB, 0-1 (``ultralytics``)
``yolov8``  (B, 4 + C, N): cx, cy, w, h, class scores;       as ``yolov5``
            N = grid cells (YOLOv8, YOLO11)
``yolox``   (B, N, 5 + C) as ``yolov5`` but N = grid cells;  top-left letterbox, pad 114,
            raw grid offsets decoded here                    BGR, 0-255 (``yolox``)
``ssd``     TFLite post-processed: boxes (B, N, 4) ymin,     plain resize, RGB; uint8
            xmin, ymax, xmax in 0-1, classes, scores, count  input as is, float [-1, 1]
=========== ================================================ ============================

Sources (the exporters' own code): mmdeploy ``configs/mmdet/_base_/base_static.py``
(``input_names=['input']``, ``output_names=['dets', 'labels']``); mmdetection's RTMDet
config (``Resize(scale=(640, 640), keep_ratio=True)``, ``Pad(size=(640, 640),
pad_val=114)``, ``mean=[103.53, 116.28, 123.675], std=[57.375, 57.12, 58.395],
bgr_to_rgb=False``) and YOLOX config (no mean/std); rtmlib's ``YOLOX``/``RTMDet``
pre-processing (114-filled canvas, image at the top-left, boxes divided by the ratio;
the grid decode with strides 8, 16, 32); Ultralytics' ``LetterBox`` (centred, pad 114,
/255, RGB) and its ``Detect`` head, which divides TFLite boxes by the image size
("Precompute normalization factor", ultralytics issue 7371); TensorFlow Lite's
``TFLite_Detection_PostProcess`` op (outputs boxes, classes, scores, count).
"""

import dataclasses

import cv2
import numpy as np

from pose.errors import UserError

LAYOUTS = ("end2end", "yolov5", "yolov8", "yolox", "ssd")
LAYOUT_TITLES = {"end2end": "mmdeploy end2end (RTMDet/YOLOX, NMS inside)",
                 "yolov5": "Ultralytics YOLOv5", "yolov8": "Ultralytics YOLOv8/YOLO11",
                 "yolox": "YOLOX", "ssd": "TFLite SSD-style post-processed"}
HAS_NMS = {"end2end": True, "ssd": True, "yolov5": False, "yolov8": False, "yolox": False}
# Strides of the YOLO heads: P3-P5, and P3-P6 of the "6" models at 1280.
STRIDE_SETS = ((8, 16, 32), (8, 16, 32, 64))


class DetectorError(UserError):
    """A detector file that cannot be used: no layout matches, or a bad option for it."""


@dataclasses.dataclass(frozen=True)
class Preprocess:
    """How an image becomes the detector's input.

    Attributes:
        placement: ``top-left`` (aspect kept, image at the top-left, padded right and
            below: mmdet/mmdeploy, YOLOX), ``centre`` (aspect kept, centred: Ultralytics'
            letterbox) or ``stretch`` (plain resize to the input).
        pad_value: the padding's grey level (0-255).
        channels: ``RGB`` or ``BGR`` (the order the model was trained on).
        mean, std: per channel (in ``channels`` order) on 0-255 values: the input is
            ``(pixel - mean) / std``. A uint8 input gets the pixels as they are.
        rounding: how a letterboxed side ``w * r`` becomes whole pixels, as the exporter's
            own pre-processing does it: ``truncate`` (YOLOX's ``preproc`` and rtmlib:
            ``int(w * r)``), ``half_up`` (mmcv's ``imrescale``: ``int(w * r + 0.5)``) or
            ``half_even`` (Ultralytics' ``LetterBox``: Python's ``round``).
        box_scale: how boxes go back to the image: ``ratio`` (one factor ``r`` for both
            axes: YOLOX's ``bboxes /= ratio``), ``per_axis`` (the actual ``new_w / w`` and
            ``new_h / h``: mmdet's ``scale_factor``, and a plain resize) or
            ``scale_boxes`` (Ultralytics' ``ops.scale_boxes``: per-axis gains and padding
            worked out again from the input and image sizes, see ``scale_boxes_placement``).
        clip: boxes are clipped to the image after mapping back (Ultralytics'
            ``scale_boxes`` ends with ``clip_boxes``); a box wholly outside becomes a line
            on the border, as there.
        nms: the overlap of NMS (files without NMS inside): ``opencv`` (``cv2.dnn.NMSBoxes``
            on the boxes as they are: Ultralytics' ``torchvision.ops.nms`` measure) or
            ``plus_one`` (YOLOX's demo and rtmlib: their NumPy ``nms`` counts a box's sides
            as ``x2 - x1 + 1`` pixels, ``nms_plus_one``).
    """

    placement: str
    pad_value: float = 114.0
    channels: str = "RGB"
    mean: tuple = (0.0, 0.0, 0.0)
    std: tuple = (1.0, 1.0, 1.0)
    rounding: str = "half_even"
    box_scale: str = "per_axis"
    clip: bool = False
    nms: str = "opencv"

    def describe(self):
        if self.mean == (0.0,) * 3 and self.std == (255.0,) * 3:
            scale = "0-1"
        elif self.mean == (0.0,) * 3 and self.std == (1.0,) * 3:
            scale = "0-255"
        elif self.mean == (127.5,) * 3 and self.std == (127.5,) * 3:
            scale = "-1..1"
        else:
            scale = (f"mean {'/'.join(f'{v:g}' for v in self.mean)} "
                     f"std {'/'.join(f'{v:g}' for v in self.std)}")
        fit = {"top-left": f"letterbox at the top-left, pad {self.pad_value:g}",
               "centre": f"centred letterbox, pad {self.pad_value:g}",
               "stretch": "plain resize"}[self.placement]
        return f"{fit}, {self.channels} {scale}"


PRESETS = {
    "rtmdet": Preprocess("top-left", 114.0, "BGR", (103.53, 116.28, 123.675),
                         (57.375, 57.12, 58.395), rounding="half_up", box_scale="per_axis"),
    "yolox": Preprocess("top-left", 114.0, "BGR", rounding="truncate", box_scale="ratio",
                        nms="plus_one"),
    # rtmlib's RTMDet (mmpose's onnxruntime inference): RTMDet's mean/std, but YOLOX's
    # truncated resize and one ratio back (rtmdet above is mmdet/mmdeploy's own pipeline)
    "rtmlib": Preprocess("top-left", 114.0, "BGR", (103.53, 116.28, 123.675),
                         (57.375, 57.12, 58.395), rounding="truncate", box_scale="ratio",
                         nms="plus_one"),
    "ultralytics": Preprocess("centre", 114.0, "RGB", std=(255.0,) * 3,
                              rounding="half_even", box_scale="scale_boxes", clip=True),
    "ssd": Preprocess("stretch", 0.0, "RGB", (127.5,) * 3, (127.5,) * 3),
}
ROUNDINGS = {"truncate": lambda v: int(v), "half_up": lambda v: int(v + 0.5),
             "half_even": lambda v: int(round(v))}
DEFAULT_PRESET = {"end2end": "rtmdet", "yolov5": "ultralytics", "yolov8": "ultralytics",
                  "yolox": "yolox", "ssd": "ssd"}


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where the image went in the model input: ``u = x * sx + ox``, ``v = y * sy + oy``;
    ``bounds`` ``(w, h)``: ``clip`` cuts boxes to ``[0, w] x [0, h]`` (after NMS, as
    Ultralytics does: its NMS sees the boxes as the network gave them)."""

    sx: float
    sy: float
    ox: float = 0.0
    oy: float = 0.0
    bounds: tuple = None

    def to_image(self, xyxy):
        """Boxes ``x1, y1, x2, y2`` in input pixels → image pixels."""
        out = np.asarray(xyxy, np.float64).copy()  # (N, 4)
        out[:, 0::2] = (out[:, 0::2] - self.ox) / self.sx
        out[:, 1::2] = (out[:, 1::2] - self.oy) / self.sy
        return out

    def clip(self, xyxy):
        """Boxes ``x1, y1, x2, y2`` in image pixels cut to ``bounds`` (a copy); as they
        are without ``bounds``."""
        out = np.asarray(xyxy, np.float64).copy()  # (N, 4)
        if self.bounds is not None:
            w, h = self.bounds
            out[:, 0::2] = np.clip(out[:, 0::2], 0.0, w)
            out[:, 1::2] = np.clip(out[:, 1::2], 0.0, h)
        return out


def scale_boxes_placement(size, w, h):
    """How Ultralytics' ``ops.scale_boxes`` (8.4) takes boxes from an input of ``size =
    (in_w, in_h)`` back to a ``w x h`` image: ``gain = min(in_h / h, in_w / w)``, sides
    ``max(round(h * gain), 1)``, ``max(round(w * gain), 1)`` (as ``LetterBox`` rounds
    them), per-axis gains ``new_w / w`` and ``new_h / h``, padding ``round((in - new) / 2
    - 0.1)``; then ``clip_boxes`` to the image.

    On a fixed-size input these are exactly the letterbox's own sides and offsets. With
    the rect letterbox of a dynamic file they are worked out again from the padded input,
    as there: where a side rounded down already lies on a multiple of 32 (an 897x1280
    photo: 448.5 → 448 columns, input 448x640), ``gain`` is ``448 / 897``, not the ``0.5``
    that the image was resized by, and rows go back by ``639 / 1280``.
    """
    in_w, in_h = size
    gain = min(in_h / h, in_w / w)
    new_h, new_w = max(round(h * gain), 1), max(round(w * gain), 1)
    return Placement(new_w / w, new_h / h, float(round((in_w - new_w) / 2 - 0.1)),
                     float(round((in_h - new_h) / 2 - 0.1)), bounds=(w, h))


def fit_image(image, size, preprocess, keep_rgb=False, scale_size=None):
    """``image`` (H, W, 3) uint8 RGB → ``(canvas (h, w, 3) uint8 in the preset's channel
    order, Placement)`` for a model input of ``size = (w, h)``; with ``keep_rgb`` the canvas
    stays RGB (``make_input(..., from_rgb=True)`` then swaps the channels in its one pass).
    ``scale_size``: the ``(w, h)`` that the image is scaled to fit, where it is not the
    canvas (Ultralytics' rect letterbox scales to ``imgsz`` 640x640, then pads to the
    rectangle ``size``: ``pose.apis.detector.rect_letterbox_size``); default ``size``.

    Resized sides are rounded to whole pixels the way the preset's exporter rounds them
    (``Preprocess.rounding``), and boxes go back with its factors (``box_scale``): the
    exporter's own tool and this function feed the file the same pixels and read the same
    boxes from its outputs.
    """
    in_w, in_h = size
    h, w = image.shape[:2]
    if preprocess.placement == "stretch":
        canvas = cv2.resize(image, (in_w, in_h), interpolation=cv2.INTER_LINEAR)
        placement = Placement(in_w / w, in_h / h, bounds=(w, h) if preprocess.clip else None)
    else:
        fit_w, fit_h = scale_size or size
        ratio = min(fit_h / h, fit_w / w)  # LetterBox's r = min(new_h / h, new_w / w)
        rounded = ROUNDINGS[preprocess.rounding]
        new_w = max(1, min(in_w, rounded(w * ratio)))
        new_h = max(1, min(in_h, rounded(h * ratio)))
        if preprocess.placement == "centre":  # Ultralytics' LetterBox: round(d/2 -/+ 0.1)
            left, top = round((in_w - new_w) / 2 - 0.1), round((in_h - new_h) / 2 - 0.1)
        else:
            left, top = 0, 0
        canvas = np.full((in_h, in_w, 3), int(round(preprocess.pad_value)), np.uint8)
        canvas[top:top + new_h, left:left + new_w] = cv2.resize(
            image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        if preprocess.box_scale == "scale_boxes":
            placement = scale_boxes_placement(size, w, h)
        else:
            sx, sy = ((ratio, ratio) if preprocess.box_scale == "ratio"
                      else (new_w / w, new_h / h))
            placement = Placement(sx, sy, float(left), float(top),
                                  bounds=(w, h) if preprocess.clip else None)
    if preprocess.channels == "BGR" and not keep_rgb:
        canvas = canvas[..., ::-1]
    return np.ascontiguousarray(canvas), placement


def make_input(canvas, info, preprocess, channels_first, from_rgb=False):
    """The (1, 3, h, w) or (1, h, w, 3) tensor of ``canvas`` for an input ``info``
    (``TensorInfo``): uint8 as is; int8 quantized from the normalised values with the
    input's scale and zero point; float normalised by the preset's mean and std.

    ``canvas`` is in the preset's channel order, or RGB with ``from_rgb`` (a BGR preset's
    channels are then swapped here, in the same pass). A channels-first float input is
    filled plane by plane (``cv2.split``, then a cast, ``- mean`` and ``/ std`` in place):
    at 640 x 640 that is about as fast as Ultralytics' own ``transpose`` + ``float`` + ``/
    255`` (BENCHMARKS.md, "Detector input"), with the same float32 arithmetic.
    """
    swap = from_rgb and preprocess.channels == "BGR"
    dtype = np.dtype(info.dtype)
    if dtype == np.uint8:
        x = (canvas[..., ::-1] if swap else canvas)[None]  # (1, h, w, 3)
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if channels_first else x)
    mean = np.asarray(preprocess.mean, np.float32)
    std = np.asarray(preprocess.std, np.float32)
    h, w = canvas.shape[:2]
    if channels_first:
        planes = cv2.split(canvas)  # 3 x (h, w) uint8, contiguous
        values = np.empty((1, 3, h, w), np.float32)
        for channel, plane in enumerate(planes[::-1] if swap else planes):
            target = values[0, channel]  # (h, w)
            target[...] = plane
            if mean[channel]:
                target -= mean[channel]
            target /= std[channel]
    else:
        values = (canvas[..., ::-1] if swap else canvas)[None].astype(np.float32)
        values -= mean
        values /= std  # (1, h, w, 3)
    if dtype == np.int8:
        scale, zero_point = info.quantization or (1.0, 0)
        return np.clip(np.round(values / scale + zero_point), -128, 127).astype(np.int8)
    return values if dtype == np.float32 else values.astype(dtype)


def grid_cells(size, strides):
    """Grid cells of a head with ``strides`` at an input ``size = (w, h)``."""
    w, h = size
    return sum(-(-h // s) * -(-w // s) for s in strides)


def _shapes(outputs):
    return [tuple(np.shape(o)) for o in outputs]


def recognise_layout(outputs, names, size, layout=None, postprocess_order=None):
    """The layout of a detector from its outputs (arrays of one run, so that dynamic sizes
    are concrete) and output names; ``(None, None)`` when no layout fits.

    Args:
        outputs: the arrays of one run, in the file's output order.
        names: the output names.
        size: ``(w, h)`` of the input they came from.
        layout: a layout to check instead of recognising one (``--detector-format``): its
            output structure must still be there; YOLOv5 and YOLOX then accept any N.
        postprocess_order: see ``ssd_roles``.

    Returns:
        ``(layout, roles)``: ``roles`` maps what each output is (``dets``, ``labels``,
        ``boxes``, ``classes``, ``scores``, ``count``, ``pred``) to its position.
    """
    shapes = _shapes(outputs)
    lower = [n.lower() for n in names]
    wanted = LAYOUTS if layout is None else (layout,)
    if len(shapes) == 2 and "end2end" in wanted:
        dets = [i for i, s in enumerate(shapes) if len(s) == 3 and s[2] == 5]
        labels = [i for i, s in enumerate(shapes) if len(s) == 2]
        if len(dets) == 1 and len(labels) == 1 and shapes[labels[0]][1] == shapes[dets[0]][1]:
            return "end2end", {"dets": dets[0], "labels": labels[0]}
    if len(shapes) == 4 and "ssd" in wanted:
        roles = ssd_roles(shapes, lower, postprocess_order)
        if roles is not None:
            return "ssd", roles
    if len(shapes) == 1 and len(shapes[0]) == 3:
        _, a, b = shapes[0]
        if 5 <= a < b and "yolov8" in wanted:
            return "yolov8", {"pred": 0}
        if b >= 6 and a > b:
            if layout in ("yolov5", "yolox"):
                return layout, {"pred": 0}
            for strides in STRIDE_SETS:
                if a == grid_cells(size, strides) and "yolox" in wanted:
                    return "yolox", {"pred": 0}
                if a == 3 * grid_cells(size, strides) and "yolov5" in wanted:
                    return "yolov5", {"pred": 0}
    return None, None


def ssd_roles(shapes, lower_names, postprocess_order=None):
    """Which of four outputs is which in a post-processed SSD-style detector, or None.

    ``postprocess_order`` (the output positions of the ``TFLite_Detection_PostProcess``
    op, which writes boxes, classes, scores, count in that order) decides where the graph
    has that op; otherwise the names do (``box``/``location``, ``class``/``categor``,
    ``score``, ``num``/``count``); the boxes are the (B, N, 4) tensor and the count the
    one of rank 1. Two (B, N) tensors left unnamed are told apart at decode time (the
    classes are whole numbers).
    """
    if postprocess_order is not None:
        return dict(zip(("boxes", "classes", "scores", "count"), postprocess_order))
    boxes = [i for i, s in enumerate(shapes) if len(s) == 3 and s[2] == 4]
    count = [i for i, s in enumerate(shapes) if len(s) == 1 or (len(s) == 2 and s[1] == 1)]
    pairs = [i for i, s in enumerate(shapes) if len(s) == 2 and i not in count]
    if len(boxes) != 1 or len(count) != 1 or len(pairs) != 2:
        return None
    roles = {"boxes": boxes[0], "count": count[0]}
    for i in pairs:
        if any(k in lower_names[i] for k in ("class", "categor", "label")):
            roles["classes"] = i
        elif "score" in lower_names[i]:
            roles["scores"] = i
    if len(roles) == 4:
        return roles
    return {"boxes": boxes[0], "count": count[0], "pair": tuple(pairs)}


def nms_plus_one(xyxy, scores, iou):
    """YOLOX's demo / rtmlib NMS (``yolox/utils/demo_utils.py`` ``nms``): in the order of
    ``scores.argsort()[::-1]``, keep a box and drop every later one whose overlap with it
    exceeds ``iou``, areas and intersections counting ``x2 - x1 + 1`` by ``y2 - y1 + 1``
    pixels. ``xyxy`` (N, 4), ``scores`` (N,) → kept indices (K,) int64, best first."""
    x1, y1, x2, y2 = (np.asarray(xyxy, np.float64)[:, i] for i in range(4))
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.asarray(scores).argsort()[::-1]
    keep = []
    while order.size > 0:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        order = rest[inter / (areas[i] + areas[rest] - inter) <= iou]
    return np.asarray(keep, np.int64)


def _xywh_to_xyxy(xywh):
    cx, cy, w, h = (xywh[:, i] for i in range(4))
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)  # (N, 4)


def _scale_if_normalised(xywh, size):
    """Ultralytics' TFLite files give centres and sizes divided by the input size; their
    ONNX files give input pixels. Told apart by the centres: a YOLO head has cells all
    over the input, so pixel centres reach far beyond 1.5."""
    if len(xywh) and np.abs(xywh[:, :2]).max() <= 1.5:
        w, h = size
        return xywh * np.array([w, h, w, h], np.float64)
    return xywh


def yolox_grid_decode(pred, size, strides=(8, 16, 32)):
    """YOLOX's decode (rtmlib / YOLOX ``demo_postprocess``): ``xy = (xy + grid) * stride``,
    ``wh = exp(wh) * stride`` over the P3-P5 grids, row-major per stride. ``pred`` (N, K)."""
    w, h = size
    grids, steps = [], []
    for s in strides:
        xv, yv = np.meshgrid(np.arange(-(-w // s)), np.arange(-(-h // s)))
        grids.append(np.stack([xv, yv], axis=-1).reshape(-1, 2))  # (cells, 2)
        steps.append(np.full((len(grids[-1]), 1), s, np.float64))
    grid, stride = np.concatenate(grids), np.concatenate(steps)  # (N, 2), (N, 1)
    out = pred.astype(np.float64).copy()
    out[:, :2] = (out[:, :2] + grid) * stride
    out[:, 2:4] = np.exp(np.minimum(out[:, 2:4], 20.0)) * stride
    return out


def yolox_is_raw(pred, size):
    """True when a YOLOX output still holds grid offsets (its exporter's default,
    ``--decode_in_inference`` off): decoded centres span the input, offsets stay small."""
    return not len(pred) or float(np.abs(pred[:, 0]).max()) < 0.5 * size[0]


def dequantize(array, info):
    """A quantized output (``TensorInfo`` with ``(scale, zero_point)``) → float64."""
    if info.quantization and np.issubdtype(np.asarray(array).dtype, np.integer):
        scale, zero_point = info.quantization
        return (np.asarray(array, np.float64) - zero_point) * scale
    return np.asarray(array, np.float64)


def class_count(layout, roles, outputs):
    """How many classes a detector file scores, read from its output's shape (YOLOv5 /
    YOLOX: 5 + C columns, YOLOv8/11: 4 + C rows), or None where the file gives class
    indices instead (mmdeploy end2end, SSD post-processing)."""
    if layout not in ("yolov5", "yolox", "yolov8"):
        return None
    pred = outputs[roles["pred"]][0]
    return int(pred.shape[0] - 4) if layout == "yolov8" else int(pred.shape[1] - 5)


def decode(layout, roles, outputs, size):
    """Candidate boxes of one image: ``(xyxy (N, 4) in input pixels, scores (N,),
    classes (N,) int)``; every row, before any threshold. ``outputs`` float (dequantized),
    batch of one."""
    w, h = size
    if layout == "end2end":
        dets = outputs[roles["dets"]][0]  # (N, 5)
        return dets[:, :4], dets[:, 4], np.rint(outputs[roles["labels"]][0]).astype(int)
    if layout == "ssd":
        count = int(np.asarray(outputs[roles["count"]]).reshape(-1)[0])
        boxes = outputs[roles["boxes"]][0]  # (N, 4) ymin, xmin, ymax, xmax in 0-1
        if "pair" in roles:
            a, b = (outputs[i][0] for i in roles["pair"])  # the op's order: classes first
            whole_b = np.allclose(b, np.rint(b))
            classes, scores = (b, a) if whole_b and not np.allclose(a, np.rint(a)) else (a, b)
        else:
            classes, scores = outputs[roles["classes"]][0], outputs[roles["scores"]][0]
        n = max(0, min(count, len(boxes)))
        xyxy = boxes[:n][:, [1, 0, 3, 2]] * np.array([w, h, w, h], np.float64)
        return xyxy, scores[:n], np.rint(classes[:n]).astype(int)
    pred = outputs[roles["pred"]][0]
    if layout == "yolov8":
        pred = pred.T  # (4 + C, N) -> (N, 4 + C)
        xywh, cls = _scale_if_normalised(pred[:, :4], size), pred[:, 4:]
        best = cls.argmax(axis=1)
        return _xywh_to_xyxy(xywh), cls[np.arange(len(cls)), best], best
    if layout == "yolox" and yolox_is_raw(pred, size):
        pred = yolox_grid_decode(pred, size)
    xywh = pred[:, :4] if layout == "yolox" else _scale_if_normalised(pred[:, :4], size)
    cls = pred[:, 5:]
    best = cls.argmax(axis=1)
    return _xywh_to_xyxy(xywh), pred[:, 4] * cls[np.arange(len(cls)), best], best
