"""The CPU's SIMD features, and whether a quantized export will be faster than float32 here.

int8 exports (``--quantize dynamic`` or ``int8``) are faster than float32 only where the
CPU multiplies int8 vectors in one instruction: x86 VNNI (``avx512_vnni``, ``avx_vnni``;
AMX ``amx_int8``) or Arm's dot product (``asimddp``, ``i8mm``). XNNPACK (LiteRT) and MLAS
(ONNX Runtime) have int8 kernels for plain AVX2 too, but there an int8 multiply-add takes
several instructions (``vpmaddubsw`` + ``vpmaddwd``, or widening to 16 bits) against one
fused float32 ``vfmadd``, and a dynamic export also quantizes every activation at run
time. HRNet-W32, 256×192, measured in BENCHMARKS.md ("Quantized speed by CPU"):

- AVX-512 VNNI host: LiteRT dynamic 0.4-0.5× the float32 time at batch 1 and 8, int8
  0.3-0.4×;
- AVX2-only host (no AVX-512, no VNNI): LiteRT dynamic 1.2×/0.9×, i.e. no faster.

This module is NumPy-free and reads only ``/proc/cpuinfo`` (Linux); elsewhere the flags
are unknown and no advice is given.
"""

# The flags that decide which convolution kernels XNNPACK, oneDNN and MLAS pick.
X86_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
             "avx_vnni", "amx_int8")
ARM_FLAGS = ("asimd", "asimddp", "i8mm", "fphp")
# One-instruction int8 dot products: what int8 kernels need to beat float32.
INT8_DOT_PRODUCT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")
QUANTIZED_MODES = ("dynamic", "int8")


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The relevant SIMD flags of the first CPU in ``cpuinfo`` (x86 ``flags`` or Arm
    ``Features`` line), in ``X86_FLAGS``/``ARM_FLAGS`` order; [] when unreadable."""
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            present = next(line.split(":", 1)[1].split() for line in f
                           if line.split(":", 1)[0].strip() in ("flags", "Features"))
    except (OSError, StopIteration, IndexError):
        return []
    return [flag for flag in X86_FLAGS + ARM_FLAGS if flag in present]


def has_int8_dot_product(flags):
    return any(flag in flags for flag in INT8_DOT_PRODUCT_FLAGS)


def quantized_speed_note(quantize, flags):
    """A warning when a ``quantize`` export will likely run no faster than float32 on a CPU
    with ``flags`` (no int8 dot-product instruction), else None (float32 or float16
    exports, a CPU with VNNI/dot product, or unknown flags)."""
    if quantize not in QUANTIZED_MODES or not flags or has_int8_dot_product(flags):
        return None
    return (f"this CPU has no int8 dot-product instructions (AVX-512 VNNI, AVX-VNNI or Arm "
            f"dot product; flags: {' '.join(flags)}): a {quantize} export will likely run no "
            f"faster than float32 here, even slower at batch 1 (HRNet-W32 on an AVX2-only host:"
            f" LiteRT dynamic 1.2x the float32 time at batch 1, 0.9x at batch 8; on an "
            f"AVX-512 VNNI host 0.4-0.5x). It still makes the file 4x smaller; see "
            f"BENCHMARKS.md, 'Quantized speed by CPU'")
