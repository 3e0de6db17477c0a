"""What freshly inserted PSA layers do at step 0 to a network with pretrained weights.

Training from a pretrained HRNet with PSA (``train.init_weights``) loads every HRNet weight
and leaves the PSA layers at their initialisation, so at the first step the network is
the pretrained one with untrained gates multiplied into its features. This measures how
far that moves the heatmaps from the PSA-free pretrained network on the same inputs:

* ``rel_l2``: ‖H_psa − H‖ / ‖H‖ over all heatmaps;
* ``norm_ratio``: ‖H_psa‖ / ‖H‖ (below 1: the gates shrink the features);
* ``argmax_agreement``: fraction of (image, keypoint) pairs whose heatmap maximum stays at
  the same pixel (what decoding reads).

Both in inference mode (BatchNorm with its stored statistics: what evaluation of the
untrained model sees) and in training mode (BatchNorm with the batch's statistics: what
the first training step's forward pass sees; each BatchNorm after a PSA layer then
renormalises the scale the gates changed). Fresh PSA weights are random, so each variant
is measured over several seeds.
"""

import dataclasses
import statistics

import keras
import numpy as np

from pose.engine.checkpoint import build_model
from pose.engine.pretrained import initialize_from, model_from_torch_checkpoint

VARIANTS = (("branch", "parallel"), ("branch", "sequential"),
            ("block", "parallel"), ("block", "sequential"))


def heatmap_change(base, other):
    """``rel_l2``, ``norm_ratio`` and ``argmax_agreement`` of ``other`` against ``base``
    (both (B, H, W, K))."""
    base = np.asarray(base, np.float64)
    other = np.asarray(other, np.float64)
    batch, height, width, joints = base.shape
    flat_base = base.transpose(0, 3, 1, 2).reshape(batch * joints, height * width)
    flat_other = other.transpose(0, 3, 1, 2).reshape(batch * joints, height * width)
    return {
        "rel_l2": float(np.linalg.norm(other - base) / np.linalg.norm(base)),
        "norm_ratio": float(np.linalg.norm(other) / np.linalg.norm(base)),
        "argmax_agreement": float(np.mean(flat_base.argmax(1) == flat_other.argmax(1))),
    }


def measure_psa_insertion(checkpoint, images, input_size=None, seeds=(0, 1, 2)):
    """Heatmap change of every PSA variant inserted into a converted checkpoint.

    Args:
        checkpoint: str, a PyTorch pose checkpoint (``pose.models.conversion`` layouts).
        images: (B, H, W, 3) float array, normalised network inputs.
        input_size: (width, height) or None: the images' size.
        seeds: PSA initialisations measured per variant.

    Returns:
        list of dicts: placement, mode, and mean / std over seeds of each measure.
    """
    images = np.asarray(images, np.float32)
    input_size = input_size or (images.shape[2], images.shape[1])
    base_model, config, _ = model_from_torch_checkpoint(checkpoint, input_size)
    phases = {"inference": False, "training": True}
    base = {phase: keras.ops.convert_to_numpy(base_model(images, training=training))
            for phase, training in phases.items()}
    rows = []
    for placement, mode in VARIANTS:
        model_config = dataclasses.replace(config.model, psa_placement=placement,
                                           psa_mode=mode)
        measures = {phase: [] for phase in phases}
        for seed in seeds:
            keras.utils.set_random_seed(seed)
            model = build_model(model_config)
            initialize_from(model, checkpoint)
            for phase, training in phases.items():
                # training=True only normalises with batch statistics here: no step is
                # taken, and the moving statistics are not read back.
                output = keras.ops.convert_to_numpy(model(images, training=training))
                measures[phase].append(heatmap_change(base[phase], output))
        for phase, values in measures.items():
            row = {"placement": placement, "mode": mode, "batchnorm": phase,
                   "seeds": len(seeds)}
            for key in values[0]:
                row[key] = statistics.mean(m[key] for m in values)
                row[f"{key}_std"] = statistics.pstdev(m[key] for m in values)
            rows.append(row)
    return rows
