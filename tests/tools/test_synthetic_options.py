"""Every option of tools/make_synthetic_coco.py changes what it writes, or (--workers)
provably does not (issue 30): each runs the tool twice, with and without it, on 8
validation images of 160x120, and compares the files."""

import json
import runpy
from pathlib import Path

import pytest

from pose.errors import run_tool

ROOT = Path(__file__).resolve().parents[2]
BASE = ["--train", "0", "--val", "8", "--width", "160", "--height", "120", "--seed", "4"]


def _generate(folder, *options):
    """Run the tool into a fresh folder; {relative path: bytes} of what it wrote."""
    main = runpy.run_path(str(ROOT / "tools" / "make_synthetic_coco.py"), run_name="t")["main"]
    out = folder / f"out{abs(hash(options))}"
    assert run_tool(main, ["--out", str(out), *BASE, *map(str, options)]) == 0
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != ".psa-pose-outputs.json"}


def _annotations(files):
    return json.loads(files["annotations/person_keypoints_val2017.json"])


def _detections(files):
    return json.loads(files["annotations/person_detection_results_val2017.json"])


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic_options")
    return folder, _generate(folder)


def test_people_per_image_sets_how_many_people_there_are(plain):
    folder, files = plain
    many = _generate(folder, "--people-per-image", 5)
    assert len(_annotations(many)["annotations"]) > len(_annotations(files)["annotations"])


def test_empty_image_rate_one_leaves_every_image_without_people(plain):
    folder, files = plain
    assert _annotations(files)["annotations"]
    empty = _generate(folder, "--empty-image-rate", 1.0)
    assert _annotations(empty)["annotations"] == []
    assert len(_annotations(empty)["images"]) == 8


def test_false_positives_per_image_adds_detector_boxes(plain):
    folder, files = plain
    none = _generate(folder, "--false-positives-per-image", 0)
    more = _generate(folder, "--false-positives-per-image", 10)
    assert len(_detections(none)) < len(_detections(files)) < len(_detections(more))


def test_jpeg_quality_changes_the_image_files_not_the_annotations(plain):
    folder, files = plain
    low = _generate(folder, "--jpeg-quality", 20)
    images = [name for name in files if name.startswith("val2017/")]
    assert len(images) == 8
    assert sum(len(low[n]) for n in images) < sum(len(files[n]) for n in images)
    for key in ("images", "annotations"):  # ("info" records the settings, quality too)
        assert _annotations(low)[key] == _annotations(files)[key]


def test_annotations_only_writes_the_same_json_and_no_images(plain):
    folder, files = plain
    only = _generate(folder, "--annotations-only")
    assert not [name for name in only if name.startswith("val2017/")]
    assert _annotations(only) == _annotations(files)


def test_workers_change_nothing_in_the_output(plain):
    """--workers only spreads the work: the same bytes with two processes."""
    folder, files = plain
    assert _generate(folder, "--workers", 2) == files
