"""The heatmap loss: HRNet's ``JointsMSELoss``, with online hard keypoint mining as an option."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="pose")
class JointsMSELoss(keras.losses.Loss):
    """Mean squared heatmap error, masked by target weights (HRNet's ``JointsMSELoss``).

    loss = 0.5 · mean over samples b and joints k of  w_bk² · mean over pixels of
    (pred_bk − target_bk)², with w the target weight (0 for unlabelled or out-of-crop
    joints). With ``ohkm_topk`` set, each sample keeps only its ``ohkm_topk`` largest
    per-joint losses (HRNet's ``JointsOHKMMSELoss``): mean over those, then over samples.

    The target weights arrive as Keras's ``sample_weight`` of shape (B, K) (the third
    element of the training dataset); this loss applies them itself, squared as HRNet
    does, instead of letting Keras multiply them in once.

    Args:
        ohkm_topk: int or None, joints kept per sample by online hard keypoint mining;
            None (default) uses every joint.
        name: str, the loss name. Default "joints_mse".

    Example:
        >>> model.compile(optimizer="adam", loss=JointsMSELoss())
        >>> model.fit(dataset)  # yields (images, heatmaps, target_weight)
    """

    def __init__(self, ohkm_topk=None, name="joints_mse", **kwargs):
        super().__init__(name=name, **kwargs)
        if ohkm_topk is not None and (not isinstance(ohkm_topk, int) or ohkm_topk < 1):
            raise ValueError(f"ohkm_topk must be a positive integer or None, got {ohkm_topk!r}")
        self.ohkm_topk = ohkm_topk

    def __call__(self, y_true, y_pred, sample_weight=None):
        return self.call(y_true, y_pred, sample_weight)

    def call(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.cast(y_pred, "float32")  # (B, H, W, K); float32 under mixed precision
        y_true = ops.cast(y_true, "float32")
        per_joint = ops.mean(ops.square(y_pred - y_true), axis=(1, 2))  # (B, K)
        if sample_weight is not None:
            per_joint = per_joint * ops.square(ops.cast(sample_weight, "float32"))
        if self.ohkm_topk is None:
            return 0.5 * ops.mean(per_joint)
        hardest, _ = ops.top_k(per_joint, k=self.ohkm_topk)  # (B, topk)
        return 0.5 * ops.mean(hardest)

    def get_config(self):
        return {"name": self.name, "ohkm_topk": self.ohkm_topk}
