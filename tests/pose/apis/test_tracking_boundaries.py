"""The documented thresholds and ranges of tracking and smoothing, each tested on the value
itself and on each side of it (issue 30): a similarity equal to the match threshold, a gap
equal to the max age, a keypoint score equal to the keypoint threshold, the time step
across missed frames, and each parameter's range at its ends."""

import math

import numpy as np
import pytest

from datasets.metadata import DatasetMeta
from pose.apis.estimator import People
from pose.apis.smoothing import OneEuroFilter, OneEuroParams
from pose.apis.tracking import PoseTracker, TrackingParams, keypoint_box, track_video

COCO = DatasetMeta.coco()
BELOW, ABOVE = np.nextafter(0.5, 0.0), np.nextafter(0.5, 1.0)


def _people(*boxes):
    """People whose boxes are ``boxes`` (x, y, w, h), keypoints at the box centres."""
    boxes = np.array(boxes, np.float64).reshape(-1, 4)
    keypoints = np.repeat(boxes[:, None, :2] + boxes[:, None, 2:] / 2, 17, axis=1)
    n = len(boxes)
    return People(keypoints, np.full((n, 17), 0.9), np.ones(n), boxes, np.ones(n))


def _ids(params, frames):
    """Track ids per frame of ``frames``: [(frame index, people), ...]."""
    tracker = PoseTracker(COCO.sigmas_array, 25.0, params)
    return [tracker.update(people, index).track_ids.tolist() for index, people in frames]


@pytest.mark.parametrize("threshold, same_person", [(BELOW, True), (0.5, True),
                                                    (ABOVE, False)])
def test_a_similarity_equal_to_the_match_threshold_is_a_match(threshold, same_person):
    """The second box covers half of the first (IoU exactly 0.5 in float64)."""
    params = TrackingParams(metric="iou", match_threshold=threshold)
    ids = _ids(params, [(0, _people([0, 0, 10, 10])), (1, _people([0, 0, 10, 5]))])
    assert ids[1] == ([0] if same_person else [1])


def test_no_overlap_is_no_match_even_at_threshold_zero():
    """Threshold 0 (allowed) still needs some similarity: a person far away is new."""
    params = TrackingParams(metric="iou", match_threshold=0.0)
    ids = _ids(params, [(0, _people([0, 0, 10, 10])), (1, _people([50, 50, 10, 10])),
                        (2, _people([50, 50, 10, 10]))])
    assert ids == [[0], [1], [1]]


@pytest.mark.parametrize("max_age, same_person", [(4, False), (5, True), (6, True)])
def test_a_gap_equal_to_the_max_age_keeps_the_id(max_age, same_person):
    """Seen at frame 0, missed at frames 1..5 (a gap of 5), back at frame 6."""
    params = TrackingParams(metric="iou", max_age=max_age)
    ids = _ids(params, [(0, _people([0, 0, 10, 10])), (6, _people([0, 0, 10, 10]))])
    assert ids[1] == ([0] if same_person else [1])


def test_max_age_zero_keeps_a_person_seen_on_the_next_frame_only():
    params = TrackingParams(metric="iou", max_age=0)
    assert _ids(params, [(0, _people([0, 0, 10, 10])), (1, _people([0, 0, 10, 10]))])[1] == [0]
    assert _ids(params, [(0, _people([0, 0, 10, 10])), (2, _people([0, 0, 10, 10]))])[1] == [1]


@pytest.mark.parametrize("score, counted", [(BELOW, False), (0.5, False), (ABOVE, True)])
def test_a_keypoint_scoring_exactly_the_threshold_is_not_above_it(score, counted):
    """The box of a track's keypoints takes those scoring *above* the threshold."""
    box = keypoint_box([[0, 0], [10, 10], [100, 100]], [0.9, 0.9, score], 0.5, 1.0)
    assert box.tolist() == ([0, 0, 100, 100] if counted else [0, 0, 10, 10])


def test_the_smoothing_step_spans_the_missed_frames():
    """A track missed for 3 frames is smoothed with dt = 4 / fps at its return: its
    smoothed keypoints equal a One-Euro filter given that step (and differ from one given
    a single frame's step)."""
    params = TrackingParams(metric="iou", smooth=OneEuroParams(min_cutoff=1.0, beta=0.0))
    tracker = PoseTracker(COCO.sigmas_array, 25.0, params)
    first, back = _people([0, 0, 10, 10]), _people([4, 0, 10, 10])
    tracker.update(first, 0)
    smoothed = tracker.update(back, 4).keypoints[0]
    for dt, equal in ((4 / 25.0, True), (1 / 25.0, False)):
        reference = OneEuroFilter(first.keypoints[0], params.smooth)(back.keypoints[0], dt)
        assert np.allclose(smoothed, reference) == equal
    # the restated equations (Casiez et al. 2012) for x at the return: dx̂ = 0 before
    r = 2 * math.pi * 1.0 * (4 / 25.0)
    alpha = r / (r + 1)
    assert smoothed[0, 0] == pytest.approx(alpha * 9.0 + (1 - alpha) * 5.0)


@pytest.mark.parametrize("field, allowed, refused", [
    ("match_threshold", [0.0, 1.0], [np.nextafter(0.0, -1.0), np.nextafter(1.0, 2.0)]),
    ("max_age", [0, 1], [-1, 1.5]),
    ("detect_every", [1, 2], [0, 1.5]),
    ("box_scale", [1.0, 2.0], [np.nextafter(1.0, 0.0), float("nan")]),
])
def test_each_tracking_parameter_is_accepted_at_its_ends_and_refused_beyond(field, allowed,
                                                                           refused):
    for value in allowed:
        TrackingParams(**{field: value})
    for value in refused:
        with pytest.raises(ValueError):
            TrackingParams(**{field: value})


@pytest.mark.parametrize("field, allowed, refused", [
    ("min_cutoff", [1e-9], [0.0, -1.0, float("inf")]),
    ("d_cutoff", [1e-9], [0.0, -1.0, float("nan")]),
    ("beta", [0.0], [np.nextafter(0.0, -1.0), float("inf")]),
])
def test_each_one_euro_parameter_is_accepted_at_its_ends_and_refused_beyond(field, allowed,
                                                                           refused):
    for value in allowed:
        OneEuroParams(**{field: value})
    for value in refused:
        with pytest.raises(ValueError):
            OneEuroParams(**{field: value})


@pytest.mark.parametrize("fps, ok", [(np.nextafter(0.0, 1.0), True), (0.0, False),
                                     (-25.0, False)])
def test_the_frame_rate_must_be_positive(fps, ok):
    if ok:
        PoseTracker(COCO.sigmas_array, fps)
    else:
        with pytest.raises(ValueError):
            PoseTracker(COCO.sigmas_array, fps)


@pytest.mark.parametrize("keypoint_threshold, same_person", [(0.3, False), (0.5, True),
                                                             (0.6, True)])
def test_the_keypoint_threshold_decides_which_keypoints_the_oks_match_counts(
        keypoint_threshold, same_person):
    """Nine keypoints scoring 0.9 stay put; eight scoring 0.5 jump 200 pixels. Counted (a
    threshold below 0.5), they bring the OKS near 9/17, under a match threshold of 0.9: a
    new id. Not counted (a threshold of 0.5, which they do not exceed, or above), the OKS
    is 1: the same id."""
    scores = np.r_[np.full(9, 0.9), np.full(8, 0.5)]
    box = np.array([[0.0, 0.0, 40.0, 80.0]])

    def person(jump):
        keypoints = np.full((1, 17, 2), 20.0)
        keypoints[0, 9:] += jump
        return People(keypoints, scores[None], np.ones(1), box, np.ones(1))

    params = TrackingParams(metric="oks", match_threshold=0.9,
                            keypoint_threshold=keypoint_threshold)
    ids = _ids(params, [(0, person(0.0)), (1, person(200.0))])
    assert ids[1] == ([0] if same_person else [1])


class _ScoredEstimator:
    """In each box one person: 17 keypoints along the box's diagonal, each scoring
    ``score``."""

    def __init__(self, score):
        self.score = score

    def iter_frames(self, frames):
        for frame in frames:
            boxes = np.asarray(frame.boxes, np.float64).reshape(-1, 4)
            n, t = len(boxes), np.linspace(0.2, 0.8, 17)[:, None]
            keypoints = boxes[:, None, :2] + boxes[:, None, 2:] * t[None]
            yield frame, People(keypoints, np.full((n, 17), self.score),
                                np.full(n, self.score), boxes, np.ones(n))


@pytest.mark.parametrize("min_score, kept", [(BELOW, True), (0.5, True), (ABOVE, False)])
def test_a_person_in_a_propagated_box_scoring_exactly_the_min_score_is_kept(min_score, kept):
    """With detection every 2nd frame, frame 1's person is found in the box propagated
    from frame 0; its mean keypoint score is exactly 0.5 (17 x 0.5 / 17 in float64)."""
    def boxes(image, file_name=None, image_id=None):
        return np.array([[10.0, 10.0, 40.0, 80.0]]), np.array([0.9])

    tracker = PoseTracker(COCO.sigmas_array, 25.0,
                          TrackingParams(detect_every=2, min_score=min_score))
    images = ((i, np.zeros((120, 100, 3), np.uint8)) for i in range(3))
    people = [p for _, p in track_video(_ScoredEstimator(0.5), images, boxes, tracker)]
    assert [len(p) for p in people] == [1, 1 if kept else 0, 1]
    assert people[1].track_ids.tolist() == ([0] if kept else [])


def test_only_the_people_of_the_last_frame_get_a_propagated_box():
    """A track missed in the last frame (still alive within max age) gets no box: between
    detector frames only the people just seen are followed."""
    tracker = PoseTracker(COCO.sigmas_array, 25.0, TrackingParams(metric="iou"))
    tracker.update(_people([0, 0, 10, 10], [50, 50, 10, 10]), 0)
    tracker.update(_people([0, 0, 10, 10]), 1)
    assert len(tracker.tracks) == 2
    boxes, scores, ids = tracker.propagated_boxes()
    assert ids.tolist() == [0] and boxes.tolist() == [[4.0, 4.0, 2.0, 2.0]]


def test_a_filtered_value_is_the_callers_to_change():
    """Changing what the filter returned (a caller rounding or shifting keypoints in place)
    leaves the filter's state alone: its next value equals that of an untouched filter."""
    x0, x1, x2 = np.zeros((17, 2)), np.full((17, 2), 4.0), np.full((17, 2), 6.0)
    touched, untouched = OneEuroFilter(x0), OneEuroFilter(x0)
    first = touched(x1, 0.04)
    np.testing.assert_array_equal(first, untouched(x1, 0.04))
    first += 100.0
    np.testing.assert_array_equal(touched(x2, 0.04), untouched(x2, 0.04))


@pytest.mark.parametrize("dt", [0.0, -0.04, float("nan")])
def test_a_step_of_no_time_is_refused_and_leaves_the_filter_as_it_was(dt):
    """Two samples at one instant would divide by zero: refused; the filter's next value
    is that of a filter that never saw the refused sample."""
    refused, fresh = OneEuroFilter(np.zeros((17, 2))), OneEuroFilter(np.zeros((17, 2)))
    with pytest.raises(ValueError, match="dt must be > 0"):
        refused(np.ones((17, 2)), dt)
    np.testing.assert_array_equal(refused(np.ones((17, 2)), 0.04), fresh(np.ones((17, 2)), 0.04))


def test_a_sample_of_another_shape_is_refused_not_broadcast():
    """A (1, 2) sample would broadcast over a (17, 2) filter: refused."""
    f = OneEuroFilter(np.zeros((17, 2)))
    for shape in ((1, 2), (17,), (16, 2)):
        with pytest.raises(ValueError, match="sample of shape"):
            f(np.zeros(shape), 0.04)
