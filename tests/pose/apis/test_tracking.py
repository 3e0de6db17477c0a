"""Tests of pose.apis.tracking and pose.apis.smoothing: track ids across frames, One-Euro
smoothing, detection every N frames, and flat memory on long clips.

The tracker and the smoother are tested on planted keypoint sequences (generated figures
moved along known paths, ``datasets.synthetic.clips``), where a random test network's
keypoints would make the test about the network; the runner and ``tools/infer.py`` on
generated clips with the tiny network and with a planted "perfect" pose estimator."""

import dataclasses
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from datasets.metadata import DatasetMeta
from datasets.synthetic.clips import ClipPerson, render_clip
from pose.apis.estimator import People
from pose.apis.inputs import collect_inputs
from pose.apis.runner import run_inference
from pose.apis.smoothing import OneEuroFilter, OneEuroParams
from pose.apis.tracking import (
    PoseTracker,
    TrackingParams,
    box_iou_matrix,
    keypoint_box,
    track_video,
)

REPO = Path(__file__).resolve().parents[3]
COCO = DatasetMeta.coco()


def _people(truth, f, rng=None, noise=0.0, score=0.9):
    """``People`` of frame ``f`` of a clip's truth (the people present), keypoints with
    Gaussian noise of ``noise`` pixels; also the truth indices."""
    idx = np.flatnonzero(truth.present[f])
    kp = truth.keypoints[f, idx]
    if noise:
        kp = kp + rng.normal(0.0, noise, kp.shape)
    n = len(idx)
    return People(kp, np.full((n, 17), score), np.full(n, score), truth.boxes[f, idx],
                  np.ones(n)), idx


def _id_switches(truth_of_frames):
    """Id switches of a sequence of {truth person: track id}: a person whose id differs
    from their previous one (MOT's IDSW), and two people sharing an id."""
    switches, last = 0, {}
    for ids in truth_of_frames:
        assert len(set(ids.values())) == len(ids), f"two people share an id: {ids}"
        for person, tid in ids.items():
            switches += person in last and last[person] != tid
            last[person] = tid
    return switches


def _track(truth, params, noise=1.5, seed=0):
    rng = np.random.default_rng(seed)
    tracker = PoseTracker(COCO.sigmas_array, truth.fps, params)
    out = []
    for f in range(len(truth.present)):
        people, idx = _people(truth, f, rng, noise)
        people = tracker.update(people, f)
        out.append(dict(zip(idx.tolist(), people.track_ids.tolist())))
    return out


@pytest.fixture(scope="module")
def crossing(tmp_path_factory):
    """Two people walking towards each other, crossing in frames ~17-23 (their boxes
    overlap by up to IoU 0.6 and more), 40 frames at 25 fps."""
    path = tmp_path_factory.mktemp("clips") / "crossing.avi"
    truth = render_clip(path, [ClipPerson((60, 130), (6, 0), 110),
                               ClipPerson((300, 136), (-6, 0.2), 104)],
                        num_frames=40, size=(360, 240), seed=4)
    return path, truth


# ----------------------------------------------------------------------------- matching


def test_box_iou_and_keypoint_box_by_hand():
    iou = box_iou_matrix([[0, 0, 10, 10]], [[5, 0, 10, 10], [20, 20, 5, 5], [0, 0, 10, 10]])
    np.testing.assert_allclose(iou, [[50 / 150, 0.0, 1.0]])
    box = keypoint_box([[10, 20], [30, 60], [500, 500]], [0.9, 0.8, 0.1], 0.3, 1.15)
    # extent 20 x 40 centred at (20, 40), enlarged by 15%: 23 x 46
    np.testing.assert_allclose(box, [20 - 11.5, 40 - 23, 23, 46])
    assert keypoint_box([[1, 1], [2, 2]], [0.9, 0.1]) is None


def test_matching_is_the_joint_optimum_not_greedy():
    """Two side-by-side people both step 3 px left. Greedily, the first track would take
    the person its box overlaps most (IoU 0.67, its neighbour) and leave the second track
    a poor match (0.11); the assignment solver pairs each with its own (0.54 + 0.54)."""
    def people(xs):
        boxes = np.array([[x, 0, 10, 10] for x in xs], np.float64)
        kp = np.repeat(boxes[:, None, :2] + 5, 17, axis=1)  # (P, 17, 2) box centres
        return People(kp, np.full((len(xs), 17), 0.9), np.ones(len(xs)), boxes,
                      np.ones(len(xs)))

    tracker = PoseTracker(COCO.sigmas_array, 25.0, TrackingParams(metric="iou"))
    assert tracker.update(people([0, 5]), 0).track_ids.tolist() == [0, 1]
    assert tracker.update(people([2, -3]), 1).track_ids.tolist() == [1, 0]


@pytest.mark.parametrize("metric", ["oks", "iou"])
def test_crossing_people_keep_their_ids(crossing, metric):
    _, truth = crossing
    overlap = [box_iou_matrix(truth.boxes[f, :1], truth.boxes[f, 1:])[0, 0]
               for f in range(40)]
    assert max(overlap) > 0.6  # they really cross: a box-overlap tracker can mix them up
    ids = _track(truth, TrackingParams(metric=metric))
    assert _id_switches(ids) == 0
    assert ids[0] == {0: 0, 1: 1} and ids[-1] == {0: 0, 1: 1}


def test_a_person_back_after_max_age_gets_a_new_id(tmp_path):
    people = [ClipPerson((80, 120), (0.5, 0), 100, frames=(0, 9)),  # leaves, back at 20
              ClipPerson((200, 120), (0, 0), 100),
              ClipPerson((140, 120), (0, 0), 90, frames=(0, 4))]  # leaves, back at 12
    truth = render_clip(tmp_path / "c.avi", people, num_frames=30, size=(320, 200), seed=1)
    truth.present[20:, 0] = True  # person 0 missed frames 10..19: 10 frames
    truth.present[12:, 2] = True  # person 2 missed frames 5..11: 7 frames
    ids = _track(truth, TrackingParams(max_age=8))
    assert ids[0] == {0: 0, 1: 1, 2: 2}
    assert ids[15] == {1: 1, 2: 2}  # back within the max age: same id
    assert ids[25] == {0: 3, 1: 1, 2: 2}  # back after it: a new id, never an old one
    # max age exactly the gap: still the same person
    assert _track(truth, dataclasses.replace(TrackingParams(), max_age=10))[25][0] == 0


# ----------------------------------------------------------------------------- smoothing


def _one_euro_reference(xs, fps, min_cutoff, beta, d_cutoff):
    """Casiez et al. (2012), equations restated for one scalar signal."""
    def alpha(cutoff):
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau * fps)  # te = 1 / fps

    x_prev, dx_prev, out = xs[0], 0.0, [xs[0]]
    for x in xs[1:]:
        dx = (x - x_prev) * fps
        dx_hat = alpha(d_cutoff) * dx + (1 - alpha(d_cutoff)) * dx_prev
        a = alpha(min_cutoff + beta * abs(dx_hat))
        x_hat = a * x + (1 - a) * x_prev
        out.append(x_hat)
        x_prev, dx_prev = x_hat, dx_hat
    return np.array(out)


def test_one_euro_filter_matches_the_paper():
    rng = np.random.default_rng(0)
    xs = np.cumsum(rng.normal(0, 3, (50, 4, 2)), axis=0)  # random walks, 8 coordinates
    params = OneEuroParams(min_cutoff=0.8, beta=0.05, d_cutoff=1.5)
    f = OneEuroFilter(xs[0], params)
    ours = np.stack([xs[0]] + [f(x, 1 / 30) for x in xs[1:]])
    for k in range(4):
        for c in range(2):
            ref = _one_euro_reference(xs[:, k, c], 30.0, 0.8, 0.05, 1.5)
            np.testing.assert_allclose(ours[:, k, c], ref, rtol=1e-12)
    with pytest.raises(ValueError, match="min_cutoff"):
        OneEuroParams(min_cutoff=0)


def test_smoothing_lowers_jitter_with_a_bounded_lag(tmp_path):
    """A person walking at 4 px/frame (100 px/s at 25 fps), keypoints with 2 px noise:
    the frame-to-frame jitter falls by the factor the filter's equations predict, and the
    lag is the steady-state lag of an exponential smoother at the speed-raised cutoff."""
    fps, speed, noise = 25.0, 4.0, 2.0
    truth = render_clip(tmp_path / "walk.avi", [ClipPerson((40, 120), (speed, 0), 100)],
                        num_frames=120, size=(560, 220), fps=fps, seed=2)
    params = OneEuroParams()  # the defaults: 1 Hz, beta 0.007, 1 Hz
    rng = np.random.default_rng(1)
    tracker = PoseTracker(COCO.sigmas_array, fps, TrackingParams(smooth=params))
    raw, smooth = [], []
    for f in range(120):
        people, _ = _people(truth, f, rng, noise)
        raw.append(people.keypoints[0])
        smooth.append(tracker.update(people, f).keypoints[0])
    raw, smooth, true = np.array(raw), np.array(smooth), truth.keypoints[:, 0]
    steady = slice(30, None)  # after the filter's start-up

    def jitter(x):  # frame-to-frame motion minus the true motion
        return np.std(np.diff(x, axis=0)[steady] - np.diff(true, axis=0)[steady])

    factor = jitter(raw) / jitter(smooth)
    lag_frames = np.mean((true - smooth)[steady, :, 0]) / speed
    # At constant speed v an exponential smoother of weight a lags L = (1 - a) / a frames;
    # the filter's speed estimate, taken against its previous (lagging) output, is then
    # v (L + 1), which sets the cutoff and so a: solve that fixed point.
    lag = 0.0
    for _ in range(100):
        r = 2 * math.pi * (params.min_cutoff + params.beta * speed * fps * (lag + 1)) / fps
        lag = 0.5 * lag + 0.5 * (1 / (r / (r + 1)) - 1)
    assert factor > 3.0, factor
    assert lag_frames == pytest.approx(lag, abs=0.25), (lag_frames, lag)
    assert lag_frames < 3.0  # 120 ms at 25 fps
    assert np.abs(np.mean(smooth - true, axis=(0, 1))[1]) < 0.5  # no drift across the motion


# ----------------------------------------------------------------------------- runner


class PlantedEstimator:
    """A perfect pose network: in each box it finds the clip's person whose keypoints
    lie most inside it and returns their true keypoints (score 0.9). It tests what the
    runner and tracker do with boxes, independent of a network's accuracy."""

    def __init__(self, truth):
        self.truth = truth
        self.meta = COCO

    def iter_frames(self, frames):
        for frame in frames:
            f, people, boxes = frame.key, [], []
            for box in np.asarray(frame.boxes).reshape(-1, 4):
                x, y, w, h = box
                kp = self.truth.keypoints[f]  # (P, 17, 2)
                inside = ((kp[..., 0] >= x) & (kp[..., 0] <= x + w) & (kp[..., 1] >= y)
                          & (kp[..., 1] <= y + h)).sum(1) * self.truth.present[f]
                if inside.max() > 0 and int(inside.argmax()) not in people:
                    people.append(int(inside.argmax()))
                    boxes.append(box)
            n = len(people)
            yield frame, People(self.truth.keypoints[f, people].reshape(n, 17, 2),
                                np.full((n, 17), 0.9), np.full(n, 0.9),
                                np.array(boxes).reshape(n, 4), np.ones(n))


class CountingBoxes:
    """A planted box source: the clip's true boxes; counts its calls."""

    name = "planted boxes"

    def __init__(self, truth):
        self.truth, self.calls = truth, []

    def __call__(self, image, file_name=None, image_id=None):
        self.calls.append(image_id)
        present = self.truth.present[image_id]
        return self.truth.boxes[image_id, present], np.ones(int(present.sum()))


def _lines(path):
    return [json.loads(x) for x in Path(path).read_text().splitlines()]


def test_detect_every_5_runs_the_box_source_on_a_fifth_of_the_frames(tmp_path):
    truth = render_clip(tmp_path / "still.avi", [ClipPerson((60, 110), (0, 0), 100),
                                                 ClipPerson((150, 115), (0, 0), 95),
                                                 ClipPerson((240, 105), (0, 0), 105)],
                        num_frames=23, size=(320, 200), seed=3)
    inputs = collect_inputs([tmp_path / "still.avi"])
    runs = {}
    for every in (1, 5):
        boxes = CountingBoxes(truth)
        report = run_inference(PlantedEstimator(truth), inputs, tmp_path / f"out{every}",
                               boxes, verbose=0, tracking=TrackingParams(detect_every=every))
        runs[every] = (boxes.calls, _lines(report.videos[0][1]))
    assert runs[1][0] == list(range(23))
    assert runs[5][0] == [0, 5, 10, 15, 20]  # ceil(23 / 5) calls, on frames 0, 5, ...
    # nobody moves: the same people, ids and keypoints as detection on every frame
    for every_frame, every_fifth in zip(runs[1][1], runs[5][1]):
        assert len(every_fifth["people"]) == 3
        for a, b in zip(every_frame["people"], every_fifth["people"]):
            assert a["track_id"] == b["track_id"]
            assert a["keypoints"] == b["keypoints"]


def test_detect_every_follows_moving_people_and_drops_weak_tracks(tmp_path, crossing):
    path, truth = crossing
    boxes = CountingBoxes(truth)
    estimator = PlantedEstimator(truth)
    tracker = PoseTracker(COCO.sigmas_array, truth.fps, TrackingParams(detect_every=4))
    cap = cv2.VideoCapture(str(path))
    images = ((i, cv2.cvtColor(cap.read()[1], cv2.COLOR_BGR2RGB)) for i in range(40))
    ids = []
    for frame, people in track_video(estimator, images, boxes, tracker):
        match = [int(np.argmin(np.abs(truth.keypoints[frame.key, :, 0, 0] - kp[0, 0])))
                 for kp in people.keypoints]
        ids.append(dict(zip(match, people.track_ids.tolist())))
        # between detections, each box (padded by 1.25 for the crop, as the estimator
        # does) holds the person it was propagated from, who moved 6 px since
        if frame.key % 4:
            for (x, y, w, h), kp in zip(frame.boxes, people.keypoints):
                cx, half = x + w / 2, w / 2 * 1.25
                assert cx - half <= kp[:, 0].min() and kp[:, 0].max() <= cx + half
    cap.release()
    assert len(boxes.calls) == 10 and _id_switches(ids) == 0
    assert all(len(x) == 2 for x in ids)
    # a weak person is dropped between detections and comes back at the next one
    weak = PoseTracker(COCO.sigmas_array, truth.fps,
                       TrackingParams(detect_every=4, min_score=0.95))
    counts = [len(p) for _, p in track_video(estimator, ((i, np.zeros((240, 360, 3), np.uint8))
                                                          for i in range(9)), boxes, weak)]
    assert counts == [2, 0, 0, 0, 2, 0, 0, 0, 2]


# ----------------------------------------------------------------------------- end to end


def _tool(*args, timeout=240):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, str(REPO / "tools" / "infer.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, tiny_hrnet, randomized):
    from pose.config import Config, ModelConfig, TestConfig
    from pose.engine.checkpoint import build_model, save_model

    config = Config(model=ModelConfig(**tiny_hrnet), test=TestConfig(batch_size=8))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.keras"
    save_model(randomized(build_model(config.model)), path, config)
    return path


def test_infer_tool_writes_track_ids_through_a_crossing(tiny_checkpoint, crossing, tmp_path):
    """``tools/infer.py`` on the crossing clip with the tiny network: every person of the
    JSONL has a track id; with box IoU on the true boxes (the random network's keypoints
    mean nothing) the ids survive the crossing, smoothing on."""
    path, truth = crossing
    det = tmp_path / "det.json"
    det.write_text(json.dumps(truth.detections()))
    run = _tool("--weights", tiny_checkpoint, path, "--boxes", det, "--track-metric", "iou",
                "--smooth", "--out", tmp_path / "o1", "--quiet")
    assert run.returncode == 0, run.stderr
    lines = _lines(tmp_path / "o1" / "crossing.jsonl")
    ids = [{int(np.argmin(np.abs(truth.boxes[x["frame"], :, 0] - p["box"][0]))): p["track_id"]
            for p in x["people"]} for x in lines]
    assert len(lines) == 40 and all(len(x) == 2 for x in ids)
    assert _id_switches(ids) == 0
    run = _tool("--weights", tiny_checkpoint, path, "--detect-every", "0", "--out",
                tmp_path / "o3")
    assert run.returncode == 2
    assert run.stderr.strip() == "error: --detect-every must be an integer in [1, 1000000], got 0"


def test_detect_every_with_the_tiny_network(tiny_checkpoint, crossing, tmp_path):
    """``run_inference`` with a real (tiny) network and ``detect_every=5``: the box source
    runs on frames 0, 5, ..., 35 and between them every person is estimated again in the
    box made from their previous keypoints (``min_score`` 0: none is dropped)."""
    from pose.apis.estimator import PoseEstimator, load_network

    path, truth = crossing
    model, config = load_network(tiny_checkpoint)
    estimator = PoseEstimator.from_config(model, config, flip=False)
    boxes = CountingBoxes(truth)
    report = run_inference(estimator, collect_inputs([path]), tmp_path / "out", boxes,
                           verbose=0, tracking=TrackingParams(detect_every=5, min_score=0.0,
                                                              keypoint_threshold=0.0))
    assert boxes.calls == [0, 5, 10, 15, 20, 25, 30, 35]
    lines = _lines(report.videos[0][1])
    assert [len(x["people"]) for x in lines[:5]] == [2] * 5
    assert all("track_id" in p for x in lines for p in x["people"])


MEMORY_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    from pose.apis.boxes import DetectionBoxes
    from pose.apis.estimator import PoseEstimator, load_network
    from pose.apis.inputs import collect_inputs
    from pose.apis.runner import run_inference
    from pose.apis.smoothing import OneEuroParams
    from pose.apis.tracking import TrackingParams

    weights, clip, det, out = sys.argv[1:5]
    model, config = load_network(weights)
    estimator = PoseEstimator.from_config(model, config, flip=False)
    boxes = DetectionBoxes(det)
    peak = {}

    def source(image, file_name=None, image_id=None):
        if image_id in (100, 999):
            peak[image_id] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return boxes(image, file_name, image_id)

    source.name = "counting"
    run_inference(estimator, collect_inputs([clip]), out, source, verbose=0,
                  tracking=TrackingParams(smooth=OneEuroParams()))
    print(json.dumps(peak))
""")


def test_memory_stays_flat_on_a_1000_frame_clip(tiny_checkpoint, tmp_path):
    """Peak RSS after frame 100 and after frame 1000 of a generated clip (people walking
    in and out, tracking and smoothing on), in a fresh process: a run that kept anything
    per frame (a 160x120 frame is 56 KiB, its overlay as much again) would grow by tens
    of MiB over the 900 frames."""
    people = [ClipPerson((-20, 70), (0.6, 0), 60), ClipPerson((180, 75), (-0.5, 0.01), 55),
              ClipPerson((80, 70), (0, 0), 50, frames=(200, 600))]
    truth = render_clip(tmp_path / "long.avi", people, num_frames=1000, size=(160, 120),
                        seed=5)
    (tmp_path / "det.json").write_text(json.dumps(truth.detections()))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    run = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(tiny_checkpoint),
                          str(tmp_path / "long.avi"), str(tmp_path / "det.json"),
                          str(tmp_path / "out")], capture_output=True, text=True, env=env,
                         timeout=300, cwd=REPO)
    assert run.returncode == 0, run.stderr
    peak = json.loads(run.stdout.strip().splitlines()[-1])
    growth = peak["999"] - peak["100"]
    assert growth < 16, peak  # MiB
    assert peak["100"] > 100  # the measure is the process's peak (TensorFlow alone > 100 MiB)


@pytest.fixture(scope="module")
def still_clip(tmp_path_factory):
    """Two people standing still: the same scene for 11 frames."""
    path = tmp_path_factory.mktemp("clips") / "still.avi"
    truth = render_clip(path, [ClipPerson((60, 130), (0, 0), 110),
                               ClipPerson((250, 136), (0, 0), 104)],
                        num_frames=11, size=(360, 240), seed=4)
    return path, truth


@pytest.fixture(scope="module")
def official_tiny_estimator(official_hrnet_dir):
    """A ``PoseEstimator`` of the tiny official checkpoint, loaded once (``run_inference``
    keeps no state in it: each run makes its own trackers)."""
    from pose.apis.estimator import PoseEstimator, load_network

    model, config = load_network(official_hrnet_dir / "pose_hrnet_tiny.pth")
    return PoseEstimator.from_config(model, config, flip=False)


@pytest.mark.parametrize("metric", ["oks", "iou"])
@pytest.mark.parametrize("smooth", [False, True])
def test_detect_every_keeps_the_detectors_people_as_the_ids(official_tiny_estimator,
                                                           still_clip, tmp_path, metric,
                                                           smooth):
    """Issue 28: with the tiny official checkpoint (its poses are far from the people, so
    the boxes made from them drift) and ``detect_every=5``, two still people keep ids 0
    and 1 on every frame: a person found in a box propagated from track T continues T,
    and a detector frame matches the tracks' poses at their last detector frame too.
    (Before: 8 ids for 2 people on these 11 frames.)"""
    path, truth = still_clip
    boxes = CountingBoxes(truth)
    report = run_inference(official_tiny_estimator, collect_inputs([path]), tmp_path / "out",
                           boxes, verbose=0, tracking=TrackingParams(
                               metric=metric, detect_every=5,
                               smooth=OneEuroParams() if smooth else None))
    assert boxes.calls == [0, 5, 10]
    ids = [[p["track_id"] for p in sorted(line["people"], key=lambda p: p["box"][0])]
           for line in _lines(report.videos[0][1])]  # left to right
    assert sorted(ids[0]) == [0, 1] and ids == [ids[0]] * 11, ids
