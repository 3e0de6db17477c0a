"""The CPU's SIMD features, and whether a quantized export will be faster than float32 here.

int8 exports (``--quantize dynamic`` or ``int8``) beat float32 on LiteRT only where the CPU
multiplies int8 vectors in one instruction: x86 VNNI (``avx512_vnni``, ``avx_vnni``; AMX
``amx_int8``) or Arm's dot product (``asimddp``, ``i8mm``). Without it an int8 multiply-add
takes several instructions (``vpmaddubsw`` + ``vpmaddwd``, or widening to 16 bits) against
one fused float32 ``vfmadd``, and a dynamic export also quantizes every activation at run
time. ONNX Runtime's static int8 (QDQ) is the exception: its MLAS int8 kernels win on plain
AVX2 too. HRNet-W32, 256×192, measured in BENCHMARKS.md ("Quantized speed by CPU"), as a
multiple of the same runtime's float32 time at batch 1 / 8:

- AVX-512 VNNI host: LiteRT dynamic 0.4-0.5×, LiteRT int8 0.33×;
- AVX2-only host (no AVX-512, no VNNI): LiteRT dynamic 0.98×/1.02× (another AVX2 host:
  1.20×/0.91×), LiteRT int8 1.00×/1.00×, ONNX Runtime dynamic 1.21×/1.29×, ONNX Runtime
  int8 0.59×/0.54×.

This module reads only ``/proc/cpuinfo`` (Linux); elsewhere the flags are unknown and no
advice is given.
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


def quantized_speed_note(quantize, flags, fmt="tflite"):
    """A warning when a ``quantize`` export in ``fmt`` ("tflite" or "onnx") will likely run
    no faster than float32 on a CPU with ``flags`` (no int8 dot-product instruction), else
    None: float32 or float16 exports, a CPU with VNNI/dot product, unknown flags, or an
    ONNX int8 (QDQ) export, whose ONNX Runtime kernels are faster on plain AVX2 too."""
    if quantize not in QUANTIZED_MODES or not flags or has_int8_dot_product(flags):
        return None
    if (fmt, quantize) == ("onnx", "int8"):
        return None
    return (f"this CPU has no int8 dot-product instructions (AVX-512 VNNI, AVX-VNNI or Arm "
            f"dot product; flags: {' '.join(flags)}): a {fmt} {quantize} export will likely "
            f"run no faster than float32 here (HRNet-W32 on AVX2-only hosts: LiteRT dynamic "
            f"0.98-1.2x and int8 1.0x the float32 time, ONNX Runtime dynamic 1.2-1.3x; on an "
            f"AVX-512 VNNI host LiteRT dynamic 0.4-0.5x, int8 0.3-0.4x). It still makes the "
            f"file 4x smaller; for speed on this CPU, ONNX int8 (0.6x) is the one that pays; "
            f"see BENCHMARKS.md, 'Quantized speed by CPU'")
