"""HRNet for top-down pose estimation, with Polarized Self-Attention placed where asked.

The architecture is the official one (Sun et al., "Deep High-Resolution Representation
Learning for Human Pose Estimation", CVPR 2019; deep-high-resolution-net.pytorch,
``lib/models/pose_hrnet.py``): a stem of two stride-2 3×3 convolutions, stage 1 of
bottleneck blocks, then stages 2–4 of high-resolution modules with 2/3/4 parallel
branches of widths W·(1, 2, 4, 8) and multi-resolution fusion, and a 1×1 convolution from
the highest-resolution branch to one heatmap per keypoint at 1/4 of the input size.

Faithfulness notes, each of which matters for loading converted official weights:

* every convolution but the final one has no bias, as in the official code;
* BatchNorm matches PyTorch's defaults: momentum 0.1 there is 0.9 here, epsilon 1e-5;
* the stride-2 3×3 convolutions pad one pixel on every side (explicit zero padding, then a
  ``valid`` convolution). Keras ``padding="same"`` pads only bottom/right for even sizes,
  which would shift every feature map by one pixel;
* the last module of stage 4 outputs only its highest-resolution branch (the official
  ``multi_scale_output=False``), so it has no fusion paths into the lower branches;
* weights are initialised as the official ``init_weights``: N(0, 0.001) convolutions.

Layer names mirror the official module hierarchy with 0-based indices, so that a
checkpoint maps one to one: ``stage3.1.branches.2.0.conv1`` is ``stage3_m1_b2_block0_conv1``
and ``stage3.1.fuse_layers.2.0.1.0`` is ``stage3_m1_fuse_2_0_down1_conv``.
"""

import contextlib
import contextvars

import keras

from psa import PSA_FORMS, PSA_MODES, PolarizedSelfAttention

PSA_PLACEMENTS = ("none", "branch", "block")

# PyTorch BatchNorm2d defaults (momentum 0.1 weights the new batch; Keras weights the old).
_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5
_BOTTLENECK_EXPANSION = 4
# Input height and width must divide by 2^5: stem (×4) and three branch halvings (×8).
_INPUT_MULTIPLE = 32


# Set inside ``weights_loaded_after()``: (on_built callback or None,) while a checkpoint
# loads, so every weight is about to be overwritten.
_WEIGHTS_LOADED_AFTER = contextvars.ContextVar("hrnet_weights_loaded_after", default=None)


@contextlib.contextmanager
def weights_loaded_after(on_built=None):
    """Build HRNets with zero convolution kernels inside this block, for a model whose
    every weight is loaded right after (``pose.engine.checkpoint.load_model``).

    Drawing a W32's 28 M normal numbers that the checkpoint overwrites at once costs
    ~0.6 s of CPU, a tenth of ``tools/infer.py``'s start-up from a ``.keras``
    (BENCHMARKS.md, "Start-up of inference"). Nothing else changes: layer names, shapes
    and the config are the same, so the checkpoint loads as usual.

    Args:
        on_built: callable or None; called with each HRNet that ``from_config`` builds
            in the block (Keras' deserialization), before Keras loads its weights: work
            it starts in a thread overlaps with the loading. Default None.

    Example:
        >>> with weights_loaded_after():
        ...     model = keras.saving.load_model("run/best.keras")
    """
    token = _WEIGHTS_LOADED_AFTER.set((on_built,))
    try:
        yield
    finally:
        _WEIGHTS_LOADED_AFTER.reset(token)


def _conv_initializer():
    if _WEIGHTS_LOADED_AFTER.get() is not None:
        return "zeros"
    return keras.initializers.RandomNormal(stddev=0.001)


def _conv(x, filters, kernel_size, name, strides=1):
    """A bias-free convolution padded as PyTorch's ``padding=kernel_size // 2``."""
    if strides == 1:
        padding = "same"  # symmetric for odd kernels at stride 1: same as PyTorch
    else:
        x = keras.layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
        padding = "valid"
    return keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, use_bias=False,
        kernel_initializer=_conv_initializer(), name=name)(x)


def _batch_norm(x, name):
    return keras.layers.BatchNormalization(
        momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name=name)(x)


def _conv_bn(x, filters, kernel_size, name, strides=1, relu=True):
    """conv → BN (→ ReLU), named ``{name}_conv``, ``{name}_bn``, ``{name}_relu``."""
    x = _conv(x, filters, kernel_size, f"{name}_conv", strides=strides)
    x = _batch_norm(x, f"{name}_bn")
    if relu:
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return x


def apply_bottleneck_block(x, planes, name):
    """The official ``Bottleneck``: 1×1 → 3×3 → 1×1 (×4 channels), residual, ReLU.

    A 1×1 conv + BN projects the residual when the channel count changes (the first block
    of stage 1), named ``{name}_downsample_conv`` / ``{name}_downsample_bn`` for the
    official ``downsample.0`` / ``downsample.1``.
    """
    out_channels = planes * _BOTTLENECK_EXPANSION
    residual = x
    if x.shape[-1] != out_channels:
        residual = _conv(x, out_channels, 1, f"{name}_downsample_conv")
        residual = _batch_norm(residual, f"{name}_downsample_bn")
    y = _conv(x, planes, 1, f"{name}_conv1")
    y = _batch_norm(y, f"{name}_bn1")
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv(y, planes, 3, f"{name}_conv2")
    y = _batch_norm(y, f"{name}_bn2")
    y = keras.layers.ReLU(name=f"{name}_relu2")(y)
    y = _conv(y, out_channels, 1, f"{name}_conv3")
    y = _batch_norm(y, f"{name}_bn3")
    y = keras.layers.Add(name=f"{name}_add")([y, residual])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def apply_basic_block(x, filters, name, psa_mode=None, psa_form="paper"):
    """The official ``BasicBlock``: 3×3 → 3×3, residual, ReLU.

    With ``psa_mode`` set, a PSA layer (``{name}_psa``, of ``psa_form``) follows the first
    conv/BN/ReLU, as the PSA paper places it in every residual block. Branch widths never
    change inside a high-resolution module, so the residual needs no projection.
    """
    residual = x
    y = _conv(x, filters, 3, f"{name}_conv1")
    y = _batch_norm(y, f"{name}_bn1")
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    if psa_mode is not None:
        y = PolarizedSelfAttention(mode=psa_mode, form=psa_form, name=f"{name}_psa")(y)
    y = _conv(y, filters, 3, f"{name}_conv2")
    y = _batch_norm(y, f"{name}_bn2")
    y = keras.layers.Add(name=f"{name}_add")([y, residual])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def apply_transition(branches, widths, name):
    """The official ``_make_transition_layer``: adapt existing branches, spawn a new one.

    Existing branches whose width changes get a 3×3 conv/BN/ReLU (``{name}_b{i}``); the
    new lowest-resolution branch is a stride-2 3×3 conv/BN/ReLU from the previous lowest
    branch (``{name}_b{i}_down0``).
    """
    outputs = []
    for i, width in enumerate(widths):
        if i < len(branches):
            x = branches[i]
            if x.shape[-1] != width:
                x = _conv_bn(x, width, 3, f"{name}_b{i}")
            outputs.append(x)
        else:
            # The official code chains (i + 1 - previous branch count) stride-2 convs;
            # stages add one branch at a time, so that is always exactly one.
            outputs.append(_conv_bn(branches[-1], width, 3, f"{name}_b{i}_down0", strides=2))
    return outputs


def apply_fusion(branches, num_outputs, name):
    """The official ``_make_fuse_layers`` and its forward pass.

    Output i sums every branch j brought to branch i's resolution and width: j > i by a
    1×1 conv + BN then nearest upsampling by 2^(j−i); j < i by i−j stride-2 3×3 convs + BN
    (ReLU between them, none after the last; intermediate ones keep branch j's width).
    The sum goes through a ReLU.
    """
    outputs = []
    for i in range(num_outputs):
        width = branches[i].shape[-1]
        terms = []
        for j, x in enumerate(branches):
            path = f"{name}_fuse_{i}_{j}"
            if j > i:
                x = _conv(x, width, 1, f"{path}_conv")
                x = _batch_norm(x, f"{path}_bn")
                x = keras.layers.UpSampling2D(
                    2 ** (j - i), interpolation="nearest", name=f"{path}_up")(x)
            elif j < i:
                for k in range(i - j):
                    last = k == i - j - 1
                    x = _conv_bn(x, width if last else x.shape[-1], 3, f"{path}_down{k}",
                                 strides=2, relu=not last)
            terms.append(x)
        y = keras.layers.Add(name=f"{name}_fuse_{i}_add")(terms)
        outputs.append(keras.layers.ReLU(name=f"{name}_fuse_{i}_relu")(y))
    return outputs


def apply_hr_module(branches, num_blocks, name, multi_scale_output=True,
                    psa_placement="none", psa_mode="parallel", psa_form="paper"):
    """One high-resolution module: basic blocks on every branch, then fusion.

    ``num_blocks`` is an int (every branch) or one count per branch.
    """
    if isinstance(num_blocks, int):
        num_blocks = (num_blocks,) * len(branches)
    block_psa = psa_mode if psa_placement == "block" else None
    processed = []
    for b, x in enumerate(branches):
        for k in range(num_blocks[b]):
            x = apply_basic_block(x, x.shape[-1], f"{name}_b{b}_block{k}", psa_mode=block_psa,
                                  psa_form=psa_form)
        if psa_placement == "branch":
            x = PolarizedSelfAttention(mode=psa_mode, form=psa_form, name=f"{name}_b{b}_psa")(x)
        processed.append(x)
    if len(processed) == 1:
        return processed
    return apply_fusion(processed, len(processed) if multi_scale_output else 1, name)


@keras.saving.register_keras_serializable(package="pose")
class HRNet(keras.Model):
    """HRNet pose network: image → one heatmap per keypoint at 1/4 resolution.

    Sun et al., CVPR 2019 (arXiv 1902.09212), with Polarized Self-Attention (Liu et al.,
    arXiv 2107.00782) optionally placed after each branch or inside every basic block.

    Args:
        width: int, width W of the highest-resolution branch; branches are W·(1, 2, 4, 8).
            32 and 48 are the official pose models. Default 32.
        num_keypoints: int, heatmaps predicted. Default 17 (COCO).
        input_size: (width, height) of the input crop, each a multiple of 32, or None for
            any size (still multiples of 32 at run time). Default (192, 256).
        psa_placement: "none", "branch" (one PSA on each branch's output in every module of
            stages 2–4, before fusion; this project's default) or "block" (after the first
            conv/BN/ReLU of every basic block of stages 2–4, as the PSA paper). Default
            "branch".
        psa_mode: "parallel" or "sequential" PSA layout. Default "parallel".
        psa_form: "paper" (the PSA paper's equations), "official" (the released code's
            ``PSA_p``/``PSA_s``) or "port" (the common Keras port); ``psa.layers`` says
            how they differ. Default "paper" (what every model saved before the forms
            existed is).
        stage_modules: int triple, high-resolution modules in stages 2, 3, 4. Default
            (1, 4, 3) as the official models.
        num_blocks: int, basic blocks per branch in every module. Default 4.
        stage_blocks: None, or basic blocks per branch for stages 2, 3, 4 (2, 3 and 4
            counts, as the official ``NUM_BLOCKS`` of each stage), overriding
            ``num_blocks``: ``((1, 1), (2, 2, 2), (1, 1, 1, 1))``. Default None.
        stage1_blocks: int, bottleneck blocks in stage 1. Default 4.
        stem_width: int, channels of the stem; stage 1 widens to 4× this. Default 64.

    Example:
        >>> model = HRNet(width=32, psa_placement="none")
        >>> model.count_params()  # 28,536,113 trainable + BatchNorm statistics
    """

    def __init__(self, width=32, num_keypoints=17, input_size=(192, 256),
                 psa_placement="branch", psa_mode="parallel", stage_modules=(1, 4, 3),
                 num_blocks=4, stage1_blocks=4, stem_width=64, stage_blocks=None,
                 psa_form="paper", name="hrnet", trainable=True):
        check_arguments(width, num_keypoints, input_size, psa_placement, psa_mode,
                        stage_modules, num_blocks, stage1_blocks, stem_width, stage_blocks,
                        psa_form)
        stage_blocks = _check_stage_blocks(stage_blocks)
        input_w, input_h = input_size if input_size is not None else (None, None)
        image = keras.Input(shape=(input_h, input_w, 3), name="image")

        x = image
        for k in (1, 2):  # official conv1/bn1, conv2/bn2
            x = _conv(x, stem_width, 3, f"stem_conv{k}", strides=2)
            x = _batch_norm(x, f"stem_bn{k}")
            x = keras.layers.ReLU(name=f"stem_relu{k}")(x)
        for k in range(stage1_blocks):
            x = apply_bottleneck_block(x, stem_width, f"layer1_block{k}")

        branches = [x]
        for stage, num_modules in enumerate(stage_modules, start=2):
            widths = [width * 2 ** b for b in range(stage)]
            branches = apply_transition(branches, widths, f"transition{stage - 1}")
            for m in range(num_modules):
                last_module_of_network = stage == 4 and m == num_modules - 1
                branches = apply_hr_module(
                    branches, num_blocks if stage_blocks is None else stage_blocks[stage - 2],
                    f"stage{stage}_m{m}",
                    multi_scale_output=not last_module_of_network,
                    psa_placement=psa_placement, psa_mode=psa_mode, psa_form=psa_form)

        heatmaps = keras.layers.Conv2D(
            num_keypoints, 1, use_bias=True, kernel_initializer=_conv_initializer(),
            name="final_layer", dtype="float32")(branches[0])
        # No **kwargs: Keras' functional Model drops the keywords it does not know without a
        # word, so a misspelt HRNet(input_sise=...) would build the default network.
        super().__init__(inputs=image, outputs=heatmaps, name=name, trainable=trainable)

        self.width = width
        self.num_keypoints = num_keypoints
        self.input_size = tuple(input_size) if input_size is not None else None
        self.psa_placement = psa_placement
        self.psa_mode = psa_mode
        self.psa_form = psa_form
        self.stage_modules = tuple(stage_modules)
        self.num_blocks = num_blocks
        self.stage1_blocks = stage1_blocks
        self.stem_width = stem_width
        self.stage_blocks = stage_blocks

    def get_config(self):
        return {
            "name": self.name,
            "width": self.width,
            "num_keypoints": self.num_keypoints,
            "input_size": self.input_size,
            "psa_placement": self.psa_placement,
            "psa_mode": self.psa_mode,
            "psa_form": self.psa_form,
            "stage_modules": self.stage_modules,
            "num_blocks": self.num_blocks,
            "stage1_blocks": self.stage1_blocks,
            "stem_width": self.stem_width,
            "stage_blocks": self.stage_blocks,
        }

    @classmethod
    def from_config(cls, config):
        model = cls(**config)
        loading = _WEIGHTS_LOADED_AFTER.get()
        if loading is not None and loading[0] is not None:
            loading[0](model)
        return model


def check_arguments(width, num_keypoints, input_size, psa_placement, psa_mode,
                    stage_modules, num_blocks, stage1_blocks, stem_width, stage_blocks=None,
                    psa_form="paper"):
    """``HRNet``'s argument checks, without building anything (``ValueError`` naming the
    argument and the value); tools run them before they write anything."""
    for arg_name, value in (("width", width), ("num_keypoints", num_keypoints),
                            ("num_blocks", num_blocks), ("stage1_blocks", stage1_blocks),
                            ("stem_width", stem_width)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"HRNet {arg_name} must be a positive integer, got {value!r}")
    if psa_placement not in PSA_PLACEMENTS:
        raise ValueError(f"HRNet psa_placement must be one of {PSA_PLACEMENTS}, "
                         f"got {psa_placement!r}")
    if psa_mode not in PSA_MODES:
        raise ValueError(f"HRNet psa_mode must be one of {PSA_MODES}, got {psa_mode!r}")
    if psa_form not in PSA_FORMS:
        raise ValueError(f"HRNet psa_form must be one of {PSA_FORMS}, got {psa_form!r}")
    if (len(tuple(stage_modules)) != 3
            or not all(isinstance(m, int) and m >= 1 for m in stage_modules)):
        raise ValueError("HRNet stage_modules must be three positive integers (modules in "
                         f"stages 2, 3, 4), got {stage_modules!r}")
    if input_size is not None:
        if (len(tuple(input_size)) != 2
                or not all(isinstance(s, int) and s > 0 and s % _INPUT_MULTIPLE == 0
                           for s in input_size)):
            raise ValueError(f"HRNet input_size must be (width, height), each a positive "
                             f"multiple of {_INPUT_MULTIPLE}, got {input_size!r}")
    _check_stage_blocks(stage_blocks)


def _check_stage_blocks(stage_blocks):
    """``stage_blocks`` as a tuple of per-branch tuples (None stays None)."""
    if stage_blocks is None:
        return None
    try:
        blocks = tuple(tuple(counts) for counts in stage_blocks)
    except TypeError:
        blocks = None
    if (blocks is None or tuple(len(b) for b in blocks) != (2, 3, 4)
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1
                       for counts in blocks for n in counts)):
        raise ValueError("HRNet stage_blocks must hold 2, 3 and 4 positive integers (basic "
                         f"blocks per branch in stages 2, 3, 4), got {stage_blocks!r}")
    return blocks
