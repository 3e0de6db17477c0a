"""Plumbing shared by the PSA layers: argument and shape checks, the float32 softmax and
LayerNorm, and the base layer (kernels, output shape, config)."""

from __future__ import annotations

import keras
from keras import ops


def check_epsilon(epsilon):
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)):
        raise ValueError(f"`epsilon` must be a positive number, received {epsilon!r}.")
    if not epsilon > 0:
        raise ValueError(f"`epsilon` must be a positive number, received {epsilon!r}.")
    return float(epsilon)


def check_choice(name, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}, received {value!r}.")
    return value


def check_input_shape(layer_name, input_shape):
    """Return the channel count of a (B, H, W, C) shape or raise a ValueError."""
    input_shape = tuple(input_shape)
    if len(input_shape) != 4:
        raise ValueError(
            f"{layer_name} expects a 4-D channels-last input (B, H, W, C), "
            f"received shape {input_shape}."
        )
    channels = input_shape[-1]
    if channels is None:
        raise ValueError(
            f"{layer_name} needs a known channel count (last axis), received shape "
            f"{input_shape}."
        )
    channels = int(channels)
    if channels < 2 or channels % 2:
        raise ValueError(
            f"{layer_name} needs an even channel count of at least 2 (the branches "
            f"use C/2 channels), received C={channels} (input shape {input_shape})."
        )
    return channels


def check_hw(height, width):
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive int, received {value!r}.")


def stable_softmax(x, axis):
    """Numerically stable softmax over `axis` (an int or a tuple of ints)."""
    x = x - ops.stop_gradient(ops.max(x, axis=axis, keepdims=True))
    e = ops.exp(x)
    return e / ops.sum(e, axis=axis, keepdims=True)


def layer_norm(z, gamma, beta, epsilon):
    """LayerNorm over the last axis (biased variance, as PyTorch and Keras)."""
    mean = ops.mean(z, axis=-1, keepdims=True)  # (B, 1)
    var = ops.mean(ops.square(z - mean), axis=-1, keepdims=True)  # (B, 1)
    z = (z - mean) * ops.rsqrt(var + epsilon)
    return z * gamma + beta


class PSABase(keras.layers.Layer):
    """Shared plumbing: channel bookkeeping, output shape, MAC guard."""

    def __init__(self, kernel_initializer="he_normal", **kwargs):
        super().__init__(**kwargs)
        try:
            self.kernel_initializer = keras.initializers.get(kernel_initializer)
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"`kernel_initializer` is not a valid Keras initializer, received "
                f"{kernel_initializer!r}."
            ) from err
        self.channels = None

    def _kernel(self, name, shape):
        return self.add_weight(
            name=name,
            shape=shape,
            initializer=self.kernel_initializer,
            trainable=True,
            autocast=False,  # `call` computes in float32 (see psa.layers' docstring)
        )

    def _vector(self, name, size, initializer):
        """A bias or LayerNorm gamma/beta of `size` elements, read in float32."""
        return self.add_weight(
            name=name, shape=(size,), initializer=initializer, autocast=False
        )

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def _built_channels(self):
        if self.channels is None:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' is not built yet: call it on an "
                "input (or call build) before count_macs, received channels=None."
            )
        return self.channels

    def get_config(self):
        config = super().get_config()
        init = keras.initializers.serialize(self.kernel_initializer)
        config["kernel_initializer"] = init
        return config
