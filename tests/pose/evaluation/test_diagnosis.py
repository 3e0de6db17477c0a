"""The Ronchi & Perona error taxonomy on hand-made scenes whose classes are worked out by hand.

A 5-keypoint set (not COCO's 17) with sigma 0.1 everywhere and people of area 10000:
ks = exp(-d² / (2 · 10000 · 0.2²)) = exp(-d² / 800), so a keypoint d pixels away is good
up to d = 11.4 (ks 0.85), jitter up to d = 23.5 (ks 0.5). The corrected APs are checked
against pycocotools' own COCOeval run on results corrected by hand.
"""

import copy
import json

import numpy as np
import pytest

from datasets.coco import load_coco
from datasets.metadata import DatasetMeta
from pose.evaluation.diagnosis import CORRECTION_STEPS, classify_keypoints, diagnose
from pose.evaluation.diagnosis_files import ResultsError, load_results
from pose.evaluation.metrics import evaluate_coco_keypoints

NAMES = ("nose", "left_eye", "right_eye", "left_hand", "right_hand")
SIGMAS = (0.1,) * 5
AREA = 10000.0
# A person at the origin: the hands are 100 px apart, far beyond a jitter of each other.
PERSON = np.array([[100, 100], [80, 80], [120, 80], [50, 200], [150, 200]], np.float64)
LEFT_HAND, RIGHT_HAND = 3, 4


def _meta():
    return DatasetMeta(NAMES, ((0, 1), (0, 2), (1, 3), (2, 4)), SIGMAS)


def _flat(xy, visibility=2):
    return np.concatenate([xy, np.full((len(xy), 1), visibility)], axis=1).reshape(-1).tolist()


def _coco(tmp_path, people, image_ids=(1,)):
    """Annotations of ``people``: a list of (image id, (5, 2) positions)."""
    data = {"images": [{"id": i, "file_name": f"{i}.jpg", "width": 2000, "height": 2000}
                       for i in image_ids],
            "categories": [{"id": 1, "name": "person", "keypoints": list(NAMES),
                            "skeleton": [[1, 2], [1, 3], [2, 4], [3, 5]]}],
            "annotations": []}
    for n, (image_id, xy) in enumerate(people, start=1):
        low = xy.min(axis=0)
        data["annotations"].append({
            "id": n, "image_id": image_id, "category_id": 1, "iscrowd": 0, "area": AREA,
            "bbox": [*low.tolist(), *(xy.max(axis=0) - low).tolist()],
            "keypoints": _flat(xy), "num_keypoints": len(xy)})
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return load_coco(path)


def _result(xy, score, image_id=1):
    return {"image_id": image_id, "category_id": 1, "keypoints": _flat(xy, 1),
            "score": score}


def _moved(xy, keypoint, dx, dy=0.0):
    out = xy.copy()
    out[keypoint] += (dx, dy)
    return out


def _ap(coco, results):
    stats = evaluate_coco_keypoints(coco, results, SIGMAS)
    return {"AP": stats["AP"], "AP50": stats["AP50"], "AP75": stats["AP75"]}


def test_pure_jitter_is_counted_and_corrected_to_the_ground_truth(tmp_path):
    coco = _coco(tmp_path, [(1, PERSON)])
    detection = _moved(PERSON, LEFT_HAND, 15)  # ks = exp(-225/800) = 0.755
    results = [_result(detection, 0.9)]
    report = diagnose(coco, results, _meta())
    assert report["counts"] == {"good": 4, "jitter": 1, "inversion": 0, "swap": 0, "miss": 0}
    assert report["per_keypoint"]["left_hand"]["counts"]["jitter"] == 1
    assert report["by_size"]["large"]["counts"]["jitter"] == 1
    assert report["by_visible_keypoints"]["1-5"]["instances"] == 1
    assert report["ap_steps"]["original"] == pytest.approx(_ap(coco, results))
    assert report["ap_steps"]["jitter"] == pytest.approx(_ap(coco, [_result(PERSON, 0.9)]))
    assert report["ap_steps"]["jitter"]["AP"] == pytest.approx(1.0)
    assert list(report["ap_steps"]) == list(CORRECTION_STEPS)


def test_a_keypoint_exactly_at_the_good_threshold_is_good():
    """ks = 0.85 exactly is good (the issue's ks ≥ 0.85; the reference has > 0.85)."""
    truth = np.concatenate([PERSON, np.full((5, 1), 2.0)], axis=1)
    truth[LEFT_HAND, 0] = 0.0  # so that the detection's x is the offset itself
    d = np.sqrt(800 * np.log(1 / 0.85))
    # the float offset whose ks, as COCOeval computes it, is exactly 0.85
    offsets = d + np.arange(-2000, 2000) * np.spacing(d)
    ks = np.exp(-offsets ** 2 / (2 * 0.1) ** 2 / (AREA + np.spacing(1)) / 2)
    assert (ks == 0.85).any()
    detection = truth.copy()
    detection[LEFT_HAND, 0] = offsets[np.argmax(ks == 0.85)]
    classes = classify_keypoints(detection, (truth, AREA), [], np.asarray(SIGMAS),
                                 _meta().flip_index_array)
    assert classes.tolist() == [0, 0, 0, 0, 0]


@pytest.mark.parametrize("target, beyond, expected", [(0.5, False, 1), (0.5, True, 4),
                                                      (0.85, True, 1)])
def test_the_thresholds_within_one_float_step(target, beyond, expected):
    """The last offset whose ks is still ≥ 0.5 is a jitter (class 1) and the next one a
    miss (4: no other person, the counterpart far); the first offset beyond ks 0.85 is a
    jitter. (No float offset gives ks exactly 0.5; 0.85 exactly is tested above.)"""
    truth = np.concatenate([PERSON, np.full((5, 1), 2.0)], axis=1)
    truth[LEFT_HAND, 0] = 0.0  # so that the detection's x is the offset itself
    d = np.sqrt(800 * np.log(1 / target))
    offsets = d + np.arange(-2000, 2000) * np.spacing(d)
    ks = np.exp(-offsets ** 2 / (2 * 0.1) ** 2 / (AREA + np.spacing(1)) / 2)
    first_beyond = int(np.argmax(ks < target))  # ks falls as the offset grows
    at = first_beyond if beyond else first_beyond - 1
    detection = truth.copy()
    detection[LEFT_HAND, 0] = offsets[at]
    classes = classify_keypoints(detection, (truth, AREA), [], np.asarray(SIGMAS),
                                 _meta().flip_index_array)
    assert classes[LEFT_HAND] == expected, (ks[at], classes)


def test_a_jitter_near_its_counterpart_stays_a_jitter():
    """The issue's rule: ks 0.6 against its own keypoint is a jitter even though the
    counterpart is nearer (ks 0.91); the reference's argmax would call it an inversion."""
    truth = np.concatenate([PERSON, np.full((5, 1), 2.0)], axis=1)
    truth[RIGHT_HAND, :2] = (79, 200)  # the hands 29 px apart
    detection = truth.copy()
    detection[LEFT_HAND, 0] = 50 + np.sqrt(800 * np.log(1 / 0.6))  # 20.2 px: ks 0.6
    classes = classify_keypoints(detection, (truth, AREA), [], np.asarray(SIGMAS),
                                 _meta().flip_index_array)
    assert classes.tolist() == [0, 0, 0, 1, 0]


def test_left_right_inversion(tmp_path):
    coco = _coco(tmp_path, [(1, PERSON)])
    detection = PERSON[[0, 2, 1, 4, 3]]  # eyes and hands mirrored
    results = [_result(detection, 0.9)]
    report = diagnose(coco, results, _meta())
    assert report["counts"] == {"good": 1, "jitter": 0, "inversion": 4, "swap": 0, "miss": 0}
    assert report["ap_steps"]["jitter"] == pytest.approx(report["ap_steps"]["original"])
    assert report["ap_steps"]["inversion"] == pytest.approx(_ap(coco, [_result(PERSON, 0.9)]))


def test_per_image_counts_sum_to_the_diagnosis(tmp_path):
    """``class_counts_by_image``: one row per annotated image (zeros where nothing
    matched), summing to ``diagnose``'s counts."""
    from pose.evaluation.diagnosis import class_counts_by_image

    coco = _coco(tmp_path, [(1, PERSON), (2, PERSON), (3, PERSON)], image_ids=(1, 2, 3))
    results = [_result(PERSON[[0, 2, 1, 4, 3]], 0.9, image_id=1),
               _result(_moved(PERSON, LEFT_HAND, 25.0), 0.8, image_id=2)]
    image_ids, counts = class_counts_by_image(coco, results, _meta())
    assert image_ids.tolist() == [1, 2, 3]
    report = diagnose(coco, results, _meta())
    assert dict(zip(report["counts"], counts.sum(axis=0).tolist())) == report["counts"]
    assert counts[0].tolist() == [1, 0, 4, 0, 0] and counts[2].tolist() == [0] * 5


def test_swap_between_two_overlapping_people(tmp_path):
    other = PERSON + (40, 0)
    coco = _coco(tmp_path, [(1, PERSON), (1, other)])
    # The left hand lands on the other person's left hand: ks 0.135 against its own,
    # 0.011 against its own right hand, 1 against the other's.
    detection = PERSON.copy()
    detection[LEFT_HAND] = other[LEFT_HAND]
    results = [_result(detection, 0.9), _result(other, 0.8)]
    report = diagnose(coco, results, _meta())
    assert report["counts"] == {"good": 9, "jitter": 0, "inversion": 0, "swap": 1, "miss": 0}
    fixed = [_result(PERSON, 0.9), _result(other, 0.8)]
    assert report["ap_steps"]["swap"] == pytest.approx(_ap(coco, fixed))
    assert report["ap_steps"]["swap"]["AP"] == pytest.approx(1.0)


def test_miss(tmp_path):
    coco = _coco(tmp_path, [(1, PERSON)])
    results = [_result(_moved(PERSON, RIGHT_HAND, 0, 300), 0.9)]
    report = diagnose(coco, results, _meta())
    assert report["counts"] == {"good": 4, "jitter": 0, "inversion": 0, "swap": 0, "miss": 1}
    assert report["ap_steps"]["swap"] == pytest.approx(report["ap_steps"]["original"])
    assert report["ap_steps"]["miss"] == pytest.approx(_ap(coco, [_result(PERSON, 0.9)]))


def test_background_false_positive_is_fixed_by_rescoring(tmp_path):
    """A detection far from everyone, scored above the true one: the AP is 0.5 (precision
    0.5 at every recall); rescored by its best OKS (0) it ranks last and the AP is 1."""
    coco = _coco(tmp_path, [(1, PERSON)])
    results = [_result(PERSON, 0.5), _result(PERSON + 1000, 0.9)]
    report = diagnose(coco, results, _meta())
    assert report["counts"]["good"] == 5 and report["matched_detections"] == 1
    assert report["background"]["false_positives"] == 1
    assert report["background"]["false_positive_entries"] == [1]
    assert report["ap_steps"]["original"]["AP"] == pytest.approx(0.5)
    assert report["ap_steps"]["original"] == pytest.approx(_ap(coco, results))
    rescored = [_result(PERSON, 1.0), _result(PERSON + 1000, 0.0)]
    assert report["ap_steps"]["score"] == pytest.approx(_ap(coco, rescored))
    assert report["ap_steps"]["score"]["AP"] == pytest.approx(1.0)


def test_background_false_positive_removed_when_scores_cannot_help(tmp_path):
    """The false positive overlaps nobody but scores 1 after rescoring nothing would change
    (two images, one person): removing it restores the AP."""
    coco = _coco(tmp_path, [(1, PERSON)], image_ids=(1, 2))
    results = [_result(PERSON, 0.5), _result(PERSON, 0.9, image_id=2)]
    report = diagnose(coco, results, _meta())
    assert report["background"]["false_positives"] == 1
    assert report["ap_steps"]["background_fp"] == pytest.approx(
        _ap(coco, [_result(PERSON, 0.5)]))


def test_false_negative(tmp_path):
    far = PERSON + 1000
    coco = _coco(tmp_path, [(1, PERSON), (1, far)])
    results = [_result(PERSON, 0.9)]
    report = diagnose(coco, results, _meta())
    assert report["background"]["false_negatives"] == 1
    assert report["background"]["false_negative_ids"] == [2]
    assert report["ap_steps"]["original"] == pytest.approx(_ap(coco, results))
    assert report["ap_steps"]["original"]["AP"] == pytest.approx(51 / 101)  # recall ≤ 0.5
    assert report["ap_steps"]["background_fn"]["AP"] == pytest.approx(1.0)
    assert len(report["pr_curves"]["original"]) == len(report["recall"]) == 101


@pytest.mark.parametrize("entry, message", [
    ({"image_id": 7, "category_id": 1, "keypoints": [0.0] * 15, "score": 1}, "image 7"),
    ({"image_id": 1, "category_id": 1, "keypoints": [0.0] * 14, "score": 1}, "length 14"),
    ({"image_id": 1, "category_id": 1, "keypoints": [float("nan")] * 15, "score": 1},
     "not finite"),
    ({"image_id": 1, "keypoints": [0.0] * 15, "score": 1}, "lacks category_id"),
])
def test_bad_results_entries_name_the_file_and_the_entry(tmp_path, entry, message):
    coco = _coco(tmp_path, [(1, PERSON)])
    path = tmp_path / "res.json"
    path.write_text(json.dumps([_result(PERSON, 1.0), entry]))
    with pytest.raises(ResultsError, match=message) as info:
        load_results(path, coco, 5)
    assert str(path) in str(info.value) and "entry 1" in str(info.value)


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"), ('{"a": 1}', "expected a list"), ("[]", "no results")])
def test_results_files_that_are_not_a_list_of_results(tmp_path, text, message):
    coco = _coco(tmp_path, [(1, PERSON)])
    path = tmp_path / "res.json"
    path.write_text(text)
    with pytest.raises(ResultsError, match=message):
        load_results(path, copy.deepcopy(coco), 5)
