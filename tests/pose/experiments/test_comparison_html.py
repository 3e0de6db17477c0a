"""report.html: the comparison's self-contained report, built from hand-made results.

Six images of one COCO person each (area 20000, so a wrist 15 px off has ks
exp(-225 / (2 · 20000 · (2 · 0.062)²)) = 0.69: a jitter; 60 px off, 0.003: a miss). The
two variants' results differ by construction, so the gallery's order is worked out by
hand: image 10 (the person unmatched in parallel: 17 keypoints change), 20 (5 change),
then three images with 2 changes each, ordered by the change in good keypoints (5 and 30:
2, image 3: 0) and then by id: 5, 30, 3. Image 50 does not change and is not shown.
"""

import base64
import json
import re
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from datasets.metadata import COCO_KEYPOINT_NAMES, COCO_SIGMAS, COCO_SKELETON_1BASED
from pose.config import DataConfig
from pose.evaluation.metrics import STAT_NAMES, evaluate_coco_keypoints
from pose.experiments.comparison import read_run_results, summarize_comparison
from pose.experiments.comparison_html import (
    CLASS_COLOURS,
    UNLABELLED_COLOUR,
    report_html,
)
from pose.experiments.comparison_report import write_comparison

K = len(COCO_KEYPOINT_NAMES)
INDEX = {name: k for k, name in enumerate(COCO_KEYPOINT_NAMES)}
# One person, around (160, 120) of a 320 x 240 image; the wrists are 100 px apart.
TEMPLATE = np.array([[0, -60], [-6, -66], [6, -66], [-12, -62], [12, -62], [-30, -35],
                     [30, -35], [-45, 0], [45, 0], [-50, 30], [50, 30], [-20, 20], [20, 20],
                     [-22, 55], [22, 55], [-24, 90], [24, 90]], np.float64) + (160, 120)
WIDTH, HEIGHT = 320, 240
ORDER = [10, 20, 5, 30, 3]  # worked out by hand (module doc)
CHANGED = [17, 5, 2, 2, 2]


def _moved(changes):
    """The template with ``{keypoint name: (dx, dy)}`` added."""
    xy = TEMPLATE.copy()
    for name, offset in changes.items():
        xy[INDEX[name]] += offset
    return xy


JITTER = (15, 0)
INVERTED = _moved({})
INVERTED[[INDEX["left_wrist"], INDEX["right_wrist"]]] = \
    TEMPLATE[[INDEX["right_wrist"], INDEX["left_wrist"]]]
# image id: (none's keypoints, parallel's keypoints or None for no detection)
SCENES = {
    5: (TEMPLATE, _moved({"left_shoulder": JITTER, "right_shoulder": JITTER})),
    10: (TEMPLATE, None),
    20: (TEMPLATE, _moved({"left_elbow": JITTER, "right_elbow": JITTER, "left_knee": JITTER,
                           "right_knee": JITTER, "left_wrist": (0, 60)})),
    30: (_moved({"left_ankle": JITTER, "right_ankle": JITTER}), TEMPLATE),
    3: (_moved({"left_wrist": JITTER, "right_wrist": JITTER}), INVERTED),
    50: (TEMPLATE, TEMPLATE),
}


def _write_set(root):
    """The annotations, the images (a grey gradient) and the two results files."""
    (root / "val2017").mkdir(parents=True)
    (root / "annotations").mkdir()
    gradient = np.tile(np.linspace(40, 110, WIDTH, dtype=np.float64), (HEIGHT, 1))
    image = np.repeat(gradient[..., None], 3, axis=2).astype(np.uint8)
    data = {"images": [], "annotations": [],
            "categories": [{"id": 1, "name": "person", "supercategory": "person",
                            "keypoints": list(COCO_KEYPOINT_NAMES),
                            "skeleton": [list(limb) for limb in COCO_SKELETON_1BASED]}]}
    results = {"none": [], "parallel": []}
    for image_id, (a, b) in SCENES.items():
        name = f"{image_id:012d}.png"
        cv2.imwrite(str(root / "val2017" / name), image)
        data["images"].append({"id": image_id, "file_name": name, "width": WIDTH,
                               "height": HEIGHT})
        low, high = TEMPLATE.min(axis=0), TEMPLATE.max(axis=0)
        data["annotations"].append({
            "id": image_id * 10, "image_id": image_id, "category_id": 1, "iscrowd": 0,
            "area": 20000.0, "bbox": [*low.tolist(), *(high - low).tolist()],
            "num_keypoints": K,
            "keypoints": np.concatenate([TEMPLATE, np.full((K, 1), 2.0)], 1).ravel().tolist()})
        for variant, xy in (("none", a), ("parallel", b)):
            if xy is not None:
                results[variant].append({
                    "image_id": image_id, "category_id": 1, "score": 0.9,
                    "keypoints": np.concatenate([xy, np.ones((K, 1))], 1).ravel().tolist()})
    annotations = root / "annotations" / "person_keypoints_val2017.json"
    annotations.write_text(json.dumps(data))
    files = {}
    for variant, entries in results.items():
        files[variant] = root / f"{variant}_results.json"
        files[variant].write_text(json.dumps(entries))
    return annotations, files


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The comparison of the two hand-made results sets, written by ``write_comparison``
    as the tools write it: ``(report.html's text, the comparison, its folder)``."""
    from datasets.coco import load_coco

    root = tmp_path_factory.mktemp("scene")
    annotations, files = _write_set(root)
    config = SimpleNamespace(data=DataConfig(root=str(root)))
    coco = load_coco(str(annotations))
    runs = []
    for variant, path in files.items():
        metrics = evaluate_coco_keypoints(coco, json.loads(path.read_text()), COCO_SIGMAS)
        runs.append({"variant": variant, "width": 8, "input": "64x48", "psa": variant,
                     "params": 100, "macs_g": 0.1, "boxes": "ground truth",
                     "flip_test": False, "latency_ms": 1.0,
                     "metrics": {name: metrics[name] for name in STAT_NAMES},
                     **read_run_results(str(path), str(annotations), config)})
    comparison = summarize_comparison(runs, num_resamples=20)
    out = root / "out"
    paths = write_comparison(comparison, str(out))
    return paths["html"], comparison, out


def _gallery(text):
    """[(image id, changed, [(variant, decoded RGB drawing), ...])] in the page's order."""
    entries = []
    for match in re.finditer(r'<figure class="pair" data-image-id="(\d+)" '
                             r'data-changed="(\d+)">(.*?)</figure>', text, re.S):
        panels = []
        for data, variant in re.findall(r'<img src="data:image/jpeg;base64,([^"]+)" '
                                        r'data-variant="([^"]+)"', match.group(3)):
            panels.append((variant, cv2.cvtColor(cv2.imdecode(
                np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR),
                cv2.COLOR_BGR2RGB)))
        entries.append((int(match.group(1)), int(match.group(2)), panels))
    return entries


def _colour_at(drawing, xy):
    """The drawing's RGB at image point ``xy`` (the drawing is the image scaled)."""
    scale = drawing.shape[1] / WIDTH
    x, y = (int(round(v * scale)) for v in xy)
    return drawing[y, x].astype(np.int64)


def _nearest_class(rgb):
    palette = {**CLASS_COLOURS, "unlabelled": UNLABELLED_COLOUR}
    distance = {name: np.abs(rgb - [int(c[i:i + 2], 16) for i in (1, 3, 5)]).max()
                for name, c in palette.items()}
    return min(distance, key=distance.get), min(distance.values())


def test_the_gallery_is_ordered_by_the_keypoints_that_change_class(report):
    path, comparison, _ = report
    entries = _gallery(open(path, encoding="utf-8").read())
    assert [image_id for image_id, _, _ in entries] == ORDER
    assert [changed for _, changed, _ in entries] == CHANGED
    assert all([variant for variant, _ in panels] == ["none", "parallel"]
               for _, _, panels in entries)
    # the comparison keeps where its runs' files are, for this gallery
    assert [run["variant"] for run in comparison["sources"]["runs"]] == ["none", "parallel"]


@pytest.mark.parametrize("image_id, variant, point, expected", [
    (3, "none", TEMPLATE[INDEX["nose"]], "good"),
    (3, "none", TEMPLATE[INDEX["left_wrist"]] + JITTER, "jitter"),
    (3, "parallel", TEMPLATE[INDEX["right_wrist"]], "inversion"),  # its left wrist
    (20, "parallel", TEMPLATE[INDEX["left_wrist"]] + (0, 60), "miss"),
    (20, "none", TEMPLATE[INDEX["left_wrist"]], "good"),
])
def test_each_keypoint_is_drawn_in_the_colour_of_its_class(report, image_id, variant, point,
                                                           expected):
    path, _, _ = report
    panels = dict(next(p for i, _, p in _gallery(open(path, encoding="utf-8").read())
                       if i == image_id))
    name, distance = _nearest_class(_colour_at(panels[variant], point))
    assert (name, distance < 40) == (expected, True)


def test_the_gallery_colours_are_those_of_the_diagnosis_figures():
    from pose.evaluation import diagnosis_files

    assert CLASS_COLOURS == diagnosis_files.CLASS_COLOURS  # the legend reads for both


def test_the_ground_truth_of_an_unmatched_person_is_drawn_thin(report):
    """Image 10 has no detection in parallel: only the ground truth is drawn, a thin
    bright line (the shoulders' limb) over the dark image, and no keypoint dot."""
    path, _, _ = report
    panels = dict(next(p for i, _, p in _gallery(open(path, encoding="utf-8").read())
                       if i == 10))
    drawing = panels["parallel"].astype(np.int64)
    scale = drawing.shape[1] / WIDTH
    middle = (TEMPLATE[INDEX["left_shoulder"]] + TEMPLATE[INDEX["right_shoulder"]]) / 2
    x, y = (int(round(v * scale)) for v in middle)
    column = drawing[y - 6:y + 7, x].mean(axis=1)  # across the horizontal limb
    assert column.max() > column.min() + 60  # the line is there
    assert (column > column.min() + 30).sum() <= 3  # and thin (one pixel, anti-aliased)
    nose = _colour_at(drawing, TEMPLATE[INDEX["nose"]])
    assert np.abs(nose - _colour_at(panels["none"], TEMPLATE[INDEX["nose"]])).max() > 60
    # (none's nose is a good dot there; parallel has none: no detection was matched)


def test_the_report_holds_the_tables_and_loads_nothing(report):
    path, comparison, out = report
    text = open(path, encoding="utf-8").read()
    assert sorted(p.name for p in out.iterdir()) == ["comparison.json", "comparison.md",
                                                      "comparison.png", "report.html"]
    verdict = comparison["differences"][0]["stats"]["AP"]
    assert f"{verdict['difference']:+.3f}" in text
    assert "AP verdict, parallel − none:" in text
    assert "<td>AP after fixing: jitter</td>" in text and "<td>share of miss (points)</td>" in text
    for variant in ("none", "parallel"):
        shares = comparison["keypoint_errors"]["variants"][variant]["shares"]
        assert f"<td>{100 * shares['good']:.1f}%</td>" in text
    assert len(re.findall(r'<img src="data:image/png;base64,', text)) == 1 + 2 * 2  # chart,
    # each variant's two diagnosis figures
    assert re.findall(r'(?:src|href)=(?!["\']?data:)', text) == []  # nothing elsewhere
    assert "Content-Security-Policy" in text and "img-src data:" in text


def test_without_results_files_the_report_says_why_and_escapes_its_text():
    comparison = summarize_comparison([
        {"variant": label, "width": 8, "input": "64x48", "psa": label, "params": 1,
         "macs_g": 0.1, "boxes": "ground truth", "flip_test": False, "latency_ms": 1.0,
         "metrics": {name: 0.5 for name in STAT_NAMES}} for label in ("a<b>", "c&d")])
    text = report_html(comparison)
    assert "a&lt;b&gt;" in text and "c&amp;d" in text and "<b>" not in text
    assert "No gallery: the comparison kept no results files" in text
    assert "data:image/jpeg" not in text


def test_report_opens_in_chromium_with_every_image_and_no_console_error(report, chromium,
                                                                          tmp_path):
    path, _, _ = report
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        errors, requests = [], []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        url = "file://" + str(path)
        page.goto(url, wait_until="load")
        images = page.evaluate("Array.from(document.images, i => [i.complete, i.naturalWidth,"
                               " i.alt])")
        assert len(images) == 1 + 2 * 2 + 2 * len(ORDER)  # chart, diagnosis, gallery
        assert [alt for done, width, alt in images if not (done and width > 0)] == []
        assert errors == []
        assert [u for u in requests if u != url and not u.startswith("data:")] == []
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
    finally:
        context.close()
