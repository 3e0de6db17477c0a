"""``pose.apis.detection_results.detect_images`` with a box source made here: the entries of
the file (category, rounding, ids), the report's counts over several images, the
annotation file's images matched by base name, and a run that processes nothing (issue 30:
planted bugs that survived the tool's tests)."""

import json

import cv2
import numpy as np
import pytest

from pose.apis.detection_results import detect_images
from pose.apis.inputs import InputError, collect_inputs

# Per image (by file name): x, y, w, h boxes and scores. On the 40 x 30 images, the box at
# x 100 lies outside (dropped, "outside_image") and the one at x 30 is cut to the image.
BOXES = {"a.png": ([[1.234567, 2.0, 10.0, 12.0], [30.0, 5.0, 20.0, 20.0], [100.0, 0, 5, 5]],
                   [0.9876543, 0.5, 0.7]),
         "b.png": ([[100.0, 0, 5, 5]], [0.4]),
         "c.png": ([[5.0, 5.0, 8.0, 9.0], [20.0, 5.0, 8.0, 9.0]], [0.25, 0.2])}


def source(image, file_name=None, image_id=None):
    import os

    boxes, scores = BOXES[os.path.basename(file_name)]
    return np.array(boxes, np.float64), np.array(scores, np.float64)


@pytest.fixture()
def images(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in BOXES:
        cv2.imwrite(str(folder / name), np.full((30, 40, 3), 128, np.uint8))
    return folder


def test_the_entries_and_the_counts_of_a_run(images, tmp_path):
    out = tmp_path / "dets.json"
    report = detect_images(source, collect_inputs([str(images)]), out, verbose=0)
    entries = json.loads(out.read_text())
    assert [e["file_name"] for e in entries] == ["a.png", "a.png", "c.png", "c.png"]
    assert {e["category_id"] for e in entries} == {1}  # COCO's person
    assert entries[0]["bbox"] == [1.23, 2.0, 10.0, 12.0] and entries[0]["score"] == 0.98765
    assert entries[1]["bbox"] == [30.0, 5.0, 10.0, 20.0]  # cut to the 40-pixel width
    assert len({e["image_id"] for e in entries}) == 2
    assert (report.num_images, report.num_boxes) == (3, 4)
    assert report.no_boxes == [str(images / "b.png")]
    assert report.dropped_boxes == {"outside_image": 2}  # one of a.png, one of b.png
    assert "wrote 4 person box(es) of 3 image(s)" in report.summary()


def test_annotated_images_are_matched_by_base_name_and_the_others_reported(images, tmp_path):
    annotations = tmp_path / "ann.json"
    annotations.write_text(json.dumps({
        "images": [{"id": 7, "file_name": "val/a.png", "width": 40, "height": 30},
                   {"id": 9, "file_name": "c.png", "width": 40, "height": 30}],
        "annotations": [], "categories": [{"id": 1, "name": "person"}]}))
    out = tmp_path / "dets.json"
    report = detect_images(source, collect_inputs([str(images)]), out,
                           annotation_file=annotations, verbose=0)
    entries = json.loads(out.read_text())
    assert [(e["file_name"], e["image_id"]) for e in entries] == [("a.png", 7), ("a.png", 7),
                                                                   ("c.png", 9), ("c.png", 9)]
    assert report.not_annotated == ["b.png"] and report.num_images == 2
    assert "skipped 1 image(s) that the annotation file does not list: b.png" in (
        report.summary())


def test_a_run_that_processes_nothing_writes_nothing(images, tmp_path):
    for path in images.iterdir():
        path.write_bytes(b"not an image")
    out = tmp_path / "dets.json"
    with pytest.raises(InputError, match="no image was processed .*3 unreadable"):
        detect_images(source, collect_inputs([str(images)]), out, verbose=0)
    assert not out.exists()


def test_videos_are_refused_naming_the_first(images, tmp_path):
    (images / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    with pytest.raises(InputError, match="takes images, not videos: .*clip.mp4"):
        detect_images(source, collect_inputs([str(images)]), tmp_path / "dets.json", verbose=0)
    assert not (tmp_path / "dets.json").exists()
