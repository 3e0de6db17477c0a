"""Affine crops, flips and augmentation sampling, checked against hand values and HRNet's
3-point construction."""

import cv2
import numpy as np
import pytest

from datasets.metadata import DatasetMeta
from datasets.transforms import (
    NO_AUGMENTATION,
    Augmentation,
    affine_points,
    box_to_center_scale,
    crop_boxes,
    crop_image,
    crop_matrix,
    fliplr_joints,
    get_affine_transform,
    half_body_center_scale,
    invert_affine,
    normalize_image,
    sample_augmentation,
    warp_sample,
)

META = DatasetMeta.coco()
OUT = (48, 64)  # (w, h)


def hrnet_affine(center, scale_px, rot, output_size):
    """HRNet's get_affine_transform restated: 3 points, cv2.getAffineTransform."""
    def rotate(p, rad):
        sn, cs = np.sin(rad), np.cos(rad)
        return np.array([p[0] * cs - p[1] * sn, p[0] * sn + p[1] * cs])

    def third(a, b):
        d = a - b
        return b + np.array([-d[1], d[0]])

    src_w = scale_px[0]
    dst_w, dst_h = output_size
    src_dir = rotate([0, src_w * -0.5], np.pi * rot / 180)
    dst_dir = np.array([0, dst_w * -0.5])
    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0] = center
    src[1] = center + src_dir
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = dst[0] + dst_dir
    src[2] = third(src[0], src[1])
    dst[2] = third(dst[0], dst[1])
    return cv2.getAffineTransform(src, dst)


def test_center_scale_by_hand():
    # Tall box 30x80, aspect 0.75: width grows to 80*0.75 = 60, then x1.25 -> (75, 100).
    c, s = box_to_center_scale(np.array([10.0, 20.0, 30.0, 80.0]), 0.75)
    np.testing.assert_allclose(c, [25.0, 60.0])
    np.testing.assert_allclose(s, [75.0, 100.0])
    # Wide box 100x20: height grows to 100/0.75 = 133.33, then x1.25.
    c, s = box_to_center_scale(np.array([[0.0, 0.0, 100.0, 20.0]]), 0.75)
    np.testing.assert_allclose(c, [[50.0, 10.0]])
    np.testing.assert_allclose(s, [[125.0, 166.6667]], rtol=1e-5)
    # HRNet's scale is ours / 200 (pixel_std).
    c, s = box_to_center_scale(np.array([0.0, 0.0, 150.0, 200.0]), 0.75, padding=1.0)
    np.testing.assert_allclose(s / 200.0, [0.75, 1.0])


@pytest.mark.parametrize("rot", [0.0, 30.0, -75.0])
def test_matches_hrnet_three_point_construction(rot):
    center, scale = np.array([123.4, 87.6]), np.array([150.0, 200.0])
    ours = get_affine_transform(center, scale, rot, OUT)
    np.testing.assert_allclose(ours, hrnet_affine(center, scale, rot, OUT), atol=1e-4)
    # centre -> crop centre, the box's top edge mid-point -> crop top (rotation 0).
    np.testing.assert_allclose(affine_points(center, ours), [24.0, 32.0], atol=1e-9)


def test_udp_maps_region_onto_pixel_centres():
    center, scale = np.array([100.0, 50.0]), np.array([60.0, 80.0])
    m = get_affine_transform(center, scale, 0.0, OUT, udp=True)
    corners = np.array([center - scale / 2, center + scale / 2, center])
    np.testing.assert_allclose(affine_points(corners, m),
                               [[0, 0], [47, 63], [23.5, 31.5]], atol=1e-9)
    # Standard: the region maps onto [0, W] x [0, H] (pixel edges).
    m = get_affine_transform(center, scale, 0.0, OUT)
    np.testing.assert_allclose(affine_points(corners, m), [[0, 0], [48, 64], [24, 32]],
                               atol=1e-9)


@pytest.mark.parametrize("udp", [False, True])
@pytest.mark.parametrize("rot,flip", [(0.0, False), (37.0, False), (-60.0, True), (0.0, True)])
def test_points_into_crop_and_back(rot, flip, udp):
    rng = np.random.default_rng(0)
    width = 321
    pts = rng.uniform([0, 0], [width - 1, 200], size=(17, 2))
    center, scale = np.array([160.3, 99.1]), np.array([140.0, 186.0])
    m = crop_matrix(center, scale, rot, flip, width, OUT, udp=udp)
    inv = get_affine_transform((width - 1 - center[0], center[1]) if flip else center,
                               scale, rot, OUT, inverse=True, udp=udp)
    back = affine_points(affine_points(pts, m), inv)  # crop -> (mirrored) image
    if flip:
        back[:, 0] = width - 1 - back[:, 0]
    np.testing.assert_allclose(back, pts, atol=1e-3)
    np.testing.assert_allclose(affine_points(affine_points(pts, m), invert_affine(m)), pts,
                               atol=1e-3)


def test_flip_twice_is_identity_and_swaps_sides():
    rng = np.random.default_rng(1)
    kpts = np.concatenate([rng.uniform(0, 99, (17, 2)), rng.integers(0, 3, (17, 1))], axis=1)
    once = fliplr_joints(kpts, 100, META.flip_index)
    np.testing.assert_allclose(once[0, 0], 99 - kpts[0, 0])          # nose mirrored
    np.testing.assert_allclose(once[1], [99 - kpts[2, 0], kpts[2, 1], kpts[2, 2]])
    np.testing.assert_allclose(fliplr_joints(once, 100, META.flip_index), kpts)
    # batched (N, K, C)
    np.testing.assert_allclose(fliplr_joints(np.stack([kpts, once]), 100, META.flip_index)[1],
                               kpts)


def _blob_image(h, w, point, sigma=2.0):
    ys, xs = np.mgrid[0:h, 0:w]
    g = np.exp(-((xs - point[0]) ** 2 + (ys - point[1]) ** 2) / (2 * sigma ** 2))
    return np.repeat((g * 255).astype(np.uint8)[..., None], 3, axis=2)


def _centroid(img):
    g = img[..., 0].astype(np.float64)
    g = np.where(g > 0.3 * g.max(), g, 0)
    ys, xs = np.mgrid[0:g.shape[0], 0:g.shape[1]]
    return np.array([(g * xs).sum(), (g * ys).sum()]) / g.sum()


@pytest.mark.parametrize("rot,flip", [(0.0, False), (25.0, True), (-50.0, False)])
def test_image_and_keypoints_warp_together(rot, flip):
    """The warped image content sits where the warped keypoint says, flip included."""
    h, w = 120, 160
    kpts = np.zeros((17, 3))
    kpts[9] = [70.0, 50.0, 2]  # left wrist
    image = _blob_image(h, w, kpts[9, :2], sigma=3.0)
    crop, out, _ = warp_sample(image, kpts, (80.0, 60.0), (90.0, 120.0), rot, flip, OUT,
                               META.flip_index)
    j = 10 if flip else 9  # the left wrist of a mirrored person is a right wrist
    assert out[j, 2] == 2 and out[19 - j, 2] == 0
    np.testing.assert_allclose(_centroid(crop), out[j, :2], atol=0.15)


def _visible_pose(n_visible):
    kpts = np.zeros((17, 3))
    kpts[:, 0] = np.linspace(40, 60, 17)
    kpts[:, 1] = np.linspace(10, 190, 17)
    kpts[:n_visible, 2] = 2
    return kpts


def test_half_body_only_with_enough_visible_joints():
    aug = Augmentation(scale_factor=0.0, rotation_prob=0.0, flip_prob=0.0, half_body_prob=1.0)
    center, scale = np.array([50.0, 100.0]), np.array([150.0, 200.0])
    kpts = _visible_pose(8)  # 8 visible: not MORE than 8
    for seed in range(20):
        c, s, r, f = sample_augmentation(np.random.default_rng(seed), center, scale, kpts,
                                         kpts[:, 2] > 0, 0.75, META.upper_body_ids, aug)
        np.testing.assert_allclose(c, center)
        np.testing.assert_allclose(s, scale)
    kpts = _visible_pose(17)
    upper = kpts[:11, :2].mean(0)
    lower = kpts[11:, :2].mean(0)
    seen = set()
    for seed in range(40):
        c, s, _, _ = sample_augmentation(np.random.default_rng(seed), center, scale, kpts,
                                         kpts[:, 2] > 0, 0.75, META.upper_body_ids, aug)
        which = "upper" if np.allclose(c, upper) else "lower" if np.allclose(c, lower) else None
        assert which is not None
        seen.add(which)
        sel = kpts[:11, :2] if which == "upper" else kpts[11:, :2]
        hh = np.ptp(sel[:, 1])
        np.testing.assert_allclose(s, [hh * 0.75 * 1.5, hh * 1.5])  # tall: h sets w, x1.5
    assert seen == {"upper", "lower"}


def test_half_body_none_with_too_few_selected_joints():
    kpts = _visible_pose(0)
    kpts[0, 2] = 2
    assert half_body_center_scale(kpts, kpts[:, 2] > 0, META.upper_body_ids, 0.75,
                                  np.random.default_rng(0)) is None


def test_augmentation_ranges_frequencies_and_reproducibility():
    center, scale = np.array([50.0, 100.0]), np.array([150.0, 200.0])
    kpts = _visible_pose(5)
    draws = [sample_augmentation(np.random.default_rng(seed), center, scale, kpts,
                                 kpts[:, 2] > 0, 0.75, META.upper_body_ids)
             for seed in range(2000)]
    factors = np.array([d[1][0] / scale[0] for d in draws])
    rots = np.array([d[2] for d in draws])
    flips = np.array([d[3] for d in draws])
    assert factors.min() >= 0.65 - 1e-9 and factors.max() <= 1.35 + 1e-9
    assert np.abs(rots).max() <= 90.0
    assert abs((rots != 0).mean() - 0.6) < 0.05
    assert abs(flips.mean() - 0.5) < 0.05
    # clip(1 + 0.35 N(0,1), 0.65, 1.35) sits on a bound with probability P(|N| > 1) = 0.317
    clipped = np.isclose(factors, 0.65) | np.isclose(factors, 1.35)
    assert abs(clipped.mean() - 0.317) < 0.04
    again = sample_augmentation(np.random.default_rng(7), center, scale, kpts,
                                kpts[:, 2] > 0, 0.75, META.upper_body_ids)
    np.testing.assert_allclose(again[1], draws[7][1])
    assert again[2:] == draws[7][2:]
    c, s, r, f = sample_augmentation(np.random.default_rng(0), center, scale, kpts,
                                     kpts[:, 2] > 0, 0.75, META.upper_body_ids, NO_AUGMENTATION)
    assert (r, f) == (0.0, False) and np.allclose(s, scale)


def test_normalize_image():
    img = np.array([[[0, 128, 255]]], np.uint8)
    expect = (np.array([0, 128, 255]) / 255.0 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    np.testing.assert_allclose(normalize_image(img)[0, 0], expect, rtol=1e-5)


def test_normalize_image_gives_the_same_numbers_on_tensorflow_tensors():
    import tensorflow as tf

    img = np.random.default_rng(0).integers(0, 256, (2, 5, 4, 3), np.uint8)
    in_tf = normalize_image(tf.cast(tf.constant(img), tf.float32)).numpy()
    np.testing.assert_array_equal(in_tf, normalize_image(img))


@pytest.mark.parametrize("udp", [False, True])
def test_crop_boxes_is_the_box_region_warped_by_its_affine(udp):
    # Independent of crop_image: HRNet's 3-point affine of the padded box, then warpAffine.
    image = np.random.default_rng(1).integers(0, 256, (90, 120, 3), np.uint8)
    boxes = np.array([[10.0, 20.0, 30.0, 50.0], [60.0, 5.0, 50.0, 40.0]])
    crops, center, scale = crop_boxes(image, boxes, OUT, padding=1.25, udp=udp)
    assert crops.shape == (2, 64, 48, 3) and crops.dtype == np.uint8
    for i in range(2):
        c, s = box_to_center_scale(boxes[i], OUT[0] / OUT[1], 1.25)
        np.testing.assert_allclose(center[i], c)
        np.testing.assert_allclose(scale[i], s)
        matrix = get_affine_transform(c, s, 0.0, OUT, udp=udp)
        if not udp:
            np.testing.assert_allclose(matrix, hrnet_affine(c, s, 0.0, OUT), atol=1e-6)
        expected = cv2.warpAffine(image, matrix, OUT, flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        np.testing.assert_array_equal(crops[i], expected)
        crop, used = crop_image(image, c, s, OUT, udp=udp)
        np.testing.assert_array_equal(crop, expected)
        np.testing.assert_allclose(used, matrix)
