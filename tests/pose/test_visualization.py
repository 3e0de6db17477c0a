"""Tests of pose.visualization: skeleton overlays, heatmap grids and the two plots."""

import os

import cv2
import numpy as np
import pytest

from datasets.metadata import DatasetMeta
from pose.visualization import (
    SIDE_COLORS,
    draw_heatmaps,
    draw_pose,
    plot_comparison,
    plot_training_curves,
    track_color,
)

META = DatasetMeta.coco()
GREY = 128


def _person(cx=100.0, top=20.0, height=160.0):
    """A standing COCO skeleton (17, 2): the person's left is the image's right."""
    u = height / 8.0
    p = {
        "nose": (0, 0.3), "left_eye": (0.3, 0.1), "right_eye": (-0.3, 0.1),
        "left_ear": (0.6, 0.3), "right_ear": (-0.6, 0.3),
        "left_shoulder": (1.2, 1.5), "right_shoulder": (-1.2, 1.5),
        "left_elbow": (1.8, 3.0), "right_elbow": (-1.8, 3.0),
        "left_wrist": (2.0, 4.3), "right_wrist": (-2.0, 4.3),
        "left_hip": (0.8, 4.2), "right_hip": (-0.8, 4.2),
        "left_knee": (0.9, 6.0), "right_knee": (-0.9, 6.0),
        "left_ankle": (1.0, 7.8), "right_ankle": (-1.0, 7.8),
    }
    return np.array([[cx + u * p[n][0], top + u * p[n][1]] for n in META.keypoint_names])


def _xy(keypoints, name):
    x, y = keypoints[META.keypoint_names.index(name)]
    return int(round(y)), int(round(x))  # row, col


def test_draw_pose_marks_confident_keypoints_only():
    image = np.full((200, 200, 3), GREY, np.uint8)
    kpts = _person()[None]
    scores = np.full((1, 17), 0.9)
    low = META.keypoint_names.index("right_wrist")
    scores[0, low] = 0.1  # below the threshold: neither the joint nor its limb is drawn
    out = draw_pose(image, kpts, scores, META, threshold=0.3)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert (image == GREY).all(), "the input image must not be modified"
    for k, name in enumerate(META.keypoint_names):
        r, c = _xy(kpts[0], name)
        if k == low:
            assert (out[r, c] == GREY).all(), f"{name} is below threshold but was drawn"
            # its whole neighbourhood stays untouched too (the elbow-wrist limb is not drawn)
            assert (out[r - 1:r + 2, c - 1:c + 2] == GREY).all()
        else:
            side = META.keypoint_sides[k]
            assert tuple(out[r, c]) == SIDE_COLORS[side], (name, out[r, c])
    # far from the person nothing changes
    assert (out[:, :20] == GREY).all() and (out[:, -20:] == GREY).all()


@pytest.mark.parametrize("score, drawn", [(np.nextafter(0.3, 0.0), False), (0.3, False),
                                           (np.nextafter(0.3, 1.0), True)])
def test_a_joint_scoring_exactly_the_threshold_is_not_drawn(score, drawn):
    """A joint is drawn when its score *exceeds* the threshold (as the README and
    ``--threshold`` say)."""
    image = np.full((200, 200, 3), GREY, np.uint8)
    kpts = _person()[None]
    scores = np.full((1, 17), 0.9)
    wrist = META.keypoint_names.index("right_wrist")
    scores[0, wrist] = score
    out = draw_pose(image, kpts, scores, META, threshold=0.3)
    r, c = _xy(kpts[0], "right_wrist")
    assert (tuple(out[r, c]) == SIDE_COLORS["right"]) == drawn


def test_limbs_get_their_side_colours_over_a_halo():
    image = np.full((400, 400, 3), GREY, np.uint8)
    kpts = _person(cx=200, top=20, height=360)[None]
    out = draw_pose(image, kpts, np.ones((1, 17)), META)
    for a, b, side in (("left_knee", "left_ankle", "left"),
                       ("right_knee", "right_ankle", "right"),
                       ("left_shoulder", "right_shoulder", "center")):
        ra, ca = _xy(kpts[0], a)
        rb, cb = _xy(kpts[0], b)
        r, c = (ra + rb) // 2, (ca + cb) // 2
        assert tuple(out[r, c]) == SIDE_COLORS[side], (a, b, out[r, c])
    # a dark halo borders the left shin: scan sideways from its middle
    ra, ca = _xy(kpts[0], "left_knee")
    rb, cb = _xy(kpts[0], "left_ankle")
    row = out[(ra + rb) // 2, (ca + cb) // 2:(ca + cb) // 2 + 15]
    assert (row.max(axis=1) < 60).any(), "no dark outline next to the limb"
    assert len({SIDE_COLORS["left"], SIDE_COLORS["right"], SIDE_COLORS["center"]}) == 3


def test_people_of_a_video_take_their_track_colour():
    image = np.full((400, 600, 3), GREY, np.uint8)
    kpts = np.stack([_person(cx=150, top=40, height=320), _person(cx=450, top=40, height=320)])
    boxes = [[60, 30, 180, 340], [360, 30, 180, 340]]
    out = draw_pose(image, kpts, np.ones((2, 17)), META, boxes=boxes, box_scores=[0.9, 0.8],
                    track_ids=[0, 7])
    colors = [track_color(0), track_color(7)]
    assert colors[0] != colors[1] and len({track_color(i) for i in range(8)}) == 8
    for i, (x, y, w, h) in enumerate(boxes):
        ra, ca = _xy(kpts[i], "left_knee")
        rb, cb = _xy(kpts[i], "left_ankle")
        assert tuple(out[(ra + rb) // 2, (ca + cb) // 2]) == colors[i]  # limbs by id
        edge = out[y + h // 2, x - 3:x + 4].astype(int)  # across the box's left edge
        line = edge[np.ptp(edge, axis=1).argmax()]  # the most coloured pixel: the line
        assert np.abs(line - colors[i]).max() < 40, edge
        # the label above the box is written in the id's colour
        label = out[max(0, y - 30):y, x:x + 80].reshape(-1, 3)
        assert (label == colors[i]).all(axis=1).any()
    # joints keep their side colours, so left and right still read
    r, c = _xy(kpts[0], "left_wrist")
    assert tuple(out[r, c]) == SIDE_COLORS["left"]
    with pytest.raises(ValueError, match="track ids"):
        draw_pose(image, kpts, np.ones((2, 17)), META, track_ids=[1])


def test_line_width_scales_with_the_person():
    def shin_width(size):
        image = np.full((size, size, 3), GREY, np.uint8)
        kpts = _person(cx=size / 2, top=size * 0.05, height=size * 0.9)[None]
        out = draw_pose(image, kpts, np.ones((1, 17)), META)
        ra, ca = _xy(kpts[0], "left_knee")
        rb, cb = _xy(kpts[0], "left_ankle")
        row = out[(ra + rb) // 2, ca - size // 20:ca + size // 20]
        return int((row != GREY).any(axis=-1).sum())  # drawn pixels across the limb

    small, large = shin_width(200), shin_width(2000)
    assert small >= 2
    assert large >= 2 * small, (small, large)  # 10x the person: clearly thicker lines


def test_draw_pose_boxes_grey_input_and_empty():
    grey = np.full((120, 160), 90, np.uint8)
    out = draw_pose(grey, np.zeros((0, 17, 2)), np.zeros((0, 17)), META)
    assert out.shape == (120, 160, 3) and (out == 90).all()
    image = np.full((120, 160, 3), 90, np.uint8)
    kpts = np.full((1, 17, 2), np.nan)  # non-finite keypoints are skipped, not drawn
    out = draw_pose(image, kpts, np.ones((1, 17)), META, boxes=[[20, 30, 60, 80]],
                    box_scores=[0.87])
    assert (out[60, 20] != 90).any(), "the box edge was not drawn"
    assert (out[60, 50] == 90).all(), "inside the box nothing is drawn"
    with pytest.raises(ValueError):
        draw_pose(image, np.zeros((2, 17, 2)), np.zeros((1, 17)), META)


def test_draw_heatmaps_grid_and_peak():
    crop = np.full((64, 48, 3), 100, np.uint8)
    hm = np.zeros((16, 12, 17), np.float32)
    hm[4, 3, 0] = 1.0  # the nose peaks at heatmap (x=3, y=4)
    grid = draw_heatmaps(crop, hm, META, panel_width=96, columns=6)
    ph = 128  # 64 * 96 / 48
    assert grid.shape == (3 * (ph + 18), 6 * 96, 3)
    nose = grid[18:18 + ph, 96:192]  # the second panel (the first is "all")
    peak_y, peak_x = np.unravel_index(np.argmax(nose[..., 0].astype(int) - nose[..., 2]),
                                      nose.shape[:2])
    # heatmap pixel (3, 4) covers panel pixels x 24..32, y 32..40 (8x zoom)
    assert 16 <= peak_x <= 40 and 24 <= peak_y <= 48
    ear = grid[18:18 + ph, 4 * 96:5 * 96]  # left_ear: all zero → no red anywhere
    assert (ear[..., 0] < ear[..., 2]).all()
    normalized = (crop / 255.0 - 0.45) / 0.225  # a normalized network input is accepted
    assert draw_heatmaps(normalized, hm, META).dtype == np.uint8
    with pytest.raises(ValueError):
        draw_heatmaps(crop, hm[..., :5], META)


def test_plot_training_curves(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("epoch,learning_rate,loss,val_AP,val_AP50\n"
                   "0,0.001,0.0020,nan,nan\n"
                   "1,0.001,0.0015,0.31,0.6\n"
                   "epoch,learning_rate,loss,val_AP,val_AP50\n"  # appended after a resume
                   "2,0.0001,0.0012,,\n"
                   "3,0.0001,0.0011,0.45,0.7\n")
    out = tmp_path / "plots" / "curves.png"
    plot_training_curves(log, out)
    image = cv2.imread(str(out))
    assert image is not None and image.shape[1] > 600
    assert sorted(os.listdir(out.parent)) == ["curves.png"], "a temporary file was left"
    with pytest.raises(FileNotFoundError):
        plot_training_curves(tmp_path / "missing.csv", out)


def test_plot_comparison(tmp_path):
    rows = [{"variant": v, **{f"{m}_mean": 0.6 + 0.02 * i for m in ("AP", "AP50")},
             **{f"{m}_std": 0.01 for m in ("AP", "AP50")}}
            for i, v in enumerate(("none", "psa_p", "psa_s"))]
    out = tmp_path / "psa.png"
    assert plot_comparison(rows, out, metrics=("AP", "AP50")) == str(out)
    assert cv2.imread(str(out)) is not None
    with pytest.raises(ValueError, match="AP75_mean"):
        plot_comparison(rows, tmp_path / "x.png", metrics=("AP", "AP75"))
    assert not (tmp_path / "x.png").exists()
    # with paired differences: a forest plot beside the bars (a wider figure)
    differences = [{"reference": "none", "variant": v, "stats": {
        m: {"difference": d, "low": d - 0.01, "high": d + 0.01, "shown": d > 0.01}
        for m in ("AP", "AP50")}} for v, d in (("psa_p", 0.02), ("psa_s", 0.005))]
    both = tmp_path / "psa_forest.png"
    plot_comparison(rows, both, metrics=("AP", "AP50"), differences=differences)
    assert cv2.imread(str(both)).shape[1] > cv2.imread(str(out)).shape[1]
