"""Every detector option of tools/detect.py changes what the tool writes (issue 30).

Each option runs the tool twice, with and without it, on a planted YOLOv8-layout file
whose output depends on what it is fed (one person's score is ``0.25 + mean(input)``), so
that an option ignored anywhere between the command line and the runtime leaves the output
unchanged and fails its case. The image is a black 256x160 photo: Ultralytics' centred
letterbox puts it 24 rows down in the 128x128 input, grey 114 around it, so the input's
mean is 114/255 x 0.375 = 0.168 with the default preset.
"""

import io
import json
import runpy
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from pose.errors import run_tool
from tests.pose.apis.detector_files import onnx_detector, yolo_rows

ROOT = Path(__file__).resolve().parents[2]
SIZE = 128
CELLS = 16 * 16 + 8 * 8 + 4 * 4  # YOLO grid cells at 128x128 (strides 8, 16, 32)
PERSON_A = [20.0, 30.0, 80.0, 150.0]  # x1, y1, x2, y2 image pixels
PERSON_B = [150.0, 10.0, 230.0, 140.0]
DUPLICATE = [22.0, 32.0, 82.0, 148.0]  # of A (IoU 0.91)
CHAIR_ON_B = [152.0, 12.0, 230.0, 138.0]  # class 2 over B (IoU 0.95)
FAINT = [90.0, 100.0, 140.0, 158.0]  # person, score 0.2
FED = [95.0, 20.0, 135.0, 90.0]  # person, score 0.25 + mean(input)
# B's score as the file holds it (float32 0.8 = 0.800000011920929): the threshold itself
B_SCORE = float(np.float32(0.8))
PLANTED = [(PERSON_A, 0, 0.9), (PERSON_B, 0, 0.8), (DUPLICATE, 0, 0.7),
           (CHAIR_ON_B, 2, 0.95), (FAINT, 0, 0.2), (FED, 0, 0.25)]


def _centred(box):
    return [box[0] / 2, box[1] / 2 + 24, box[2] / 2, box[3] / 2 + 24]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("detector_options")
    boxes, classes, scores = zip(*PLANTED)
    rows = yolo_rows([_centred(b) for b in boxes], classes, scores, 80, CELLS)  # (N, 84)
    gains = np.zeros_like(rows)
    gains[len(PLANTED) - 1, 4] = 1.0  # FED's person score follows the input's mean
    detector = onnx_detector(folder / "yolov8.onnx", {"output0": rows.T[None]},
                             gains={"output0": gains.T[None]})
    (folder / "photos").mkdir()
    cv2.imwrite(str(folder / "photos" / "black.png"), np.zeros((160, 256, 3), np.uint8))
    return folder, detector


def _detect(folder, detector, *options):
    """tools/detect.py in this process: (exit code, [(box, score), ...] or None)."""
    main = runpy.run_path(str(ROOT / "tools" / "detect.py"), run_name="tool")["main"]
    out = folder / f"dets_{abs(hash(options))}.json"
    code = run_tool(main, ["--detector", str(detector), "--images", str(folder / "photos"),
                           "--out", str(out), "--quiet", "--overwrite", *map(str, options)])
    if code != 0:
        return code, None
    return code, [(d["bbox"], d["score"]) for d in json.loads(out.read_text())]


def _boxes(result):
    return [[round(v) for v in box] for box, _ in result[1]]


def _xywh(box):
    return [round(box[0]), round(box[1]), round(box[2] - box[0]), round(box[3] - box[1])]


def test_without_options_the_planted_people_come_out(planted, capsys):
    code, dets = _detect(*planted)
    assert code == 0
    # A and B (B kept: per-class NMS ignores the chair), the duplicate and the faint
    # person dropped, FED kept at 0.25 + 0.168
    assert _boxes((code, dets)) == [_xywh(PERSON_A), _xywh(PERSON_B), _xywh(FED)]
    assert dets[2][1] == pytest.approx(0.25 + 114 / 255 * 0.375, abs=2e-3)


@pytest.mark.parametrize("options, changed", [
    (["--detector-threshold", 0.1], "the faint person appears"),
    (["--detector-threshold", B_SCORE], "B, scoring exactly the threshold, is kept; FED not"),
    (["--detector-threshold", 0.81], "B, just under the threshold, is dropped"),
    (["--person-class", 2], "the chair instead of the people"),
    (["--detector-nms-iou", 1.0], "the duplicate of A is kept"),
    (["--detector-nms-classes", "all"], "B is dropped under the stronger chair"),
    (["--max-people", 1], "only the best person"),
    (["--detector-mean", 255, 255, 255], "FED's score falls below the threshold"),
    (["--detector-std", 1, 1, 1], "FED's score rises with 0-255 values"),
    (["--detector-preset", "yolox"], "the boxes are read at the top-left, not centred"),
    (["--detector-format", "yolov5"], "the file is refused as a YOLOv5 layout"),
    (["--detector-size", 256, 256], "the fixed 128x128 input refuses another size"),
])
def test_each_detector_option_changes_the_output(planted, capsys, options, changed):
    without = _detect(*planted)
    with_option = _detect(*planted, *options)
    assert with_option != without, f"{options} ignored: expected {changed}"
    if options[0] in ("--detector-format", "--detector-size"):
        assert with_option[0] == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: "), err
        return
    dets = with_option[1]
    by_threshold = {0.1: [PERSON_A, PERSON_B, FED, FAINT], B_SCORE: [PERSON_A, PERSON_B],
                    0.81: [PERSON_A]}
    expected = {
        "--detector-threshold": by_threshold.get(options[1]),
        "--person-class": [CHAIR_ON_B],
        "--detector-nms-iou": [PERSON_A, PERSON_B, DUPLICATE, FED],
        "--detector-nms-classes": [PERSON_A, FED],
        "--max-people": [PERSON_A],
        "--detector-mean": [PERSON_A, PERSON_B],
        "--detector-std": [PERSON_A, PERSON_B, FED],
    }.get(options[0])
    if expected is not None:
        assert sorted(_boxes(with_option)) == sorted(_xywh(b) for b in expected), dets
    if options[0] == "--detector-std":  # 0-255 values: mean 114 x 0.375 = 42.75
        assert max(score for _, score in dets) == pytest.approx(0.25 + 42.75, rel=1e-3)


def test_recursive_reads_the_sub_folders_too(planted, capsys):
    folder, detector = planted
    (folder / "photos" / "more").mkdir(exist_ok=True)
    cv2.imwrite(str(folder / "photos" / "more" / "black2.png"), np.zeros((160, 256, 3), np.uint8))
    try:
        flat, nested = _detect(folder, detector), _detect(folder, detector, "--recursive")
    finally:
        (folder / "photos" / "more" / "black2.png").unlink()
    assert len(nested[1]) == 2 * len(flat[1]) == 6  # the same three people in each photo


def test_quiet_silences_the_progress_and_keeps_the_boxes(planted, monkeypatch):
    """The progress (``images n/N`` on a terminal's stderr, erased when done) is written
    without --quiet only; the boxes are the same."""
    folder, detector = planted
    main = runpy.run_path(str(ROOT / "tools" / "detect.py"), run_name="tool")["main"]

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    def run(*options):
        out = folder / f"quiet_{len(options)}.json"
        terminal = Terminal()
        monkeypatch.setattr(sys, "stderr", terminal)
        assert run_tool(main, ["--detector", str(detector), "--images", str(folder / "photos"),
                               "--out", str(out), "--overwrite", *options]) == 0
        return json.loads(out.read_text()), terminal.getvalue()

    loud_boxes, loud = run()
    quiet_boxes, quiet = run("--quiet")
    assert quiet_boxes == loud_boxes
    assert loud.startswith("\r") and quiet == ""  # one image: the line is erased at once


def test_threads_reach_the_detectors_runtime(planted, monkeypatch):
    import pose.apis.detector as detector_module

    original = detector_module.detector_from_args
    recorded = []

    def recording(args, threads=None):
        source = original(args, threads=threads)
        recorded.append((threads, source))
        return source

    monkeypatch.setattr(detector_module, "detector_from_args", recording)
    assert _detect(*planted, "--threads", 1)[0] == 0
    assert _detect(*planted)[0] == 0
    (given, _), (default, _) = recorded
    assert given == 1 and default is None  # None: the runtime's own default, the core count


def test_annotations_give_the_image_ids(planted, capsys):
    """With --annotations the entries take the id that the annotation file gives the photo's
    name (42, nothing a file name yields); without, the stable id of the name; a photo the
    file does not list is left out (here: the only one, so nothing is written)."""
    from pose.apis.detection_results import stable_image_id

    folder, detector = planted
    main = runpy.run_path(str(ROOT / "tools" / "detect.py"), run_name="tool")["main"]

    def ids(name, *options):
        out = folder / name
        code = run_tool(main, ["--detector", str(detector), "--images", str(folder / "photos"),
                               "--out", str(out), "--quiet", *options])
        return code, (sorted({d["image_id"] for d in json.loads(out.read_text())})
                      if code == 0 else None)

    def annotations(name, file_name):
        path = folder / name
        path.write_text(json.dumps({
            "images": [{"id": 42, "file_name": file_name, "width": 256, "height": 160}],
            "annotations": [], "categories": [{"id": 1, "name": "person"}]}))
        return str(path)

    assert ids("ids_without.json") == (0, [stable_image_id("black.png")])
    assert ids("ids_with.json", "--annotations", annotations("a.json", "black.png")) == (0, [42])
    assert ids("ids_other.json", "--annotations", annotations("b.json", "white.png")) == (2, None)
    assert "no image was processed (1 not in the annotation file" in capsys.readouterr().err
