"""The ranges of ``DetectorBoxes``' own arguments (a library caller gets no range table from
the parser), each taken at its end and refused just beyond it, and a one-class YOLOv8 file
(a person-only detector: 4 + 1 rows) recognised and decoded (issue 30: planted bugs that
survived the nearest tests)."""

import pytest

from pose.apis.detector import DetectorBoxes
from pose.apis.detector_layouts import DetectorError
from tests.pose.apis.detector_files import onnx_detector, yolo_rows
from tests.pose.apis.test_detector import (
    CELLS,
    PERSON_A,
    PERSON_B,
    _yolo,
    assert_people,
    centred,
)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("detector_ranges")
    return {"fixed": onnx_detector(folder / "yolov8.onnx",
                                   {"output0": _yolo(centred, False).T[None]}),
            "dynamic": onnx_detector(folder / "dynamic.onnx",
                                     {"output0": _yolo(centred, False).T[None]},
                                     input_shape=(1, 3, None, None))}


@pytest.mark.parametrize("name,at_the_end,beyond", [
    ("max_people", [1], [0]),
    ("nms_iou", [1.0, 1e-6], [0.0, 1.0 + 1e-9]),
    ("threshold", [0.0, 1.0], [-1e-9, 1.0 + 1e-9]),
    ("std", [(1e-6, 1.0, 1.0)], [(0.0, 1.0, 1.0), (1.0, 1.0)]),
    ("mean", [(0.0, 0.0, 0.0)], [(0.0, 0.0)]),
])
def test_each_detector_argument_is_taken_at_its_end_and_refused_beyond(files, name, at_the_end,
                                                                      beyond):
    for value in at_the_end:
        assert DetectorBoxes(files["fixed"], **{name: value})
    for value in beyond:
        with pytest.raises(DetectorError):
            DetectorBoxes(files["fixed"], **{name: value})


def test_a_dynamic_input_takes_32_pixels_and_refuses_31(files):
    """The least ``--detector-size`` (32: one cell of a YOLO head's coarsest stride)."""
    assert DetectorBoxes(files["dynamic"], size=(32, 32)).size == (32, 32)
    assert DetectorBoxes(files["dynamic"], size=(32, 640)).size == (32, 640)
    for size in ((31, 640), (640, 31)):
        with pytest.raises(DetectorError, match="at least 32 32"):
            DetectorBoxes(files["dynamic"], size=size)


def test_a_one_class_yolov8_file_is_recognised(tmp_path):
    """A person-only YOLOv8 (``nc=1``): its output is (1, 4 + 1, N); the person class is 0,
    the only one, and 1 is refused."""
    rows = yolo_rows([centred(PERSON_A), centred(PERSON_B)], [0, 0], [0.9, 0.8], 1, CELLS)
    path = onnx_detector(tmp_path / "person_only.onnx", {"output0": rows.T[None]})
    source = DetectorBoxes(path)
    assert source.layout == "yolov8"
    assert_people(source, [PERSON_A, PERSON_B])
    with pytest.raises(DetectorError, match="scores 1 classes"):
        DetectorBoxes(path, person_class=1)


def test_an_end2end_file_gives_people_only_with_nms_over_all_classes(tmp_path):
    """A file with NMS inside labels each box: with --detector-nms-classes all (which such
    a file ignores: its NMS is its own) the chair it found is still no person."""
    import numpy as np

    from tests.pose.apis.test_detector import CHAIR, PLANTED, top_left

    kept = [p for p in PLANTED if p[0] in (PERSON_A, PERSON_B, CHAIR)]
    dets = np.array([[*top_left(b), s] for b, _, s in kept], np.float32)[None]
    labels = np.array([[c for _, c, _ in kept]], np.int64)
    path = onnx_detector(tmp_path / "end2end.onnx", {"dets": dets, "labels": labels},
                         input_name="input")
    for nms_classes in (None, "all", "person"):
        assert_people(DetectorBoxes(path, nms_classes=nms_classes), [PERSON_A, PERSON_B])
