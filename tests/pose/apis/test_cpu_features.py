"""CPU flags from /proc/cpuinfo and the quantized-speed advice of tools/export.py."""

import pytest

from pose.apis.cpu_features import cpu_flags, has_int8_dot_product, quantized_speed_note

AVX2_HOST = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx f16c fma avx2\n"
VNNI_HOST = ("processor\t: 0\nflags\t\t: fpu avx avx2 fma avx512f avx512bw avx512_vnni "
             "avx512_bf16\nprocessor\t: 1\nflags\t\t: fpu\n")
ARM_HOST = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes asimddp\n"


@pytest.mark.parametrize("text,flags", [
    (AVX2_HOST, ["avx", "avx2", "fma", "f16c"]),
    (VNNI_HOST, ["avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16"]),
    (ARM_HOST, ["asimd", "asimddp"]),
    ("processor\t: 0\n", [])])
def test_flags_of_the_first_cpu(tmp_path, text, flags):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    assert cpu_flags(path) == flags
    assert cpu_flags(tmp_path / "missing") == []


def test_quantized_exports_are_flagged_only_without_int8_dot_products():
    avx2 = ["avx", "avx2", "fma", "f16c"]
    assert not has_int8_dot_product(avx2)
    for fmt, mode in (("tflite", "dynamic"), ("tflite", "int8"), ("onnx", "dynamic")):
        note = quantized_speed_note(mode, avx2, fmt)
        assert f"a {fmt} {mode} export will likely run no faster than float32" in note
        assert "flags: avx avx2 fma f16c" in note
        for fast in (avx2 + ["avx512_vnni"], avx2 + ["avx_vnni"], ["asimd", "asimddp"]):
            assert quantized_speed_note(mode, fast, fmt) is None
    # ONNX Runtime's static int8 kernels beat float32 on plain AVX2 (measured 0.59x).
    assert quantized_speed_note("int8", avx2, "onnx") is None
    assert quantized_speed_note("float16", avx2) is None
    assert quantized_speed_note(None, avx2) is None
    assert quantized_speed_note("dynamic", []) is None  # unknown CPU: no advice


def test_flags_are_whole_words_not_parts_of_longer_ones(tmp_path):
    """``avx512fp16`` holds ``avx512f`` and ``avx_vnni_int8`` holds ``avx_vnni`` as text: neither
    is that flag (a substring match would call this CPU VNNI-capable)."""
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512fp16 avx_vnni_int8\n")
    assert cpu_flags(path) == ["avx2"]
    assert quantized_speed_note("dynamic", cpu_flags(path)) is not None


def test_the_default_is_this_machines_cpuinfo():
    import os

    if not os.path.isfile("/proc/cpuinfo"):
        pytest.skip("no /proc/cpuinfo (not Linux)")
    from pose.apis.cpu_features import ARM_FLAGS, X86_FLAGS

    with open("/proc/cpuinfo", encoding="utf-8") as f:
        lines = [line.split(":", 1) for line in f if ":" in line]
    words = next((value.split() for key, value in lines
                  if key.strip() in ("flags", "Features")), [])
    assert cpu_flags() == [flag for flag in X86_FLAGS + ARM_FLAGS if flag in words]
