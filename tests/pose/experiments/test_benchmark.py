"""Benchmark helpers: the speed yardstick printed beside long jobs."""

import math

from pose.experiments.benchmark import SPEED_REFERENCE_MODEL, speed_reference_ms


def test_speed_reference_times_the_given_model(tiny_hrnet):
    assert SPEED_REFERENCE_MODEL == dict(width=32, input_size=(192, 256), psa_placement="none")
    milliseconds = speed_reference_ms(tiny_hrnet, repeats=2)
    assert math.isfinite(milliseconds) and 0.0 < milliseconds < 60_000.0
