"""The runtime × precision benchmark's variant selection (``tools/benchmark.py runtimes``)."""

import pytest

from pose.experiments.runtime_benchmark import VARIANTS, parse_variants


def test_variants_are_chosen_by_name_with_the_keras_baseline_first():
    assert parse_variants(None) == VARIANTS
    assert parse_variants(["tflite:int8", "onnx"]) == (("keras", None), ("onnx", None),
                                                       ("tflite", "int8"))
    assert parse_variants(["keras"]) == (("keras", None),)
    with pytest.raises(ValueError, match="tflite:int4"):
        parse_variants(["tflite:int4"])
