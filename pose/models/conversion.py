"""Official HRNet checkpoints (PyTorch) → this project's ``HRNet``: layouts, names, shapes.

Four layouts are recognised (``read_pretrained``):

* ``official-pose``: the bare state dict of deep-high-resolution-net.pytorch
  (``conv1.weight``, ``stage2.0.branches.0.0.conv1.weight``, ``final_layer.weight``), the
  model-zoo files such as ``pose_hrnet_w32_256x192.pth``;
* ``official-training``: that repository's ``checkpoint.pth``: ``{"epoch", "state_dict"
  (keys prefixed ``module.`` by DataParallel), "best_state_dict", "optimizer", ...}``;
  ``state_dict`` is used (the other entries are training state);
* ``mmpose``: ``{"meta", "state_dict"}`` with ``backbone.`` and ``head.`` (mmpose 1.x) or
  ``keypoint_head.`` (0.x) prefixes;
* ``imagenet-classification``: HRNet-Image-Classification (``hrnet_w32-36af842e.pth``): the
  pose backbone's keys plus a classification head (``incre_modules``, ``downsamp_modules``,
  a conv+BN ``final_layer``, ``classifier``, and the lower-resolution fusion outputs of the
  last stage-4 module, which the pose network does not have). The backbone is used; the
  head is skipped and listed.

Official names map one to one onto the Keras layer names of ``pose.models.hrnet`` (which
mirror the official hierarchy, 0-based): ``stage3.1.branches.2.0.conv1.weight`` is
``stage3_m1_b2_block0_conv1/kernel``. Convolution kernels go OIHW → HWIO; BatchNorm
``weight/bias/running_mean/running_var`` are ``gamma/beta/moving_mean/moving_variance``;
``num_batches_tracked`` counters have no Keras counterpart and are ignored.
"""

import dataclasses
import logging
import os
import re

import numpy as np

from pose.models.torch_checkpoint import CheckpointError, load_torch_checkpoint

logger = logging.getLogger(__name__)

LAYOUTS = ("official-pose", "official-training", "mmpose", "imagenet-classification")

_BN_ROLES = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean",
             "running_var": "moving_variance"}
_CLASSIFICATION_PREFIXES = ("incre_modules.", "downsamp_modules.", "final_layer.",
                            "classifier.")

# (official module path pattern, Keras layer name template, "conv" or "bn")
_MODULE_RULES = [
    (r"conv(?P<n>[12])", "stem_conv{n}", "conv"),
    (r"bn(?P<n>[12])", "stem_bn{n}", "bn"),
    (r"layer1\.(?P<k>\d+)\.conv(?P<n>[123])", "layer1_block{k}_conv{n}", "conv"),
    (r"layer1\.(?P<k>\d+)\.bn(?P<n>[123])", "layer1_block{k}_bn{n}", "bn"),
    (r"layer1\.(?P<k>\d+)\.downsample\.0", "layer1_block{k}_downsample_conv", "conv"),
    (r"layer1\.(?P<k>\d+)\.downsample\.1", "layer1_block{k}_downsample_bn", "bn"),
    # An existing branch whose width changes: Sequential(conv, bn, relu).
    (r"transition(?P<t>\d)\.(?P<i>\d+)\.0", "transition{t}_b{i}_conv", "conv"),
    (r"transition(?P<t>\d)\.(?P<i>\d+)\.1", "transition{t}_b{i}_bn", "bn"),
    # A new branch: Sequential(Sequential(stride-2 conv, bn, relu)).
    (r"transition(?P<t>\d)\.(?P<i>\d+)\.0\.0", "transition{t}_b{i}_down0_conv", "conv"),
    (r"transition(?P<t>\d)\.(?P<i>\d+)\.0\.1", "transition{t}_b{i}_down0_bn", "bn"),
    (r"stage(?P<s>\d)\.(?P<m>\d+)\.branches\.(?P<b>\d+)\.(?P<k>\d+)\.(?P<kind>conv|bn)(?P<n>[12])",
     "stage{s}_m{m}_b{b}_block{k}_{kind}{n}", None),
    # Fusion from a lower-resolution branch j > i: 1×1 conv, BN (then upsampling).
    (r"stage(?P<s>\d)\.(?P<m>\d+)\.fuse_layers\.(?P<i>\d+)\.(?P<j>\d+)\.0",
     "stage{s}_m{m}_fuse_{i}_{j}_conv", "conv"),
    (r"stage(?P<s>\d)\.(?P<m>\d+)\.fuse_layers\.(?P<i>\d+)\.(?P<j>\d+)\.1",
     "stage{s}_m{m}_fuse_{i}_{j}_bn", "bn"),
    # Fusion from a higher-resolution branch j < i: k-th stride-2 conv, BN (ReLU).
    (r"stage(?P<s>\d)\.(?P<m>\d+)\.fuse_layers\.(?P<i>\d+)\.(?P<j>\d+)\.(?P<k>\d+)\.0",
     "stage{s}_m{m}_fuse_{i}_{j}_down{k}_conv", "conv"),
    (r"stage(?P<s>\d)\.(?P<m>\d+)\.fuse_layers\.(?P<i>\d+)\.(?P<j>\d+)\.(?P<k>\d+)\.1",
     "stage{s}_m{m}_fuse_{i}_{j}_down{k}_bn", "bn"),
    (r"final_layer", "final_layer", "conv"),
]
_COMPILED_RULES = [(re.compile(pattern + r"\.(?P<param>\w+)"), template, kind)
                   for pattern, template, kind in _MODULE_RULES]


@dataclasses.dataclass(frozen=True)
class PretrainedCheckpoint:
    """A PyTorch HRNet checkpoint read and recognised.

    Attributes:
        path: str, the file.
        layout: one of ``LAYOUTS``.
        state_dict: dict of official pose names (prefixes removed) → NumPy array, the
            tensors that belong in the pose network.
        skipped: tuple of the file's names (as written in it) of known tensors that are not
            used: a classification head.
        counters: int, ``num_batches_tracked`` entries ignored.
    """

    path: str
    layout: str
    state_dict: dict
    skipped: tuple
    counters: int

    def keras_weights(self):
        """``{Keras weight path: array}`` (``"stem_conv1/kernel"``), kernels in HWIO."""
        weights = {}
        for key, value in self.state_dict.items():
            weights[keras_weight_path(key, self.path)] = _to_keras_array(value)
        return weights

    def architecture(self):
        """``HRNet`` arguments read from the names and shapes (see ``infer_architecture``)."""
        return infer_architecture(self.state_dict, self.path)


def read_pretrained(path, allow_non_finite=False):
    """Read a PyTorch HRNet checkpoint of any layout in ``LAYOUTS``.

    Args:
        path: str or PathLike, the ``.pth``.
        allow_non_finite: bool, accept NaN/inf in the network's tensors. Default False: a
            model with them outputs NaN heatmaps, so such a file is refused.

    Raises:
        CheckpointError: naming the file when it is unsafe, unreadable or of no known layout,
            and naming the tensors that hold NaN or inf (unless ``allow_non_finite``).
    """
    path = os.fspath(path)
    content = load_torch_checkpoint(path)
    layout, state_dict = _recognise_layout(content, path)
    counters = [k for k in state_dict if k.endswith(".num_batches_tracked")]
    tensors = {k: np.asarray(v) for k, v in state_dict.items() if k not in counters}
    skipped = []
    if layout == "imagenet-classification":
        last_module = max(int(m) for m in re.findall(r"^stage4\.(\d+)\.", "\n".join(tensors),
                                                     flags=re.M))
        skipped = [k for k in tensors if _is_classification_head(k, last_module)]
        for key in skipped:
            del tensors[key]
    unknown = [k for k in tensors if _match_rule(k) is None]
    if unknown:
        raise CheckpointError(f"{path}: {len(unknown)} tensors of the {layout} layout have no "
                              f"counterpart in HRNet: {', '.join(unknown[:8])}")
    if not allow_non_finite:
        _refuse_non_finite(tensors, path)
    return PretrainedCheckpoint(path, layout, tensors, tuple(skipped), len(counters))


def _refuse_non_finite(tensors, path):
    bad = [k for k, v in tensors.items()
           if v.dtype.kind not in "biu" and not np.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path}: {len(bad)} tensors hold NaN or inf: "
                              f"{', '.join(bad[:8])} (allow_non_finite / --allow-non-finite "
                              "to convert them anyway)")


def _recognise_layout(content, path):
    if not isinstance(content, dict):
        raise CheckpointError(f"{path}: expected a dict of tensors, got {type(content).__name__}")
    if "state_dict" in content and isinstance(content["state_dict"], dict):
        inner = content["state_dict"]
        if any(k.startswith("backbone.") for k in inner):
            return "mmpose", _mmpose_state_dict(inner, path)
        if "epoch" in content or "optimizer" in content or "best_state_dict" in content:
            return "official-training", _strip_prefix(inner, "module.")
        raise CheckpointError(f"{path}: a 'state_dict' entry with neither 'backbone.' keys "
                              "(mmpose) nor training entries (epoch, optimizer)")
    state_dict = _strip_prefix(content, "module.")
    not_tensors = [k for k, v in state_dict.items() if not isinstance(v, np.ndarray)]
    if not_tensors:
        raise CheckpointError(f"{path}: not a state dict (entries that are not tensors: "
                              f"{', '.join(map(str, not_tensors[:8]))})")
    if "conv1.weight" not in state_dict or "stage2.0.branches.0.0.conv1.weight" not in state_dict:
        raise CheckpointError(f"{path}: no HRNet layout recognised (no conv1.weight / "
                              "stage2.0.branches.0.0.conv1.weight)")
    if "classifier.weight" in state_dict or any(k.startswith("incre_modules.")
                                                for k in state_dict):
        return "imagenet-classification", state_dict
    return "official-pose", state_dict


def _strip_prefix(state_dict, prefix):
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def _mmpose_state_dict(state_dict, path):
    """mmpose names → official: ``backbone.X`` → ``X``, ``head.final_layer`` → ``final_layer``."""
    renamed = {}
    for key, value in state_dict.items():
        for prefix in ("backbone.", "head.", "keypoint_head."):
            if key.startswith(prefix):
                name = key[len(prefix):]
                if prefix != "backbone." and not name.startswith("final_layer."):
                    raise CheckpointError(f"{path}: mmpose head tensor {key!r} is not a "
                                          "1x1 final layer (only the heatmap head is supported)")
                renamed[name] = value
                break
        else:
            raise CheckpointError(f"{path}: mmpose tensor {key!r} is neither backbone. nor head.")
    return renamed


def _is_classification_head(key, last_module):
    """Whether ``key`` belongs to HRNet-Image-Classification's head: its own modules, or
    the fusion into the lower-resolution outputs of the last stage-4 module (the pose
    network keeps only the highest-resolution output there)."""
    if key.startswith(_CLASSIFICATION_PREFIXES):
        return True
    match = re.match(r"stage4\.(\d+)\.fuse_layers\.(\d+)\.", key)
    if match is None:
        return False
    return int(match.group(1)) == last_module and int(match.group(2)) > 0


def _match_rule(key):
    for regex, template, kind in _COMPILED_RULES:
        match = regex.fullmatch(key)
        if match is None:
            continue
        groups = match.groupdict()
        kind = kind or ("conv" if groups.get("kind") == "conv" else "bn")
        param = groups.pop("param")
        roles = {"weight": "kernel", "bias": "bias"} if kind == "conv" else _BN_ROLES
        if param not in roles:
            return None
        return template.format(**groups), roles[param], kind
    return None


def keras_weight_path(key, path="checkpoint"):
    """The Keras weight path (``layer/variable``) of an official tensor name."""
    rule = _match_rule(key)
    if rule is None:
        raise CheckpointError(f"{path}: tensor {key!r} has no counterpart in HRNet")
    layer, role, _ = rule
    return f"{layer}/{role}"


def _to_keras_array(value):
    if value.ndim == 4:  # conv kernel OIHW → HWIO
        return np.ascontiguousarray(np.transpose(value, (2, 3, 1, 0)))
    return np.array(value)


def infer_architecture(state_dict, path="checkpoint"):
    """``HRNet`` arguments read from an official state dict's names and shapes.

    Returns:
        dict with ``width``, ``num_keypoints`` (None without a pose final layer),
        ``stage_modules``, ``num_blocks`` (when every branch has the same count, else the
        default 4 and ``stage_blocks`` per stage and branch), ``stage1_blocks``,
        ``stem_width``.

    Raises:
        CheckpointError: when the network is not one ``HRNet`` can express (branch widths
            not W·(1, 2, 4, 8), a 3×3 final layer, a stage 1 of another width).
    """
    def shape(key):
        if key not in state_dict:
            raise CheckpointError(f"{path}: expected tensor {key!r} is missing")
        return state_dict[key].shape

    stem_width = shape("conv1.weight")[0]
    stage1_blocks = _count(state_dict, r"layer1\.(\d+)\.conv1\.weight", path)
    if shape("layer1.0.conv1.weight")[0] != stem_width:
        raise CheckpointError(f"{path}: stage 1 bottlenecks of {shape('layer1.0.conv1.weight')[0]}"
                              f" planes after a stem of {stem_width}: not an official HRNet")
    width = shape("stage2.0.branches.0.0.conv1.weight")[0]
    stage_modules, stage_blocks = [], []
    for stage in (2, 3, 4):
        modules = _count(state_dict, rf"stage{stage}\.(\d+)\.", path)
        blocks = []
        for b in range(stage):
            expected = width * 2 ** b
            actual = shape(f"stage{stage}.0.branches.{b}.0.conv1.weight")[0]
            if actual != expected:
                raise CheckpointError(f"{path}: stage {stage} branch {b} is {actual} wide, "
                                      f"HRNet expects W*2^{b} = {expected} (W = {width})")
            counts = {_count(state_dict,
                             rf"stage{stage}\.{m}\.branches\.{b}\.(\d+)\.conv1\.weight", path)
                      for m in range(modules)}
            if len(counts) != 1:
                raise CheckpointError(f"{path}: stage {stage} branch {b} has different block "
                                      f"counts per module: {sorted(counts)}")
            blocks.append(counts.pop())
        stage_modules.append(modules)
        stage_blocks.append(tuple(blocks))
    num_keypoints = None
    if "final_layer.weight" in state_dict:
        out_channels, in_channels, kh, kw = shape("final_layer.weight")
        if (kh, kw) != (1, 1) or in_channels != width:
            raise CheckpointError(f"{path}: final layer {shape('final_layer.weight')} is not "
                                  f"a 1x1 convolution from the {width}-wide branch")
        num_keypoints = out_channels
    uniform = {n for counts in stage_blocks for n in counts}
    architecture = dict(width=width, num_keypoints=num_keypoints,
                        stage_modules=tuple(stage_modules), stage1_blocks=stage1_blocks,
                        stem_width=stem_width)
    if len(uniform) == 1:
        architecture.update(num_blocks=uniform.pop(), stage_blocks=None)
    else:
        architecture.update(num_blocks=4, stage_blocks=tuple(stage_blocks))
    return architecture


def _count(state_dict, pattern, path):
    """How many distinct indices ``(\\d+)`` in ``pattern`` the names hold (0..n-1 checked)."""
    regex = re.compile(pattern)
    indices = {int(m.group(1)) for k in state_dict if (m := regex.match(k))}
    if not indices or indices != set(range(len(indices))):
        raise CheckpointError(f"{path}: indices of {pattern!r} are not 0..n-1: "
                              f"{sorted(indices)}")
    return len(indices)


@dataclasses.dataclass
class LoadReport:
    """What ``assign_weights`` did, by Keras weight path."""

    loaded: list = dataclasses.field(default_factory=list)
    skipped: list = dataclasses.field(default_factory=list)  # in the source, not the model
    mismatched: list = dataclasses.field(default_factory=list)  # "path: (src) vs (model)"
    fresh: list = dataclasses.field(default_factory=list)  # in the model, not the source

    def as_dict(self):
        return dataclasses.asdict(self)

    def summary(self):
        return (f"{len(self.loaded)} weights loaded, {len(self.skipped)} skipped, "
                f"{len(self.mismatched)} shape mismatches, {len(self.fresh)} left fresh")


def assign_weights(model, weights, source, allow_partial=False):
    """Assign ``{Keras weight path: array}`` into ``model`` by name and shape.

    Args:
        model: a Keras model whose weight paths are ``layer/variable``.
        weights: dict of weight path → NumPy array.
        source: str, where the weights come from (for messages).
        allow_partial: bool, leave a weight of another shape fresh (and list it) instead
            of raising. Default False.

    Returns:
        A ``LoadReport``. Model weights absent from ``weights`` (PSA layers, a new head)
        stay as they are and are listed as fresh.

    Raises:
        ValueError: naming the first mismatched weight, unless ``allow_partial``.
    """
    report = LoadReport()
    remaining = dict(weights)
    for variable in model.weights:
        value = remaining.pop(variable.path, None)
        if value is None:
            report.fresh.append(variable.path)
            continue
        if tuple(value.shape) != tuple(variable.shape):
            message = (f"{variable.path}: {tuple(value.shape)} in {source}, "
                       f"{tuple(variable.shape)} in the model")
            if not allow_partial:
                raise ValueError(f"shape mismatch for {message} (allow partial loading to "
                                 "leave such layers fresh)")
            report.mismatched.append(message)
            continue
        variable.assign(value.astype(variable.dtype))
        report.loaded.append(variable.path)
    report.skipped = sorted(remaining)
    logger.info("%s: %s", source, report.summary())
    return report


def load_pretrained_into(model, checkpoint):
    """Load a ``PretrainedCheckpoint`` into a PSA-free ``HRNet`` strictly.

    Every tensor must land in a model weight and every model weight must receive one,
    except the pose ``final_layer`` of an ImageNet checkpoint (which has none).

    Returns:
        The ``LoadReport``.

    Raises:
        CheckpointError: naming unused tensors, missing tensors or shape mismatches.
    """
    weights = checkpoint.keras_weights()
    try:
        report = assign_weights(model, weights, checkpoint.path)
    except ValueError as e:
        raise CheckpointError(f"{checkpoint.path}: {e}") from None
    missing = [p for p in report.fresh
               if not (checkpoint.layout == "imagenet-classification"
                       and p.startswith("final_layer/"))]
    problems = []
    if report.skipped:
        problems.append(f"{len(report.skipped)} tensors have no Keras weight: "
                        f"{', '.join(report.skipped[:8])}")
    if missing:
        problems.append(f"{len(missing)} Keras weights have no tensor: {', '.join(missing[:8])}")
    if problems:
        raise CheckpointError(f"{checkpoint.path}: " + "; ".join(problems))
    return report


def describe_architecture(architecture):
    """One line: ``W32, modules (1, 4, 3), blocks 4 per branch, ...``."""
    blocks = (f"blocks per branch {architecture['stage_blocks']}"
              if architecture.get("stage_blocks") else
              f"{architecture['num_blocks']} blocks per branch")
    keypoints = architecture.get("num_keypoints")
    return (f"HRNet-W{architecture['width']}, stem {architecture['stem_width']}, "
            f"{architecture['stage1_blocks']} bottlenecks, stage modules "
            f"{tuple(architecture['stage_modules'])}, {blocks}, "
            f"{keypoints if keypoints is not None else 'no'} keypoint heatmaps")


# Official PSA_p / PSA_s (github.com/DeLightCMU/PSA, semantic-segmentation/network/PSA.py)
# state dict entries → (branch sublayer, weight attribute, kind) of an official-form
# ``psa.PolarizedSelfAttention``. "kernel": a 1×1 conv (C_out, C_in, 1, 1) → (C_in, C_out);
# "vector": a conv bias (C,); "layernorm": LayerNorm([C/8, 1, 1])'s affine (C/8, 1, 1).
_OFFICIAL_PSA_COMMON = {
    "conv_q_right.weight": ("channel", "wq", "kernel"),
    "conv_v_right.weight": ("channel", "wv", "kernel"),
    "conv_q_left.weight": ("spatial", "wq", "kernel"),
    "conv_v_left.weight": ("spatial", "wv", "kernel"),
}
_OFFICIAL_PSA_KEYS = {
    "parallel": {**_OFFICIAL_PSA_COMMON, "conv_up.weight": ("channel", "wz", "kernel")},
    "sequential": {**_OFFICIAL_PSA_COMMON,
                   "conv_up.0.weight": ("channel", "wz1", "kernel"),
                   "conv_up.0.bias": ("channel", "bz1", "vector"),
                   "conv_up.1.weight": ("channel", "gamma", "layernorm"),
                   "conv_up.1.bias": ("channel", "beta", "layernorm"),
                   "conv_up.3.weight": ("channel", "wz2", "kernel"),
                   "conv_up.3.bias": ("channel", "bz2", "vector")},
}


def _torch_shape(keras_shape, kind):
    """The official tensor's shape for a Keras weight of ``keras_shape``."""
    if kind == "kernel":
        c_in, c_out = keras_shape
        return (c_out, c_in, 1, 1)
    if kind == "layernorm":
        return (keras_shape[0], 1, 1)
    return tuple(keras_shape)


def load_official_psa(layer, state_dict, prefix=""):
    """Set an official-form ``PolarizedSelfAttention`` from an official ``PSA_p``/``PSA_s``
    state dict (github.com/DeLightCMU/PSA), strictly.

    Key names are the official module's (``conv_q_right``, ``conv_v_right``, ``conv_up``
    for ``PSA_p`` or ``conv_up.0/.1/.3`` for ``PSA_s``, ``conv_q_left``, ``conv_v_left``,
    each ``.weight``/``.bias``), after ``prefix``. Entries outside ``prefix`` are ignored;
    under it every entry must be one of these and every one of these must be there.
    An unbuilt layer is built for the channel count of ``conv_v_right.weight``.

    Args:
        layer: ``psa.PolarizedSelfAttention`` with ``form="official"``; its ``mode``
            says which module the state dict is (parallel: ``PSA_p``).
        state_dict: dict of name → array (``load_torch_checkpoint``'s result), or the
            path of a ``.pth`` file, read with the torch-free reader.
        prefix: str, the prefix of the module's keys in ``state_dict`` (``"p."``,
            ``"backbone.psa."``). Default "".

    Returns:
        list of str, the state-dict keys loaded.

    Raises:
        ValueError: the layer is not an official-form PSA layer.
        CheckpointError: naming a missing, extra or misshaped tensor.

    Example:
        >>> layer = PolarizedSelfAttention(mode="parallel", form="official")
        >>> load_official_psa(layer, "psa_official.pth", prefix="p.")
    """
    from psa import PolarizedSelfAttention

    source = "state dict"
    if isinstance(state_dict, (str, os.PathLike)):
        source = os.fspath(state_dict)
        state_dict = load_torch_checkpoint(source)
    if not isinstance(layer, PolarizedSelfAttention) or layer.form != "official":
        raise ValueError("load_official_psa needs a PolarizedSelfAttention with "
                         f"form='official', got {type(layer).__name__} "
                         f"(form {getattr(layer, 'form', None)!r})")
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{source}: expected a state dict (name → tensor), got "
                              f"{type(state_dict).__name__}")
    module = "PSA_p" if layer.mode == "parallel" else "PSA_s"
    expected = _OFFICIAL_PSA_KEYS[layer.mode]
    ours = {key[len(prefix):]: value for key, value in state_dict.items()
            if isinstance(key, str) and key.startswith(prefix)}
    missing = [prefix + key for key in expected if key not in ours]
    extra = [prefix + key for key in ours if key not in expected]
    if missing or extra:
        problems = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unexpected {', '.join(extra)}"] if extra else [])
        raise CheckpointError(f"{source}: not an official {module} state dict under prefix "
                              f"{prefix!r}: " + "; ".join(problems))
    if not layer.built:
        shape = np.shape(ours["conv_v_right.weight"])
        if len(shape) != 4:
            raise CheckpointError(f"{source}: {prefix}conv_v_right.weight has shape {shape}, "
                                  "expected (C/2, C, 1, 1)")
        layer.build((None, None, None, int(shape[1])))
    values = []
    for key, (branch, name, kind) in expected.items():
        variable = getattr(getattr(layer, branch), name)
        value = np.asarray(ours[key])
        want = _torch_shape(tuple(variable.shape), kind)
        if tuple(value.shape) != want:
            raise CheckpointError(f"{source}: {prefix}{key} has shape {tuple(value.shape)}, "
                                  f"expected {want} for {module} with C={layer.channels} "
                                  f"(Keras {variable.path})")
        if kind == "kernel":
            value = value[:, :, 0, 0].T  # (C_out, C_in, 1, 1) → (C_in, C_out)
        values.append((variable, value.reshape(variable.shape)))
    for variable, value in values:  # only after every tensor was checked
        variable.assign(value.astype(np.float32))
    return [prefix + key for key in expected]
