"""Tests of pose.apis.detector / detector_layouts: every layout on tiny detector files made
here (planted outputs, no downloaded weights), on an image whose aspect ratio differs from
the model input; pre-processing against hand-computed values; errors; end to end against
``--boxes`` on the COCO sample."""

import json

import numpy as np
import pytest

from pose.apis.detector import DetectorBoxes
from pose.apis.detector_layouts import (
    PRESETS,
    DetectorError,
    Placement,
    dequantize,
    fit_image,
    make_input,
)
from pose.apis.runtimes import TensorInfo
from tests.pose.apis.detector_files import onnx_detector, tflite_detector, yolo_rows

# A 256x160 image (landscape) into a 128x128 input: the factor is 1/2 on both axes;
# Ultralytics' centred letterbox puts the 80-row image 24 rows down, mmdeploy/YOLOX at the
# top; a plain resize (SSD) scales y by 128/160.
IMAGE = np.zeros((160, 256, 3), np.uint8)
SIZE = 128
CELLS = 16 * 16 + 8 * 8 + 4 * 4  # YOLO grid cells at 128x128 (strides 8, 16, 32)
PERSON_A = [20.0, 30.0, 80.0, 150.0]  # x1, y1, x2, y2 image pixels, score 0.9
PERSON_B = [150.0, 10.0, 230.0, 140.0]  # score 0.8
DUPLICATE = [22.0, 32.0, 82.0, 148.0]  # of A (IoU 0.91), score 0.7
CHAIR = [100.0, 40.0, 140.0, 120.0]  # class 2, score 0.95
FAINT = [180.0, 100.0, 250.0, 158.0]  # person, score 0.2
PLANTED = [(PERSON_A, 0, 0.9), (PERSON_B, 0, 0.8), (DUPLICATE, 0, 0.7), (CHAIR, 2, 0.95),
           (FAINT, 0, 0.2)]


def centred(b):
    return [b[0] / 2, b[1] / 2 + 24, b[2] / 2, b[3] / 2 + 24]


def top_left(b):
    return [v / 2 for v in b]


def _xywh(b):
    return [b[0], b[1], b[2] - b[0], b[3] - b[1]]


def assert_people(source, want, image=IMAGE):
    boxes, scores = source(image, "photo.jpg", 1)
    assert boxes.shape == (len(want), 4), (boxes, scores)
    np.testing.assert_allclose(boxes, [_xywh(b) for b in want], atol=1.0)
    assert np.all(np.diff(scores) <= 0)  # best first


def _yolo(mapping, objectness, normalise=None, rows=CELLS, planted=PLANTED):
    boxes, classes, scores = zip(*planted)
    return yolo_rows([mapping(b) for b in boxes], classes, scores, 80, rows,
                     objectness=[1.0] * len(boxes) if objectness else None,
                     normalise=normalise)


def yolox_raw_rows(planted=PLANTED):
    """Raw YOLOX rows: grid offsets and log sizes; box i in its own cell of the stride-8
    grid, the duplicate in the stride-16 grid (a cell of its own)."""
    rows = np.zeros((CELLS, 85), np.float32)
    for i, (box, cls, score) in enumerate(planted):
        x1, y1, x2, y2 = top_left(box)
        cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
        stride, first, side = (16, 256, 8) if box is DUPLICATE else (8, 0, 16)
        gx, gy = int(cx // stride), int(cy // stride)
        row = first + gy * side + gx
        assert not rows[row].any()
        rows[row, :4] = [cx / stride - gx, cy / stride - gy, np.log(w / stride),
                         np.log(h / stride)]
        rows[row, 4], rows[row, 5 + cls] = 1.0, score
    return rows


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("detectors")
    no_dup = [p for p in PLANTED if p[0] is not DUPLICATE]  # NMS inside: no duplicates
    dets = np.array([[*top_left(b), s] for b, _, s in no_dup], np.float32)[None]
    labels = np.array([[c for _, c, _ in no_dup]], np.int64)
    big = 0.75  # 256x160 into the dynamic input at 192x128: factor 0.75, no padding used
    dyn_dets = np.array([[*(v * big for v in b), s] for b, _, s in no_dup], np.float32)[None]
    return {
        "end2end": onnx_detector(folder / "end2end.onnx", {"dets": dets, "labels": labels},
                                 input_name="input"),
        "end2end_dynamic": onnx_detector(folder / "dynamic.onnx",
                                         {"dets": dyn_dets, "labels": labels},
                                         input_shape=(1, 3, None, None), input_name="input"),
        "yolov5": onnx_detector(folder / "yolov5.onnx",
                                {"output0": _yolo(centred, True, rows=3 * CELLS)[None]}),
        "yolov8": onnx_detector(folder / "yolov8.onnx",
                                {"output0": _yolo(centred, False).T[None]}),
        "yolox": onnx_detector(folder / "yolox.onnx", {"output": yolox_raw_rows()[None]}),
        # exported with --decode_in_inference: centres and sizes in input pixels already
        "yolox_decoded": onnx_detector(folder / "yolox_decoded.onnx",
                                       {"output": _yolo(top_left, True)[None]}),
        "heatmaps": onnx_detector(folder / "pose.onnx",
                                  {"heatmaps": np.zeros((1, 32, 24, 17), np.float32)},
                                  input_shape=(1, 128, 96, 3), input_name="crops"),
    }


@pytest.mark.parametrize("layout,preset,with_duplicate", [
    ("end2end", "rtmdet", False), ("yolov5", "ultralytics", True),
    ("yolov8", "ultralytics", True), ("yolox", "yolox", True),
    ("yolox_decoded", "yolox", True)])
def test_onnx_layouts(onnx_files, layout, preset, with_duplicate):
    """Recognised from the outputs alone; the person boxes come back in image pixels; the
    chair, the faint person and (files without NMS) the duplicate are dropped."""
    path = onnx_files[layout]
    layout = layout.replace("_decoded", "")
    source = DetectorBoxes(path, threads=1)
    assert (source.layout, source.preset, source.size) == (layout, preset, (SIZE, SIZE))
    assert source.name.startswith(f"detector {path}: layout {layout} (")
    assert "input 128x128 float32" in source.name and "threshold 0.3" in source.name
    assert_people(source, [PERSON_A, PERSON_B])
    assert source.calls == 1
    if with_duplicate:  # the duplicate is there without NMS
        no_nms = DetectorBoxes(path, threads=1, nms_iou=1.0)
        assert_people(no_nms, [PERSON_A, PERSON_B, DUPLICATE])


def test_thresholds_person_class_and_cap(onnx_files):
    path = onnx_files["yolov8"]
    assert_people(DetectorBoxes(path, threshold=0.1), [PERSON_A, PERSON_B, FAINT])
    assert_people(DetectorBoxes(path, threshold=0.85), [PERSON_A])
    assert_people(DetectorBoxes(path, person_class=2), [CHAIR])
    assert_people(DetectorBoxes(path, max_people=1), [PERSON_A])
    assert_people(DetectorBoxes(onnx_files["end2end"], threshold=0.1),
                  [PERSON_A, PERSON_B, FAINT])


@pytest.mark.parametrize("layout", ["yolov5", "yolov8", "yolox"])
def test_a_person_class_the_file_does_not_score_is_refused(onnx_files, layout):
    """The files score 80 classes: 79 is the last one, 80 is refused with the count named;
    a file of class indices (end2end) cannot tell, and takes any index."""
    from pose.apis.detector_layouts import DetectorError

    DetectorBoxes(onnx_files[layout], person_class=79)
    with pytest.raises(DetectorError) as error:
        DetectorBoxes(onnx_files[layout], person_class=80)
    assert str(error.value) == (f"--person-class 80: {onnx_files[layout]} scores 80 classes "
                                "(0..79)")
    DetectorBoxes(onnx_files["end2end"], person_class=80)


def test_yolox_nms_is_class_agnostic_and_ultralytics_per_class(tmp_path):
    """A chair box over person A (IoU 0.86, stronger): YOLOX's demo NMS (all classes) drops
    the person, Ultralytics' (per class) keeps it; --detector-nms-classes picks either."""
    chair_on_a = [24.0, 34.0, 80.0, 150.0]
    planted = [(PERSON_A, 0, 0.9), (chair_on_a, 2, 0.95), (PERSON_B, 0, 0.8)]
    yolox = onnx_detector(tmp_path / "yolox.onnx",
                          {"output": _yolo(top_left, True, planted=planted)[None]})
    yolov8 = onnx_detector(tmp_path / "yolov8.onnx",
                           {"output0": _yolo(centred, False, planted=planted).T[None]})
    assert DetectorBoxes(yolox).nms_classes == "all"
    assert_people(DetectorBoxes(yolox), [PERSON_B])
    assert_people(DetectorBoxes(yolox, nms_classes="person"), [PERSON_A, PERSON_B])
    assert DetectorBoxes(yolov8).nms_classes == "person"
    assert_people(DetectorBoxes(yolov8), [PERSON_A, PERSON_B])
    assert_people(DetectorBoxes(yolov8, nms_classes="all"), [PERSON_B])
    with pytest.raises(DetectorError, match="NMS classes must be 'all' or 'person'"):
        DetectorBoxes(yolov8, nms_classes="chair")


def test_yolox_nms_counts_box_sides_plus_one_pixel_as_its_demo(tmp_path):
    """YOLOX's demo and rtmlib NMS (``demo_utils.nms``): areas ``(x2 - x1 + 1) * (y2 - y1 +
    1)``, in image pixels (after ``/ ratio``). SMALL_A = [100, 20, 110, 30] and SMALL_B =
    [104, 20, 114, 30]: plain IoU 60 / 140 = 0.4286 (both kept at 0.45, OpenCV's / torch's
    measure), with +1: 7 * 11 / (121 + 121 - 77) = 0.4667, so B goes, as in YOLOX's demo.
    PERSON_B (far right) keeps the file a decoded YOLOX file."""
    small_a, small_b = [100.0, 20.0, 110.0, 30.0], [104.0, 20.0, 114.0, 30.0]
    planted = [(small_a, 0, 0.9), (small_b, 0, 0.85), (PERSON_B, 0, 0.8)]
    path = onnx_detector(tmp_path / "yolox.onnx",
                         {"output": _yolo(top_left, True, planted=planted)[None]})
    yolox = DetectorBoxes(path, nms_iou=0.45)
    assert yolox.preprocess.nms == "plus_one"
    assert_people(yolox, [small_a, PERSON_B])
    assert_people(DetectorBoxes(path, preset="rtmdet", nms_iou=0.45),
                  [small_a, small_b, PERSON_B])
    assert_people(DetectorBoxes(path, nms_iou=0.47), [small_a, small_b, PERSON_B])


@pytest.mark.parametrize("w, h, expected", [(256, 160, (640, 416)), (640, 429, (640, 448)),
                                            (1280, 853, (640, 448)), (517, 777, (448, 640)),
                                            (640, 640, (640, 640))])
def test_rect_letterbox_size_as_ultralytics_computes_it(w, h, expected):
    """``LetterBox(auto=True, stride=32)`` at imgsz 640: r = min(640/h, 640/w), sides
    round(w r), round(h r), padded by np.mod(640 - side, 32): 256x160 → r 2.5, 640x400,
    400 + 240 mod 32 = 416; 517x777 → 425.85 → 426 + 214 mod 32 = 448."""
    from pose.apis.detector import rect_letterbox_size

    assert rect_letterbox_size(w, h) == expected


def test_a_dynamic_ultralytics_file_gets_the_rect_letterbox_per_image(tmp_path, monkeypatch):
    from pose.apis.detector import DetectorBoxes as Boxes

    path = onnx_detector(tmp_path / "yolov8_dynamic.onnx",
                         {"output0": _yolo(centred, False).T[None]},
                         input_shape=(1, 3, None, None))
    source = Boxes(path)
    assert source.dynamic and source.input_size_for(IMAGE) == (640, 416)
    assert "rect letterbox" in source.name
    seen = []
    run = source.network.run_outputs
    monkeypatch.setattr(source.network, "run_outputs", lambda x: seen.append(x.shape) or run(x))
    source(IMAGE, "photo.jpg", 1)
    source(np.zeros((777, 517, 3), np.uint8), "tall.jpg", 2)
    assert seen == [(1, 3, 416, 640), (1, 3, 640, 448)]
    fixed = Boxes(path, size=(128, 128))  # --detector-size still forces a size
    assert fixed.input_size_for(IMAGE) == (128, 128) and "rect" not in fixed.name
    assert_people(fixed, [PERSON_A, PERSON_B])
    other = Boxes(path, preset="yolox")  # the rect letterbox is Ultralytics' alone
    assert other.input_size_for(IMAGE) == (640, 640)


def test_dynamic_input_size(onnx_files):
    path = onnx_files["end2end_dynamic"]
    source = DetectorBoxes(path, size=(192, 128))
    assert source.size == (192, 128) and "input 192x128 (dynamic, --detector-size)" in source.name
    assert_people(source, [PERSON_A, PERSON_B])
    assert DetectorBoxes(path).size == (640, 640)  # the default of a dynamic input
    with pytest.raises(DetectorError, match="fixed at 128x128"):
        DetectorBoxes(onnx_files["yolov8"], size=(192, 128))


def test_forced_format_and_presets(onnx_files):
    # The same (B, N, 5 + C) rows read as YOLOv5 (centred preset) when forced.
    forced = DetectorBoxes(onnx_files["yolox"], layout="yolov5")
    assert forced.layout == "yolov5" and forced.preset == "ultralytics"
    yolox = DetectorBoxes(onnx_files["end2end"], preset="yolox", mean=(1, 2, 3))
    assert yolox.preprocess.mean == (1.0, 2.0, 3.0) and yolox.preprocess.channels == "BGR"
    with pytest.raises(DetectorError, match="as --detector-format ssd"):
        DetectorBoxes(onnx_files["yolov8"], layout="ssd")
    with pytest.raises(DetectorError, match="unknown detector preset 'rtm'"):
        DetectorBoxes(onnx_files["yolov8"], preset="rtm")


def test_a_file_of_no_known_layout_is_one_clear_error(onnx_files, tmp_path):
    with pytest.raises(DetectorError) as err:
        DetectorBoxes(onnx_files["heatmaps"])
    message = str(err.value)
    assert "not a detector file of a known layout" in message and "\n" not in message
    assert "inputs [crops (1, 128, 96, 3) float32]" in message
    assert "outputs [heatmaps (1, 32, 24, 17) float32]" in message
    with pytest.raises(DetectorError, match="expected an .onnx .* or .tflite"):
        (tmp_path / "model.pt").write_bytes(b"x")
        DetectorBoxes(tmp_path / "model.pt")
    with pytest.raises(DetectorError, match="not found"):
        DetectorBoxes(tmp_path / "absent.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(DetectorError, match="junk.onnx: not a readable ONNX model"):
        DetectorBoxes(tmp_path / "junk.onnx")


@pytest.fixture(scope="module")
def tflite_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tflite_detectors")
    # SSD: the first four rows are counted; a fifth, past the count, must be ignored.
    ssd_rows = [*[p for p in PLANTED if p[0] is not DUPLICATE], ([0, 0, 256, 160], 0, 0.99)]
    boxes = np.array([[b[1] / 160, b[0] / 256, b[3] / 160, b[2] / 256]
                      for b, _, _ in ssd_rows], np.float32)[None]  # ymin, xmin, ymax, xmax
    classes = np.array([[c for _, c, _ in ssd_rows]], np.float32)
    scores = np.array([[s for _, _, s in ssd_rows]], np.float32)
    count = np.array([4.0], np.float32)
    # The outputs come in the order of the keys and are named StatefulPartitionedCall:k:
    # boxes, classes, scores, count (the post-processing op's order) in one file; scores
    # before classes (as TF2 exports often list them) in the other, told apart by value.
    ssd = tflite_detector(folder / "ssd.tflite",
                          {"a_boxes": boxes, "b_classes": classes, "c_scores": scores,
                           "d_count": count}, input_dtype=np.uint8)
    ssd_swapped = tflite_detector(folder / "ssd_swapped.tflite",
                                  {"a_boxes": boxes, "b_scores": scores, "c_classes": classes,
                                   "d_count": count}, input_dtype=np.uint8)
    yolov8 = tflite_detector(folder / "yolov8.tflite",
                             {"output0": _yolo(centred, False, normalise=(SIZE, SIZE)).T[None]})
    return {"ssd": ssd, "ssd_swapped": ssd_swapped, "yolov8": yolov8}


@pytest.mark.parametrize("name", ["ssd", "ssd_swapped"])
def test_tflite_ssd_uint8(tflite_files, name):
    source = DetectorBoxes(tflite_files[name], threads=1)
    assert source.layout == "ssd" and "uint8" in source.name and "plain resize" in source.name
    assert_people(source, [PERSON_A, PERSON_B])


def test_tflite_yolov8_normalised(tflite_files):
    source = DetectorBoxes(tflite_files["yolov8"], threads=1)
    assert source.layout == "yolov8" and source.network.runtime == "litert"
    assert_people(source, [PERSON_A, PERSON_B])


# ----------------------------------------------------------------- pre-processing


# Each exporter's own pre-processing, restated from its code (the reference here):
def _yolox_preproc(w, h, size):
    """YOLOX ``yolox/data/data_augment.py preproc`` (rtmlib's YOLOX likewise): the image
    resized to ``int(w * r)`` x ``int(h * r)`` at the top-left; boxes back by ``/ r``."""
    r = min(size[1] / h, size[0] / w)
    return (int(w * r), int(h * r)), (0, 0), (r, r), None


def _mmdet_resize(w, h, size):
    """mmcv ``imrescale`` (``Resize(scale=size, keep_ratio=True)``): ``_scale_size``
    rounds ``int(x * s + 0.5)``; the image at the top-left; boxes back by mmdet's per-axis
    ``scale_factor = (new_w / w, new_h / h)``."""
    s = min(max(size) / max(h, w), min(size) / min(h, w))
    new_w, new_h = int(w * s + 0.5), int(h * s + 0.5)
    return (new_w, new_h), (0, 0), (new_w / w, new_h / h), None


def _ultralytics_letterbox(w, h, size):
    """Ultralytics ``LetterBox`` (auto=False): ``new_unpad = round(w * r), round(h * r)``
    (Python's round), centred with ``round(dw - 0.1)``; ``scale_boxes`` (8.4) takes boxes
    back by the per-axis gains of the rounded sides, ``new_w / w`` and ``new_h / h``, after
    removing the padding, then ``clip_boxes`` cuts them to the image."""
    r = min(size[1] / h, size[0] / w)
    new_w, new_h = int(round(w * r)), int(round(h * r))
    dw, dh = (size[0] - new_w) / 2, (size[1] - new_h) / 2
    return ((new_w, new_h), (int(round(dw - 0.1)), int(round(dh - 0.1))),
            (new_w / w, new_h / h), (w, h))


@pytest.mark.parametrize("w, h, size", [(640, 429, (416, 416)), (640, 392, (416, 416)),
                                        (1280, 853, (640, 640)), (517, 777, (640, 640)),
                                        (517, 777, (416, 416)), (333, 500, (320, 320))])
@pytest.mark.parametrize("preset, reference", [("yolox", _yolox_preproc),
                                               ("rtmlib", _yolox_preproc),
                                               ("rtmdet", _mmdet_resize),
                                               ("ultralytics", _ultralytics_letterbox)])
def test_each_preset_resizes_and_maps_boxes_back_as_its_exporter(w, h, size, preset, reference):
    """The odd sizes where truncation, half-up and half-to-even rounding disagree (640x429
    at 416: 278.85 rows; 640x392: 254.8; 1280x853 at 640: 426.5, where half-up and
    half-to-even differ): the image's rows and columns in the canvas, its offset, and a
    box mapped back, all as the exporter's own code computes them."""
    (new_w, new_h), (left, top), (sx, sy), bounds = reference(w, h, size)
    image = np.full((h, w, 3), 200, np.uint8)
    canvas, placement = fit_image(image, size, PRESETS[preset])
    pad = PRESETS[preset].pad_value
    filled = np.argwhere(canvas[..., 0] != pad)  # the image's pixels in the canvas
    assert filled.min(axis=0).tolist() == [top, left]
    assert filled.max(axis=0).tolist() == [top + new_h - 1, left + new_w - 1]
    assert placement == Placement(sx, sy, float(left), float(top), bounds)
    box = np.array([[left + 10.0, top + 20.0, left + 110.0, top + 220.0]])
    expected = [[10 / sx, 20 / sy, 110 / sx, 220 / sy]]
    np.testing.assert_allclose(placement.to_image(box), expected, rtol=1e-12)


def test_the_odd_sizes_do_tell_the_roundings_apart():
    """The cases above are the ones where the three exporters feed different pixels."""
    assert _yolox_preproc(640, 429, (416, 416))[0] == (416, 278)
    assert _mmdet_resize(640, 429, (416, 416))[0] == (416, 279)
    assert _ultralytics_letterbox(640, 429, (416, 416))[0] == (416, 279)
    assert _mmdet_resize(1280, 853, (640, 640))[0] == (640, 427)  # 426.5 half up
    assert _ultralytics_letterbox(1280, 853, (640, 640))[0] == (640, 426)  # to even
    assert _yolox_preproc(1280, 853, (640, 640))[0] == (640, 426)


def test_ultralytics_rect_input_and_boxes_back_as_letterbox_and_scale_boxes_do(tmp_path,
                                                                               monkeypatch):
    """A 897x1280 photo on a dynamic Ultralytics file (8.4's ``LetterBox(auto=True)``, then
    ``scale_boxes``). LetterBox: r = min(640/1280, 640/897) = 0.5, sides round(448.5) = 448
    (to even) and 640; 640 - 448 = 192 is a multiple of 32, so the input is 448x640 with no
    padding. scale_boxes works the gain out again from that input: min(640/1280, 448/897)
    = 448/897, sides round(1280 * 448/897) = round(639.29) = 639 and 448, pads round(0.5 -
    0.1) = 0 and 0: x back by 448/897, y by 639/1280 (not 0.5), cut to 897x1280."""
    from pose.apis.detector import rect_letterbox_size

    w, h = 897, 1280
    assert rect_letterbox_size(w, h) == (448, 640)
    image = np.full((h, w, 3), 200, np.uint8)
    canvas, placement = fit_image(image, (448, 640), PRESETS["ultralytics"],
                                  scale_size=(640, 640))
    assert (canvas == 200).all()  # the image resized to 448x640 fills the input
    assert placement == Placement(448 / 897, 639 / 1280, 0.0, 0.0, (897, 1280))
    np.testing.assert_allclose(placement.to_image(np.array([[0.0, 0.0, 448.0, 639.0]])),
                               [[0.0, 0.0, 897.0, 1280.0]], rtol=1e-12)
    # DetectorBoxes feeds a dynamic file that input (no row of padding at the bottom).
    path = onnx_detector(tmp_path / "yolov8_dynamic.onnx",
                         {"output0": _yolo(centred, False).T[None]},
                         input_shape=(1, 3, None, None))
    source = DetectorBoxes(path)
    seen = []
    run = source.network.run_outputs
    monkeypatch.setattr(source.network, "run_outputs", lambda x: seen.append(x) or run(x))
    source.detect(image)
    assert seen[0].shape == (1, 3, 640, 448)
    np.testing.assert_array_equal(seen[0], np.float32(200) / np.float32(255))


def test_ultralytics_boxes_are_cut_to_the_image_after_nms(tmp_path):
    """Ultralytics' NMS sees the boxes as the network gave them; ``scale_boxes`` then cuts
    them to the image (``clip_boxes``). WIDE reaches 100 px left of the image: IoU with
    INSIDE 5400 / 14400 = 0.375 < 0.45, both kept, and WIDE comes back as INSIDE's box.
    OUTSIDE lies wholly right of the 256-px image: kept as the line x = 256 (as
    Ultralytics returns it; the tools' ``clip_boxes`` then drops it as outside_image)."""
    wide, inside, outside = [-100.0, 10.0, 60.0, 100.0], [0.0, 10.0, 60.0, 100.0], \
        [300.0, 20.0, 340.0, 60.0]
    planted = [(wide, 0, 0.9), (inside, 0, 0.8), (outside, 0, 0.7)]
    path = onnx_detector(tmp_path / "yolov8.onnx",
                         {"output0": _yolo(centred, False, planted=planted).T[None]})
    xyxy, scores = DetectorBoxes(path).detect(IMAGE)
    np.testing.assert_allclose(xyxy, [inside, inside, [256.0, 20.0, 256.0, 60.0]], atol=1e-4)
    np.testing.assert_allclose(scores, [0.9, 0.8, 0.7], atol=1e-6)


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("channels_first", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.int8])
def test_the_fused_input_equals_the_preset_restated_in_numpy(preset, channels_first, dtype):
    """``make_input`` (one OpenCV pass, the channel swap of a BGR preset included) against
    the preset's formula in NumPy on the canvas in the preset's channel order: float to
    one float32 rounding step, uint8 and int8 exactly."""
    image = np.random.default_rng(1).integers(0, 256, (97, 131, 3), np.uint8)
    pre = PRESETS[preset]
    canvas, _ = fit_image(image, (64, 48), pre)
    rgb, _ = fit_image(image, (64, 48), pre, keep_rgb=True)
    np.testing.assert_array_equal(rgb[..., ::-1] if pre.channels == "BGR" else rgb, canvas)
    shape = (1, 3, 48, 64) if channels_first else (1, 48, 64, 3)
    info = TensorInfo("x", shape, np.dtype(dtype),
                      quantization=(1 / 255, -128) if dtype == np.int8 else None)
    layout = (0, 3, 1, 2) if channels_first else (0, 1, 2, 3)
    per_channel = (1, 3, 1, 1) if channels_first else (1, 1, 1, 3)
    values = ((canvas[None].astype(np.float64).transpose(layout)
               - np.reshape(pre.mean, per_channel)) / np.reshape(pre.std, per_channel))
    expected = {np.float32: values,
                np.uint8: canvas[None].transpose(layout),
                np.int8: np.clip(np.round(values * 255 - 128), -128, 127)}[dtype]
    for x in (make_input(canvas, info, pre, channels_first),
              make_input(rgb, info, pre, channels_first, from_rgb=True)):
        assert x.shape == shape and x.dtype == dtype and x.flags.c_contiguous
        if dtype == np.float32:
            np.testing.assert_allclose(x, expected, rtol=2e-7, atol=1e-7)
        elif dtype == np.int8 and preset in ("rtmdet", "rtmlib"):
            # a value one float32 step from a half (mmdet's std is no power of two) may
            # round to the neighbouring level; the others are exact
            difference = np.abs(x.astype(int) - expected)
            assert difference.max() <= 1 and np.mean(difference == 0) > 0.99
        else:
            np.testing.assert_array_equal(x, expected)


def test_fit_image_and_input_by_hand():
    image = np.zeros((160, 256, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 200, 100, 50  # R, G, B
    # Ultralytics: centred, rows 24..103 hold the image, RGB / 255, NCHW.
    canvas, placement = fit_image(image, (128, 128), PRESETS["ultralytics"])
    assert placement == Placement(0.5, 0.5, 0.0, 24.0, bounds=(256, 160))
    x = make_input(canvas, TensorInfo("images", (1, 3, 128, 128), np.dtype(np.float32)),
                   PRESETS["ultralytics"], channels_first=True)
    assert x.shape == (1, 3, 128, 128) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, :, 50, 7], [200 / 255, 100 / 255, 50 / 255], rtol=1e-6)
    np.testing.assert_allclose(x[0, :, 10, 7], [114 / 255] * 3, rtol=1e-6)  # padding above
    np.testing.assert_allclose(x[0, :, 110, 7], [114 / 255] * 3, rtol=1e-6)  # and below
    # mmdeploy RTMDet: top-left, BGR, (v - mean) / std of mmdet's config.
    canvas, placement = fit_image(image, (128, 128), PRESETS["rtmdet"])
    assert placement == Placement(0.5, 0.5, 0.0, 0.0)
    x = make_input(canvas, TensorInfo("input", (1, 3, 128, 128), np.dtype(np.float32)),
                   PRESETS["rtmdet"], channels_first=True)
    np.testing.assert_allclose(x[0, :, 10, 7], [(50 - 103.53) / 57.375, (100 - 116.28) / 57.12,
                                                (200 - 123.675) / 58.395], rtol=1e-5)
    np.testing.assert_allclose(x[0, :, 100, 7], [(114 - 103.53) / 57.375,
                                                 (114 - 116.28) / 57.12,
                                                 (114 - 123.675) / 58.395], rtol=1e-5)
    # SSD: plain resize, uint8 as is (NHWC); a float SSD input gets [-1, 1].
    canvas, placement = fit_image(image, (128, 128), PRESETS["ssd"])
    assert placement == Placement(0.5, 0.8)
    x = make_input(canvas, TensorInfo("x", (1, 128, 128, 3), np.dtype(np.uint8)),
                   PRESETS["ssd"], channels_first=False)
    assert x.dtype == np.uint8 and x[0, 0, 0].tolist() == [200, 100, 50]
    x = make_input(canvas, TensorInfo("x", (1, 128, 128, 3), np.dtype(np.float32)),
                   PRESETS["ssd"], channels_first=False)
    np.testing.assert_allclose(x[0, 0, 0], [(200 - 127.5) / 127.5, (100 - 127.5) / 127.5,
                                            (50 - 127.5) / 127.5], rtol=1e-6)
    # int8 input (Ultralytics int8 TFLite): the 0-1 values quantized with the input's
    # scale and zero point: q = round(v / scale + zero_point).
    x = make_input(canvas, TensorInfo("x", (1, 128, 128, 3), np.dtype(np.int8), (1 / 255, -128)),
                   PRESETS["ultralytics"], channels_first=False)
    assert x.dtype == np.int8 and x[0, 0, 0].tolist() == [200 - 128, 100 - 128, 50 - 128]
    # and an int8 output back to floats: (q - zero_point) * scale
    out = TensorInfo("y", (1, 2), np.dtype(np.int8), (0.5, 3))
    np.testing.assert_allclose(dequantize(np.array([[3, 7]], np.int8), out), [[0.0, 2.0]])
    np.testing.assert_allclose(dequantize(np.array([[3.0, 7.0]], np.float32), out),
                               [[3.0, 7.0]])  # a float output is left alone


# ----------------------------------------------------------------- end to end


def test_planted_detector_gives_the_keypoints_of_boxes(coco_sample_dir, tmp_path, tiny_hrnet,
                                                       randomized):
    """A detector file returning each COCO sample image's ground-truth boxes (mmdeploy
    end2end at 640x640) gives the same people and keypoints as ``--boxes`` with them."""
    from datasets.images import read_image_rgb
    from pose.apis.boxes import DetectionBoxes
    from pose.apis.estimator import PoseEstimator
    from pose.apis.inputs import collect_inputs
    from pose.apis.runner import run_inference
    from pose.config import Config, ModelConfig, TestConfig
    from pose.engine.checkpoint import build_model

    config = Config(model=ModelConfig(psa_placement="branch", **tiny_hrnet),
                    test=TestConfig(batch_size=8))
    estimator = PoseEstimator.from_config(randomized(build_model(config.model), seed=2),
                                          config)
    data = json.loads((coco_sample_dir / "person_keypoints_sample.json").read_text())
    entries, from_boxes = [], {}
    for image in data["images"]:
        anns = [a for a in data["annotations"] if a["image_id"] == image["id"]]
        scores = [0.99 - 0.01 * i for i in range(len(anns))]
        entries += [{"image_id": image["id"], "category_id": 1, "bbox": a["bbox"],
                     "score": s, "file_name": image["file_name"]} for a, s in zip(anns, scores)]
        path = coco_sample_dir / "images" / image["file_name"]
        h, w = read_image_rgb(str(path)).shape[:2]
        ratio = min(640 / w, 640 / h)
        sx, sy = round(w * ratio) / w, round(h * ratio) / h  # mmdet's Resize, keep_ratio
        dets = np.array([[a["bbox"][0] * sx, a["bbox"][1] * sy,
                          (a["bbox"][0] + a["bbox"][2]) * sx,
                          (a["bbox"][1] + a["bbox"][3]) * sy, s]
                         for a, s in zip(anns, scores)], np.float32)[None]
        detector = onnx_detector(tmp_path / f"{image['id']}.onnx",
                                 {"dets": dets, "labels": np.zeros(dets.shape[:2], np.int64)},
                                 input_shape=(1, 3, 640, 640), input_name="input")
        report = run_inference(estimator, collect_inputs([str(path)]),
                               tmp_path / f"det{image['id']}", DetectorBoxes(detector),
                               verbose=0)
        from_boxes[image["file_name"]] = json.loads(open(report.predictions_file).read())
        assert report.box_seconds > 0  # the detector's share of the run is measured
        assert json.loads(open(report.summary_file).read())["box_seconds"] >= 0
    (tmp_path / "gt.json").write_text(json.dumps(entries))
    report = run_inference(estimator, collect_inputs([str(coco_sample_dir / "images")]),
                           tmp_path / "boxes", DetectionBoxes(tmp_path / "gt.json"), verbose=0)
    want = json.loads(open(report.predictions_file).read())
    got = [p for name in sorted(from_boxes) for p in from_boxes[name]]
    want = sorted(want, key=lambda p: p["file_name"])
    assert len(got) == len(want) == len(data["annotations"]) > 4
    for g, w in zip(got, want):
        assert g["file_name"] == w["file_name"]
        np.testing.assert_allclose(g["box"], w["box"], atol=1e-2)
        np.testing.assert_allclose(g["keypoints"], w["keypoints"], atol=0.05)


@pytest.mark.parametrize("shape", [(429, 640), (853, 1280), (777, 517), (480, 640)])
def test_the_ultralytics_input_is_ultralytics_own_pre_processing(shape):
    """The ``ultralytics`` preset's input of a photo equals Ultralytics' predictor
    pre-processing restated (``LetterBox`` with ``copyMakeBorder``, BGR to RGB, NCHW, / 255)
    to one float32 rounding step: the benchmark times the same work on both sides."""
    from pose.experiments.detector_benchmark import time_detector_input

    image = np.random.default_rng(3).integers(0, 256, (*shape, 3), np.uint8)
    result = time_detector_input(image, 640, repeats=1)
    assert result["max_abs_difference"] <= 1e-7
    assert result["project_ms"] > 0 and result["ultralytics_ms"] > 0


@pytest.mark.parametrize("layout", ["yolov5", "yolox_decoded"])
@pytest.mark.parametrize("threshold, kept", [(np.nextafter(0.375, 0.0), True), (0.375, True),
                                             (np.nextafter(0.375, 1.0), False), (0.5, False)])
def test_the_score_of_a_layout_with_objectness_is_the_product_of_the_two(tmp_path, layout,
                                                                         threshold, kept):
    """YOLOv5 and YOLOX score a box by objectness × class score (0.5 × 0.75 = 0.375,
    exact in float32): the box is kept at a threshold of exactly that product, dropped
    just above it, and dropped at 0.5, which the class score alone would pass."""
    mapping = centred if layout == "yolov5" else top_left
    rows = yolo_rows([mapping(PERSON_A)], [0], [0.75], 80, CELLS, objectness=[0.5])
    path = onnx_detector(tmp_path / f"{layout}.onnx", {"output0" if layout == "yolov5"
                                                        else "output": rows[None]})
    source = DetectorBoxes(path, threshold=float(threshold))
    boxes, scores = source(IMAGE, "photo.jpg", 1)
    assert len(boxes) == int(kept)
    if kept:
        assert scores[0] == pytest.approx(0.375, abs=1e-7)
