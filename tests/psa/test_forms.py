"""The three PSA forms (paper, official, port): each against an independent reference.

* the common Keras port: ``tests/data/psa_reference/psa_port_io.npz`` (a float64 NumPy
  statement of the port, made outside this project's code) with its own weights;
* every form and mode: a NumPy statement written here in the direct order of evaluation
  (every 1×1 convolution applied at every pixel, float64), so the layers' cheap order is
  checked against the direct one for each variant;
* a layer saved before the forms existed loads as the paper form, output unchanged.

The official modules' own outputs are checked in
``tests/pose/models/test_official_psa.py`` (through ``load_official_psa``).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from psa import PSA_FORMS, PSA_MODES, PolarizedSelfAttention
from tests.psa.test_layers import np_sigmoid, np_softmax

C = 16  # the bottleneck of the sequential official/port forms needs C >= 8
FORM_MODES = [(form, mode) for form in PSA_FORMS for mode in PSA_MODES]


def np_layer_norm(z, gamma, beta, eps):
    mu = z.mean(axis=-1, keepdims=True)
    var = ((z - mu) ** 2).mean(axis=-1, keepdims=True)
    return (z - mu) / np.sqrt(var + eps) * gamma + beta


def np_form(x, p, form, mode, eps):
    """One PSA layer of ``form``/``mode`` on (B, H, W, C) ``x``, float64, direct order,
    restating the official PSA.py (PSA_p, PSA_s) and the port's README description."""
    b, h, w, c = x.shape

    def channel(t):
        v = (t @ p["channel/wv"]).reshape(b, h * w, c // 2)  # W_v x_n at every pixel
        q = np_softmax((t @ p["channel/wq"]).reshape(b, h * w), axis=1)  # over positions
        ctx = np.einsum("bnc,bn->bc", v, q)  # (B, C/2)
        if form == "paper":
            z = np_layer_norm(ctx @ p["channel/wz"], p["channel/gamma"], p["channel/beta"], eps)
        elif mode == "parallel":
            z = ctx @ p["channel/wz"] + (p["channel/bz"] if form == "port" else 0.0)
        else:
            z = ctx @ p["channel/wz1"] + p["channel/bz1"]  # (B, C/8)
            z = np_layer_norm(z, p["channel/gamma"], p["channel/beta"], eps)
            if form == "official":
                z = np.maximum(z, 0.0)  # PSA_s: ReLU after the LayerNorm; the port has none
            z = z @ p["channel/wz2"] + p["channel/bz2"]
        return t * np_sigmoid(z)[:, None, None, :]

    def spatial(t):
        g = (t @ p["spatial/wq"]).mean(axis=(1, 2))  # avgpool(conv_q_left(x)): (B, C/2)
        theta = (t @ p["spatial/wv"]).reshape(b, h * w, c // 2)  # conv_v_left(x)
        if form != "official":
            s = np.einsum("bnc,bc->bn", theta, np_softmax(g, axis=-1))  # softmax over C/2
        elif mode == "parallel":
            s = np_softmax(np.einsum("bnc,bc->bn", theta, g), axis=1)  # over positions
        else:
            s = np.einsum("bnc,bc->bn", np_softmax(theta, axis=1), g)  # per channel, over N
        return t * np_sigmoid(s).reshape(b, h, w, 1)

    return channel(x) + spatial(x) if mode == "parallel" else spatial(channel(x))


def randomize(layer, seed):
    """Random values for every weight (biases and LayerNorm too); returned by path
    relative to the layer, float64."""
    rng = np.random.default_rng(seed)
    values = {}
    for var in layer.weights:
        key = var.path[len(layer.name) + 1:]
        leaf = key.split("/")[-1]
        val = {"gamma": 1.0 + 0.3 * rng.standard_normal(var.shape),
               "beta": 0.2 * rng.standard_normal(var.shape)}.get(
                   leaf, 0.5 * rng.standard_normal(var.shape))
        var.assign(val.astype("float32"))
        values[key] = val.astype("float32").astype("float64")
    return values


def close(y, ref, tol=1e-5):
    """Within ``tol`` of the reference's largest magnitude."""
    err = np.abs(np.asarray(y, np.float64) - ref).max()
    assert err <= tol * np.abs(ref).max(), (err, np.abs(ref).max())


@pytest.mark.parametrize("form, mode", FORM_MODES)
def test_every_form_matches_the_direct_numpy_statement(form, mode):
    layer = PolarizedSelfAttention(mode=mode, form=form, epsilon=1e-3, name="psa")
    x = np.random.default_rng(1).standard_normal((2, 5, 4, C)).astype("float32")
    layer.build(x.shape)
    p = randomize(layer, 2)
    y = keras.ops.convert_to_numpy(layer(x))
    close(y, np_form(x.astype("float64"), p, form, mode, eps=1e-3))
    # unknown spatial size and batch: the same layer in a functional model
    inp = keras.Input((None, None, C))
    model = keras.Model(inp, layer(inp))
    x2 = np.random.default_rng(3).standard_normal((3, 3, 7, C)).astype("float32")
    close(keras.ops.convert_to_numpy(model(x2)), np_form(x2.astype("float64"), p, form, mode,
                                                         eps=1e-3))


PORT_WEIGHTS = {"parallel": {"channel/wz": "w_ch_up_p", "channel/bz": "w_ch_up_p_b"},
                "sequential": {"channel/wz1": "w_ch_dn_s", "channel/bz1": "w_ch_dn_s_b",
                               "channel/gamma": "w_ln_g", "channel/beta": "w_ln_b",
                               "channel/wz2": "w_ch_up_s", "channel/bz2": "w_ch_up_s_b"}}


@pytest.mark.parametrize("mode", PSA_MODES)
def test_port_form_reproduces_the_port_reference(psa_reference_dir, mode):
    data = np.load(psa_reference_dir / "psa_port_io.npz")
    layer = PolarizedSelfAttention(mode=mode, form="port",
                                   epsilon=float(data["layernorm_epsilon"]), name="psa")
    layer.build(data["input_nhwc"].shape)
    names = {"channel/wv": "w_ch_wv", "channel/wq": "w_ch_wq", "spatial/wq": "w_sp_wq",
             "spatial/wv": "w_sp_wv", **PORT_WEIGHTS[mode]}
    assert sorted(v.path for v in layer.weights) == sorted(f"psa/{k}" for k in names)
    for var in layer.weights:
        var.assign(data[names[var.path[len("psa/"):]]])
    y = keras.ops.convert_to_numpy(layer(data["input_nhwc"]))
    close(y, data[f"{mode[0]}_output_nhwc_fp64"])


def test_a_layer_saved_before_the_forms_loads_as_the_paper_form(psa_reference_dir):
    model = keras.saving.load_model(psa_reference_dir / "psa_paper_pre_forms.keras",
                                    safe_mode=True)
    data = np.load(psa_reference_dir / "psa_paper_pre_forms_io.npz")
    layers = [model.get_layer("psa_p"), model.get_layer("psa_s")]
    assert [(layer.mode, layer.form) for layer in layers] == [("parallel", "paper"),
                                                              ("sequential", "paper")]
    assert layers[1].epsilon == 1e-4
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(data["input_nhwc"])),
                               data["output_nhwc"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("form, mode", FORM_MODES)
def test_save_load_config_and_gradients_for_every_form(form, mode, tmp_path):
    inp = keras.Input((None, None, C))
    layer = PolarizedSelfAttention(mode=mode, form=form, epsilon=2e-5, name="psa")
    model = keras.Model(inp, layer(inp))
    randomize(layer, 4)
    config = layer.get_config()
    assert (config["form"], config["mode"], config["epsilon"]) == (form, mode, 2e-5)
    assert PolarizedSelfAttention.from_config(config).get_config() == config
    path = tmp_path / "psa.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.get_layer("psa").form == form
    assert [v.path for v in loaded.weights] == [v.path for v in model.weights]
    x = tf.constant(np.random.default_rng(5).standard_normal((2, 4, 3, C)).astype("float32"))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x)),
                                  keras.ops.convert_to_numpy(model(x)))
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x) * tf.sin(x))
    grads = tape.gradient(loss, layer.trainable_weights + [x])
    for var, grad in zip(layer.trainable_weights + [x], grads):
        assert grad is not None and np.abs(np.asarray(grad)).max() > 1e-8, var


@pytest.mark.parametrize("form, mode", FORM_MODES)
def test_mixed_precision_close_to_float32_for_every_form(form, mode):
    x = np.random.default_rng(6).standard_normal((2, 4, 4, C)).astype("float32")
    outputs = []
    for dtype in ("float32", "mixed_float16"):
        layer = PolarizedSelfAttention(mode=mode, form=form, name="psa", dtype=dtype)
        layer.build(x.shape)
        randomize(layer, 7)
        outputs.append(layer(x))
    assert keras.backend.standardize_dtype(outputs[1].dtype) == "float16"
    ref = keras.ops.convert_to_numpy(outputs[0])
    got = keras.ops.convert_to_numpy(outputs[1]).astype("float32")
    assert np.abs(got - ref).max() <= 2e-3 * np.abs(ref).max() + 1e-3


def test_weights_of_each_form():
    def paths(form, mode):
        layer = PolarizedSelfAttention(mode=mode, form=form, name="psa")
        layer.build((None, 3, 3, C))
        return {v.path[len("psa/"):]: tuple(v.shape) for v in layer.weights}

    shared = {"channel/wv": (C, C // 2), "channel/wq": (C, 1), "spatial/wq": (C, C // 2),
              "spatial/wv": (C, C // 2)}
    bottleneck = {"channel/wz1": (C // 2, 2), "channel/bz1": (2,), "channel/gamma": (2,),
                  "channel/beta": (2,), "channel/wz2": (2, C), "channel/bz2": (C,)}
    for mode in PSA_MODES:
        assert paths("paper", mode) == {**shared, "channel/wz": (C // 2, C),
                                        "channel/gamma": (C,), "channel/beta": (C,)}
    assert paths("official", "parallel") == {**shared, "channel/wz": (C // 2, C)}
    assert paths("port", "parallel") == {**shared, "channel/wz": (C // 2, C),
                                         "channel/bz": (C,)}
    assert paths("official", "sequential") == paths("port", "sequential") == {
        **shared, **bottleneck}


def test_count_macs_by_hand_for_each_form():
    # C = 16 (C/2 = 8, C/8 = 2), H×W = 3×2 (N = 6).
    def macs(form, mode, direct=False):
        layer = PolarizedSelfAttention(mode=mode, form=form)
        layer.build((None, 3, 2, C))
        return (layer.channel.count_macs(3, 2, direct), layer.spatial.count_macs(3, 2, direct))

    # channel, computed: W_q x_n 6·16=96, Σ p_n x_n 96, W_v 16·8=128, then W_z 8·16=128
    # (paper, official/port parallel) or 8·2 + 2·16 = 48 (the sequential bottleneck).
    # spatial, computed: W_q(GAP) 128, W_vᵀq 128, x_n·u 6·16=96 -> 352; official
    # sequential: W_v X 6·16·8=768, W_q(GAP) 128, g·θ_n 6·8=48 -> 944.
    assert macs("paper", "parallel") == macs("paper", "sequential") == (448, 352)
    assert macs("official", "parallel") == macs("port", "parallel") == (448, 352)
    assert macs("port", "sequential") == (368, 352)
    assert macs("official", "sequential") == (368, 944)
    # direct order: channel W_v 768 + W_q 96 + Σ p_n v_n 48 + up; spatial 768·2 + 48.
    assert macs("official", "sequential", direct=True) == (768 + 96 + 48 + 48, 1584)
    assert macs("paper", "parallel", direct=True) == (768 + 96 + 48 + 128, 1584)


def test_bad_form_and_too_few_channels_for_the_bottleneck():
    with pytest.raises(ValueError, match="'pytorch'"):
        PolarizedSelfAttention(form="pytorch")
    with pytest.raises(ValueError, match=r"C >= 8.*C=6"):
        PolarizedSelfAttention(mode="sequential", form="port").build((None, 4, 4, 6))
    PolarizedSelfAttention(mode="parallel", form="port").build((None, 4, 4, 6))  # no bottleneck
