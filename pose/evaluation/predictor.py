"""From person crops to keypoints in image coordinates: forward (+ flip test), decode, un-warp.

Evaluation (``pose.evaluation.evaluator``) and inference on the user's own images both go through
``Predictor``, so a number measured by ``tools/test.py`` is what ``tools/infer.py`` does.
"""

import numpy as np

from pose.codec import flip_heatmaps


def crop_to_image(coords, center, scale, input_size, udp=False):
    """Map keypoints from input-crop pixels back to image pixels (no rotation at test time).

    The inverse of ``datasets.transforms.get_affine_transform(center, scale, 0,
    input_size)``, vectorized over instances: the standard warp zooms uniformly by
    ``input_w / scale_w`` around the crop centre ``(W/2, H/2)``; UDP maps the region
    onto pixel centres ``0 .. size-1`` per axis.

    Args:
        coords: (N, K, 2) keypoints in crop pixels.
        center: (N, 2) crop centres in image pixels.
        scale: (N, 2) crop region (w, h) in image pixels.
        input_size: (w, h) of the crop.
        udp: bool, the UDP warp. Default False.

    Returns:
        (N, K, 2) float64 keypoints in image pixels.
    """
    coords = np.asarray(coords, np.float64)
    center = np.asarray(center, np.float64)[:, None, :]  # (N, 1, 2)
    scale = np.asarray(scale, np.float64)[:, None, :]  # (N, 1, 2)
    size = np.asarray(input_size, np.float64)
    if udp:
        zoom = (size - 1.0) / scale[..., :]  # (N, 1, 2): per axis
        origin = (size - 1.0) / 2.0
    else:
        zoom = np.repeat(size[0] / scale[..., :1], 2, axis=-1)  # (N, 1, 2): uniform
        origin = size / 2.0
    return (coords - origin) / zoom + center


def forward(model, images):
    """``model`` on one batch, as NumPy, through Keras's compiled predict function.

    ``predict_on_batch`` of a model built under a multi-replica ``tf.distribute``
    strategy (Keras 3.15) runs the whole batch on every replica and concatenates the
    copies; ``predict`` splits the batch correctly, at some per-call overhead, so it is
    used only there (validation during mirrored training).
    """
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is not None and strategy.num_replicas_in_sync > 1:
        return np.asarray(model.predict(images, batch_size=len(images), verbose=0))
    return np.asarray(model.predict_on_batch(images))


class Predictor:
    """Runs a heatmap model on normalized crops and returns image-space keypoints.

    Args:
        model: a Keras model mapping (B, H, W, 3) crops to (B, H/4, W/4, K) heatmaps.
        codec: ``pose.codec.HeatmapCodec`` with the model's input and heatmap sizes.
        flip_index: (K,) int permutation swapping left and right joints, or None to skip
            the flip test. Default None.
        shift_heatmap: bool, shift the flipped heatmaps one pixel right before averaging
            (HRNet's ``SHIFT_HEATMAP``; only applied with the standard encoding, where the
            flip of an even-width heatmap is off by one). Default True.

    Example:
        >>> predictor = Predictor(model, codec, flip_index=meta.flip_index_array)
        >>> keypoints, scores = predictor.predict(crops, centers, scales)
    """

    def __init__(self, model, codec, flip_index=None, shift_heatmap=True):
        self.model = model
        self.codec = codec
        self.flip_index = None if flip_index is None else np.asarray(flip_index)
        self.shift_heatmap = shift_heatmap

    def heatmaps(self, crops):
        """(B, H, W, 3) normalized crops → (B, H_hm, W_hm, K) heatmaps, flip-averaged."""
        crops = np.asarray(crops, np.float32)
        if self.flip_index is None:
            return forward(self.model, crops)
        # One call on [crops; mirrored crops] keeps a single traced batch shape.
        both = forward(self.model, np.concatenate([crops, crops[:, :, ::-1]], axis=0))
        plain, mirrored = both[:len(crops)], both[len(crops):]
        unflipped = flip_heatmaps(mirrored, self.flip_index,
                                  shift=self.shift_heatmap and self.codec.flip_shift)
        return (plain + unflipped) * 0.5

    def predict(self, crops, center, scale):
        """Keypoints (B, K, 2) in image pixels and their scores (B, K)."""
        return self.keypoints(self.heatmaps(crops), center, scale)

    def keypoints(self, heatmaps, center, scale):
        """``heatmaps`` (B, H_hm, W_hm, K) of crops at ``center``, ``scale`` (B, 2) →
        keypoints (B, K, 2) in image pixels and their scores (B, K)."""
        coords, scores = self.codec.decode(heatmaps)
        udp = self.codec.encoding == "udp"
        return crop_to_image(coords, center, scale, self.codec.input_size, udp=udp), scores
