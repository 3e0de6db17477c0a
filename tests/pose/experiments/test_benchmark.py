"""The model benchmark's worker process (one measurement in a fresh Python, as JSON) and
the speed yardstick printed beside long jobs."""

import math

from pose.experiments.benchmark import (
    SPEED_REFERENCE_MODEL,
    RuntimeSetting,
    measure_in_subprocess,
    speed_reference_ms,
)
from pose.experiments.benchmark_worker import main as worker_main
from pose.models.complexity import count_trainable_params
from pose.models.hrnet import HRNet


def test_worker_measures_the_requested_model_in_a_subprocess(tiny_hrnet):
    setting = RuntimeSetting(onednn="0", intra_op=1, inter_op=1)
    result = measure_in_subprocess(setting, tiny_hrnet, batch_sizes=(1, 2), repeats=1,
                                   timeout=600)
    assert result["params"] == count_trainable_params(HRNet(**tiny_hrnet))
    assert result["onednn"] == "0" and result["setting"]["intra_op"] == 1
    for key in ("batch1", "batch2"):
        timing = result[key]
        assert timing["repeats"] == 1 and 0 < timing["min_s"] <= timing["median_s"]
    assert result["batch2"]["batch_size"] == 2


def test_worker_without_a_request_is_a_usage_error(capsys):
    assert worker_main([]) == 2
    assert "usage" in capsys.readouterr().err


def test_speed_reference_times_the_given_model(tiny_hrnet):
    assert SPEED_REFERENCE_MODEL == dict(width=32, input_size=(192, 256), psa_placement="none")
    milliseconds = speed_reference_ms(tiny_hrnet, repeats=2)
    assert math.isfinite(milliseconds) and 0.0 < milliseconds < 60_000.0
