"""HRNet: the official architecture's counts, padding, names, fusion paths, PSA placement."""


import keras
import numpy as np
import pytest

from pose.models.complexity import count_macs, count_trainable_params, describe_model
from pose.models.hrnet import HRNet, _conv, weights_loaded_after
from psa import PolarizedSelfAttention


@pytest.fixture(scope="module")
def tiny_models(tiny_hrnet):
    """One tiny model per PSA placement, built once for the module."""
    return {placement: HRNet(psa_placement=placement, **tiny_hrnet)
            for placement in ("none", "branch", "block")}


@pytest.mark.parametrize("width, expected", [(32, 28_536_113), (48, 63_595_745)])
def test_trainable_parameters_equal_the_official_models(built_hrnet, width, expected):
    # The official pose_hrnet_w32/w48 checkpoints' parameter counts (17 keypoints).
    model = built_hrnet(width=width, psa_placement="none")
    assert count_trainable_params(model) == expected


def test_w32_macs_match_the_official_complexity_table(built_hrnet):
    # Official table: 7.1 GFLOPs for W32 at 256x192, computed as MACs / 2**30.
    model = built_hrnet(width=32, input_size=(192, 256), psa_placement="none")
    macs = count_macs(model)
    assert abs(macs - 7.645e9) / 7.645e9 < 0.01
    assert round(macs / 2**30, 1) == 7.1


def test_output_is_one_heatmap_per_keypoint_at_quarter_resolution(tiny_models):
    model = tiny_models["branch"]
    out = model(np.random.default_rng(0).normal(size=(2, 64, 32, 3)).astype("float32"))
    assert tuple(out.shape) == (2, 16, 8, 17)
    assert out.dtype == "float32"


def test_unknown_input_size_runs_at_several_sizes(tiny_hrnet):
    model = HRNet(psa_placement="branch", **{**tiny_hrnet, "input_size": None})
    for height, width in ((64, 32), (96, 64)):
        out = model(np.zeros((1, height, width, 3), "float32"))
        assert tuple(out.shape) == (1, height // 4, width // 4, 17)


def test_stride2_conv_pads_one_pixel_on_every_side_like_pytorch():
    # Reference: PyTorch Conv2d(k=3, stride=2, padding=1) restated in NumPy.
    rng = np.random.default_rng(1)
    image = rng.normal(size=(1, 8, 6, 2)).astype("float32")
    inputs = keras.Input((8, 6, 2))
    model = keras.Model(inputs, _conv(inputs, 3, 3, "probe", strides=2))
    kernel = rng.normal(size=(3, 3, 2, 3)).astype("float32")
    model.get_layer("probe").set_weights([kernel])

    padded = np.pad(image[0], ((1, 1), (1, 1), (0, 0)))
    expected = np.zeros((4, 3, 3), "float32")
    for oy in range(4):
        for ox in range(3):
            window = padded[2 * oy:2 * oy + 3, 2 * ox:2 * ox + 3]  # (3, 3, C_in)
            expected[oy, ox] = np.einsum("hwc,hwco->o", window, kernel)
    np.testing.assert_allclose(model(image)[0], expected, atol=1e-5)


def test_layer_names_mirror_the_official_module_hierarchy(built_hrnet):
    # The full-depth network (names depend on neither width, input size nor PSA mode): the
    # one of test_psa_counts_at_w32, built once.
    model = built_hrnet(width=32, psa_placement="branch", psa_mode="sequential")
    names = {layer.name for layer in model.layers}
    for name in ("stem_conv1", "stem_bn2", "layer1_block0_downsample_conv", "layer1_block3_conv3",
                 "transition1_b0_conv", "transition1_b1_down0_conv", "transition3_b3_down0_bn",
                 "stage2_m0_b1_block3_conv2", "stage3_m1_b2_block0_conv1",
                 "stage3_m1_fuse_2_0_down1_conv", "stage3_m1_fuse_0_2_up",
                 "stage4_m2_b3_psa", "final_layer"):
        assert name in names, name
    # transition2/3 keep the existing branches untouched (same widths): no conv on them.
    assert "transition2_b0_conv" not in names
    # The last module of stage 4 returns only the highest-resolution branch.
    assert "stage4_m2_fuse_1_0_down0_conv" not in names
    assert "stage4_m1_fuse_1_0_down0_conv" in names


def test_fusion_paths_follow_the_official_make_fuse_layers(tiny_models):
    model = tiny_models["none"]  # widths 8, 16, 32, 64

    def out_shape(name):
        return tuple(model.get_layer(name).output.shape[1:])

    # Down 0 → 2: a stride-2 conv keeping branch 0's width (with ReLU), then one to width 32.
    assert out_shape("stage3_m0_fuse_2_0_down0_conv") == (8, 4, 8)
    assert "stage3_m0_fuse_2_0_down0_relu" in {layer.name for layer in model.layers}
    assert out_shape("stage3_m0_fuse_2_0_down1_conv") == (4, 2, 32)
    assert "stage3_m0_fuse_2_0_down1_relu" not in {layer.name for layer in model.layers}
    # Up 2 → 0: a 1x1 conv to width 8, then nearest upsampling by 4.
    assert model.get_layer("stage3_m0_fuse_0_2_conv").kernel_size == (1, 1)
    assert out_shape("stage3_m0_fuse_0_2_up") == (16, 8, 8)


def test_fusion_upsampling_is_nearest_neighbour(tiny_models):
    # PyTorch's nn.Upsample(scale_factor=4, mode="nearest") repeats every pixel 4x4 times.
    layer = tiny_models["none"].get_layer("stage3_m0_fuse_0_2_up")
    x = np.random.default_rng(3).normal(size=(2, 4, 2, 8)).astype("float32")
    expected = np.repeat(np.repeat(x, 4, axis=1), 4, axis=2)  # (2, 16, 8, 8)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), expected)


def _numpy_batch_norm(x, gamma, beta, mean, variance, epsilon=1e-5):
    """PyTorch's BatchNorm2d in inference: (x - mean) / sqrt(var + eps) · gamma + beta."""
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def test_batch_norm_matches_pytorch_numerically(tiny_models):
    # PyTorch defaults: eps 1e-5 and momentum 0.1 (Keras' momentum 0.9 is 1 - 0.1). Small
    # variances make the epsilon visible: Keras' default 1e-3 would change the output ~100x.
    model = tiny_models["none"]
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms
    rng = np.random.default_rng(4)
    for layer in norms:
        channels = layer.gamma.shape[0]
        gamma, beta = rng.normal(size=(2, channels)).astype("float32")
        mean = rng.normal(size=channels).astype("float32")
        variance = rng.uniform(1e-6, 1e-5, size=channels).astype("float32")
        saved = [w.numpy() for w in layer.weights]
        layer.set_weights([gamma, beta, mean, variance])
        x = (mean + rng.normal(size=(2, 3, 3, channels)) * 1e-3).astype("float32")
        got = keras.ops.convert_to_numpy(layer(x, training=False))
        np.testing.assert_allclose(got, _numpy_batch_norm(x, gamma, beta, mean, variance),
                                   rtol=1e-4, atol=1e-4)
        # One training step moves the running mean 0.1 of the way to the batch mean.
        layer(x, training=True)
        np.testing.assert_allclose(layer.moving_mean.numpy(),
                                   0.9 * mean + 0.1 * x.mean(axis=(0, 1, 2)), rtol=1e-5,
                                   atol=1e-6)
        layer.set_weights(saved)


def test_only_the_final_layer_has_a_bias(tiny_models):
    model = tiny_models["none"]
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [layer.name for layer in convs if layer.use_bias] == ["final_layer"]


def _psa_layer_names(model):
    return [layer.name for layer in model.layers if isinstance(layer, PolarizedSelfAttention)]


def test_psa_placement(tiny_models):
    # Tiny model: one module per stage with 2, 3, 4 branches, one block per branch.
    assert _psa_layer_names(tiny_models["none"]) == []
    branch = _psa_layer_names(tiny_models["branch"])
    assert len(branch) == 2 + 3 + 4 and "stage3_m0_b2_psa" in branch
    block = _psa_layer_names(tiny_models["block"])
    assert len(block) == 2 + 3 + 4 and "stage3_m0_b2_block0_psa" in block
    # Inside the block the PSA sits between the first conv/BN/ReLU and the second conv.
    psa = tiny_models["block"].get_layer("stage3_m0_b2_block0_psa")
    assert psa.input is tiny_models["block"].get_layer("stage3_m0_b2_block0_relu1").output


def test_psa_counts_at_w32(built_hrnet):
    # Stages 2-4 have 1x2 + 4x3 + 3x4 = 26 branch outputs, each with 4 basic blocks.
    for placement, expected in (("branch", 26), ("block", 104)):
        model = built_hrnet(width=32, psa_placement=placement, psa_mode="sequential")
        layers = [layer for layer in model.layers if isinstance(layer, PolarizedSelfAttention)]
        assert len(layers) == expected
        assert {layer.mode for layer in layers} == {"sequential"}


_STAGE_BLOCKS = ("HRNet stage_blocks must hold 2, 3 and 4 positive integers (basic blocks per "
                 "branch in stages 2, 3, 4), got ")


@pytest.mark.parametrize("kwargs, message", [
    (dict(psa_placement="everywhere"),
     "HRNet psa_placement must be one of ('none', 'branch', 'block'), got 'everywhere'"),
    (dict(psa_mode="serial"),
     "HRNet psa_mode must be one of ('parallel', 'sequential'), got 'serial'"),
    (dict(input_size=(190, 256)), "HRNet input_size must be (width, height), each a positive "
                                  "multiple of 32, got (190, 256)"),
    (dict(input_size=(192,)), "HRNet input_size must be (width, height), each a positive "
                              "multiple of 32, got (192,)"),
    (dict(width=0), "HRNet width must be a positive integer, got 0"),
    (dict(num_keypoints=True), "HRNet num_keypoints must be a positive integer, got True"),
    (dict(stem_width=64.0), "HRNet stem_width must be a positive integer, got 64.0"),
    (dict(stage_modules=(1, 4)), "HRNet stage_modules must be three positive integers (modules "
                                 "in stages 2, 3, 4), got (1, 4)"),
    (dict(stage_modules=(1, 0, 3)), "HRNet stage_modules must be three positive integers "
                                    "(modules in stages 2, 3, 4), got (1, 0, 3)"),
    (dict(stage_blocks=((1, 1), (1, 1), (1, 1, 1, 1))),
     _STAGE_BLOCKS + "((1, 1), (1, 1), (1, 1, 1, 1))"),
    (dict(stage_blocks=((1, 0), (1, 1, 1), (1, 1, 1, 1))),
     _STAGE_BLOCKS + "((1, 0), (1, 1, 1), (1, 1, 1, 1))"),
    (dict(stage_blocks=4), _STAGE_BLOCKS + "4"),
])
def test_bad_arguments_name_the_received_value(kwargs, message):
    with pytest.raises(ValueError) as error:
        HRNet(**kwargs)
    assert str(error.value) == message


def test_a_misspelt_argument_is_refused_not_dropped(tiny_hrnet):
    # Keras' functional Model ignores keywords it does not know: passed on, this would
    # build the default 192x256 network.
    with pytest.raises(TypeError, match="unexpected keyword argument 'input_sise'"):
        HRNet(**dict(tiny_hrnet, input_sise=(256, 256)))
    assert not HRNet(**tiny_hrnet, trainable=False).trainable  # Keras' own keyword


def test_blocks_per_stage_and_branch(tiny_hrnet):
    # The official configs give NUM_BLOCKS per stage and branch (the fixtures: 1, 2, 1).
    uniform = HRNet(psa_placement="none", **dict(tiny_hrnet, num_blocks=2))
    explicit = HRNet(psa_placement="none", **dict(
        tiny_hrnet, num_blocks=4, stage_blocks=((2, 2), (2, 2, 2), (2, 2, 2, 2))))
    assert [w.path for w in explicit.weights] == [w.path for w in uniform.weights]
    mixed = HRNet(psa_placement="branch", **dict(
        tiny_hrnet, stage_blocks=[[1, 1], [1, 3, 1], [2, 1, 1, 1]]))
    names = {layer.name for layer in mixed.layers}
    assert {"stage3_m0_b1_block2_conv1", "stage4_m0_b0_block1_conv2"} <= names
    assert not {"stage3_m0_b0_block1_conv1", "stage4_m0_b1_block1_conv1"} & names
    assert mixed.get_config()["stage_blocks"] == ((1, 1), (1, 3, 1), (2, 1, 1, 1))
    rebuilt = HRNet.from_config(mixed.get_config())
    assert [w.path for w in rebuilt.weights] == [w.path for w in mixed.weights]


def test_a_config_without_psa_form_builds_the_paper_form(tiny_models):
    # HRNet configs saved before the forms existed have no psa_form key.
    config = tiny_models["branch"].get_config()
    assert config.pop("psa_form") == "paper"
    rebuilt = HRNet.from_config(config)
    layers = [layer for layer in rebuilt.layers if isinstance(layer, PolarizedSelfAttention)]
    assert len(layers) == 9 and {layer.form for layer in layers} == {"paper"}
    assert [w.path for w in rebuilt.weights] == [w.path for w in tiny_models["branch"].weights]
    with pytest.raises(ValueError, match="psa_form.*'torch'"):
        HRNet(psa_form="torch")


@pytest.mark.parametrize("form, mode, placement", [
    ("official", "parallel", "block"), ("official", "sequential", "branch"),
    ("port", "parallel", "branch"), ("port", "sequential", "block")])
def test_every_form_saves_loads_and_runs_in_mixed_precision(tiny_hrnet, randomized, tmp_path,
                                                            form, mode, placement):
    """The form reaches every PSA layer (each form in both modes and both placements) and
    the config; the ``.keras`` round trip is exact; a mixed-precision copy stays close (its
    PSA softmaxes and gates are computed in float32). The paper form: the tests above."""
    model = randomized(HRNet(psa_placement=placement, psa_mode=mode, psa_form=form,
                             **tiny_hrnet), seed=1)
    layers = [layer for layer in model.layers if isinstance(layer, PolarizedSelfAttention)]
    assert len(layers) == 9 and {(la.form, la.mode) for la in layers} == {(form, mode)}
    assert model.get_config()["psa_form"] == form
    assert describe_model(model)["psa"] == f"{placement}/{mode}/{form}"
    x = np.random.default_rng(0).normal(size=(2, 64, 32, 3)).astype("float32")
    want = keras.ops.convert_to_numpy(model(x))
    assert np.abs(want).max() > 0.01  # not the ~1e-11 of a fresh final layer
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.psa_form == form
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x)), want)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        mixed = HRNet(psa_placement=placement, psa_mode=mode, psa_form=form,
                      **tiny_hrnet)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    mixed.set_weights(model.get_weights())
    psa = next(la for la in mixed.layers if isinstance(la, PolarizedSelfAttention))
    assert psa.compute_dtype == "float16"
    got = keras.ops.convert_to_numpy(mixed(x)).astype(np.float32)
    assert np.abs(got - want).max() <= 0.02 * np.abs(want).max()


def test_fresh_kernels_are_drawn_as_the_official_init_weights(tiny_models):
    # Official init_weights: every conv N(0, 0.001), the final layer's bias 0. ~180,000
    # kernel values: the sample std is within 1% of 0.001 (its relative error ~0.2%).
    model = tiny_models["none"]
    kernels = np.concatenate([layer.kernel.numpy().ravel() for layer in model.layers
                              if isinstance(layer, keras.layers.Conv2D)])
    assert kernels.size > 50_000
    assert abs(kernels.std() / 0.001 - 1) < 0.01 and abs(kernels.mean()) < 2e-5
    assert not model.get_layer("final_layer").bias.numpy().any()


def test_models_built_for_loading_get_zero_kernels_and_are_handed_to_on_built(tiny_models):
    config = tiny_models["none"].get_config()
    built = []
    with weights_loaded_after(built.append):
        model = HRNet.from_config(config)
    assert built == [model]  # from_config hands over the model it built, once
    kernels = [w.numpy() for w in model.weights if w.name == "kernel"]
    # Every conv of the tiny net: stem 2, bottleneck 3 + downsample, transitions 1 + 1 + 1
    # new branches + 1 width change, stage 2 blocks 4 + fusion 2, stage 3 blocks 6 + fusion
    # 7 (2 -> 0 takes two stride-2 convs), stage 4 blocks 8 + fusion into branch 0 only 3,
    # final layer 1: 41.
    assert len(kernels) == 41 and not any(k.any() for k in kernels)
    with weights_loaded_after():  # no callback: zero kernels all the same
        assert not HRNet.from_config(config).get_layer("stem_conv1").kernel.numpy().any()
    # Outside the block, kernels are drawn again (and no callback is kept).
    assert HRNet.from_config(config).get_layer("stem_conv1").kernel.numpy().std() > 0
    assert built == [model]


def test_the_config_rebuilds_the_same_network(tiny_hrnet):
    # Every setting away from its default, so that a setting lost on the way shows.
    settings = dict(tiny_hrnet, num_keypoints=5, psa_placement="block", psa_mode="sequential",
                    psa_form="port", stage_blocks=((1, 1), (1, 1, 1), (1, 1, 1, 1)),
                    name="pose_net")
    model = HRNet(**settings)
    layers = [layer for layer in model.layers if isinstance(layer, PolarizedSelfAttention)]
    assert len(layers) == 9 and {(la.mode, la.form) for la in layers} == {("sequential", "port")}
    config = model.get_config()
    assert config == dict(settings, input_size=(32, 64), stage_modules=(1, 1, 1))
    rebuilt = HRNet.from_config(config)
    assert rebuilt.get_config() == config and rebuilt.name == "pose_net"
    assert tuple(rebuilt.input_shape) == (None, 64, 32, 3)  # (width 32, height 64)
    assert [w.path for w in rebuilt.weights] == [w.path for w in model.weights]
