"""Tests of pose.apis (inputs, boxes, estimator, runner) and tools/infer.py: batching, outputs,
bad input."""

import contextlib
import io
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from pose.apis.boxes import DetectionBoxes, HogBoxes, WholeImageBoxes, clip_boxes
from pose.apis.estimator import PoseEstimator
from pose.apis.inputs import InputError, collect_inputs, image_id_from_name
from pose.apis.runner import run_inference

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_hrnet, randomized):
    from pose.config import Config, ModelConfig, TestConfig
    from pose.engine.checkpoint import build_model, save_model

    config = Config(model=ModelConfig(psa_placement="branch", **tiny_hrnet),
                    test=TestConfig(batch_size=8))
    model = randomized(build_model(config.model))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.keras"
    save_model(model, path, config)
    return path, model, config


@pytest.fixture(scope="module")
def estimator(checkpoint):
    _, model, config = checkpoint
    return PoseEstimator.from_config(model, config)


def _write_image(path, image):
    ok, data = cv2.imencode(os.path.splitext(str(path))[1], image)
    assert ok
    data.tofile(str(path))
    return path


def _photo(h=120, w=160, seed=0):
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), np.uint8), (7, 7), 0)


# ----------------------------------------------------------------------------- inputs


def test_collect_inputs(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.jpg", "a.png", "notes.txt", ".hidden.jpg", "sub/c.jpg", "clip.mp4"):
        (tmp_path / name).write_bytes(b"x")
    names = [i.name for i in collect_inputs([tmp_path])]
    assert names == ["a.png", "b.jpg", "clip.mp4"]
    kinds = {i.name: i.kind for i in collect_inputs([tmp_path], recursive=True)}
    assert kinds == {"a.png": "image", "b.jpg": "image", "clip.mp4": "video",
                     os.path.join("sub", "c.jpg"): "image"}
    by_glob = collect_inputs([str(tmp_path / "*.jpg"), str(tmp_path / "b.jpg")])
    assert [i.name for i in by_glob] == ["b.jpg"]  # duplicates dropped
    assert [i.name for i in collect_inputs([tmp_path / "notes.txt"])] == ["notes.txt"]

    with pytest.raises(InputError, match="missing.jpg"):
        collect_inputs([tmp_path / "missing.jpg"])
    with pytest.raises(InputError, match="matches no file"):
        collect_inputs([str(tmp_path / "*.gif")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no image or video"):
        collect_inputs([tmp_path / "empty"])
    os.mkfifo(tmp_path / "pipe.jpg")  # would block a reader forever
    assert [i.name for i in collect_inputs([tmp_path])] == ["a.png", "b.jpg", "clip.mp4"]


def test_image_ids_and_detection_matching(tmp_path):
    assert image_id_from_name("/x/000000000785.jpg") == 785
    assert image_id_from_name("frame_12.jpg") is None
    det = tmp_path / "det.json"
    det.write_text(json.dumps([
        {"image_id": 7, "file_name": "dir/a.png", "category_id": 1, "bbox": [1, 2, 30, 40],
         "score": 0.9},
        {"image_id": 7, "file_name": "a.png", "category_id": 2, "bbox": [1, 2, 3, 4],
         "score": 0.9},  # not a person
        {"image_id": 785, "bbox": [7, 8, 0.5, 0.5], "score": 0.25},  # no category: kept
        {"image_id": 785, "category_id": 1, "bbox": [5, 6, 10, 20], "score": 0.5},
        {"image_id": 785, "category_id": 1, "bbox": [5, 6, 0, 20], "score": 0.5},  # empty
        {"image_id": 785, "category_id": 1, "bbox": [5, 6, 10, 20], "score": float("nan")},
        {"image_id": 785, "category_id": 1, "bbox": [5, 6, 10, 20], "score": "high"},
        {"image_id": 785, "category_id": 1, "bbox": [5, 6, 10, 20], "score": [0.5]},
        {"image_id": 785, "category_id": 1, "bbox": [5, 6, "10", 20], "score": 0.5},
        {"image_id": 785, "category_id": 1, "bbox": None, "score": 0.5},
        {"image_id": 785, "category_id": 1, "bbox": [5, 6, 10, 0], "score": 0.5},  # no height
    ]))  # (json.dumps writes the NaN as the bare token NaN, which Python's json reads)
    source = DetectionBoxes(det)
    assert source.name == f"detections {det}"
    assert source.dropped == {"non_positive_size": 2, "not_finite": 1, "malformed": 4}
    image = np.zeros((50, 60, 3), np.uint8)
    boxes, scores = source(image, file_name="/elsewhere/a.png", image_id=None)
    assert boxes.tolist() == [[1, 2, 30, 40]] and scores.tolist() == [0.9]
    assert source.image_id_for("/elsewhere/a.png") == 7
    boxes, _ = source(image, file_name="000000000785.jpg", image_id=785)
    assert boxes.tolist() == [[7, 8, 0.5, 0.5], [5, 6, 10, 20]]
    boxes, _ = source(image, image_id=785)  # a video frame: matched by its index
    assert boxes.tolist() == [[7, 8, 0.5, 0.5], [5, 6, 10, 20]]
    boxes, _ = source(image, file_name="a.png", image_id=785)  # the file name wins
    assert boxes.tolist() == [[1, 2, 30, 40]]
    boxes, scores = source(image, file_name="b.png", image_id=3)
    assert boxes.shape == (0, 4) and scores.shape == (0,)
    # Boxes scoring below the threshold are dropped, at the threshold kept, and the
    # entries after a dropped one still read.
    sure = DetectionBoxes(det, score_threshold=0.5)
    boxes, scores = sure(image, image_id=785)
    assert boxes.tolist() == [[5, 6, 10, 20]] and scores.tolist() == [0.5]
    assert sure(image, file_name="a.png")[1].tolist() == [0.9]
    whole, s = WholeImageBoxes()(image)
    assert whole.tolist() == [[0, 0, 60, 50]] and s.tolist() == [1.0]


def test_clip_boxes_cuts_to_the_image_and_counts_what_it_drops():
    boxes = [[10, 20, 30, 40],            # inside: unchanged
             [-10, -5, 30, 40],           # sticks out at the top left: cut
             [630, 470, 50, 50],          # sticks out at the bottom right: cut
             [5000, 5000, 100, 200],      # wholly outside
             [np.nan, 0, 10, 10],         # NaN
             [0, 0, 0, 10], [0, 0, 10, -3],  # zero / negative size
             [10, 20, 30, 40], [10, 20, 30, 40]]  # good boxes with NaN / infinite scores
    scores_in = np.append(np.arange(7.0), [np.nan, np.inf])
    kept, scores, dropped = clip_boxes(boxes, scores_in, 640, 480)
    np.testing.assert_allclose(kept, [[10, 20, 30, 40], [0, 0, 20, 35], [630, 470, 10, 10]])
    assert scores.tolist() == [0.0, 1.0, 2.0]
    assert dropped == {"outside_image": 1, "not_finite": 3, "non_positive_size": 2}
    assert kept.dtype == np.float64 and scores.dtype == np.float64


def test_clip_boxes_at_the_edges():
    """Boxes outside one edge only, boxes cut to a sliver, sub-pixel and zero-height boxes
    (640 x 480 image; each expected row worked out by hand), and one box given flat."""
    boxes = np.array([[-50, 10, 20, 20],     # wholly left of the image
                      [10, -50, 20, 20],     # wholly above
                      [700, 10, 50, 50],     # wholly right (inside in y)
                      [640, 10, 50, 50],     # starts at the right edge: nothing inside
                      [10, 500, 50, 50],     # wholly below (inside in x)
                      [-10, 5, 10.5, 20],    # 0.5 px left inside
                      [5, -10, 20, 10.25],   # 0.25 px inside at the top
                      [3.5, 4.5, 0.5, 0.5],  # sub-pixel: positive, kept
                      [0, 0, 10, 0]],        # zero height
                     np.float32)
    kept, scores, dropped = clip_boxes(boxes, np.arange(9, dtype=np.float32), 640, 480)
    np.testing.assert_array_equal(kept, [[0, 5, 0.5, 20], [5, 0, 20, 0.25],
                                         [3.5, 4.5, 0.5, 0.5]])
    assert scores.tolist() == [5.0, 6.0, 7.0]
    assert kept.dtype == np.float64 and scores.dtype == np.float64  # as documented
    assert dropped == {"outside_image": 5, "non_positive_size": 1}
    kept, scores, dropped = clip_boxes([600, 400, 100, 100], 0.75, 640, 480)  # one box
    assert kept.tolist() == [[600, 400, 40, 80]] and scores.tolist() == [0.75]
    assert dropped == {}
    kept, scores, _ = clip_boxes(np.zeros((0, 4)), np.zeros(0), 640, 480)
    assert kept.shape == (0, 4) and scores.shape == (0,)


def test_bad_detection_boxes_are_dropped_counted_and_summarized(estimator, tmp_path):
    (tmp_path / "in").mkdir()
    _write_image(tmp_path / "in" / "000000000007.jpg", _photo(480, 640))
    det = tmp_path / "det.json"
    det.write_text(json.dumps([
        {"image_id": 7, "bbox": [100, 50, 200, 300], "score": 0.9},
        {"image_id": 7, "bbox": [9000, 9000, 100, 200], "score": 0.8},  # wholly outside
        {"image_id": 7, "bbox": [10, 10, -5, 20], "score": 0.7},
        {"image_id": 7, "bbox": [10, 10, 0, 20], "score": 0.6},
        {"image_id": 7, "bbox": [10, 10, 20], "score": 0.5}]))
    report = run_inference(estimator, collect_inputs([tmp_path / "in"]), tmp_path / "out",
                           DetectionBoxes(det), verbose=0)
    assert report.num_people == 1
    assert report.dropped_boxes == {"outside_image": 1, "non_positive_size": 2,
                                    "malformed": 1}
    assert ("dropped 4 person box(es): malformed=1, non_positive_size=2, outside_image=1"
            in report.summary())
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["dropped_boxes"] == report.dropped_boxes
    people = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert isinstance(people, list) and max(p["keypoints"][0] for p in people) < 640


def test_hog_boxes(monkeypatch):
    if not hasattr(cv2, "HOGDescriptor"):
        with pytest.raises(InputError, match=r'pip install "opencv-python-headless<5"'):
            HogBoxes()

    people_detector = np.ones(3781, np.float32)  # the size of OpenCV's people SVM

    class FakeHog:  # stands in for cv2.HOGDescriptor, present or not
        def setSVMDetector(self, detector):
            assert detector is people_detector  # OpenCV's default people detector

        def detectMultiScale(self, grey, **kwargs):
            # OpenCV's people-detector sample settings
            assert kwargs == dict(winStride=(8, 8), padding=(8, 8), scale=1.05)
            searched.append(grey)
            if grey.shape == (300, 400):
                return (), ()  # OpenCV's "nothing found"
            if grey.shape == (600, 800):
                return np.array([[10, 20, 30, 60]]), np.array([0.0])  # one person
            # two people; the weights as a column, as OpenCV 3 returns them
            return np.array([[10, 20, 30, 60], [1, 2, 3, 4]]), np.array([[1.5], [-0.5]])

    monkeypatch.setattr(cv2, "HOGDescriptor", FakeHog, raising=False)
    monkeypatch.setattr(cv2, "HOGDescriptor_getDefaultPeopleDetector",
                        lambda: people_detector, raising=False)
    searched = []
    big = np.zeros((400, 3200, 3), np.uint8)
    # A fine pattern, one white pixel in each 4 x 4 block: area averaging (cv2.INTER_AREA)
    # keeps its mean, 255/16; bilinear or nearest sampling at a quarter size would see
    # only black (0) or only white (255) pixels.
    big[::4, ::4] = 255
    boxes, scores = HogBoxes()(big)
    np.testing.assert_allclose(boxes, [[40, 80, 120, 240], [4, 8, 12, 16]])  # quarter size
    np.testing.assert_allclose(scores, [1 / (1 + np.exp(-1.5)), 1 / (1 + np.exp(0.5))])
    assert searched[-1].shape == (100, 800)  # the long side cut to 800 pixels
    assert abs(float(searched[-1].mean()) - 255 / 16) < 0.5
    boxes, scores = HogBoxes()(np.zeros((600, 800, 3), np.uint8))  # at the limit: as is
    assert searched[-1].shape == (600, 800)
    assert boxes.tolist() == [[10, 20, 30, 60]] and scores.tolist() == [0.5]
    boxes, scores = HogBoxes()(np.zeros((300, 400, 3), np.uint8))  # small: searched as is
    assert searched[-1].shape == (300, 400)
    assert boxes.shape == (0, 4) and scores.shape == (0,)


# ----------------------------------------------------------------------------- estimator


def test_batching_across_images_matches_one_at_a_time(checkpoint, estimator):
    _, model, config = checkpoint
    from pose.apis.estimator import Frame

    rng = np.random.default_rng(1)
    frames = []
    for i, n in enumerate((3, 0, 5, 2)):  # 10 boxes over 4 images, one without any
        boxes = np.column_stack([rng.uniform(0, 60, n), rng.uniform(0, 40, n),
                                 rng.uniform(20, 90, n), rng.uniform(30, 80, n)])
        frames.append(Frame(i, _photo(seed=i), boxes, rng.uniform(0.5, 1, n)))
    calls = estimator.model_calls
    batched = list(estimator.iter_frames(frames))
    assert [f.key for f, _ in batched] == [0, 1, 2, 3]  # input order kept
    # the first image's 3 crops at once (a quick first result), then the other 7 together
    assert estimator.model_calls - calls == 2
    single = PoseEstimator.from_config(model, config, batch_size=1, batching="padded")
    for frame, people in batched:
        alone = single.predict_image(frame.image, frame.boxes, frame.box_scores)
        assert len(alone) == len(people) <= len(frame.boxes)
        np.testing.assert_allclose(people.keypoints, alone.keypoints, atol=1e-3)
        np.testing.assert_allclose(people.keypoint_scores, alone.keypoint_scores, rtol=1e-5,
                                   atol=1e-6)
    assert len(batched[1][1]) == 0


def test_network_traced_ahead_gives_the_keras_path_results(checkpoint):
    from pose.apis.estimator import DynamicBatchModel, load_network

    path, model, config = checkpoint
    network, loaded_config = load_network(path, trace_ahead=True)
    assert isinstance(network, DynamicBatchModel) and loaded_config == config
    assert network.input_shape == model.input_shape
    assert network.output_shape == model.output_shape
    x = np.random.default_rng(0).normal(size=(5,) + model.input_shape[1:]).astype("float32")
    np.testing.assert_allclose(network.predict_on_batch(x), model.predict_on_batch(x),
                               rtol=1e-5, atol=1e-6)
    image, boxes = _photo(), np.array([[10.0, 5, 60, 90], [70, 20, 50, 80]])
    plain = PoseEstimator.from_config(model, config).predict_image(image, boxes)
    ahead = PoseEstimator.from_config(network, config).predict_image(image, boxes)
    np.testing.assert_allclose(ahead.keypoints, plain.keypoints, atol=1e-4)
    padded = PoseEstimator.from_config(network, config, batching="padded")
    assert padded.predictor.model is network.model


def test_background_instantiation_failure_surfaces_at_the_first_call():
    import tensorflow as tf

    from pose.apis.estimator import DynamicBatchModel

    class FailsOnOneCrop:  # traces, then fails when run on the thread's one blank crop
        input_shape = (None, 8, 8, 3)

        def __call__(self, x, training=False):
            tf.debugging.assert_greater(tf.shape(x)[0], 1, message="one crop is not enough")
            return x

    network = DynamicBatchModel(FailsOnOneCrop(), background=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match="one crop is not enough"):
        network.predict_on_batch(np.zeros((4, 8, 8, 3), np.float32))

    class Untraceable:
        input_shape = (None, 8, 8, 3)

        def __call__(self, x, training=False):
            raise RuntimeError("no graph today")

    with pytest.raises(RuntimeError, match="no graph today"):  # the trace is not deferred
        DynamicBatchModel(Untraceable(), background=True)


# ----------------------------------------------------------------------------- real images


def test_sample_images_match_evaluation_and_load_in_pycocotools(coco_sample_dir, checkpoint,
                                                                estimator, tmp_path):
    from pycocotools.coco import COCO

    from datasets.coco import load_eval_records
    from pose.evaluation.evaluator import predict_records
    from pose.evaluation.metrics import postprocess_predictions

    _, model, config = checkpoint
    images = coco_sample_dir / "images"
    det = coco_sample_dir / "person_detection_results_sample.json"
    inputs = collect_inputs([images])
    report = run_inference(estimator, inputs, tmp_path, DetectionBoxes(det), verbose=0)

    names = sorted(os.listdir(images))
    assert sorted(os.listdir(tmp_path)) == sorted(names + ["predictions.json", "summary.json"])
    for name in names:
        overlay = cv2.imread(str(tmp_path / name))
        assert overlay is not None
        assert overlay.shape == cv2.imread(str(images / name)).shape
    assert report.skipped == [] and report.num_images == 4 and report.num_people > 0

    results = json.loads((tmp_path / "predictions.json").read_text())
    assert len(results) == report.num_people
    for r in results:
        assert r["file_name"] in names and r["image_id"] == int(r["file_name"][:-4])
        assert len(r["keypoints"]) == 51 and len(r["keypoint_scores"]) == 17
        assert len(r["box"]) == 4 and "bbox" not in r
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(coco_sample_dir / "person_keypoints_sample.json"))
        loaded = gt.loadRes(results)
    assert len(loaded.anns) == len(results)

    # The same boxes through the evaluation path give the same people.
    codec = estimator.codec
    records = load_eval_records(str(coco_sample_dir / "person_keypoints_sample.json"),
                                str(images), codec.input_size, detections=str(det))
    predictions, _ = predict_records(model, records, codec, 16,
                                     flip_index=estimator.meta.flip_index_array, verbose=0)
    expected = postprocess_predictions(
        predictions.keypoints, predictions.scores, predictions.image_ids,
        predictions.box_scores, predictions.areas, estimator.meta.sigmas_array,
        score_threshold=config.test.keypoint_score_threshold,
        nms_threshold=config.test.oks_nms_threshold)
    assert len(expected) == len(results)

    # Pair each person with the evaluation path's person of the same image whose keypoints
    # are nearest (sorting by score alone mispairs near-equal scores).
    close, same_score = [], []
    for got in results:
        g = np.reshape(got["keypoints"], (17, 3))
        candidates = [w for w in expected if w["image_id"] == got["image_id"]]
        want = min(candidates, key=lambda w: np.abs(
            np.reshape(w["keypoints"], (17, 3))[:, :2] - g[:, :2]).sum())
        w = np.reshape(want["keypoints"], (17, 3))
        same_score.append(got["score"] == pytest.approx(want["score"], rel=1e-2, abs=1e-4))
        close.extend(np.abs(g[:, :2] - w[:, :2]).max(axis=1) < 0.05)
    # Float32 centres (~3e-5 px apart) can tip cv2.warpAffine's 1/32-pixel fixed point, so
    # a crop may differ by one grey level, which a random (chaotic) network amplifies to
    # ~1e-3 in the heatmaps; a near-tie of two peaks can flip an argmax, and a joint score
    # near the 0.2 rescoring threshold can change a person's score. All but a few agree.
    assert np.mean(same_score) > 0.9, np.mean(same_score)
    assert np.mean(close) > 0.98, np.mean(close)


# ----------------------------------------------------------------------------- video


def test_video_overlay_and_json_lines(estimator, tmp_path):
    src = tmp_path / "in" / "clip.avi"
    src.parent.mkdir()
    writer = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (96, 64))
    assert writer.isOpened()
    for i in range(5):
        writer.write(_photo(64, 96, seed=i))
    writer.release()
    out = tmp_path / "out"
    report = run_inference(estimator, collect_inputs([src]), out, WholeImageBoxes(),
                           threshold=0.0, verbose=0)
    assert sorted(os.listdir(out)) == ["clip.jsonl", "clip.mp4", "summary.json"]  # no temp left
    cap = cv2.VideoCapture(str(out / "clip.mp4"))
    frames = 0
    while cap.read()[0]:
        frames += 1
    cap.release()
    assert frames == 5 and report.num_images == 5
    lines = [json.loads(x) for x in (out / "clip.jsonl").read_text().splitlines()]
    assert [x["frame"] for x in lines] == [0, 1, 2, 3, 4]
    assert lines[2]["time_s"] == pytest.approx(0.2)
    assert all(len(x["people"]) == 1 and len(x["people"][0]["keypoints"]) == 51
               for x in lines)


def test_unopenable_video_is_an_error_before_any_output(estimator, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video" * 10)
    good = _write_image(tmp_path / "a.png", _photo())
    out = tmp_path / "out"
    with pytest.raises(InputError, match="cannot open video .*broken.mp4"):
        run_inference(estimator, collect_inputs([good, bad]), out, WholeImageBoxes(),
                      verbose=0)
    assert not out.exists()  # not even the folder


# ----------------------------------------------------------------------------- bad images


def test_odd_images_work_and_unreadable_ones_are_listed(estimator, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    _write_image(src / "grey.png", _photo()[..., 0])
    rgba = np.dstack([_photo(), np.full((120, 160), 128, np.uint8)])
    _write_image(src / "rgba.png", rgba)
    _write_image(src / "deep.png", _photo().astype(np.uint16) * 257)
    _write_image(src / "large.jpg", cv2.resize(_photo(), (4000, 3000)))
    (src / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 garbage")
    good = (src / "large.jpg").read_bytes()
    (src / "truncated.jpg").write_bytes(good[:len(good) // 2])
    out = tmp_path / "out"
    report = run_inference(estimator, collect_inputs([src]), out, WholeImageBoxes(),
                           verbose=0)
    skipped = sorted(os.path.basename(p) for p, _ in report.skipped)
    assert skipped == ["corrupt.jpg", "truncated.jpg"]
    assert "skipped 2 unreadable file(s)" in report.summary()
    assert "truncated.jpg" in report.summary()
    assert sorted(os.listdir(out)) == ["deep.png", "grey.png", "large.jpg",
                                       "predictions.json", "rgba.png", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 4 and len(summary["skipped"]) == 2
    assert cv2.imread(str(out / "large.jpg")).shape == (3000, 4000, 3)
    results = json.loads((out / "predictions.json").read_text())
    assert sorted({r["file_name"] for r in results}) == ["deep.png", "grey.png",
                                                          "large.jpg", "rgba.png"]
    assert report.images_per_second > 0 and report.people_per_second > 0


# ----------------------------------------------------------------------------- the tool


@pytest.fixture
def tool(capsys):
    """``tool(*args)``: tools/infer.py's ``main`` in this process (TensorFlow is already
    imported; the real process, its exit codes and its one error line are tested in
    tests/pose/apis/test_runtimes.py and tests/tools/test_careless_commands.py):
    ``(returncode, stdout, stderr)``. The graph-optimizer setting the tool makes for
    TensorFlow (process-wide) is put back after each run."""
    import runpy
    import types

    import tensorflow as tf

    from pose.errors import run_tool

    main = runpy.run_path(str(REPO / "tools" / "infer.py"), run_name="infer")["main"]

    def run(*args):
        options = tf.config.optimizer.get_experimental_options()
        capsys.readouterr()
        try:
            code = run_tool(main, [str(a) for a in args])
        finally:
            tf.config.optimizer.set_experimental_options(
                {"disable_meta_optimizer": False, **options})
        out, err = capsys.readouterr()
        return types.SimpleNamespace(returncode=code, stdout=out, stderr=err)
    return run


def test_tool_errors_are_clear_and_fast(checkpoint, tool, tmp_path):
    weights = checkpoint[0]
    run = tool("--weights", weights, tmp_path / "nope.jpg", "--out", tmp_path / "o")
    assert run.returncode == 2 and "nope.jpg" in run.stderr
    (tmp_path / "empty").mkdir()
    run = tool("--weights", weights, tmp_path / "empty", "--out", tmp_path / "o")
    assert run.returncode == 2 and "holds no image or video" in run.stderr
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_bytes(b"")
    run = tool("--weights", weights, tmp_path / "bad", "--out", tmp_path / "o2")
    assert run.returncode == 2  # nothing processed is a failure, and writes nothing
    assert run.stderr.strip().splitlines() == [
        f"error: nothing was processed: none of the 1 input(s) could be read "
        f"({tmp_path / 'bad' / 'x.jpg'}: empty file)"], run.stderr
    assert not (tmp_path / "o2").exists()
    if not hasattr(cv2, "HOGDescriptor"):
        _write_image(tmp_path / "a.png", _photo())
        run = tool("--weights", weights, tmp_path / "a.png", "--detector", "hog",
                    "--out", tmp_path / "o")
        assert run.returncode == 2
        assert 'pip install "opencv-python-headless<5"' in run.stderr
    assert not (tmp_path / "o").exists()


def test_tool_end_to_end(checkpoint, tool, tmp_path):
    weights = checkpoint[0]
    (tmp_path / "in").mkdir()
    for i in range(3):
        _write_image(tmp_path / "in" / f"p{i}.jpg", _photo(seed=i))
    run = tool("--weights", weights, str(tmp_path / "in" / "*.jpg"), "--out",
                tmp_path / "out", "--no-flip", "--batch-size", "2", "--quiet")
    assert run.returncode == 0, run.stderr[-2000:]
    first, second = run.stdout.splitlines()[:2]
    assert first.startswith("runtime keras (TensorFlow ") and first.endswith(
        "precision float32"), first
    assert second.startswith("person boxes: whole image (no --detector or --boxes given")
    assert "images/s" in run.stdout and "people/s" in run.stdout
    assert "flip test off, batch 2" in run.stdout
    written = ["p0.jpg", "p1.jpg", "p2.jpg", "predictions.json", "summary.json"]
    assert sorted(os.listdir(tmp_path / "out")) == [".psa-pose-outputs.json", *written]
    # the record of what this tool wrote: an identical rerun may replace exactly these
    manifest = json.loads((tmp_path / "out" / ".psa-pose-outputs.json").read_text())
    assert manifest == {"files": {name: "tools/infer.py" for name in written}}


def test_tool_keypoints_equal_the_in_process_keras_path(coco_sample_dir, checkpoint, estimator,
                                                        tool, tmp_path):
    """The tool traces ahead with TensorFlow's graph optimizer off (its fast start-up); the
    keypoints are those of the default in-process path (flip test on, detector boxes)."""
    weights = checkpoint[0]
    images = coco_sample_dir / "images"
    det = coco_sample_dir / "person_detection_results_sample.json"
    run = tool("--weights", weights, images, "--boxes", det, "--out", tmp_path / "tool",
                "--quiet")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "flip test on" in run.stdout
    run_inference(estimator, collect_inputs([images]), tmp_path / "here", DetectionBoxes(det),
                  verbose=0)
    tool, here = (json.loads((tmp_path / d / "predictions.json").read_text())
                  for d in ("tool", "here"))
    assert len(tool) == len(here) > 20
    for got, want in zip(tool, here):
        assert got["image_id"] == want["image_id"]
        np.testing.assert_allclose(got["keypoints"], want["keypoints"], atol=2e-3)


def test_non_finite_outputs_are_written_as_strict_json_nulls_and_counted(checkpoint, tmp_path):
    """A model whose heatmaps are NaN (a NaN bias, as a broken conversion gives) yields
    predictions.json and the per-frame JSON lines without bare NaN tokens: the values are
    null and the people counted in the report and summary.json."""
    from pose.engine.checkpoint import build_model

    _, model, config = checkpoint
    broken = build_model(config.model)
    broken.set_weights(model.get_weights())
    bias = broken.get_layer("final_layer").bias
    bias.assign(np.full(bias.shape, np.nan, np.float32))
    (tmp_path / "in").mkdir()
    _write_image(tmp_path / "in" / "a.jpg", _photo())
    writer = cv2.VideoWriter(str(tmp_path / "in" / "clip.avi"),
                             cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (96, 64))
    for i in range(2):
        writer.write(_photo(64, 96, seed=i))
    writer.release()
    report = run_inference(PoseEstimator.from_config(broken, config),
                           collect_inputs([tmp_path / "in"]), tmp_path / "out",
                           WholeImageBoxes(), verbose=0)

    def refuse(token):
        raise AssertionError(f"bare {token} in the JSON")

    people = json.loads((tmp_path / "out" / "predictions.json").read_text(),
                        parse_constant=refuse)
    frames = [json.loads(line, parse_constant=refuse)
              for line in (tmp_path / "out" / "clip.jsonl").read_text().splitlines()]
    assert len(people) == 1 and all(v is None for v in people[0]["keypoint_scores"])
    assert people[0]["keypoints"][2::3] == people[0]["keypoint_scores"]
    assert len(frames) == 2 and all(len(f["people"]) == 1 for f in frames)
    assert report.non_finite_people == 3 == report.num_people
    assert "3 person(s) had NaN or infinite values, written as null" in report.summary()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["non_finite_people"] == 3


def test_photos_of_one_name_in_two_folders_get_two_image_ids(estimator, tmp_path):
    """Two ``000000000007.jpg`` in two folders: the first keeps 7, the second gets the
    48-bit SHA-1 id of its resolved path; the same file named twice stays one input."""
    import hashlib

    from pose.apis.inputs import ImageIds

    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        _write_image(tmp_path / folder / "000000000007.jpg", _photo(120, 160))
    inputs = collect_inputs([tmp_path / "a", tmp_path / "b"])
    report = run_inference(estimator, inputs, tmp_path / "out", WholeImageBoxes(), verbose=0)
    people = json.loads((tmp_path / "out" / "predictions.json").read_text())
    path = os.path.realpath(tmp_path / "b" / "000000000007.jpg")
    second = int(hashlib.sha1(path.encode()).hexdigest()[:12], 16)
    assert sorted({p["image_id"] for p in people}) == sorted([7, second])
    assert report.num_images == 2
    ids = ImageIds()
    assert ids.assign(7, tmp_path / "a" / "000000000007.jpg") == 7
    assert ids.assign(7, tmp_path / "a" / "000000000007.jpg") == 7


def test_a_sideways_photo_is_estimated_in_its_displayed_frame(estimator, tmp_path):
    """EXIF orientation 6 on a 160x120 stored photo: the whole-image box is the displayed
    120x160 frame (keypoints and overlay too), and the stored 160x120 one with
    ``exif_orientation=False`` (``tools/infer.py --ignore-exif``)."""
    import struct

    tiff = (b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1)
            + struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack(">I", 0))
    exif = b"Exif\x00\x00" + tiff
    jpeg = cv2.imencode(".jpg", _photo(120, 160))[1].tobytes()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "photo.jpg").write_bytes(
        jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + jpeg[2:])
    for exif_orientation, (width, height) in ((True, (120, 160)), (False, (160, 120))):
        out = tmp_path / f"out{exif_orientation}"
        run_inference(estimator, collect_inputs([tmp_path / "in"]), out, WholeImageBoxes(),
                      verbose=0, exif_orientation=exif_orientation)
        (person,) = json.loads((out / "predictions.json").read_text())
        assert person["box"][2:] == [width, height]
        assert cv2.imread(str(out / "photo.jpg")).shape[:2] == (height, width)
