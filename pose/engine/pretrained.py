"""Pretrained weights: official PyTorch HRNet checkpoints as models, converted files, and
the starting point of a training run.

* ``model_from_torch_checkpoint``: a ``.pth`` of any layout of
  ``pose.models.conversion`` → a PSA-free ``HRNet`` with those weights and a config built
  from the checkpoint's own architecture (what ``tools/infer.py`` / ``tools/test.py`` run
  on a model-zoo file);
* ``convert_checkpoint``: the same, saved as ``.keras`` + ``.yaml`` (``tools/convert.py``),
  optionally checked against a reference output;
* ``initialize_from``: load a ``.pth`` (any layout) or a ``.keras`` into a freshly built
  model by name and shape (``train.init_weights``); PSA layers and heads the file lacks
  stay fresh.
"""

import dataclasses
import logging
import os
import re

import keras
import numpy as np

from pose.checks import check_output_file
from pose.config import Config, ModelConfig, config_path_for
from pose.engine.checkpoint import build_model, load_model, save_model
from pose.errors import UserError
from pose.models.conversion import (
    assign_weights,
    describe_architecture,
    load_pretrained_into,
    read_pretrained,
)
from pose.models.torch_checkpoint import CheckpointError

logger = logging.getLogger(__name__)

TORCH_SUFFIXES = (".pth", ".pt", ".pth.tar")
DEFAULT_INPUT_SIZE = (192, 256)  # (width, height), the official 256x192 models
# Where the COCO configs expect the ImageNet checkpoints, and where they come from.
PRETRAINED_SOURCE = (
    "get it from the official HRNet model zoo (deep-high-resolution-net.pytorch README, "
    "Google Drive / OneDrive folder imagenet/, from the HRNet-Image-Classification "
    "release) and put it there, or train from scratch with --set train.init_weights=null; "
    "see README 'Pretrained weights'")


def is_torch_checkpoint(path):
    return os.fspath(path).lower().endswith(TORCH_SUFFIXES)


def input_size_from_name(path):
    """``(width, height)`` from an official file name (``pose_hrnet_w32_256x192.pth`` →
    ``(192, 256)``: the names say height × width), or None."""
    match = re.search(r"(\d+)x(\d+)", os.path.basename(os.fspath(path)))
    if match is None:
        return None
    height, width = int(match.group(1)), int(match.group(2))
    return (width, height)


@dataclasses.dataclass
class ConversionReport:
    """What converting a PyTorch checkpoint found and did (printed by ``tools/convert.py``)."""

    path: str
    layout: str
    architecture: str
    input_size: tuple
    input_size_source: str  # "argument", "file name" or "default"
    loaded: int  # tensors loaded (one Keras weight each)
    skipped: list  # tensor names of a known head of another task
    counters: int  # num_batches_tracked entries ignored
    missing: list  # Keras weights left fresh (an ImageNet file's pose final layer)
    max_abs_diff: float = None  # against the reference output, when checked

    def lines(self):
        out = [f"checkpoint: {self.path}",
               f"layout: {self.layout}",
               f"architecture: {self.architecture}",
               f"input size (width, height): {self.input_size} (from {self.input_size_source})",
               f"tensors loaded: {self.loaded}",
               f"tensors skipped: {len(self.skipped)}"
               + (f" ({', '.join(self.skipped)})" if self.skipped else ""),
               f"num_batches_tracked counters ignored: {self.counters}",
               f"missing (left freshly initialised): {len(self.missing)}"
               + (f" ({', '.join(self.missing)})" if self.missing else "")]
        if self.max_abs_diff is not None:
            out.append(f"max abs difference to the reference output: {self.max_abs_diff:.3g}")
        return out


def model_from_torch_checkpoint(path, input_size=None, allow_no_head=False,
                                allow_non_finite=False):
    """A PSA-free ``HRNet`` holding a PyTorch checkpoint's weights, its config, and a report.

    Args:
        path: str, a ``.pth`` file of a layout in ``pose.models.conversion.LAYOUTS``.
        input_size: (width, height) or None: then the ``HxW`` in the file name, else
            ``DEFAULT_INPUT_SIZE`` (with a logged notice).
        allow_no_head: bool, accept an ImageNet checkpoint (no pose head: a fresh 17-joint
            final layer). Default False: such a file cannot estimate poses.
        allow_non_finite: bool, accept NaN/inf weights (``read_pretrained``). Default False.

    Returns:
        ``(model, config, report)``: ``config`` is the default ``Config`` with the
        checkpoint's architecture; ``report`` a ``ConversionReport``.

    Raises:
        CheckpointError: naming the file (unsafe, unreadable, unknown layout, tensors that
            do not map one to one).
    """
    path = os.fspath(path)
    checkpoint = read_pretrained(path, allow_non_finite=allow_non_finite)
    if checkpoint.layout == "imagenet-classification" and not allow_no_head:
        raise CheckpointError(f"{path}: an ImageNet classification checkpoint has no pose "
                              "head; use it as train.init_weights to start training from it")
    architecture = checkpoint.architecture()
    source = "argument"
    if input_size is None:
        input_size, source = input_size_from_name(path), "file name"
    if input_size is None:
        input_size, source = DEFAULT_INPUT_SIZE, "default"
        logger.warning("%s: no input size given or in the file name; using %s (width, height)"
                       " as the official 256x192 models", path, input_size)
    description = describe_architecture(architecture)
    if architecture["num_keypoints"] is None:
        architecture["num_keypoints"] = ModelConfig.num_keypoints
        description += f" (a fresh {ModelConfig.num_keypoints}-heatmap pose head)"
    model_config = ModelConfig(input_size=tuple(input_size), psa_placement="none",
                               **architecture)
    model = build_model(model_config)
    load_report = load_pretrained_into(model, checkpoint)
    report = ConversionReport(
        path=path, layout=checkpoint.layout, architecture=description,
        input_size=tuple(input_size), input_size_source=source,
        loaded=len(load_report.loaded), skipped=list(checkpoint.skipped),
        counters=checkpoint.counters, missing=list(load_report.fresh))
    return model, Config(model=model_config), report


def convert_checkpoint(path, out, input_size=None, reference=None, allow_non_finite=False):
    """Convert a PyTorch checkpoint to ``out`` (``.keras``, with its ``.yaml`` beside it).

    Args:
        path: str, the ``.pth``.
        out: str, the ``.keras`` to write.
        input_size: (width, height) or None (see ``model_from_torch_checkpoint``).
        reference: str or None, an ``.npz`` with ``input_nhwc`` and ``output_nhwc_fp64``
            (or ``output_nhwc``): the converted model's output on the input is compared.
        allow_non_finite: bool, convert NaN/inf weights too. Default False.

    Returns:
        The ``ConversionReport`` (``max_abs_diff`` set with ``reference``).

    Raises:
        OutputError: ``out`` or the config beside it is an input, a folder, or cannot be
            written (before the checkpoint is read).
    """
    for target in (out, config_path_for(out)):
        check_output_file(target, [path, reference], option="--out")
    model, config, report = model_from_torch_checkpoint(path, input_size, allow_no_head=True,
                                                        allow_non_finite=allow_non_finite)
    if reference is not None:
        report.max_abs_diff = reference_difference(model, reference)
    save_model(model, out, config)
    return report


def reference_difference(model, reference):
    """Max abs difference between ``model`` and a reference output in an ``.npz``.

    The model is rebuilt for the reference's input size when it differs (the weights do
    not depend on it).
    """
    with np.load(reference) as data:
        missing = [k for k in ("input_nhwc",) if k not in data]
        output_key = "output_nhwc_fp64" if "output_nhwc_fp64" in data else "output_nhwc"
        if missing or output_key not in data:
            raise ValueError(f"{reference}: needs input_nhwc and output_nhwc(_fp64) arrays")
        images, expected = data["input_nhwc"], data[output_key]
    height, width = images.shape[1:3]
    if tuple(model.input_shape[1:3]) != (height, width):
        config = dict(model.get_config(), input_size=(width, height))
        resized = model.__class__.from_config(config)
        resized.set_weights(model.get_weights())
        model = resized
    output = keras.ops.convert_to_numpy(model(images.astype("float32"), training=False))
    if output.shape != expected.shape:
        raise ValueError(f"{reference}: reference output {expected.shape}, model output "
                         f"{output.shape}")
    return float(np.max(np.abs(output.astype("float64") - expected)))


def load_any_checkpoint(path, input_size=None, on_built=None):
    """``(model, config)`` from a ``.keras`` checkpoint or a PyTorch ``.pth`` (converted on
    the fly; ``input_size`` as ``model_from_torch_checkpoint``; ignored for ``.keras``;
    ``on_built`` as ``pose.engine.checkpoint.load_model``, ignored for ``.pth``)."""
    if is_torch_checkpoint(path):
        model, config, report = model_from_torch_checkpoint(path, input_size)
        logger.info("%s: %s layout, %s, %d tensors loaded", path, report.layout,
                    report.architecture, report.loaded)
        return model, config
    return load_model(path, on_built=on_built)


class MissingWeightsError(UserError, FileNotFoundError):
    """``train.init_weights`` names no file (a user error, and a ``FileNotFoundError``)."""


def require_init_weights(path):
    """``path`` when the file exists, else a ``MissingWeightsError`` saying where to get it."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingWeightsError(f"train.init_weights: {path} not found (relative paths are "
                                f"from the working directory {os.getcwd()}); "
                                f"{PRETRAINED_SOURCE}")
    return path


def initialize_from(model, path, allow_partial=False):
    """Load pretrained weights into a freshly built model by name and shape.

    Args:
        model: the model to train (PSA layers and heads the file lacks stay fresh).
        path: str, a PyTorch checkpoint (any layout of ``pose.models.conversion``) or a
            ``.keras`` checkpoint.
        allow_partial: bool, leave weights of another shape fresh instead of failing.

    Returns:
        ``pose.models.conversion.LoadReport``; with the checkpoint's skipped tensors
        (a classification head) added to ``skipped``.

    Raises:
        FileNotFoundError: saying where such files come from.
        ValueError: naming the first weight of another shape, unless ``allow_partial``.
    """
    path = require_init_weights(path)
    if is_torch_checkpoint(path):
        checkpoint = read_pretrained(path)
        weights = checkpoint.keras_weights()
        head = [f"{name} (classification head)" for name in checkpoint.skipped]
    else:
        source_model, _ = load_model(path)
        weights = {v.path: keras.ops.convert_to_numpy(v) for v in source_model.weights}
        head = []
    report = assign_weights(model, weights, path, allow_partial=allow_partial)
    report.skipped = head + report.skipped
    return report
