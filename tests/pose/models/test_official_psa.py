"""``load_official_psa``: official PSA_p / PSA_s weights (tests/data/psa_reference, made with
the official PyTorch modules) through the torch-free reader into the official form, which
must reproduce the official modules' float64 outputs; bad state dicts are refused by name."""

import keras
import numpy as np
import pytest

from pose.models.conversion import load_official_psa
from pose.models.torch_checkpoint import CheckpointError, load_torch_checkpoint
from psa import PolarizedSelfAttention

PREFIX = {"parallel": "p.", "sequential": "s."}


@pytest.fixture(scope="module")
def official(psa_reference_dir):
    """(state dict of both modules, their inputs and outputs)."""
    return (load_torch_checkpoint(psa_reference_dir / "psa_official.pth"),
            np.load(psa_reference_dir / "psa_official_io.npz"))


@pytest.mark.parametrize("mode", ["parallel", "sequential"])
def test_official_weights_reproduce_the_official_modules(official, mode):
    state_dict, io = official
    layer = PolarizedSelfAttention(mode=mode, form="official")  # unbuilt: built from C
    loaded = load_official_psa(layer, state_dict, prefix=PREFIX[mode])
    assert len(loaded) == len(layer.weights) == (5 if mode == "parallel" else 10)
    y = keras.ops.convert_to_numpy(layer(io["input_nhwc"])).astype(np.float64)
    ref = io[f"{mode[0]}_output_nhwc_fp64"]
    assert ref.shape == y.shape == (2, 12, 10, 16)
    assert np.abs(y - ref).max() <= 1e-5 * np.abs(ref).max()
    # the NCHW output of the official fp32 module is the same tensor, channels first
    np.testing.assert_allclose(ref.transpose(0, 3, 1, 2), io[f"{mode[0]}_output_nchw_fp64"])
    # the other forms with the same shared weights compute something else
    other = PolarizedSelfAttention(mode=mode, form="paper")
    other.build(io["input_nhwc"].shape)
    for name in ("wv", "wq"):
        getattr(other.channel, name).assign(getattr(layer.channel, name))
        getattr(other.spatial, name).assign(getattr(layer.spatial, name))
    assert np.abs(keras.ops.convert_to_numpy(other(io["input_nhwc"])) - ref).max() > 1e-2


def test_loads_from_a_path_into_a_built_layer(psa_reference_dir, official):
    layer = PolarizedSelfAttention(mode="parallel", form="official")
    layer.build((None, None, None, 16))
    load_official_psa(layer, psa_reference_dir / "psa_official.pth", prefix="p.")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.channel.wz),
                                  official[0]["p.conv_up.weight"][:, :, 0, 0].T)


def _layer(mode="sequential"):
    return PolarizedSelfAttention(mode=mode, form="official")


def test_refuses_missing_extra_and_misshaped_tensors(official):
    state_dict = official[0]
    s_only = {k: v for k, v in state_dict.items() if k.startswith("s.")}
    with pytest.raises(CheckpointError, match=r"missing s\.conv_up\.3\.bias"):
        load_official_psa(_layer(), {k: v for k, v in s_only.items()
                                     if k != "s.conv_up.3.bias"}, prefix="s.")
    with pytest.raises(CheckpointError, match=r"unexpected s\.conv_up\.weight"):
        load_official_psa(_layer(), {**s_only, "s.conv_up.weight": state_dict["p.conv_up.weight"]},
                          prefix="s.")
    # a PSA_p state dict is not a PSA_s one: the messages name both sides
    with pytest.raises(CheckpointError, match=r"PSA_s.*missing p\.conv_up\.0\.weight.*"
                                              r"unexpected p\.conv_up\.weight"):
        load_official_psa(_layer(), state_dict, prefix="p.")
    # without a prefix, the other module's keys are extra
    with pytest.raises(CheckpointError, match=r"unexpected p\."):
        load_official_psa(_layer(), state_dict)
    bad = dict(s_only, **{"s.conv_v_left.weight": np.zeros((8, 12, 1, 1), np.float32)})
    layer = _layer()
    before = [keras.ops.convert_to_numpy(v).copy() for v in _built(layer).weights]
    with pytest.raises(CheckpointError, match=r"s\.conv_v_left\.weight has shape \(8, 12, 1, 1\), "
                                              r"expected \(8, 16, 1, 1\)"):
        load_official_psa(layer, bad, prefix="s.")
    for var, value in zip(layer.weights, before):  # nothing assigned before the refusal
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(var), value)


def _built(layer):
    layer.build((None, None, None, 16))
    return layer


def test_refuses_a_layer_of_another_form(official):
    with pytest.raises(ValueError, match="form='official'.*'paper'"):
        load_official_psa(PolarizedSelfAttention(mode="parallel"), official[0], prefix="p.")


def _only(state_dict, prefix, **replaced):
    return {**{k: v for k, v in state_dict.items() if k.startswith(prefix)}, **replaced}


P_KEYS = "{0}conv_q_right.weight, {0}conv_v_right.weight, {0}conv_q_left.weight, " \
         "{0}conv_v_left.weight, {0}conv_up.weight"
S_UP_KEYS = ", ".join(f"p.conv_up.{i}.{p}" for i in (0, 1, 3) for p in ("weight", "bias"))


@pytest.mark.parametrize("mode, built, state, prefix, message", [
    ("parallel", False, lambda sd: _only(sd, "p."), "s.",
     "state dict: not an official PSA_p state dict under prefix 's.': missing "
     + P_KEYS.format("s.")),
    ("sequential", False, lambda sd: sd, "p.",
     f"state dict: not an official PSA_s state dict under prefix 'p.': missing {S_UP_KEYS}; "
     "unexpected p.conv_up.weight"),
    ("sequential", True, lambda sd: _only(sd, "s.", **{
        "s.conv_v_left.weight": np.zeros((8, 12, 1, 1), np.float32)}), "s.",
     "state dict: s.conv_v_left.weight has shape (8, 12, 1, 1), expected (8, 16, 1, 1) for "
     "PSA_s with C=16 (Keras psa/spatial/wv)"),
    ("sequential", False, lambda sd: _only(sd, "s.", **{
        "s.conv_v_right.weight": np.zeros((8, 16), np.float32)}), "s.",
     "state dict: s.conv_v_right.weight has shape (8, 16), expected (C/2, C, 1, 1)"),
    ("parallel", False, lambda sd: [sd], "p.",
     "state dict: expected a state dict (name → tensor), got list"),
])
def test_refusals_say_the_whole_story(official, mode, built, state, prefix, message):
    # The state dict's tensors (tests/data/psa_reference/README.md): C = 16, C/2 = 8.
    layer = PolarizedSelfAttention(mode=mode, form="official", name="psa")
    if built:
        _built(layer)
    with pytest.raises(CheckpointError) as error:
        load_official_psa(layer, state(official[0]), prefix=prefix)
    assert str(error.value) == message


def test_refusals_name_the_file_and_the_layer(psa_reference_dir):
    path = psa_reference_dir / "psa_official.pth"
    with pytest.raises(CheckpointError) as error:
        load_official_psa(_layer("parallel"), path, prefix="q.")
    assert str(error.value) == (f"{path}: not an official PSA_p state dict under prefix 'q.': "
                                "missing " + P_KEYS.format("q."))
    for layer, got in ((PolarizedSelfAttention(mode="parallel"), "PolarizedSelfAttention "
                        "(form 'paper')"), (keras.layers.Dense(1), "Dense (form None)")):
        with pytest.raises(ValueError) as error:
            load_official_psa(layer, path, prefix="p.")
        assert str(error.value) == ("load_official_psa needs a PolarizedSelfAttention with "
                                    f"form='official', got {got}")
