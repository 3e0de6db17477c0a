"""Person boxes from an object-detection model file: ``.onnx`` on ONNX Runtime, ``.tflite``
on LiteRT, in the layouts of ``pose.apis.detector_layouts`` (mmdeploy end2end, Ultralytics
YOLOv5/YOLOv8/YOLO11, YOLOX, TFLite SSD-style).

``DetectorBoxes`` is a person-box source like those of ``pose.apis.boxes``: a callable
``(image, file_name, image_id) -> (boxes (M, 4) xywh, scores (M,))`` with a ``name``. It
imports neither TensorFlow nor Keras, so a ``.tflite``/``.onnx`` pose model with a detector
file starts without them.

Per image: the image is fitted into the model input the way the file's exporter did it
(letterbox placement, pad value, colour order, scaling: the layout's preset, or the one
given), the file runs once, its boxes are decoded and mapped back to image pixels, only
the person class above the threshold is kept, duplicates are removed by OpenCV's NMS
(``cv2.dnn.NMSBoxes``) where the file has no NMS inside, and at most ``max_people``
boxes, best first, are returned.

Example:
    >>> source = DetectorBoxes("yolov8n.onnx", threshold=0.3)
    >>> source.name
    'detector yolov8n.onnx: layout yolov8 (Ultralytics YOLOv8/YOLO11), input 640x640, ...'
    >>> boxes, scores = source(image_rgb)
"""

import dataclasses
import os

import cv2
import numpy as np

from pose.apis.detector_layouts import (
    DEFAULT_PRESET,
    HAS_NMS,
    LAYOUT_TITLES,
    LAYOUTS,
    PRESETS,
    DetectorError,
    Preprocess,
    class_count,
    decode,
    dequantize,
    fit_image,
    make_input,
    nms_plus_one,
    recognise_layout,
)
from pose.apis.runtimes import RuntimeChoiceError, open_network

DEFAULT_SIZE = (640, 640)  # the input of a file with a dynamic size, unless told
# NMS over the boxes of every class (YOLOX's demo: class_agnostic=True) or of the person
# class (Ultralytics: agnostic=False, i.e. per class); files with NMS inside keep theirs.
NMS_CLASSES = {"yolox": "all", "yolov5": "person", "yolov8": "person", "end2end": "person",
               "ssd": "person"}
RECT_STRIDE = 32  # Ultralytics' rect letterbox: the padded sides are multiples of this


def rect_letterbox_size(w, h, side=640, stride=RECT_STRIDE):
    """The input ``(w, h)`` that Ultralytics' ``LetterBox(auto=True)`` makes of a ``w x h``
    image at ``imgsz=side``: scaled by ``r = min(side / h, side / w)``, sides
    ``round(w * r)``, ``round(h * r)``, each padded up to the next multiple of ``stride``
    (``np.mod(side - new, stride)``)."""
    r = min(side / h, side / w)
    new_w, new_h = int(round(w * r)), int(round(h * r))
    return new_w + (side - new_w) % stride, new_h + (side - new_h) % stride
POSTPROCESS_OP = "TFLite_Detection_PostProcess"


def _io_text(network):
    return (f"inputs [{', '.join(map(str, network.inputs))}], "
            f"outputs [{', '.join(map(str, network.outputs))}]")


class DetectorBoxes:
    """Person boxes from a detector file (``.onnx`` or ``.tflite``).

    Args:
        path: the detector file.
        layout: ``auto`` (recognised from the outputs) or one of ``LAYOUTS``. Default auto.
        preset: pre-processing preset name (``PRESETS``); None: the layout's
            (``DEFAULT_PRESET``). Default None.
        size: ``(w, h)`` model input where the file's is dynamic; None: 640x640, or with
            the ``ultralytics`` preset Ultralytics' own ``rect`` letterbox (the smallest
            multiple-of-32 rectangle that holds the image scaled to 640, per image, as its
            ``predict`` feeds a dynamic file). Default None.
        mean, std: three values each (in the preset's channel order, on 0-255 pixels)
            replacing the preset's. Default None.
        threshold: float, person boxes scoring below are dropped. Default 0.3.
        person_class: int, the person class index (COCO's 0 in 80-class files). Default 0.
        nms_iou: float, IoU above which the weaker of two person boxes is dropped (files
            without NMS inside). Default 0.45.
        nms_classes: ``all`` (class-agnostic NMS: a person box under a stronger box of any
            class is dropped, as YOLOX's demo does) or ``person`` (among person boxes
            only, as Ultralytics' per-class NMS does for the person class); None: the
            layout's (``NMS_CLASSES``). Default None.
        max_people: int, at most this many boxes per image, best first. Default 100.
        threads: int, runtime threads; None: the core count. Default None.

    Raises:
        DetectorError: not an ``.onnx``/``.tflite`` file, no layout matches (the message
            names the inputs and outputs found), or an option the file cannot take.
    """

    def __init__(self, path, layout="auto", preset=None, size=None, mean=None, std=None,
                 threshold=0.3, person_class=0, nms_iou=0.45, max_people=100, threads=None,
                 nms_classes=None):
        self.path = os.fspath(path)
        if layout not in ("auto", *LAYOUTS):
            raise DetectorError(f"unknown detector format {layout!r}; choose auto or one of "
                                f"{', '.join(LAYOUTS)}")
        if preset is not None and preset not in PRESETS:
            raise DetectorError(f"unknown detector preset {preset!r}; choose one of "
                                f"{', '.join(PRESETS)}")
        if not 0.0 <= threshold <= 1.0 or not 0.0 < nms_iou <= 1.0:
            raise DetectorError(f"detector threshold must be in [0, 1] and NMS IoU in (0, 1], "
                                f"got {threshold} and {nms_iou}")
        if nms_classes not in (None, "all", "person"):
            raise DetectorError(f"NMS classes must be 'all' or 'person', got {nms_classes!r}")
        if int(max_people) < 1:
            raise DetectorError(f"max people per image must be >= 1, got {max_people}")
        for label, values in (("mean", mean), ("std", std)):
            if values is not None and (len(values) != 3
                                       or (label == "std" and min(values) <= 0)):
                raise DetectorError(f"detector {label} needs 3 values"
                                    f"{' > 0' if label == 'std' else ''}, got {list(values)}")
        if not os.path.isfile(self.path):
            raise DetectorError(f"detector file not found: {self.path}")
        try:
            self.network = open_network(self.path, threads=threads)
        except RuntimeChoiceError:
            raise DetectorError(f"--detector {self.path!r}: expected an .onnx (ONNX Runtime) "
                                "or .tflite (LiteRT) object-detection model, or 'hog'") from None
        except ValueError as exc:
            raise DetectorError(str(exc)) from None
        self.threshold, self.person_class = float(threshold), int(person_class)
        self.nms_iou, self.max_people = float(nms_iou), int(max_people)
        self._input = self.network.inputs[0]
        self.channels_first, self.size, self.dynamic = self._input_geometry(size)
        self.rect = False  # Ultralytics' rect letterbox: known once the preset is

        # One run on a blank input: dynamic output sizes become concrete for recognition.
        probe, _, _ = self._run(np.zeros((self.size[1], self.size[0], 3), np.uint8),
                                Preprocess("stretch"), self.size)
        names = [t.name for t in self.network.outputs]
        order = self._postprocess_order()
        found, roles = recognise_layout(probe, names, self.size,
                                        None if layout == "auto" else layout, order)
        if found is None:
            wanted = "" if layout == "auto" else f" as --detector-format {layout}"
            raise DetectorError(
                f"{self.path}: not a detector file of a known layout{wanted}: "
                f"{_io_text(self.network)}; expected mmdeploy dets (B, N, 5) + labels (B, N), "
                "YOLOv5/YOLOX (B, N, 5+C), YOLOv8/11 (B, 4+C, N) or SSD boxes/classes/scores/"
                "count (README: person detectors)")
        self.layout, self.roles = found, roles
        self.nms_classes = nms_classes or NMS_CLASSES[found]
        classes = class_count(found, roles, probe)
        if classes is not None and not 0 <= self.person_class < classes:
            raise DetectorError(f"--person-class {self.person_class}: {self.path} scores "
                                f"{classes} classes (0..{classes - 1})")
        self.preset = preset or DEFAULT_PRESET[found]
        base = PRESETS[self.preset]
        self.preprocess = dataclasses.replace(
            base, mean=tuple(map(float, mean)) if mean is not None else base.mean,
            std=tuple(map(float, std)) if std is not None else base.std)
        self.rect = self.dynamic and size is None and self.preprocess.placement == "centre"
        self.calls = 0

    def _input_geometry(self, size):
        shape = self._input.shape
        if len(self.network.inputs) != 1 or len(shape) != 4 or 3 not in (shape[1], shape[3]):
            raise DetectorError(
                f"{self.path}: not an image detector: expected one (B, 3, H, W) or "
                f"(B, H, W, 3) input; {_io_text(self.network)}")
        channels_first = shape[1] == 3 and shape[3] != 3
        fixed = (shape[3], shape[2]) if channels_first else (shape[2], shape[1])  # (w, h)
        if None not in fixed:
            if size is not None and tuple(size) != fixed:
                raise DetectorError(f"{self.path}: the input is fixed at {fixed[0]}x{fixed[1]}; "
                                    f"--detector-size {size[0]} {size[1]} cannot change it")
            return channels_first, tuple(int(v) for v in fixed), False
        size = tuple(int(v) for v in (size or DEFAULT_SIZE))
        if min(size) < 32:
            raise DetectorError(f"--detector-size must be at least 32 32, got {size}")
        return channels_first, size, True

    def _postprocess_order(self):
        """Output positions of a TFLite ``TFLite_Detection_PostProcess`` op, or None."""
        indices = self.network.op_outputs(POSTPROCESS_OP)
        if not indices:
            return None
        position = {t.index: i for i, t in enumerate(self.network.outputs)}
        order = [position.get(i) for i in indices]
        return None if None in order else order

    def input_size_for(self, image):
        """The model input ``(w, h)`` for ``image``: the file's, ``--detector-size``, or
        for a dynamic file with the ``ultralytics`` preset Ultralytics' ``rect`` letterbox
        (``rect_letterbox_size``)."""
        if self.rect:
            h, w = image.shape[:2]
            return rect_letterbox_size(w, h, max(self.size))
        return self.size

    def _run(self, image, preprocess, size=None):
        size = size or self.input_size_for(image)
        canvas, placement = fit_image(image, size, preprocess, keep_rgb=True,
                                      scale_size=self.size if self.rect else None)
        x = make_input(canvas, self._input, preprocess, self.channels_first, from_rgb=True)
        outputs = self.network.run_outputs(x)
        outputs = [dequantize(o, info) for o, info in zip(outputs, self.network.outputs)]
        return outputs, placement, size

    @property
    def name(self):
        """What the run prints as its person-box source (the second output line)."""
        nms = ("NMS in the file" if HAS_NMS[self.layout]
               else f"NMS IoU {self.nms_iou:g}")
        return (f"detector {self.path}: layout {self.layout} ({LAYOUT_TITLES[self.layout]}), "
                f"input {self.size[0]}x{self.size[1]}"
                f"{self._dynamic_text()} "
                f"{np.dtype(self._input.dtype).name}, {self.preprocess.describe()} "
                f"(preset {self.preset}), person class {self.person_class}, threshold "
                f"{self.threshold:g}, {nms}, at most {self.max_people} people; "
                f"{self.network.description}")

    def _dynamic_text(self):
        if not self.dynamic:
            return ""
        if self.rect:
            return (f" (dynamic: Ultralytics' rect letterbox, sides up to {max(self.size)} in "
                    f"multiples of {RECT_STRIDE}; --detector-size for a fixed one)")
        return " (dynamic, --detector-size)"

    def detect(self, image):
        """Every person box of ``image`` (RGB uint8): ``(xyxy (M, 4) image pixels, scores
        (M,))``, best first, after threshold, NMS and the cap; cut to the image where the
        preset's exporter cuts them (``Preprocess.clip``: Ultralytics, after its NMS)."""
        self.calls += 1
        outputs, placement, size = self._run(image, self.preprocess)
        xyxy, scores, classes = decode(self.layout, self.roles, outputs, size)
        kept = ((scores >= self.threshold) & np.isfinite(scores)
                & np.isfinite(xyxy).all(axis=1))
        if self.nms_classes == "person" or HAS_NMS[self.layout]:
            kept &= classes == self.person_class
        xyxy = placement.to_image(xyxy[kept])
        scores, classes = np.asarray(scores[kept], np.float64), classes[kept]
        if len(scores) == 0:
            return np.zeros((0, 4)), np.zeros(0)
        if HAS_NMS[self.layout]:
            order = np.argsort(-scores, kind="stable")
        elif self.preprocess.nms == "plus_one":  # YOLOX's demo / rtmlib: their NumPy NMS
            order = nms_plus_one(xyxy, scores, self.nms_iou)
            order = order[classes[order] == self.person_class]  # after class-agnostic NMS
        else:
            xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
            # The threshold is applied above (a score equal to it is kept). NMSBoxes' own
            # score filter is strict (score > threshold >= 0): it gets the scores shifted
            # by 1 (same order) and threshold 0, so that it drops none of them.
            order = np.asarray(cv2.dnn.NMSBoxes(xywh.tolist(), (scores + 1.0).tolist(), 0.0,
                                                self.nms_iou), np.int64).reshape(-1)  # best first
            order = order[classes[order] == self.person_class]  # after class-agnostic NMS
        order = order[:self.max_people]
        return placement.clip(xyxy[order]), scores[order]

    def __call__(self, image, file_name=None, image_id=None):
        xyxy, scores = self.detect(image)
        return np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1), scores


def add_detector_arguments(parser):
    """The detector options shared by ``tools/infer.py`` and ``tools/detect.py`` (all but
    ``--detector`` itself)."""
    group = parser.add_argument_group("detector file (--detector FILE.onnx / FILE.tflite)")
    group.add_argument("--detector-format", choices=["auto", *LAYOUTS], default="auto",
                       help="the file's layout (default: recognised from its outputs)")
    group.add_argument("--detector-preset", choices=list(PRESETS),
                       help="pre-processing: rtmdet (mmdeploy RTMDet: BGR, mean/std), rtmlib "
                            "(rtmlib's RTMDet: as rtmdet, truncated resize, one ratio back), "
                            "yolox (BGR 0-255), ultralytics (RGB 0-1, centred), ssd; default: "
                            "the layout's (end2end: rtmdet)")
    group.add_argument("--detector-size", type=int, nargs=2, metavar=("W", "H"),
                       help="input size of a file whose input is dynamic (default 640 640)")
    group.add_argument("--detector-mean", type=float, nargs=3, metavar="V",
                       help="replace the preset's per-channel mean (0-255, its channel order)")
    group.add_argument("--detector-std", type=float, nargs=3, metavar="V",
                       help="replace the preset's per-channel std")
    group.add_argument("--detector-threshold", type=float, default=0.3,
                       help="keep person boxes scoring at least this (default 0.3)")
    group.add_argument("--person-class", type=int, default=0,
                       help="the person class index of the detector (default 0, COCO)")
    group.add_argument("--detector-nms-iou", type=float, default=0.45,
                       help="NMS IoU for files without NMS inside (default 0.45)")
    group.add_argument("--detector-nms-classes", choices=["all", "person"],
                       help="NMS over boxes of all classes (a person under a stronger box of "
                            "another class is dropped) or over person boxes only; default: "
                            "the layout's (yolox: all, as YOLOX's demo; yolov5/yolov8: "
                            "person, as Ultralytics)")
    group.add_argument("--max-people", type=int, default=100,
                       help="at most this many people per image (default 100)")


def detector_from_args(args, threads=None):
    """``DetectorBoxes`` of ``args.detector`` with the options of ``add_detector_arguments``."""
    return DetectorBoxes(args.detector, layout=args.detector_format, preset=args.detector_preset,
                         size=args.detector_size, mean=args.detector_mean,
                         std=args.detector_std, threshold=args.detector_threshold,
                         person_class=args.person_class, nms_iou=args.detector_nms_iou,
                         max_people=args.max_people, threads=threads,
                         nms_classes=args.detector_nms_classes)
