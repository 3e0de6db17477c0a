"""Tests of the synthetic COCO-format generator, checked through pycocotools itself."""

import json
import os
import runpy
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from datasets import synthetic
from datasets.metadata import COCO_KEYPOINT_NAMES, COCO_SKELETON_1BASED
from datasets.synthetic import SyntheticConfig, generate_coco, render_sample
from datasets.synthetic.figures import make_figure
from datasets.synthetic.rendering import draw_op

W, H = 320, 240
# Small images; more crowds / keypoint-less people than the defaults so a few images
# contain every kind of annotation.
SMALL = dict(crowd_image_rate=0.4, no_keypoint_people=1.0, empty_image_rate=0.2,
             min_person_height=48.0)
N_TRAIN, N_VAL = 6, 24
TOOL = Path(__file__).resolve().parents[2] / "tools" / "make_synthetic_coco.py"


def _generate(root, seed=5, **kw):
    return generate_coco(root, N_TRAIN, N_VAL, seed, image_size=(W, H), **SMALL, **kw)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    summary = _generate(root)
    return root, summary


def _load(root, split):
    with open(root / "annotations" / f"person_keypoints_{split}.json") as f:
        return json.load(f)


def _tree_bytes(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_layout_and_counts(dataset):
    root, summary = dataset
    assert sorted(os.listdir(root / "annotations")) == [
        "person_detection_results_val2017.json", "person_keypoints_train2017.json",
        "person_keypoints_val2017.json"]
    assert len(list((root / "train2017").glob("*.jpg"))) == N_TRAIN
    assert len(list((root / "val2017").glob("*.jpg"))) == N_VAL
    assert not list(root.rglob(".*tmp*")), "temporary files left behind"
    val = summary["val2017"]
    assert val["images"] == N_VAL and summary["train2017"]["images"] == N_TRAIN
    assert val["people_with_keypoints"] > N_VAL
    assert val["people_without_keypoints"] > 0
    assert val["crowd"] > 0
    assert val["empty_images"] > 0
    gt = _load(root, "val2017")
    assert len(gt["annotations"]) == val["annotations"]
    assert sum(a["iscrowd"] for a in gt["annotations"]) == val["crowd"]
    with open(root / "annotations" / "person_detection_results_val2017.json") as f:
        assert len(json.load(f)) == val["detections"]


def test_json_structure_and_ids(dataset):
    root, _ = dataset
    all_image_ids, all_ann_ids = [], []
    for split in ("train2017", "val2017"):
        gt = _load(root, split)
        assert set(gt) == {"info", "licenses", "images", "annotations", "categories"}
        (cat,) = gt["categories"]
        assert cat["id"] == 1 and cat["name"] == "person"
        assert cat["keypoints"] == list(COCO_KEYPOINT_NAMES)
        assert cat["skeleton"] == [list(p) for p in COCO_SKELETON_1BASED]
        for img in gt["images"]:
            assert (img["width"], img["height"]) == (W, H)
            assert img["file_name"] == f"{img['id']:012d}.jpg"
            decoded = cv2.imread(str(root / split / img["file_name"]))
            assert decoded.shape == (H, W, 3)
        image_ids = {img["id"] for img in gt["images"]}
        assert all(a["image_id"] in image_ids for a in gt["annotations"])
        assert all(a["category_id"] == 1 for a in gt["annotations"])
        all_image_ids += [img["id"] for img in gt["images"]]
        all_ann_ids += [a["id"] for a in gt["annotations"]]
    assert len(set(all_image_ids)) == len(all_image_ids)
    assert len(set(all_ann_ids)) == len(all_ann_ids)


def test_keypoint_fields(dataset):
    root, _ = dataset
    for split in ("train2017", "val2017"):
        for a in _load(root, split)["annotations"]:
            k = np.array(a["keypoints"], dtype=np.float64).reshape(17, 3)
            assert set(np.unique(k[:, 2])) <= {0.0, 1.0, 2.0}
            assert a["num_keypoints"] == int(np.count_nonzero(k[:, 2] > 0))
            hidden, shown = k[k[:, 2] == 0], k[k[:, 2] > 0]
            assert np.all(hidden[:, :2] == 0)
            assert np.all((shown[:, 0] >= 0) & (shown[:, 0] <= W - 1))
            assert np.all((shown[:, 1] >= 0) & (shown[:, 1] <= H - 1))
            x, y, w, h = a["bbox"]
            assert 0 <= x and 0 <= y and x + w <= W and y + h <= H and w > 0 and h > 0
            assert 0 < a["area"] <= w * h
            if a["iscrowd"]:
                assert a["num_keypoints"] == 0


def test_pycocotools_loads_masks_detections_and_scores_gt_perfectly(dataset):
    root, _ = dataset
    coco = COCO(str(root / "annotations" / "person_keypoints_val2017.json"))
    for ann in coco.loadAnns(coco.getAnnIds()):
        m = coco.annToMask(ann)
        assert m.shape == (H, W) and m.any()
        if ann["iscrowd"]:  # the RLE is exactly the region the area was counted on
            assert int(m.sum()) == ann["area"]
            assert mask_utils.area(coco.annToRLE(ann)) == ann["area"]
    dets = coco.loadRes(str(root / "annotations" / "person_detection_results_val2017.json"))
    assert len(dets.getAnnIds()) > 0
    for d in dets.loadAnns(dets.getAnnIds()):
        x, y, w, h = d["bbox"]
        assert 0 < d["score"] <= 1 and x >= 0 and y >= 0 and x + w <= W + 1e-6
    # Ground truth submitted as results must score AP = 1 with COCO's own evaluator.
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"],
                "score": 1.0}
               for a in coco.loadAnns(coco.getAnnIds()) if a["num_keypoints"] > 0]
    ev = COCOeval(coco, coco.loadRes(results), "keypoints")
    ev.params.useSegm = None
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)


def test_detections_cover_people(dataset):
    root, _ = dataset
    coco = COCO(str(root / "annotations" / "person_keypoints_val2017.json"))
    dets = coco.loadRes(str(root / "annotations" / "person_detection_results_val2017.json"))
    people = [a for a in coco.loadAnns(coco.getAnnIds()) if a["num_keypoints"] > 0]
    found = 0
    for a in people:
        boxes = [d["bbox"] for d in dets.loadAnns(dets.getAnnIds(imgIds=[a["image_id"]]))]
        if boxes:
            iou = mask_utils.iou(boxes, [a["bbox"]], [0])
            found += bool(iou.max() > 0.5)
    assert found >= 0.85 * len(people)
    scores = np.array([d["score"] for d in dets.loadAnns(dets.getAnnIds())])
    assert scores.max() > 0.8 and scores.min() < 0.5  # true hits and false positives


def test_visibility_matches_geometry_and_drawing():
    cfg = SyntheticConfig(width=W, height=H, **SMALL)
    n_v2 = n_diff = n_v1 = 0
    for index in range(8):
        s = render_sample(11, "val2017", index, cfg, keep_background=True)
        for p, fig in enumerate(s.figures):
            if fig["annotation"] is None:
                continue
            ann = s.annotations[fig["annotation"]]
            k = np.array(ann["keypoints"], dtype=np.float64).reshape(17, 3)
            if fig["kind"] != "person":
                assert ann["num_keypoints"] == 0
                continue
            pts = fig["points"]
            inside = ((pts[:, 0] >= 0) & (pts[:, 0] <= W - 1)
                      & (pts[:, 1] >= 0) & (pts[:, 1] <= H - 1))
            np.testing.assert_array_equal(k[:, 2] > 0, inside)
            np.testing.assert_array_equal(k[inside, :2], pts[inside])
            for x, y, v in k[k[:, 2] == 2]:
                ix, iy = int(round(x)), int(round(y))
                assert s.id_map[iy, ix] >> 5 == p + 1  # this person is on top there
                diff = np.abs(s.image[iy, ix].astype(int) - s.background[iy, ix].astype(int))
                n_diff += diff.sum() > 20
                n_v2 += 1
            n_v1 += int(np.count_nonzero(k[:, 2] == 1))
    assert n_v2 > 50 and n_v1 > 0
    assert n_diff >= 0.98 * n_v2


def test_labels_are_subpixel_drawn_centres():
    """The joint marker drawn at a knee is centred on the label to within 0.05 px."""
    g = np.random.default_rng(0)
    errors, fractional = [], 0
    for _ in range(20):
        fig = make_figure(g, 300.0, "person")
        fig.place((150.3, 150.7))
        for k, slot in ((13, "ljoint_leg"), (14, "rjoint_leg"), (7, "ljoint_arm")):
            canvas = np.zeros((300, 300), dtype=np.uint8)
            centre = fig.points[k]
            op = next(op for op in fig.ops if op[0] == "disc" and op[3] == slot
                      and np.allclose(np.array(op[1][0]) / 16.0, centre))
            draw_op(canvas, op, 255, True)
            w = canvas.astype(np.float64)
            if w.sum() == 0 or w[0].any() or w[-1].any() or w[:, 0].any() or w[:, -1].any():
                continue
            ys, xs = np.mgrid[:300, :300]
            c = np.array([(w * xs).sum(), (w * ys).sum()]) / w.sum()
            errors.append(np.abs(c - centre).max())
            fractional += np.any(centre != np.round(centre))
    assert len(errors) > 30
    assert max(errors) < 0.05
    assert fractional > 0.8 * len(errors)


def test_front_and_back_views_are_distinguishable():
    """Eyes are labelled visible only on figures that face the camera."""
    g = np.random.default_rng(1)
    eyes_visible = [bool(make_figure(g, 200.0, "person").self_visible[1:3].any())
                    for _ in range(200)]
    assert 0.2 < np.mean(eyes_visible) < 0.9


def test_same_seed_identical_different_seed_different(dataset, tmp_path):
    root, _ = dataset
    _generate(tmp_path / "again")
    again, first = _tree_bytes(tmp_path / "again"), _tree_bytes(root)
    assert again.keys() == first.keys()
    assert all(again[name] == first[name] for name in first)
    _generate(tmp_path / "other", seed=6)
    other = _tree_bytes(tmp_path / "other")
    for name in ("annotations/person_keypoints_val2017.json",
                 "annotations/person_detection_results_val2017.json"):
        assert other[name] != first[name]
    jpgs = [n for n in first if n.endswith(".jpg")]
    assert sum(other[n] != first[n] for n in jpgs) == len(jpgs)


def test_annotations_only_writes_same_json_and_no_images(dataset, tmp_path):
    root, _ = dataset
    _generate(tmp_path, write_images=False)
    assert not (tmp_path / "train2017").exists() and not (tmp_path / "val2017").exists()
    assert not list(tmp_path.rglob("*.jpg"))
    for name in os.listdir(root / "annotations"):
        assert (tmp_path / "annotations" / name).read_bytes() == \
            (root / "annotations" / name).read_bytes()


def test_workers_do_not_change_output(tmp_path):
    kw = dict(image_size=(W, H), write_images=False, **SMALL)
    generate_coco(tmp_path / "a", 0, 40, 3, workers=1, **kw)
    generate_coco(tmp_path / "b", 0, 40, 3, workers=2, **kw)
    for name in os.listdir(tmp_path / "a" / "annotations"):
        assert (tmp_path / "a" / "annotations" / name).read_bytes() == \
            (tmp_path / "b" / "annotations" / name).read_bytes()


def test_config_errors_name_the_value():
    with pytest.raises(ValueError, match="empty_image_rate.*1.5"):
        SyntheticConfig(empty_image_rate=1.5)
    with pytest.raises(ValueError, match="people_per_image.*0.5"):
        SyntheticConfig(people_per_image=0.5)
    with pytest.raises(ValueError, match="split"):
        synthetic.image_id_for("test2017", 0)


def test_cli_annotations_only(tmp_path, monkeypatch, capsys):
    # run as __main__ in this process: keep the test process's stderr where it is
    monkeypatch.setattr("pose.errors.hide_native_output", lambda argv=None: None)
    monkeypatch.setattr("sys.argv", [str(TOOL), "--out", str(tmp_path), "--train", "3",
                                     "--val", "4", "--seed", "2", "--width", "160",
                                     "--height", "128", "--annotations-only"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(TOOL), run_name="__main__")
    assert exit_.value.code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["train2017"]["images"] == 3 and summary["val2017"]["images"] == 4
    assert not list(tmp_path.rglob("*.jpg"))
    coco = COCO(str(tmp_path / "annotations" / "person_keypoints_val2017.json"))
    assert len(coco.getImgIds()) == 4
    assert coco.imgs[coco.getImgIds()[0]]["width"] == 160
    # its own earlier output is written again; a folder with a user's file is refused
    # (kept whole) unless --overwrite
    for extra, code in (([], 0), (["--overwrite"], 0)):
        monkeypatch.setattr("sys.argv", [str(TOOL), "--out", str(tmp_path), "--val", "2",
                                         "--annotations-only", *extra])
        with pytest.raises(SystemExit) as exit_:
            runpy.run_path(str(TOOL), run_name="__main__")
        assert exit_.value.code == code
        capsys.readouterr()
        (tmp_path / "notes.txt").write_text("mine")
    monkeypatch.setattr("sys.argv", [str(TOOL), "--out", str(tmp_path), "--val", "2"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(TOOL), run_name="__main__")
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: --out {tmp_path} holds files this tool did not write (notes.txt): choose a "
        "new or empty folder, or pass --overwrite to write among them"]
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert not list(tmp_path.rglob("*.jpg"))  # refused before writing anything


def test_select_keypoints_for_another_keypoint_set():
    from datasets.synthetic import select_keypoints

    coco = [0.0] * 51
    coco[15:18] = [10.0, 20.0, 2]   # left_shoulder
    coco[18:21] = [30.0, 40.0, 1]   # right_shoulder
    coco[33:36] = [5.0, 6.0, 2]     # left_hip (right_hip unlabelled)
    flat, labelled = select_keypoints(coco, ("neck", "left_shoulder", "pelvis"))
    assert flat == [20.0, 30.0, 1, 10.0, 20.0, 2, 0, 0, 0]  # mean, lowest visibility
    assert labelled == 2
    with pytest.raises(ValueError, match="no keypoint 'tail'"):
        select_keypoints(coco, ("tail",))
