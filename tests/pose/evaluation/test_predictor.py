"""Predictor: un-warping matches the crop transform; flip test is mirror-consistent."""

import keras
import numpy as np
import pytest

from datasets.metadata import DatasetMeta
from datasets.transforms import affine_points, get_affine_transform
from pose.codec import HeatmapCodec
from pose.evaluation.predictor import Predictor, crop_to_image


@pytest.mark.parametrize("udp", [False, True])
def test_crop_to_image_inverts_the_crop_transform(udp):
    rng = np.random.default_rng(0)
    centers = rng.uniform(50, 400, size=(5, 2))
    scales = rng.uniform(40, 300, size=(5, 2))
    crop_points = rng.uniform(0, 48, size=(5, 17, 2))
    ours = crop_to_image(crop_points, centers, scales, (48, 64), udp=udp)
    for i in range(5):
        inverse = get_affine_transform(centers[i], scales[i], 0, (48, 64), inverse=True, udp=udp)
        np.testing.assert_allclose(ours[i], affine_points(crop_points[i], inverse), atol=1e-6)


class MirrorAwareNet(keras.Model):
    """A fixed, non-symmetric, positive heatmap 'model' (random 3x3 conv of the blurred crop)."""

    def __init__(self, num_keypoints):
        inputs = keras.Input((64, 48, 3))
        x = keras.layers.AveragePooling2D(4)(inputs)  # (B, 16, 12, 3)
        outputs = keras.layers.Conv2D(num_keypoints, 3, padding="same", use_bias=False,
                                      kernel_initializer=keras.initializers.RandomNormal(
                                          stddev=1.0, seed=1))(x)
        super().__init__(inputs, keras.layers.Activation("sigmoid")(outputs))


def test_flip_test_on_a_mirror_symmetric_crop_gives_mirror_symmetric_keypoints():
    meta = DatasetMeta.coco()
    model = MirrorAwareNet(meta.num_keypoints)
    rng = np.random.default_rng(2)
    half = rng.uniform(size=(1, 64, 24, 3)).astype("float32")
    crop = np.concatenate([half, half[:, :, ::-1]], axis=2)  # mirror-symmetric (1, 64, 48, 3)
    # UDP maps crop pixel x to heatmap x * (12-1)/(48-1): the flip is exact without a shift.
    # DARK's Taylor step is mirror-symmetric (mmpose's UDP step uses a one-sided dxy).
    codec = HeatmapCodec((48, 64), (12, 16), sigma=1.0, encoding="udp", decoding="dark")
    predictor = Predictor(model, codec, flip_index=meta.flip_index_array, shift_heatmap=False)
    keypoints, scores = predictor.predict(crop, np.array([[23.5, 31.5]]), np.array([[47.0, 63.0]]))
    # Left/right pairs only: a centre joint's symmetric map has two equal maxima (even
    # width), and argmax takes the left one.
    paired = np.array([k for k in range(meta.num_keypoints) if meta.flip_index[k] != k])
    mirrored = keypoints[0, meta.flip_index_array]
    np.testing.assert_allclose(keypoints[0, paired, 0] + mirrored[paired, 0], 47.0, atol=1e-4)
    np.testing.assert_allclose(keypoints[0, paired, 1], mirrored[paired, 1], atol=1e-4)
    np.testing.assert_allclose(scores[0], scores[0, meta.flip_index_array], atol=1e-6)
    # Without the flip test the same (asymmetric) model is not mirror-consistent.
    plain, _ = Predictor(model, codec).predict(crop, np.array([[23.5, 31.5]]),
                                               np.array([[47.0, 63.0]]))
    mirrored_sum = plain[0, paired, 0] + plain[0, meta.flip_index_array[paired], 0]
    assert np.abs(mirrored_sum - 47.0).max() > 0.5


class FixedHeatmaps:
    """A 'model' that returns fixed heatmaps: row 0 for the plain crop, row 1 for its mirror
    (``Predictor`` runs both in one call)."""

    def __init__(self, heatmaps):
        self.heatmaps = heatmaps

    def predict_on_batch(self, images):
        assert len(images) == len(self.heatmaps)
        return self.heatmaps


def _flip_test_heatmaps():
    """Two joints (0 = left, 1 = right), 8x8 heatmaps from a 32x32 crop (stride 4)."""
    hm = np.zeros((2, 8, 8, 2), np.float32)  # (plain | mirrored, H, W, K)
    hm[0, 4, 3, 0] = 0.6  # plain crop: joint 0 at (x=3, y=4)
    hm[0, 2, 5, 1] = 0.4  # joint 1 at (5, 2)
    hm[1, 2, 2, 0] = 0.8  # mirrored crop: its joint 0 (= our joint 1) at (2, 2)
    hm[1, 4, 4, 1] = 0.5  # its joint 1 (= our joint 0) at (4, 4)
    return hm


def test_flip_test_score_and_position_worked_out_by_hand():
    # Default standard-encoding path: HRNet's flip test with SHIFT_HEATMAP, then the
    # average of the two heatmaps, then quarter-offset decoding.
    # Joint 0: the mirror's channel 1 peak 0.5 at x=4 flips to x = 7 - 4 = 3 and shifts one
    # pixel right to x=4; the average is 0.6/2 = 0.3 at (3, 4) and 0.5/2 = 0.25 at (4, 4):
    # maximum 0.3 at x=3, a quarter pixel toward the higher right neighbour: (3.25, 4).
    # Joint 1: the mirror's channel 0 peak 0.8 at x=2 flips to x=5, shifts to x=6; average
    # 0.2 at (5, 2), 0.4 at (6, 2): maximum 0.4 at x=6, left neighbour higher: (5.75, 2).
    # Heatmap → crop: x 4 (stride); the crop is the image (center 16, scale 32): identity.
    codec = HeatmapCodec((32, 32), (8, 8))
    predictor = Predictor(FixedHeatmaps(_flip_test_heatmaps()), codec, flip_index=[1, 0])
    keypoints, scores = predictor.predict(np.zeros((1, 32, 32, 3), np.float32),
                                          np.array([[16.0, 16.0]]), np.array([[32.0, 32.0]]))
    np.testing.assert_allclose(scores[0], [0.3, 0.4], atol=1e-6)
    np.testing.assert_allclose(keypoints[0], [[3.25 * 4, 4 * 4], [5.75 * 4, 2 * 4]], atol=1e-5)


def test_flip_test_without_shift_is_the_plain_average():
    # shift_heatmap=False: the flipped peaks land on the plain ones: 0.55 at (3, 4) and
    # 0.6 at (5, 2), no neighbour differs, no quarter-pixel offset.
    codec = HeatmapCodec((32, 32), (8, 8))
    predictor = Predictor(FixedHeatmaps(_flip_test_heatmaps()), codec, flip_index=[1, 0],
                          shift_heatmap=False)
    keypoints, scores = predictor.predict(np.zeros((1, 32, 32, 3), np.float32),
                                          np.array([[16.0, 16.0]]), np.array([[32.0, 32.0]]))
    np.testing.assert_allclose(scores[0], [0.55, 0.6], atol=1e-6)
    np.testing.assert_allclose(keypoints[0], [[12.0, 16.0], [20.0, 8.0]], atol=1e-5)


def test_default_test_settings_are_hrnets_coco_ones():
    # HRNet's w32_256x192 COCO config: TEST.FLIP_TEST true, SHIFT_HEATMAP true,
    # POST_PROCESS true (the quarter-pixel offset), OKS_THRE 0.9.
    from pose.config import TestConfig

    test = TestConfig()
    assert (test.flip_test, test.shift_heatmap) == (True, True)
    assert test.decoding == "quarter_offset" and test.oks_nms_threshold == 0.9
