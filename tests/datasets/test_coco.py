"""COCO loading: record counts, sanitized boxes, bad input, image decoding."""

import json
import os
import struct

import cv2
import numpy as np
import pytest

from datasets.coco import AnnotationError, load_coco, load_eval_records, load_train_records
from datasets.images import ImageDecodeError, read_image_rgb


@pytest.fixture
def sample(coco_sample_dir):
    """Paths of the real COCO sample (the test skips where it is absent)."""
    return {"json": str(coco_sample_dir / "person_keypoints_sample.json"),
            "dets": str(coco_sample_dir / "person_detection_results_sample.json"),
            "images": str(coco_sample_dir / "images")}
INPUT = (192, 256)


# ------------------------------------------------------------------ the real sample

def test_sample_record_counts(sample):
    train = load_train_records(sample["json"], sample["images"], INPUT)
    assert len(train) == 12  # 14 annotations, 2 without keypoints
    assert train.report.num_candidates == 14 and train.report.no_keypoints == 2
    assert train.report.missing_images == 0
    assert np.all(train.scores == 1.0)
    assert train.keypoints.shape == (12, 17, 3)
    assert np.all((train.keypoints[:, :, 2] > 0).sum(1) > 0)
    gt = load_eval_records(sample["json"], sample["images"], INPUT)
    assert len(gt) == 12
    dets = load_eval_records(sample["json"], sample["images"], INPUT, detections=sample["dets"])
    assert len(dets) == 118
    assert np.all(dets.annotation_ids == -1) and np.all(dets.keypoints == 0)
    raw = json.load(open(sample["dets"]))
    np.testing.assert_allclose(np.sort(dets.scores), np.sort([d["score"] for d in raw]),
                               rtol=1e-6)
    strict = load_eval_records(sample["json"], sample["images"], INPUT, detections=sample["dets"],
                               score_threshold=0.5)
    assert len(strict) == sum(d["score"] >= 0.5 for d in raw) < 118
    assert strict.report.below_threshold == 118 - len(strict)


def test_sample_center_scale_by_hand(sample):
    data = json.load(open(sample["json"]))
    ann = next(a for a in data["annotations"] if a["image_id"] == 785)
    x, y, w, h = ann["bbox"]  # well inside the 640x425 image
    bw, bh = w - 1, h - 1  # HRNet's sanitized box: x2 = x1 + (w - 1)
    cx, cy = x + bw / 2, y + bh / 2
    assert bw < 0.75 * bh  # tall box: width grows to 0.75 h
    records = load_train_records(sample["json"], sample["images"], INPUT)
    i = int(np.flatnonzero(records.annotation_ids == ann["id"])[0])
    np.testing.assert_allclose(records.boxes[i], [x, y, bw, bh], rtol=1e-6)
    np.testing.assert_allclose(records.centers[i], [cx, cy], rtol=1e-6)
    np.testing.assert_allclose(records.scales[i], [0.75 * bh * 1.25, bh * 1.25], rtol=1e-6)
    assert records.image_paths[i].endswith("000000000785.jpg")


def test_sample_images_decode_to_annotated_size(sample):
    coco = load_coco(sample["json"])
    for img in coco.dataset["images"]:
        image = read_image_rgb(os.path.join(sample["images"], img["file_name"]))
        assert image.shape == (img["height"], img["width"], 3) and image.dtype == np.uint8


# ------------------------------------------------------------------ hand-made files

def _kpts(n_visible, x0=20.0, y0=10.0):
    k = []
    for j in range(17):
        k += [x0 + j, y0 + 2 * j, 2] if j < n_visible else [0, 0, 0]
    return k


def _ann(aid, image_id, bbox, n_visible=5, **extra):
    ann = {"id": aid, "image_id": image_id, "category_id": 1, "bbox": bbox, "area": 500.0,
           "iscrowd": 0, "num_keypoints": n_visible, "keypoints": _kpts(n_visible)}
    ann.update(extra)
    return ann


def _write_dataset(tmp_path, annotations, images=None):
    image_dir = tmp_path / "images"
    image_dir.mkdir(exist_ok=True)
    images = images or [{"id": 1, "file_name": "a.png", "width": 100, "height": 80},
                        {"id": 2, "file_name": "b.png", "width": 100, "height": 80}]
    for img in images:
        cv2.imwrite(str(image_dir / img["file_name"]),
                    np.zeros((img["height"], img["width"], 3), np.uint8))
    cats = [{"id": 1, "name": "person", "keypoints": list(__import__(
        "datasets.metadata", fromlist=["x"]).COCO_KEYPOINT_NAMES), "skeleton": [[1, 2]]}]
    path = tmp_path / "person_keypoints.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": cats}))
    return str(path), str(image_dir)


def test_filters_sanitizes_and_reports(tmp_path):
    anns = [
        _ann(1, 1, [10, 5, 30, 40]),                       # kept as is (w-1, h-1)
        _ann(2, 1, [-10, -5, 30, 200]),                    # clipped to the image
        _ann(3, 1, [50, 5, 0.5, 40]),                      # width <= 1 -> x2 == x1: dropped
        _ann(4, 1, [10, 5, 30, 40], iscrowd=1),            # crowd
        _ann(5, 2, [10, 5, 30, 40], n_visible=0),          # no keypoints
        _ann(6, 99, [10, 5, 30, 40]),                      # unknown image
        dict(_ann(7, 2, [10, 5, 30, 40]), keypoints=[1, 2, 2] * 16),  # wrong length
        _ann(8, 2, [95, 70, 30, 40]),                      # bottom-right corner, clipped
        _ann(9, 2, [10, 5, 30, 40], area=0.0),             # zero area
    ]
    path, image_dir = _write_dataset(tmp_path, anns)
    records = load_train_records(path, image_dir, INPUT)
    assert list(records.annotation_ids) == [1, 2, 8]
    np.testing.assert_allclose(records.boxes[0], [10, 5, 29, 39])
    # HRNet's formula clips x1 and then adds w - 1 to it: x2 = min(99, 0 + 29) = 29
    # (the box is shifted into the image, not cut at x = 19).
    np.testing.assert_allclose(records.boxes[1], [0, 0, 29, 79])
    np.testing.assert_allclose(records.boxes[2], [95, 70, 4, 9])  # x2 = min(99, 124)
    r = records.report
    assert (r.crowd, r.no_keypoints, r.invalid_box, r.unknown_image, r.bad_keypoints) == \
        (1, 1, 2, 1, 1)
    assert r.num_candidates == 9 and r.num_records == 3
    assert "unknown_image=1" in r.summary()


def test_missing_area_is_filled_as_mmpose_does(tmp_path):
    """CrowdPose-style annotations without 'area': 0.53 x the box area (mmpose 1.x), or of
    the labelled keypoints' extent without a box; COCOeval then runs on them."""
    anns = [_ann(1, 1, [10, 5, 30, 40]), _ann(2, 2, [0, 0, 1, 1])]
    for ann in anns:
        del ann["area"]
    no_box = _ann(3, 2, None)
    del no_box["area"], no_box["bbox"]
    no_box["keypoints"] = [10, 20, 2, 40, 80, 1] + [0, 0, 0] * 15
    path, image_dir = _write_dataset(tmp_path, anns + [no_box])
    coco = load_coco(path)
    assert coco.anns[1]["area"] == pytest.approx(0.53 * 30 * 40)
    assert coco.anns[2]["area"] == 1.0  # 0.53 x 1 px, at least 1
    assert coco.anns[3]["area"] == pytest.approx(0.53 * 30 * 60)
    records = load_train_records(coco, image_dir, INPUT)
    np.testing.assert_allclose(records.areas[0], 0.53 * 30 * 40)


def test_missing_images_skip_or_error(tmp_path):
    path, image_dir = _write_dataset(tmp_path, [_ann(1, 1, [10, 5, 30, 40]),
                                                _ann(2, 2, [10, 5, 30, 40])])
    os.remove(os.path.join(image_dir, "b.png"))
    records = load_train_records(path, image_dir, INPUT, missing_images="skip")
    assert list(records.image_ids) == [1]
    assert records.report.missing_images == 1
    assert records.report.missing_image_paths[0].endswith("b.png")
    with pytest.raises(FileNotFoundError, match="1 image files are missing.*b.png"):
        load_train_records(path, image_dir, INPUT, missing_images="error")
    with pytest.raises(ValueError, match="missing_images"):
        load_train_records(path, image_dir, INPUT, missing_images="ignore")


def test_detections_person_only_and_bad_boxes(tmp_path):
    path, image_dir = _write_dataset(tmp_path, [])
    dets = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 40], "score": 0.9},
            {"image_id": 1, "category_id": 2, "bbox": [10, 10, 20, 40], "score": 0.9},
            {"image_id": 2, "category_id": 1, "bbox": [10, 10, 0, 40], "score": 0.9},
            {"image_id": 3, "category_id": 1, "bbox": [10, 10, 20, 40], "score": 0.9},
            {"image_id": 2, "category_id": 1, "bbox": [1, 2, 30, 40], "score": 0.1}]
    det_path = tmp_path / "dets.json"
    det_path.write_text(json.dumps(dets))
    records = load_eval_records(path, image_dir, INPUT, detections=str(det_path))
    assert len(records) == 2
    np.testing.assert_allclose(records.scores, [0.9, 0.1])
    np.testing.assert_allclose(records.centers[1], [16.0, 22.0])  # detector boxes: x + w/2
    r = records.report
    assert (r.not_person, r.invalid_box, r.unknown_image) == (1, 1, 1)
    assert len(load_eval_records(path, image_dir, INPUT, detections=dets,
                                 score_threshold=0.5)) == 1
    # entries of the wrong type or not finite are counted, never a traceback or a NaN score
    broken = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 40], "score": "0.9"},
              {"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 40], "score": float("nan")},
              {"image_id": 1, "category_id": 1, "bbox": ["10", 10, 20, 40], "score": 0.9},
              {"image_id": 1, "category_id": 1, "bbox": [10, 10, float("inf"), 40],
               "score": 0.9},
              {"image_id": [1], "category_id": 1, "bbox": [10, 10, 20, 40], "score": 0.9},
              {"image_id": "1", "category_id": 1, "bbox": [10, 10, 20, 40], "score": 0.9},
              {"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 40], "score": 0.5}]
    records = load_eval_records(path, image_dir, INPUT, detections=broken)
    assert len(records) == 1 and records.scores.tolist() == [0.5]
    assert (records.report.invalid_box, records.report.unknown_image) == (4, 2)


@pytest.mark.parametrize("content,match", [
    ("{not json", "not valid JSON"),
    ('{"images": [], "categories": []}', "no 'annotations' key"),
    ('[1, 2]', "JSON list"),
    ('{"images": {}, "annotations": [], "categories": []}', "'images' is a dict"),
    ('{"images": [{"id": 1}], "annotations": [], "categories": []}', "images\\[0\\] lacks"),
    ('{"images": [], "annotations": [], "categories": [{"id": 1, "name": "person"}]}',
     "no person category with keypoints"),
])
def test_malformed_annotation_file_names_file_and_problem(tmp_path, content, match):
    path = tmp_path / "broken_keypoints.json"
    path.write_text(content)
    with pytest.raises(AnnotationError, match=f"broken_keypoints.json.*{match}"):
        load_train_records(str(path), str(tmp_path), INPUT)


def _one_person_file(tmp_path, **changes):
    """A valid one-image, one-person file with ``changes`` made to the annotation (or to
    the lists, for keys ``images``/``annotations``)."""
    image = {"id": 1, "file_name": "a.jpg", "width": 64, "height": 64}
    ann = {"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 2, 30, 40], "area": 900.0,
           "iscrowd": 0, "num_keypoints": 1, "keypoints": [10, 12, 2] + [0, 0, 0] * 16}
    data = {"images": [image], "annotations": [ann],
            "categories": [{"id": 1, "name": "person", "keypoints": ["k"] * 17}]}
    for key, value in changes.items():
        if key in data:
            data[key] = value
        else:
            ann[key] = value
    path = tmp_path / "broken_keypoints.json"
    path.write_text(json.dumps(data))  # json.dumps writes NaN and Infinity as Python reads them
    return path


@pytest.mark.parametrize("changes,message", [
    (dict(keypoints=[float("nan"), 12, 2] + [0, 0, 0] * 16),
     "annotations[0] (id 5) has keypoints that are not finite (NaN or infinity)"),
    (dict(bbox=[1, 2, float("inf"), 40]),
     "annotations[0] (id 5) has bbox that are not finite (NaN or infinity)"),
    (dict(area=float("nan")), "annotations[0] (id 5) has area nan; expected a finite number >= 0"),
    (dict(area=-1), "annotations[0] (id 5) has area -1; expected a finite number >= 0"),
    (dict(area="900"), "annotations[0] (id 5) has area '900'; expected a finite number >= 0"),
    (dict(id="5"), "annotations[0] has id '5' (str); expected an integer"),
    (dict(image_id=1.0), "annotations[0] has image_id 1.0 (float); expected an integer"),
    (dict(image_id=True), "annotations[0] has image_id True (bool); expected an integer"),
    (dict(images=[{"id": 1, "file_name": "a.jpg", "width": 64, "height": 64},
                  {"id": 1, "file_name": "b.jpg", "width": 64, "height": 64}]),
     "images[1] repeats id 1; ids must be unique"),
    (dict(images=[{"id": "1", "file_name": "a.jpg", "width": 64, "height": 64}]),
     "images[0] has id '1' (str); expected an integer"),
])
def test_broken_annotation_values_are_refused_with_file_and_entry(tmp_path, changes, message):
    """Nothing is scored from a broken file: NaN keypoints once gave AP = 1.000 (COCOeval's
    OKS of NaN compares as a match)."""
    path = _one_person_file(tmp_path, **changes)
    with pytest.raises(AnnotationError) as error:
        load_coco(path)
    assert str(error.value).startswith(f"annotation file {str(path)!r}: {message}")


def test_a_repeated_annotation_id_is_refused_and_the_boundaries_are_accepted(tmp_path):
    path = _one_person_file(tmp_path)
    data = json.loads(path.read_text())
    data["annotations"].append(dict(data["annotations"][0]))
    path.write_text(json.dumps(data))
    with pytest.raises(AnnotationError, match=r"annotations\[1\] repeats id 5; ids must be "
                                              "unique"):
        load_coco(path)
    # area 0 and integral floats in keypoints are valid
    assert len(load_coco(_one_person_file(tmp_path, area=0)).anns) == 1


def test_missing_annotation_and_bad_detection_file(tmp_path):
    with pytest.raises(AnnotationError, match="nowhere.json.*does not exist"):
        load_train_records(str(tmp_path / "nowhere.json"), str(tmp_path), INPUT)
    path, image_dir = _write_dataset(tmp_path, [])
    bad = tmp_path / "dets_bad.json"
    bad.write_text('{"bbox": [1, 2, 3, 4]}')
    with pytest.raises(AnnotationError, match="dets_bad.json.*expected a list"):
        load_eval_records(path, image_dir, INPUT, detections=str(bad))


# ------------------------------------------------------------------ image decoding

def _exif_orientation_segment(orientation):
    tiff = (b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1)
            + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0))
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def test_exif_orientation_is_ignored(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :10] = (0, 0, 255)  # BGR red on the left
    jpeg = cv2.imencode(".jpg", stored)[1].tobytes()
    path = tmp_path / "rotated.jpg"
    path.write_bytes(jpeg[:2] + _exif_orientation_segment(6) + jpeg[2:])
    # The tag is real: OpenCV's default read applies it and rotates the image.
    assert cv2.imread(str(path)).shape == (40, 20, 3)
    image = read_image_rgb(path)
    assert image.shape == (20, 40, 3)
    assert image[10, 2, 0] > 200 and image[10, 2, 2] < 50  # red, RGB order, on the left


# The EXIF orientations as the specification words them (what a viewer does to the stored
# pixels to show them upright), restated with NumPy.
EXIF_TRANSFORMS = {
    1: lambda img: img,
    2: lambda img: img[:, ::-1],  # mirror horizontal
    3: lambda img: img[::-1, ::-1],  # rotate 180
    4: lambda img: img[::-1],  # mirror vertical
    5: lambda img: np.rot90(img[:, ::-1], 1),  # mirror horizontal, rotate 270 CW
    6: lambda img: np.rot90(img, -1),  # rotate 90 CW
    7: lambda img: np.rot90(img[:, ::-1], -1),  # mirror horizontal, rotate 90 CW
    8: lambda img: np.rot90(img, 1),  # rotate 270 CW
}


@pytest.mark.parametrize("orientation", sorted(EXIF_TRANSFORMS))
def test_a_users_photo_is_read_upright_for_each_exif_orientation(tmp_path, coco_sample_dir,
                                                                 orientation):
    """A sample photo stored with each of the eight orientation tags: read for a user
    (``exif_orientation=True``) it is the stored pixels turned as the tag says; read for
    training and evaluation (the default) it is the stored pixels."""
    stored = cv2.imread(str(coco_sample_dir / "images" / "000000000785.jpg"))[::4, ::4]
    jpeg = cv2.imencode(".jpg", stored)[1].tobytes()
    path = tmp_path / f"tag{orientation}.jpg"
    path.write_bytes(jpeg[:2] + _exif_orientation_segment(orientation) + jpeg[2:])
    as_stored = read_image_rgb(path)
    upright = read_image_rgb(path, exif_orientation=True)
    np.testing.assert_array_equal(upright, EXIF_TRANSFORMS[orientation](as_stored))
    assert as_stored.shape[:2] == stored.shape[:2]


def test_corrupt_truncated_and_missing_images(tmp_path):
    good = cv2.imencode(".jpg", np.full((30, 30, 3), 128, np.uint8))[1].tobytes()
    (tmp_path / "garbage.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg" * 3)
    (tmp_path / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (tmp_path / "empty.png").write_bytes(b"")
    png = cv2.imencode(".png", np.zeros((30, 30), np.uint8))[1].tobytes()
    (tmp_path / "truncated.png").write_bytes(png[:-20])
    for name in ("garbage.jpg", "truncated.jpg", "empty.png", "truncated.png"):
        with pytest.raises(ImageDecodeError, match=name):
            read_image_rgb(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        read_image_rgb(tmp_path / "absent.jpg")


def test_grey_rgba_palette_and_16bit_become_uint8_rgb(tmp_path):
    from PIL import Image  # Pillow comes with matplotlib; only the palette case uses it

    grey = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (8, 1))  # (8, 25)
    bgra = np.zeros((8, 25, 4), np.uint8)
    bgra[..., 0], bgra[..., 1], bgra[..., 2], bgra[..., 3] = 10, 20, 30, 0  # transparent
    cases = {
        "grey.png": (grey, np.repeat(grey[..., None], 3, 2)),
        "grey16.png": (grey.astype(np.uint16) * 257, np.repeat(grey[..., None], 3, 2)),
        "rgba.png": (bgra, np.broadcast_to([30, 20, 10], (8, 25, 3))),
        "bgr16.png": (np.dstack([grey, grey // 2, grey // 3]).astype(np.uint16) * 257 + 100,
                      np.dstack([grey // 3, grey // 2, grey])),
    }
    for name, (array, expect) in cases.items():
        cv2.imwrite(str(tmp_path / name), array)
        image = read_image_rgb(tmp_path / name)
        assert image.dtype == np.uint8 and image.shape == (8, 25, 3), name
        np.testing.assert_array_equal(image, expect, err_msg=name)
    rgb = np.zeros((8, 25, 3), np.uint8)
    rgb[:, :12] = (200, 0, 0)
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    assert Image.open(tmp_path / "palette.png").mode == "P"
    image = read_image_rgb(tmp_path / "palette.png")
    assert image.shape == (8, 25, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, np.asarray(Image.open(tmp_path / "palette.png")
                                                    .convert("RGB")))
    assert image[0, 0, 0] > 150 and image[0, 20].max() == 0


# ------------------------------------------------------------------ generated COCO

def test_counts_on_generated_coco(tmp_path):
    from datasets import synthetic
    synthetic.generate_coco(tmp_path, num_train=6, num_val=3, seed=3, image_size=(160, 120))
    ann_file = tmp_path / "annotations" / "person_keypoints_train2017.json"
    data = json.load(open(ann_file))
    sizes = {im["id"]: (im["width"], im["height"]) for im in data["images"]}

    def valid(a):  # independent statement of the filters
        x, y, w, h = a["bbox"]
        W, H = sizes[a["image_id"]]
        x1, y1 = max(0, x), max(0, y)
        return (not a["iscrowd"] and max(a["keypoints"]) > 0 and a["area"] > 0
                and min(W - 1, x1 + max(0, w - 1)) > x1 and min(H - 1, y1 + max(0, h - 1)) > y1)

    records = load_train_records(ann_file, tmp_path / "train2017", INPUT)
    assert len(records) == sum(valid(a) for a in data["annotations"]) > 0
    assert records.report.missing_images == 0
    val = tmp_path / "annotations" / "person_keypoints_val2017.json"
    det_file = tmp_path / "annotations" / "person_detection_results_val2017.json"
    dets = json.load(open(det_file))
    records = load_eval_records(val, tmp_path / "val2017", INPUT, detections=det_file)
    assert len(records) == sum(d["category_id"] == 1 and d["bbox"][2] > 0 and d["bbox"][3] > 0
                               for d in dets)
    for path in set(records.image_paths.tolist()):
        assert read_image_rgb(path).shape == (120, 160, 3)


def test_pipes_and_oversized_files_are_undecodable_not_read(tmp_path, monkeypatch):
    """A named pipe is refused without opening it (it would block), and a file over
    ``MAX_IMAGE_FILE_BYTES`` without reading it (a sparse 50 GB "photo"): both are
    ``ImageDecodeError``, which the pipeline and the tools skip and count."""
    import datasets.images as images_module

    os.mkfifo(tmp_path / "pipe.jpg")
    with pytest.raises(ImageDecodeError) as error:
        read_image_rgb(tmp_path / "pipe.jpg")
    assert str(error.value).endswith("pipe.jpg: not a regular file (a pipe, device or socket)")
    huge = tmp_path / "huge.jpg"
    with open(huge, "wb") as f:  # sparse: no data blocks written
        f.truncate(images_module.MAX_IMAGE_FILE_BYTES + 1)
    with pytest.raises(ImageDecodeError, match=r"huge.jpg: 1,073,741,825 bytes, over the "
                                               r"1,073,741,824-byte limit"):
        read_image_rgb(huge)
    assert images_module.MAX_IMAGE_FILE_BYTES == 1 << 30
    # the limit itself is allowed (a smaller limit keeps the test file small)
    ok = tmp_path / "ok.png"
    cv2.imwrite(str(ok), np.zeros((4, 4, 3), np.uint8))
    monkeypatch.setattr(images_module, "MAX_IMAGE_FILE_BYTES", os.path.getsize(ok))
    assert read_image_rgb(ok).shape == (4, 4, 3)
    monkeypatch.setattr(images_module, "MAX_IMAGE_FILE_BYTES", os.path.getsize(ok) - 1)
    with pytest.raises(ImageDecodeError, match="over the"):
        read_image_rgb(ok)


def test_images_declaring_more_pixels_than_the_limit_are_refused_before_decoding(
        tmp_path, monkeypatch):
    """A few-kilobyte JPEG or PNG whose header declares 60000 x 60000 pixels (10 GiB once
    decoded) is an ``ImageDecodeError`` (skipped and counted) without being decoded; the
    limit itself is allowed."""
    import struct
    import zlib

    import datasets.images as images_module

    assert images_module.MAX_IMAGE_PIXELS == 1 << 28
    small = np.zeros((4, 4, 3), np.uint8)
    jpeg = bytearray(cv2.imencode(".jpg", small)[1].tobytes())
    sof = jpeg.index(b"\xff\xc0")  # baseline frame header: length, precision, height, width
    jpeg[sof + 5:sof + 9] = struct.pack(">HH", 60000, 60000)
    (tmp_path / "bomb.jpg").write_bytes(bytes(jpeg))
    png = bytearray(cv2.imencode(".png", small)[1].tobytes())
    png[16:24] = struct.pack(">II", 60000, 60000)  # IHDR width, height
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    (tmp_path / "bomb.png").write_bytes(bytes(png))
    for name in ("bomb.jpg", "bomb.png"):
        with pytest.raises(ImageDecodeError) as error:
            read_image_rgb(tmp_path / name)
        assert str(error.value) == (f"{tmp_path / name}: declares 60000 x 60000 pixels, over "
                                    "the 268,435,456-pixel limit of an image")
    cv2.imwrite(str(tmp_path / "ok.png"), small)
    monkeypatch.setattr(images_module, "MAX_IMAGE_PIXELS", 16)
    assert read_image_rgb(tmp_path / "ok.png").shape == (4, 4, 3)
    monkeypatch.setattr(images_module, "MAX_IMAGE_PIXELS", 15)
    with pytest.raises(ImageDecodeError, match="declares 4 x 4 pixels, over the 15-pixel"):
        read_image_rgb(tmp_path / "ok.png")
