"""Tests of pose.codec against hand-worked values and loop re-statements of the references."""

import itertools
import math

import cv2
import numpy as np
import pytest

from pose.codec import (
    HeatmapCodec,
    blur_heatmaps,
    codec_for_model,
    dark_blur_kernel_size,
    flip_heatmaps,
    refine_dark,
    refine_dark_udp,
)

INPUT = (192, 256)  # (w, h)
HEATMAP = (48, 64)


# --------------------------------------------------------------------------- references
def hrnet_generate_target(joints, joints_vis, image_size, heatmap_size, sigma):
    """Loop re-statement of HRNet's JointsDataset.generate_target (gaussian), (K, H, W)."""
    num_joints = joints.shape[0]
    target_weight = np.ones((num_joints, 1), dtype=np.float32)
    target_weight[:, 0] = joints_vis
    target = np.zeros((num_joints, heatmap_size[1], heatmap_size[0]), dtype=np.float32)
    tmp_size = sigma * 3
    for joint_id in range(num_joints):
        feat_stride = np.asarray(image_size) / np.asarray(heatmap_size)
        mu_x = int(joints[joint_id][0] / feat_stride[0] + 0.5)
        mu_y = int(joints[joint_id][1] / feat_stride[1] + 0.5)
        ul = [int(mu_x - tmp_size), int(mu_y - tmp_size)]
        br = [int(mu_x + tmp_size + 1), int(mu_y + tmp_size + 1)]
        if ul[0] >= heatmap_size[0] or ul[1] >= heatmap_size[1] or br[0] < 0 or br[1] < 0:
            target_weight[joint_id] = 0
            continue
        size = 2 * tmp_size + 1
        x = np.arange(0, size, 1, np.float32)
        y = x[:, np.newaxis]
        x0 = y0 = size // 2
        g = np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma ** 2))
        g_x = max(0, -ul[0]), min(br[0], heatmap_size[0]) - ul[0]
        g_y = max(0, -ul[1]), min(br[1], heatmap_size[1]) - ul[1]
        img_x = max(0, ul[0]), min(br[0], heatmap_size[0])
        img_y = max(0, ul[1]), min(br[1], heatmap_size[1])
        if target_weight[joint_id] > 0.5:
            target[joint_id][img_y[0]:img_y[1], img_x[0]:img_x[1]] = \
                g[g_y[0]:g_y[1], g_x[0]:g_x[1]]
    return target, target_weight[:, 0]


def darkpose_taylor_loop(heatmaps, coords, kernel):
    """Loop re-statement of DarkPose's gaussian_blur + log + taylor on (K, H, W) maps."""
    hm = heatmaps.astype(np.float64).copy()
    k_, h, w = hm.shape
    border = (kernel - 1) // 2
    for k in range(k_):
        origin_max = hm[k].max()
        dr = np.zeros((h + 2 * border, w + 2 * border))
        dr[border:-border, border:-border] = hm[k]
        dr = cv2.GaussianBlur(dr, (kernel, kernel), 0)
        hm[k] = dr[border:-border, border:-border]
        hm[k] *= origin_max / hm[k].max()
    hm = np.log(np.maximum(hm, 1e-10))
    out = coords.astype(np.float64).copy()
    for k in range(k_):
        px, py = int(coords[k][0]), int(coords[k][1])
        f = hm[k]
        if 1 < px < w - 2 and 1 < py < h - 2:
            dx = 0.5 * (f[py][px + 1] - f[py][px - 1])
            dy = 0.5 * (f[py + 1][px] - f[py - 1][px])
            dxx = 0.25 * (f[py][px + 2] - 2 * f[py][px] + f[py][px - 2])
            dxy = 0.25 * (f[py + 1][px + 1] - f[py - 1][px + 1] - f[py + 1][px - 1]
                          + f[py - 1][px - 1])
            dyy = 0.25 * (f[py + 2][px] - 2 * f[py][px] + f[py - 2][px])
            if dxx * dyy - dxy ** 2 != 0:
                hess = np.array([[dxx, dxy], [dxy, dyy]])
                out[k] += -np.linalg.inv(hess) @ np.array([dx, dy])
    return out


def udp_loop(heatmaps, coords, kernel):
    """Per-keypoint re-statement of mmpose's refine_keypoints_dark_udp on (K, H, W) maps."""
    hm = heatmaps.astype(np.float64).copy()
    k_, h, w = hm.shape
    border = (kernel - 1) // 2
    for k in range(k_):
        origin_max = hm[k].max()
        dr = np.zeros((h + 2 * border, w + 2 * border))
        dr[border:-border, border:-border] = hm[k]
        dr = cv2.GaussianBlur(dr, (kernel, kernel), 0)
        hm[k] = dr[border:-border, border:-border] * origin_max / dr[border:-border,
                                                                     border:-border].max()
    hm = np.log(np.clip(hm, 1e-3, 50.0))
    out = coords.astype(np.float64).copy()
    for k in range(k_):
        f = np.pad(hm[k], 1, mode="edge")
        x, y = int(coords[k][0]) + 1, int(coords[k][1]) + 1
        i = f[y, x]
        dx = 0.5 * (f[y, x + 1] - f[y, x - 1])
        dy = 0.5 * (f[y + 1, x] - f[y - 1, x])
        dxx = f[y, x + 1] - 2 * i + f[y, x - 1]
        dyy = f[y + 1, x] - 2 * i + f[y - 1, x]
        dxy = 0.5 * (f[y + 1, x + 1] - f[y, x + 1] - f[y + 1, x] + 2 * i - f[y, x - 1]
                     - f[y - 1, x] + f[y - 1, x - 1])
        hess = np.array([[dxx, dxy], [dxy, dyy]]) + np.finfo(np.float32).eps * np.eye(2)
        out[k] -= np.linalg.inv(hess) @ np.array([dx, dy])
    return out


def random_inside(rng, n, margin=24.0):
    return np.stack([rng.uniform(margin, INPUT[0] - 1 - margin, n),
                     rng.uniform(margin, INPUT[1] - 1 - margin, n)], axis=1)


# --------------------------------------------------------------------------- encode
def test_encode_peak_and_neighbour_by_hand():
    codec = HeatmapCodec(INPUT, HEATMAP, sigma=2.0)
    # stride 4: x = 50.3 -> 12.575 -> int(13.075) = 13; y = 101.9 -> 25.475 -> int(25.975) = 25
    hm, w = codec.encode(np.array([[50.3, 101.9], [10.0, 10.0]], np.float32), np.array([2, 1]))
    assert hm.shape == (64, 48, 2) and hm.dtype == np.float32
    assert w.dtype == np.float32 and np.array_equal(w, [1.0, 1.0])
    assert hm[25, 13, 0] == pytest.approx(1.0)
    assert np.unravel_index(np.argmax(hm[..., 0]), hm.shape[:2]) == (25, 13)
    assert hm[25, 14, 0] == pytest.approx(math.exp(-1 / 8), rel=1e-6)  # d^2 = 1
    assert hm[27, 12, 0] == pytest.approx(math.exp(-5 / 8), rel=1e-6)  # d^2 = 4 + 1
    assert hm[25, 19, 0] == pytest.approx(math.exp(-36 / 8), rel=1e-6)  # edge of 3 sigma
    assert hm[25, 20, 0] == 0.0 and hm[31, 19, 0] > 0 and hm[32, 13, 0] == 0.0  # truncated
    # second joint: 10 / 4 = 2.5 -> int(3.0) = 3
    assert hm[3, 3, 1] == pytest.approx(1.0)


def test_encode_weights_zero_for_unlabelled_and_far_outside():
    codec = HeatmapCodec(INPUT, HEATMAP, sigma=2.0)
    kpts = np.array([[96, 128], [96, 128], [-40.0, 128], [96, 400.0], [-20.0, 50.0],
                     [191 + 25.0, 100]], np.float32)
    hm, w = codec.encode(kpts, np.array([0, 2, 1, 1, 1, 1]))
    # -40/4 = -10 -> mu int(-9.5) = -9, br = -2 < 0; 400/4 = 100 -> ul 94 >= 64
    # -20/4 = -5 -> mu -4, br = 3: Gaussian tail still inside, weight 1
    # 216/4 = 54 -> mu 54, ul 48 >= 48: outside
    assert np.array_equal(w, [0, 1, 0, 0, 1, 0])
    assert np.all(hm[..., [0, 2, 3, 5]] == 0)
    assert hm[..., 4].max() == pytest.approx(math.exp(-16 / 8), rel=1e-6)  # column 0, d = 4


@pytest.mark.parametrize("sigma", [2.0, 3.0])
def test_encode_matches_hrnet_generate_target_loop(sigma):
    rng = np.random.default_rng(1)
    k = 40
    kpts = np.stack([rng.uniform(-60, 250, k), rng.uniform(-60, 320, k)], 1).astype(np.float32)
    vis = rng.integers(0, 3, k)
    codec = HeatmapCodec(INPUT, HEATMAP, sigma=sigma)
    hm, w = codec.encode(kpts, vis)
    ref, ref_w = hrnet_generate_target(kpts, (vis > 0).astype(np.float32), INPUT, HEATMAP,
                                       sigma)
    assert np.array_equal(w, ref_w)
    np.testing.assert_allclose(np.transpose(hm, (2, 0, 1)), ref, atol=1e-6)
    assert 0 < w.sum() < k  # the random set covers both cases


def test_encode_udp_centres_on_subpixel_position():
    codec = HeatmapCodec(INPUT, HEATMAP, sigma=2.0, encoding="udp")
    stride_x, stride_y = 191 / 47, 255 / 63
    x, y = 13.3 * stride_x, 20.8 * stride_y  # heatmap (13.3, 20.8)
    hm, w = codec.encode(np.array([[x, y]]), np.array([1]))
    assert w[0] == 1
    for (r, c) in [(21, 13), (20, 14), (23, 11)]:
        expect = math.exp(-((c - 13.3) ** 2 + (r - 20.8) ** 2) / 8)
        assert hm[r, c, 0] == pytest.approx(expect, rel=1e-5)
    # window is centred on mu = int(13.3 + 0.5) = 13, int(21.3) = 21: columns 7..19
    assert hm[21, 7, 0] > 0 and hm[21, 6, 0] == 0 and hm[21, 19, 0] > 0 and hm[21, 20, 0] == 0


def test_codec_rejects_bad_arguments():
    with pytest.raises(ValueError, match="encoding"):
        HeatmapCodec(INPUT, HEATMAP, encoding="msra")
    with pytest.raises(ValueError, match="udp"):
        HeatmapCodec(INPUT, HEATMAP, encoding="standard", decoding="udp")
    with pytest.raises(ValueError, match="sigma"):
        HeatmapCodec(INPUT, HEATMAP, sigma=0)
    with pytest.raises(ValueError, match="heatmap_size"):
        HeatmapCodec(INPUT, (48,))
    codec = HeatmapCodec(INPUT, HEATMAP)
    with pytest.raises(ValueError, match="visible"):
        codec.encode(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="heatmap_size"):
        codec.decode(np.zeros((1, 48, 64, 3)))


def test_dark_blur_kernel_size_matches_opencv_rule():
    # sigma = 0.3 * ((ks - 1) / 2 - 1) + 0.8: ks 11 -> 2.0, 17 -> 2.9, 7 -> 1.4, 5 -> 1.1
    for sigma, ks in [(2.0, 11), (3.0, 17), (1.5, 7), (1.0, 5)]:
        assert dark_blur_kernel_size(sigma) == ks
    assert HeatmapCodec(INPUT, HEATMAP, sigma=2.0).blur_kernel_size == 11


# --------------------------------------------------------------------------- decode
def test_quarter_offset_decode_by_hand():
    codec = HeatmapCodec(INPUT, HEATMAP, sigma=2.0)
    hm = np.zeros((2, 64, 48, 3), np.float32)
    hm[0, 30, 10, 0] = 1.0
    hm[0, 30, 11, 0] = 0.5   # right neighbour higher: x + 0.25
    hm[0, 29, 10, 0] = 0.3   # upper neighbour higher: y - 0.25
    hm[0, 5, 1, 1] = 0.7     # px = 1 is not shifted (HRNet: 1 < px < W - 1)
    hm[0, 5, 2, 1] = 0.2
    hm[1, 40, 46, 2] = 0.9   # px = W - 2 = 46 is shifted
    hm[1, 40, 47, 2] = 0.1
    coords, scores = codec.decode(hm)
    assert coords.shape == (2, 3, 2) and scores.shape == (2, 3)
    np.testing.assert_allclose(coords[0, 0], [10.25 * 4, 29.75 * 4])
    np.testing.assert_allclose(coords[0, 1], [1 * 4, 5 * 4])
    np.testing.assert_allclose(coords[1, 2], [46.25 * 4, 40 * 4])
    np.testing.assert_allclose(coords[0, 2], [0, 0])  # all-zero map -> (0, 0), score 0
    np.testing.assert_allclose(scores, [[1.0, 0.7, 0.0], [0.0, 0.0, 0.9]])


def test_round_trip_standard_quarter_offset():
    """Standard targets sit on the rounded pixel: error = rounding error, mean 0.25 hm px."""
    rng = np.random.default_rng(2)
    codec = HeatmapCodec(INPUT, HEATMAP, sigma=2.0)
    kpts = random_inside(rng, 300)
    hm, w = codec.encode(kpts, np.ones(300))
    coords, _ = codec.decode(hm[None])
    err = np.abs(codec.input_to_heatmap(coords[0]) - codec.input_to_heatmap(kpts))  # hm px
    assert err.mean() < 0.3
    assert err.max() <= 0.5 + 1e-4


def test_round_trip_udp_quarter_offset():
    rng = np.random.default_rng(3)
    codec = HeatmapCodec(INPUT, HEATMAP, sigma=2.0, encoding="udp")
    kpts = random_inside(rng, 300)
    hm, _ = codec.encode(kpts, np.ones(300))
    coords, _ = codec.decode(hm[None])
    diff = codec.input_to_heatmap(coords[0]) - codec.input_to_heatmap(kpts)  # hm px
    assert np.linalg.norm(diff, axis=1).mean() < 0.3
    assert np.abs(diff).max() <= 0.25 + 1e-4  # |frac - 0.25 sign(frac)| <= 0.25


@pytest.mark.parametrize("decoding", ["dark", "udp"])
def test_round_trip_udp_encoding_dark_and_udp_decoding(decoding):
    rng = np.random.default_rng(4)
    codec = HeatmapCodec(INPUT, HEATMAP, sigma=2.0, encoding="udp", decoding=decoding)
    kpts = random_inside(rng, 200)
    hm, _ = codec.encode(kpts, np.ones(200))
    coords, scores = codec.decode(hm[None])
    err = np.linalg.norm(codec.input_to_heatmap(coords[0]) - codec.input_to_heatmap(kpts),
                         axis=1)
    assert err.max() < 0.1  # heatmap px (stride ~4: < 0.41 input px)
    assert np.all(scores > 0.9)


def test_dark_recovers_subpixel_centre_of_untruncated_gaussian():
    """DARK on a smooth (network-like) Gaussian at a sub-pixel position, standard mapping."""
    codec = HeatmapCodec(INPUT, HEATMAP, sigma=2.0, decoding="dark")
    centres = np.array([[20.3, 30.7], [10.62, 50.15], [35.5, 12.25]])
    ys, xs = np.mgrid[0:64, 0:48]
    hm = np.stack([np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / 8) for cx, cy in centres], -1)
    coords, _ = codec.decode(hm[None])
    np.testing.assert_allclose(coords[0] / 4.0, centres, atol=0.1)


def test_dark_matches_darkpose_loop():
    rng = np.random.default_rng(5)
    k = 6
    hm = rng.uniform(0, 0.3, (1, 20, 16, k)).astype(np.float32)
    for j in range(k):  # a bump per map, some near the border
        cx, cy = rng.uniform(0, 16), rng.uniform(0, 20)
        ys, xs = np.mgrid[0:20, 0:16]
        hm[0, :, :, j] += np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / 6)
    codec = HeatmapCodec((64, 80), (16, 20), sigma=2.0, decoding="dark")
    coords, _ = codec.decode_heatmap_coords(hm)
    maps = np.transpose(hm[0], (2, 0, 1))
    argmax = np.array([np.unravel_index(np.argmax(m), m.shape)[::-1] for m in maps], float)
    ref = darkpose_taylor_loop(maps, argmax, 11)
    np.testing.assert_allclose(coords[0], ref, atol=1e-4)
    # the direct function agrees as well
    np.testing.assert_allclose(refine_dark(argmax[None], hm, 11)[0], ref, atol=1e-6)


def test_udp_refinement_matches_mmpose_loop():
    rng = np.random.default_rng(6)
    k = 6
    hm = rng.uniform(0, 0.3, (1, 20, 16, k)).astype(np.float32)
    ys, xs = np.mgrid[0:20, 0:16]
    for j in range(k):
        cx, cy = rng.uniform(-1, 17), rng.uniform(-1, 21)
        hm[0, :, :, j] += np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / 8)
    maps = np.transpose(hm[0], (2, 0, 1))
    argmax = np.array([np.unravel_index(np.argmax(m), m.shape)[::-1] for m in maps], float)
    ref = udp_loop(maps, argmax, 11)
    np.testing.assert_allclose(refine_dark_udp(argmax[None], hm, 11)[0], ref, atol=1e-6)


def test_blur_heatmaps_matches_opencv_per_map():
    rng = np.random.default_rng(7)
    hm = rng.uniform(0, 1, (2, 12, 10, 3))
    out = blur_heatmaps(hm, 5)
    for n, k in itertools.product(range(2), range(3)):
        pad = np.pad(hm[n, :, :, k], 2)
        ref = cv2.GaussianBlur(pad, (5, 5), 0)[2:-2, 2:-2]
        ref *= hm[n, :, :, k].max() / ref.max()
        np.testing.assert_allclose(out[n, :, :, k], ref, atol=1e-12)


def test_decode_udp_mapping_uses_size_minus_one():
    codec = HeatmapCodec(INPUT, HEATMAP, sigma=2.0, encoding="udp", decoding="quarter_offset")
    hm = np.zeros((1, 64, 48, 1), np.float32)
    hm[0, 63, 47, 0] = 1.0  # last heatmap pixel -> last crop pixel
    coords, _ = codec.decode(hm)
    np.testing.assert_allclose(coords[0, 0], [191.0, 255.0], atol=1e-4)


# --------------------------------------------------------------------------- flip
def test_flip_heatmaps_mirror_symmetric_set_is_unchanged():
    rng = np.random.default_rng(8)
    left = rng.uniform(0, 1, (2, 8, 6, 1)).astype(np.float32)
    centre = rng.uniform(0, 1, (2, 8, 3, 1)).astype(np.float32)
    centre = np.concatenate([centre, centre[:, :, ::-1]], axis=2)  # self-symmetric (W = 6)
    right = left[:, :, ::-1]  # mirror image of the left joint
    hm = np.concatenate([centre, left, right], axis=-1)  # joints: centre, left, right
    flip_index = [0, 2, 1]
    out = flip_heatmaps(hm, flip_index, shift=False)
    np.testing.assert_array_equal(out, hm)


def test_flip_twice_is_identity_and_shift():
    rng = np.random.default_rng(9)
    hm = rng.uniform(0, 1, (3, 7, 5, 4)).astype(np.float32)
    flip_index = [1, 0, 3, 2]
    np.testing.assert_array_equal(flip_heatmaps(flip_heatmaps(hm, flip_index), flip_index), hm)
    plain = flip_heatmaps(hm, flip_index)
    np.testing.assert_array_equal(plain[:, :, 2, 0], hm[:, :, 2, 1])  # 5 - 1 - 2 = 2
    np.testing.assert_array_equal(plain[:, :, 0, 2], hm[:, :, 4, 3])
    shifted = flip_heatmaps(hm, flip_index, shift=True)
    np.testing.assert_array_equal(shifted[:, :, 1:], plain[:, :, :-1])
    np.testing.assert_array_equal(shifted[:, :, 0], plain[:, :, 0])
    with pytest.raises(ValueError, match="permutation"):
        flip_heatmaps(hm, [0, 0, 1, 2])


def test_flip_test_udp_is_exact_without_shift():
    """Encoding the mirrored keypoint and flipping back gives the original target (UDP)."""
    codec = HeatmapCodec(INPUT, HEATMAP, sigma=2.0, encoding="udp")
    kpts = np.array([[60.3, 100.2], [130.7, 90.4]])
    hm, _ = codec.encode(kpts, np.ones(2))
    mirrored = kpts[[1, 0]].copy()
    mirrored[:, 0] = INPUT[0] - 1 - mirrored[:, 0]  # flip the crop, swap left/right
    hm_m, _ = codec.encode(mirrored, np.ones(2))
    back = flip_heatmaps(hm_m[None], [1, 0], shift=codec.flip_shift)[0]
    np.testing.assert_allclose(back, hm, atol=1e-5)
    assert not codec.flip_shift and HeatmapCodec(INPUT, HEATMAP).flip_shift


def test_codec_for_model_reads_the_heatmap_size_from_the_model(tiny_hrnet):
    import keras

    from pose.models.hrnet import HRNet

    model = HRNet(psa_placement="none", **tiny_hrnet)  # input 32x64 → heatmaps 8x16
    codec = codec_for_model(model, sigma=1.5, encoding="udp", decoding="dark")
    assert (codec.input_size, codec.heatmap_size) == ((32, 64), (8, 16))
    assert (codec.sigma, codec.encoding, codec.decoding) == (1.5, "udp", "dark")

    # A stride-2 'model' gets stride-2 heatmaps: nothing assumes 1/4.
    inputs = keras.Input((64, 32, 3))
    half = keras.Model(inputs, keras.layers.Conv2D(17, 1, strides=2)(inputs))
    assert codec_for_model(half).heatmap_size == (16, 32)

    class Runtime:  # an exported model: no shapes, only predict_on_batch
        def predict_on_batch(self, x):
            return np.zeros((len(x), x.shape[1] // 4, x.shape[2] // 4, 17), np.float32)

    assert codec_for_model(Runtime(), input_size=(48, 64)).heatmap_size == (12, 16)
    with pytest.raises(ValueError, match="input_size"):
        codec_for_model(Runtime())
