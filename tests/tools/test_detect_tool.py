"""tools/detect.py: a detector file's person boxes as COCO detection results that
tools/test.py evaluates with and tools/infer.py --boxes matches by file name."""

import hashlib
import json
import shutil

import numpy as np

from pose.apis.boxes import DetectionBoxes
from pose.apis.detection_results import stable_image_id
from tests.pose.apis.detector_files import onnx_detector
from tests.tools.test_pretrained_tools import (
    _tool,  # runs tools/NAME in a subprocess
    _tool_here,  # tools/NAME in this process
)


def _gt_detector(path, coco_sample_dir):
    """An mmdeploy end2end file (640x640) whose boxes are image 785's ground truth (its
    640x425 image goes in at factor 1), plus a chair that must not come out."""
    data = json.loads((coco_sample_dir / "person_keypoints_sample.json").read_text())
    boxes = [a["bbox"] for a in data["annotations"] if a["image_id"] == 785]
    dets = [[x, y, x + w, y + h, 0.9 - 0.01 * i] for i, (x, y, w, h) in enumerate(boxes)]
    dets.append([10.0, 10.0, 100.0, 100.0, 0.99])
    labels = [0] * len(boxes) + [56]
    onnx_detector(path, {"dets": np.array([dets], np.float32),
                         "labels": np.array([labels], np.int64)},
                  input_shape=(1, 3, 640, 640), input_name="input")
    return boxes


def test_detect_then_test_and_infer_read_it(coco_sample_dir, official_hrnet_dir, tmp_path,
                                            capsys):
    detector = tmp_path / "end2end.onnx"
    gt = _gt_detector(detector, coco_sample_dir)
    annotations = coco_sample_dir / "person_keypoints_sample.json"
    out = tmp_path / "dets.json"
    run = _tool("detect.py", "--detector", detector, "--images", coco_sample_dir / "images",
                "--annotations", annotations, "--out", out, "--threads", 1)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.startswith(f"person boxes: detector {detector}: layout end2end")
    dets = json.loads(out.read_text())
    ids = {img["file_name"]: img["id"] for img in json.loads(annotations.read_text())["images"]}
    assert {d["image_id"] for d in dets} <= set(ids.values())
    assert all(d["image_id"] == ids[d["file_name"]] and d["category_id"] == 1
               and set(d) == {"image_id", "category_id", "bbox", "score", "file_name"}
               for d in dets)
    mine = [d for d in dets if d["image_id"] == 785]
    np.testing.assert_allclose([d["bbox"] for d in mine], gt, atol=0.02)  # rounded to 0.01
    assert f"wrote {len(dets)} person box(es) of 4 image(s)" in run.stdout
    # tools/infer.py --boxes matches the entries by file name
    source = DetectionBoxes(out)
    boxes, _ = source(np.zeros((425, 640, 3), np.uint8), "somewhere/000000000785.jpg", None)
    np.testing.assert_allclose(boxes, [d["bbox"] for d in mine])

    run = _tool_here(capsys, "test.py", "--weights",
                     official_hrnet_dir / "pose_hrnet_tiny_legacy.pth",
                     "--input-size", 64, 96, "--boxes", out, "--annotations", annotations,
                     "--images", coco_sample_dir / "images", "--no-flip", "--out",
                     tmp_path / "test")
    assert run.returncode == 0, run.stderr[-2000:]
    metrics = json.loads((tmp_path / "test" / "metrics.json").read_text())
    assert metrics["num_boxes"] == len(dets) and 0.0 <= metrics["AP"] <= 1.0


def test_detect_ids_without_annotations_and_errors(coco_sample_dir, tmp_path):
    detector = tmp_path / "end2end.onnx"
    _gt_detector(detector, coco_sample_dir)
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(coco_sample_dir / "images" / "000000000785.jpg", images / "group photo.jpg")
    shutil.copy(coco_sample_dir / "images" / "000000040083.jpg", images)
    out = tmp_path / "dets.json"
    run = _tool("detect.py", "--detector", detector, "--images", images, "--out", out,
                "--quiet", "--detector-threshold", 0.85)
    assert run.returncode == 0, run.stderr[-2000:]
    dets = json.loads(out.read_text())
    by_name = {d["file_name"]: d["image_id"] for d in dets}
    want = int(hashlib.sha1(b"group photo.jpg").hexdigest()[:12], 16)
    assert by_name["group photo.jpg"] == want == stable_image_id("x/group photo.jpg")
    assert by_name.get("000000040083.jpg", 40083) == 40083
    assert min(d["score"] for d in dets) >= 0.85

    # A pose model's .onnx as --detector: one line naming what the file has.
    pose = onnx_detector(tmp_path / "pose.onnx",
                         {"heatmaps": np.zeros((1, 64, 48, 17), np.float32)},
                         input_shape=(None, 256, 192, 3), input_name="crops")
    run = _tool("detect.py", "--detector", pose, "--images", images, "--out",
                tmp_path / "none.json")
    assert run.returncode == 2
    last = run.stderr.strip().splitlines()
    assert len(last) == 1 and last[0].startswith("error: ")
    assert "not a detector file" in last[0] and "heatmaps (1, 64, 48, 17)" in last[0]
    assert not (tmp_path / "none.json").exists()


def test_out_may_not_be_an_input_however_it_is_spelt(coco_sample_dir, tmp_path, monkeypatch,
                                                      capsys):
    """--out equal to an input image (by a relative path, through a symlink, through
    ``..``), the annotation file or the detector file is refused in one line before
    anything is read or written; the inputs are unchanged."""
    import runpy
    from pathlib import Path

    from pose.errors import run_tool

    root = Path(__file__).resolve().parents[2]
    main = runpy.run_path(str(root / "tools" / "detect.py"), run_name="tool")["main"]
    images = tmp_path / "images"
    images.mkdir()
    photo = images / "photo.jpg"
    shutil.copy(coco_sample_dir / "images" / "000000000785.jpg", photo)
    annotations = tmp_path / "ann.json"
    shutil.copy(coco_sample_dir / "person_keypoints_sample.json", annotations)
    detector = tmp_path / "end2end.onnx"
    detector.write_bytes(b"not read: refused before the detector is loaded")
    (tmp_path / "link.jpg").symlink_to(photo)
    monkeypatch.chdir(tmp_path)
    before = {p: p.read_bytes() for p in (photo, annotations, detector)}
    for out, source in (("images/photo.jpg", "images/photo.jpg"),
                        ("link.jpg", "images/photo.jpg"),
                        ("images/../images/photo.jpg", "images/photo.jpg"),
                        ("ann.json", "ann.json"), (str(detector), str(detector))):
        code = run_tool(main, ["--detector", str(detector), "--images", "images",
                               "--annotations", "ann.json", "--out", out])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1, err
        assert err[0].startswith(f"error: --out {out} is an input of this command"), err[0]
        assert source in err[0] or str(tmp_path / source) in err[0]
    assert {p: p.read_bytes() for p in before} == before
    # threads beyond the limit, before the detector is loaded
    from pose.options import max_threads

    assert run_tool(main, ["--detector", str(detector), "--images", "images", "--out",
                           "dets.json", "--threads", str(max_threads() + 1)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: --threads must be an integer in [1, {max_threads()}], got")
    assert not (tmp_path / "dets.json").exists()
    # argparse's own mistakes are one line too (the shared parser)
    assert run_tool(main, ["--images", "images"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: the following arguments are required: --detector, --out")


def test_out_replaces_only_what_this_tool_wrote_unless_overwrite(coco_sample_dir, tmp_path,
                                                                 capsys):
    """A user's file at --out is refused (and kept); --overwrite replaces it; the tool's
    own earlier output is replaced without it (the folder's manifest lists it)."""
    import runpy
    from pathlib import Path

    from pose.checks import MANIFEST_NAME
    from pose.errors import run_tool

    root = Path(__file__).resolve().parents[2]
    main = runpy.run_path(str(root / "tools" / "detect.py"), run_name="tool")["main"]
    detector = tmp_path / "end2end.onnx"
    _gt_detector(detector, coco_sample_dir)
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(coco_sample_dir / "images" / "000000000785.jpg", images)
    out = tmp_path / "out" / "dets.json"
    out.parent.mkdir()
    out.write_text("my notes")
    command = ["--detector", str(detector), "--images", str(images), "--out", str(out),
               "--quiet"]
    assert run_tool(main, command) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (f"error: --out {out} exists and this tool did not write it: pass "
                    "--overwrite to replace it, or choose another path")
    assert out.read_text() == "my notes"
    assert run_tool(main, command + ["--overwrite"]) == 0
    assert json.loads(out.read_text())[0]["image_id"] == 785
    manifest = json.loads((out.parent / MANIFEST_NAME).read_text())
    assert manifest == {"files": {"dets.json": "tools/detect.py"}}
    out.write_text("[]")  # the tool's own file: replaced by the same command again
    assert run_tool(main, command) == 0 and json.loads(out.read_text())


def test_two_photos_of_one_name_get_two_ids(coco_sample_dir, tmp_path, capsys):
    """The same COCO file name in two folders: the first keeps its number, the second
    the SHA-1 id of its path (``pose.apis.inputs.ImageIds``), never one shared id."""
    import hashlib
    import os
    import runpy
    from pathlib import Path

    from pose.errors import run_tool

    root = Path(__file__).resolve().parents[2]
    main = runpy.run_path(str(root / "tools" / "detect.py"), run_name="tool")["main"]
    detector = tmp_path / "end2end.onnx"
    _gt_detector(detector, coco_sample_dir)
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(coco_sample_dir / "images" / "000000000785.jpg", tmp_path / folder)
    out = tmp_path / "dets.json"
    assert run_tool(main, ["--detector", str(detector), "--images", str(tmp_path / "a"),
                           str(tmp_path / "b"), "--out", str(out), "--quiet"]) == 0
    second = os.path.realpath(tmp_path / "b" / "000000000785.jpg")
    ids = {d["image_id"] for d in json.loads(out.read_text())}
    assert ids == {785, int(hashlib.sha1(second.encode()).hexdigest()[:12], 16)}


def test_photos_are_detected_upright_unless_ignore_exif(coco_sample_dir, tmp_path, capsys):
    """A photo stored sideways with EXIF orientation 6 gives the boxes of the same photo
    turned upright in its pixels (the boxes are in the displayed frame); --ignore-exif
    gives those of the stored pixels."""
    import runpy
    import struct
    from pathlib import Path

    import cv2

    from pose.errors import run_tool

    root = Path(__file__).resolve().parents[2]
    main = runpy.run_path(str(root / "tools" / "detect.py"), run_name="tool")["main"]
    detector = tmp_path / "end2end.onnx"
    _gt_detector(detector, coco_sample_dir)
    upright = cv2.imread(str(coco_sample_dir / "images" / "000000000785.jpg"))
    stored = np.rot90(upright, 1)  # what a camera held sideways stores
    tiff = (b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1)
            + struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack(">I", 0))
    exif = b"Exif\x00\x00" + tiff
    jpeg = cv2.imencode(".jpg", np.ascontiguousarray(stored))[1].tobytes()
    for name, data in (("sideways", jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2)
                        + exif + jpeg[2:]),
                       ("turned", cv2.imencode(".jpg", upright)[1].tobytes())):
        (tmp_path / name).mkdir()
        (tmp_path / name / "photo.jpg").write_bytes(data)

    def boxes(folder, *extra):
        out = tmp_path / f"{folder}{len(extra)}.json"
        assert run_tool(main, ["--detector", str(detector), "--images", str(tmp_path / folder),
                               "--out", str(out), "--quiet", *extra]) == 0
        return [d["bbox"] for d in json.loads(out.read_text())]

    assert boxes("sideways") == boxes("turned")
    assert boxes("sideways", "--ignore-exif") != boxes("turned")
