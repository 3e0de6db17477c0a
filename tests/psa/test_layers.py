"""Tests for psa.layers against a NumPy statement of the PSA paper's equations.

The references below follow arXiv:2107.00782 eq. (1)-(6) literally, in the paper's
order of evaluation (every 1×1 convolution applied at every pixel, float64), so they
share no code and no algebraic shortcut with the layers.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from psa import ChannelOnlyAttention, PolarizedSelfAttention, SpatialOnlyAttention

C = 6
TOL = 1e-5


# ---------------------------------------------------------------- NumPy reference
def np_softmax(z, axis):
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def np_sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def np_channel_only(x, wv, wq, wz, gamma, beta, eps=1e-5):
    """Eq. (1)-(2): Z_ch = sigmoid(LN(W_z(σ1(W_v X) × softmax(σ2(W_q X))))) ⊙ X."""
    b, h, w, c = x.shape
    v = (x @ wv).reshape(b, h * w, c // 2)  # σ1(W_v X): (B, N, C/2)
    q = (x @ wq).reshape(b, h * w)  # σ2(W_q X): (B, N)
    p = np_softmax(q, axis=1)  # softmax over the N positions
    ctx = np.einsum("bnc,bn->bc", v, p)  # (B, C/2)
    z = ctx @ wz  # W_z: (B, C)
    mu = z.mean(axis=-1, keepdims=True)
    var = ((z - mu) ** 2).mean(axis=-1, keepdims=True)
    z = (z - mu) / np.sqrt(var + eps) * gamma + beta  # LayerNorm over C
    gate = np_sigmoid(z)  # (B, C)
    return x * gate[:, None, None, :]


def np_spatial_only(x, wq, wv):
    """Eq. (3)-(4): Z_sp = sigmoid(softmax(GAP(W_q X)) × σ2(W_v X)) ⊙ X."""
    q = (x @ wq).mean(axis=(1, 2))  # F_GP(W_q X): (B, C/2)
    q = np_softmax(q, axis=-1)  # softmax over the C/2 channels
    v = x @ wv  # W_v X: (B, H, W, C/2)
    logits = np.einsum("bhwc,bc->bhw", v, q)  # (B, H, W)
    return x * np_sigmoid(logits)[..., None]


def np_psa(x, p, mode, eps=1e-5):
    def ch(t):
        return np_channel_only(
            t, p["channel/wv"], p["channel/wq"], p["channel/wz"],
            p["channel/gamma"], p["channel/beta"], eps,
        )

    def sp(t):
        return np_spatial_only(t, p["spatial/wq"], p["spatial/wv"])

    if mode == "parallel":
        return ch(x) + sp(x)  # eq. (5)
    return sp(ch(x))  # eq. (6)


# ---------------------------------------------------------------- helpers
def randomize(layer, seed):
    """Assign random values (non-trivial gamma/beta) to every weight; return them by
    path relative to the layer ("wv", "channel/wq", ...)."""
    rng = np.random.default_rng(seed)
    values = {}
    prefix = layer.name + "/"
    for var in layer.weights:
        key = var.path[len(prefix):] if var.path.startswith(prefix) else var.path
        leaf = key.split("/")[-1]
        if leaf == "gamma":
            val = 1.0 + 0.3 * rng.standard_normal(var.shape)
        elif leaf == "beta":
            val = 0.2 * rng.standard_normal(var.shape)
        else:
            val = 0.7 * rng.standard_normal(var.shape)
        val = val.astype("float32")
        var.assign(val)
        values[key] = val.astype("float64")
    return values


def rand_x(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


# ---------------------------------------------------------------- numerics
def test_channel_only_matches_numpy():
    layer = ChannelOnlyAttention(epsilon=1e-3, name="ch")
    x = rand_x((2, 5, 4, C), 0)
    layer.build(x.shape)
    p = randomize(layer, 1)
    assert set(p) == {"wv", "wq", "wz", "gamma", "beta"}
    y = keras.ops.convert_to_numpy(layer(x))
    ref = np_channel_only(x.astype("float64"), p["wv"], p["wq"], p["wz"],
                          p["gamma"], p["beta"], eps=1e-3)
    np.testing.assert_allclose(y, ref, rtol=0, atol=TOL)
    assert not np.allclose(y, x)  # the gate does something


def test_spatial_only_matches_numpy():
    layer = SpatialOnlyAttention(name="sp")
    x = rand_x((2, 5, 4, C), 2)
    layer.build(x.shape)
    p = randomize(layer, 3)
    assert set(p) == {"wq", "wv"}
    y = keras.ops.convert_to_numpy(layer(x))
    ref = np_spatial_only(x.astype("float64"), p["wq"], p["wv"])
    np.testing.assert_allclose(y, ref, rtol=0, atol=TOL)


@pytest.mark.parametrize("mode", ["parallel", "sequential"])
def test_psa_matches_numpy(mode):
    layer = PolarizedSelfAttention(mode=mode, name="psa")
    x = rand_x((2, 5, 4, C), 4)
    layer.build(x.shape)
    p = randomize(layer, 5)
    assert set(p) == {"channel/wv", "channel/wq", "channel/wz", "channel/gamma",
                      "channel/beta", "spatial/wq", "spatial/wv"}
    y = keras.ops.convert_to_numpy(layer(x))
    ref = np_psa(x.astype("float64"), p, mode)
    np.testing.assert_allclose(y, ref, rtol=0, atol=TOL)


def test_modes_differ():
    x = rand_x((1, 3, 3, C), 6)
    outs = []
    for mode in ("parallel", "sequential"):
        layer = PolarizedSelfAttention(mode=mode, name="psa")
        layer.build(x.shape)
        randomize(layer, 7)
        outs.append(keras.ops.convert_to_numpy(layer(x)))
    assert not np.allclose(outs[0], outs[1])


def test_unknown_spatial_size_and_batch():
    inp = keras.Input(shape=(None, None, C))
    layer = PolarizedSelfAttention(mode="sequential", name="psa")
    model = keras.Model(inp, layer(inp))
    assert model.output_shape == (None, None, None, C)
    p = randomize(layer, 8)
    for shape, seed in (((2, 5, 7, C), 9), ((3, 4, 3, C), 10)):
        x = rand_x(shape, seed)
        y = keras.ops.convert_to_numpy(model(x))
        assert y.shape == shape
        np.testing.assert_allclose(
            y, np_psa(x.astype("float64"), p, "sequential"), rtol=0, atol=TOL
        )


def test_compute_output_shape():
    for cls in (ChannelOnlyAttention, SpatialOnlyAttention, PolarizedSelfAttention):
        layer = cls()
        assert layer.compute_output_shape((None, None, 7, C)) == (None, None, 7, C)


def test_mixed_precision_close_to_float32():
    x = rand_x((2, 4, 4, C), 11)
    ref_layer = PolarizedSelfAttention(name="psa")
    ref_layer.build(x.shape)
    randomize(ref_layer, 12)
    mp_layer = PolarizedSelfAttention(name="psa", dtype="mixed_float16")
    mp_layer.build(x.shape)
    randomize(mp_layer, 12)
    assert mp_layer.channel.compute_dtype == "float16"
    y = mp_layer(x)
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(y).astype("float32"),
        keras.ops.convert_to_numpy(ref_layer(x)), rtol=0, atol=2e-2,
    )


# ---------------------------------------------------------------- saving / config
@pytest.mark.parametrize("mode", ["parallel", "sequential"])
def test_keras_save_load_safe_mode(mode, tmp_path):
    inp = keras.Input(shape=(None, None, C))
    layer = PolarizedSelfAttention(mode=mode, epsilon=1e-4, name="psa")
    model = keras.Model(inp, layer(inp))
    randomize(layer, 13)
    x = rand_x((2, 4, 5, C), 14)
    path = str(tmp_path / f"psa_{mode}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    loaded_layer = loaded.get_layer("psa")
    assert isinstance(loaded_layer, PolarizedSelfAttention)
    assert loaded_layer.mode == mode and loaded_layer.epsilon == 1e-4
    assert [v.path for v in loaded_layer.weights] == [v.path for v in layer.weights]
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x))
    )


@pytest.mark.parametrize(
    "layer",
    [
        ChannelOnlyAttention(epsilon=1e-3, kernel_initializer="glorot_uniform"),
        SpatialOnlyAttention(
            kernel_initializer=keras.initializers.RandomNormal(0.0, 0.1)
        ),
        PolarizedSelfAttention(mode="sequential", epsilon=2e-5, name="p"),
    ],
    ids=["channel", "spatial", "psa"],
)
def test_get_config_roundtrip(layer):
    config = layer.get_config()
    assert "kernel_initializer" in config
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    if isinstance(layer, PolarizedSelfAttention):
        assert config["mode"] == "sequential" and config["epsilon"] == 2e-5
        assert clone.channel.epsilon == 2e-5


# ---------------------------------------------------------------- gradients
@pytest.mark.parametrize("mode", ["parallel", "sequential"])
def test_gradients_reach_every_weight(mode):
    layer = PolarizedSelfAttention(mode=mode, name="psa")
    x = tf.constant(rand_x((2, 4, 3, C), 15))
    layer.build(x.shape)
    randomize(layer, 16)
    probe = tf.constant(rand_x((2, 4, 3, C), 17))
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x) * probe)
    weights = layer.trainable_weights
    assert len(weights) == 7
    grads = tape.gradient(loss, weights + [x])
    for var, g in zip(weights + [x], grads):
        name = getattr(var, "path", "input")
        assert g is not None, name
        g = np.asarray(g)
        assert np.all(np.isfinite(g)), name
        assert np.any(np.abs(g) > 1e-8), name


# ---------------------------------------------------------------- argument checks
@pytest.mark.parametrize(
    "cls", [ChannelOnlyAttention, SpatialOnlyAttention, PolarizedSelfAttention]
)
def test_odd_channels_rejected(cls):
    with pytest.raises(ValueError, match=r"C=5"):
        cls().build((None, 4, 4, 5))
    with pytest.raises(ValueError, match=r"C=1"):
        cls()(np.zeros((1, 2, 2, 1), "float32"))
    with pytest.raises(ValueError, match=r"\(2, 4, 4\)"):
        cls().build((2, 4, 4))


def test_invalid_mode_rejected():
    with pytest.raises(ValueError, match="'both'"):
        PolarizedSelfAttention(mode="both")
    with pytest.raises(ValueError, match="None"):
        PolarizedSelfAttention(mode=None)


@pytest.mark.parametrize("eps", [0.0, -1e-5, "1e-5", True])
def test_invalid_epsilon_rejected(eps):
    with pytest.raises(ValueError, match=repr(eps).replace("-", r"\-")):
        ChannelOnlyAttention(epsilon=eps)


def test_invalid_initializer_rejected():
    with pytest.raises(ValueError, match="no_such_init"):
        SpatialOnlyAttention(kernel_initializer="no_such_init")


# ---------------------------------------------------------------- MAC counts
def test_count_macs_by_hand():
    # C = 4 (C/2 = 2), H×W = 3×2 (N = 6).
    psa = PolarizedSelfAttention(name="psa")
    psa.build((None, 3, 2, 4))
    # channel, as computed: W_q x_n 6·4=24, Σ p_n x_n 6·4=24, W_v 4·2=8, W_z 2·4=8 -> 64
    assert psa.channel.count_macs(3, 2) == 64
    # spatial, as computed: W_q(GAP) 4·2=8, W_vᵀq 4·2=8, x_n·u 6·4=24 -> 40
    assert psa.spatial.count_macs(3, 2) == 40
    assert psa.count_macs(3, 2) == 104
    # paper order: channel W_v 6·4·2=48, W_q 24, Σ p_n v_n 6·2=12, W_z 8 -> 92
    assert psa.channel.count_macs(3, 2, direct=True) == 92
    # spatial W_q 48, W_v 48, q·v_n 6·2=12 -> 108
    assert psa.spatial.count_macs(3, 2, direct=True) == 108
    assert psa.count_macs(3, 2, direct=True) == 200
    with pytest.raises(ValueError, match="not built"):
        SpatialOnlyAttention().count_macs(3, 2)
    with pytest.raises(ValueError, match="0"):
        psa.count_macs(0, 2)
