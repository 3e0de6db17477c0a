"""Checkpoints: a .keras file plus its config rebuild the same model, written atomically."""

import os

import numpy as np
import pytest

from pose.config import Config, ConfigError, ModelConfig, save_config
from pose.engine.checkpoint import build_model, config_path_for, load_model, save_model
from pose.errors import CheckpointError


@pytest.fixture(scope="module")
def tiny_config(tiny_hrnet):
    return Config(model=ModelConfig(psa_placement="branch", psa_mode="sequential", **tiny_hrnet))


def test_save_then_load_reproduces_outputs_and_config(tmp_path, tiny_config):
    model = build_model(tiny_config.model)
    image = np.random.default_rng(0).normal(size=(2, 64, 32, 3)).astype("float32")
    expected = model.predict_on_batch(image)
    path = tmp_path / "run" / "best.keras"
    save_model(model, path, tiny_config)

    assert sorted(os.listdir(path.parent)) == ["best.keras", "best.yaml"]  # no temp files left
    loaded, config = load_model(path)
    assert config == tiny_config
    np.testing.assert_array_equal(loaded.predict_on_batch(image), expected)
    assert loaded.psa_mode == "sequential"


def test_loading_builds_without_random_kernels_and_calls_on_built_before_the_weights(
        tmp_path, tiny_config, randomized):
    import keras
    from keras.src.saving.saving_lib import get_attr_skipset

    model = randomized(build_model(tiny_config.model))
    path = tmp_path / "m.keras"
    save_model(model, path, tiny_config)
    seen = []

    def on_built(net):  # called once, with the built network, before Keras fills it
        seen.append((net, [np.array(w) for w in net.weights]))

    loaded, _ = load_model(path, on_built=on_built)
    ((net, before),) = seen
    assert net is loaded
    kernels = [w for w, v in zip(before, loaded.weights) if v.name == "kernel"]
    assert len(kernels) > 10 and all(not k.any() for k in kernels)  # zeros, not N(0, 0.001)
    for want, got in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(np.array(got), np.array(want))
    # outside a load the kernels are random again
    assert np.array(build_model(tiny_config.model).get_layer("stem_conv1").kernel).std() > 0
    # Keras' attribute skip-set is now found under the key it reads, and is the same set
    fresh = set(dir(keras.layers.Layer())) | {"_self_unconditional_dependency_names"}
    assert get_attr_skipset("Layer") == fresh


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, tiny_config):
    model = build_model(tiny_config.model)
    path = tmp_path / "last.keras"
    save_model(model, path, tiny_config)
    good = path.read_bytes()

    class Unsaveable:
        def save(self, filepath):
            with open(filepath, "wb") as f:
                f.write(b"half a zip")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_model(Unsaveable(), path)
    assert path.read_bytes() == good
    assert sorted(os.listdir(tmp_path)) == ["last.keras", "last.yaml"]


def test_config_that_disagrees_with_the_weights_is_an_error(tmp_path, tiny_config, tiny_hrnet):
    path = tmp_path / "m.keras"
    save_model(build_model(tiny_config.model), path, tiny_config)
    other = Config(model=ModelConfig(psa_placement="none", **tiny_hrnet))
    save_config(other, config_path_for(path))
    with pytest.raises(ConfigError, match="m.yaml: model section does not match"):
        load_model(path)


def test_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found: .*nothing.keras"):
        load_model(tmp_path / "nothing.keras")


def test_empty_or_truncated_checkpoint_is_reported_as_corrupt(tmp_path, tiny_config):
    empty = tmp_path / "empty.keras"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"corrupt checkpoint .*empty.keras: empty file"):
        load_model(empty)
    good = tmp_path / "good.keras"
    save_model(build_model(tiny_config.model), good)
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"corrupt checkpoint .*truncated.keras"):
        load_model(truncated)
