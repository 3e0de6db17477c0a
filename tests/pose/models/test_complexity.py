"""Parameter and MAC counts against hand-worked numbers; the Markdown table byte for byte."""

import keras
import pytest

from pose.models.complexity import (
    count_macs,
    count_trainable_params,
    describe_model,
    format_table,
)
from pose.models.hrnet import HRNet


class _Probe(keras.layers.Layer):
    """A layer that reports MACs the way PSA does (``count_macs(height, width)``)."""

    def call(self, x):
        return x

    def count_macs(self, height, width):
        return 1000 * height + width  # tells height from width


def _small_model(input_shape=(8, 6, 4)):
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv_a")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = _Probe(name="probe")(x)
    y = keras.layers.Conv2D(4, (3, 1), strides=2, groups=2, name="conv_b")(x)
    y = keras.layers.Add(name="add")([y, keras.layers.ReLU(name="relu")(y)])
    return keras.Model(inputs, y)


def test_counts_by_hand():
    model = _small_model()
    # conv_a: 8x6 outputs · 3x3 kernel · 4 inputs · 6 outputs = 10,368.
    # probe on an 8x6 input: 1000·8 + 6 = 8,006.
    # conv_b: valid (3, 1) kernel, stride 2 on 8x6 → 3x3 outputs; 2 groups: 6/2 inputs per
    # output; 9 · 3 · 1 · 3 · 4 = 324. BatchNorm, ReLU and Add count nothing.
    assert count_macs(model) == 10_368 + 8_006 + 324
    # conv_a 3·3·4·6 + 6 bias = 222, BatchNorm gamma and beta 2·6 = 12 (its moving
    # statistics are not trainable), conv_b 3·1·3·4 + 4 bias = 40.
    assert count_trainable_params(model) == 222 + 12 + 40


def test_macs_need_a_fixed_input_size():
    with pytest.raises(ValueError) as error:
        count_macs(_small_model((None, None, 4)))
    assert str(error.value) == ("count_macs needs a fixed input size; layer conv_a has output "
                                "shape (None, None, None, 6)")


def test_describe_model_names_the_settings(tiny_hrnet):
    plain = HRNet(psa_placement="none", **tiny_hrnet)
    row = describe_model(plain)
    # TINY_HRNET's input_size is (width 32, height 64); the table says HxW like configs.
    assert row == {"width": 8, "input": "64x32", "psa": "none",
                   "params": count_trainable_params(plain), "macs_g": count_macs(plain) / 1e9}
    assert 0 < row["macs_g"] < 1
    psa = HRNet(psa_placement="block", psa_mode="sequential", psa_form="port", **tiny_hrnet)
    assert describe_model(psa)["psa"] == "block/sequential/port"


def test_format_table_aligns_every_column():
    rows = [{"a": 1, "b": 2.5}, {"a": 100, "b": 0.25}]
    columns = [("a", "A", "{}"), ("b", "Bee", "{:.2f}")]
    assert format_table(rows, columns) == ("| A   | Bee  |\n"
                                           "|-----|------|\n"
                                           "| 1   | 2.50 |\n"
                                           "| 100 | 0.25 |")
