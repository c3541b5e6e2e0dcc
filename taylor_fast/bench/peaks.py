"""The device's peaks, for "% of peak": derived from the hardware description, and measured.

CPU, theoretical: threads x SIMD lanes x FMA units x 2 (an FMA is two FLOPs) x clock.
  - threads: torch.get_num_threads() (the threads the benchmarks run on; one per core where
    SMT is off);
  - lanes: fp32 lanes of the widest vector ISA in /proc/cpuinfo's flags (avx512f 16, avx/avx2 8,
    else 4);
  - FMA units: 2 per core is assumed (Intel since Haswell, AMD since Zen 2 issue two 256-bit
    FMAs per cycle; Zen 1 only two 128-bit ones, and AVX-512 parts have one or two 512-bit
    units by SKU), and 1 without the fma flag;
  - clock: cpufreq's cpuinfo_max_freq where the kernel exposes it, else /proc/cpuinfo's
    "cpu MHz". Under a hypervisor that is the nominal (TSC) clock, not the boost clock, and the
    CPU model is the one the hypervisor shows, so the figure can sit below what the hardware
    really does: compare it with the measured matmul peak.
CPU, measured FMA rate: fma_peak.c (next to this file), compiled for this CPU with the system C
compiler and run one copy per thread at once: independent chains of fp32 FMAs at the widest
vector width, i.e. the rate the cores really sustain at their all-core clock. It is the ceiling
of a direct convolution; None, with the reason, where no C compiler or no x86 FMA is there.
CPU and CUDA, measured: the practical peak is torch.matmul of square fp32 (and on CUDA bf16,
fp16) matrices, and the practical bandwidth is a large device-to-device tensor copy, counted
as bytes read plus bytes written (STREAM's "copy" convention).
CUDA, datasheet: NVIDIA's published dense (no sparsity) peaks and HBM bandwidth for the
H100/H200 variants, chosen from the device name; SXM and PCIe/NVL boards differ in clocks,
power and memory, so they are listed separately.
"""
from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from .grid import allows_tf32, tensor_dtype

# name pattern -> (board, {dtype: dense TFLOP/s}, HBM GB/s). fp32 is the CUDA-core figure; tf32
# is the tensor-core figure fp32 convolutions use when torch.backends.cudnn.allow_tf32 is on.
# Sources: NVIDIA H100 and H200 Tensor Core GPU datasheets (sparsity figures halved).
DATASHEETS = (
    (r"H200 NVL", "H200 NVL (PCIe)", {"float32": 60.0, "tf32": 417.5, "bfloat16": 835.5, "float16": 835.5}, 4800.0),
    (r"H200", "H200 SXM", {"float32": 67.0, "tf32": 494.5, "bfloat16": 989.5, "float16": 989.5}, 4800.0),
    (r"H100 NVL", "H100 NVL (PCIe)", {"float32": 60.0, "tf32": 417.5, "bfloat16": 835.5, "float16": 835.5}, 3900.0),
    (r"H100 PCIe", "H100 PCIe", {"float32": 51.2, "tf32": 378.0, "bfloat16": 756.0, "float16": 756.0}, 2000.0),
    (r"H100", "H100 SXM", {"float32": 67.0, "tf32": 494.5, "bfloat16": 989.5, "float16": 989.5}, 3350.0),
)

MATMUL_N = {"cpu": 2048, "cuda": 8192}
COPY_BYTES = {"cpu": 256 << 20, "cuda": 2 << 30}
FMA_ITERATIONS = 200_000_000  # about 0.3 s per copy on a 4 GHz core with two 512-bit FMA units
FMA_SOURCE = Path(__file__).with_name("fma_peak.c")


def _cpuinfo() -> dict:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def _max_clock_ghz(info: dict) -> tuple[float | None, str]:
    cpufreq = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if cpufreq.exists():
        return int(cpufreq.read_text()) / 1e6, "cpufreq cpuinfo_max_freq"
    if "cpu MHz" in info:
        return float(info["cpu MHz"]) / 1e3, "/proc/cpuinfo 'cpu MHz' (nominal clock; boost not visible)"
    return None, "unknown"


def cpu_theoretical() -> dict:
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    lanes = 16 if "avx512f" in flags else 8 if flags & {"avx", "avx2"} else 4
    fma_units = 2 if "fma" in flags or "avx512f" in flags else 1
    threads = torch.get_num_threads()
    ghz, clock_source = _max_clock_ghz(info)
    gflops = threads * lanes * fma_units * 2 * ghz if ghz else None
    isa = "avx512f" if lanes == 16 else "avx2" if "avx2" in flags else "avx" if lanes == 8 else "sse"
    return {
        "name": info.get("model name", "unknown CPU"),
        "float32_gflops": gflops,
        "derivation": (f"{threads} threads x {lanes} fp32 lanes ({isa}) x {fma_units} FMA units x 2 FLOP/FMA x "
                       f"{ghz:.3f} GHz [{clock_source}]" if ghz else "clock unknown"),
        "assumptions": "2 FMA units per core where the fma flag is present",
    }


def measured_fma_gflops(threads: int, iterations: int | None = None) -> tuple[float | None, str]:
    """All-core fp32 FMA rate in GFLOP/s (see the module docstring), and how it was obtained."""
    compiler = next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
    if compiler is None:
        return None, "no C compiler (cc, gcc or clang) on PATH"
    if not FMA_SOURCE.exists():
        return None, f"{FMA_SOURCE.name} is not installed next to {Path(__file__).name}"
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "fma_peak"
        build = subprocess.run([compiler, "-O2", "-march=native", str(FMA_SOURCE), "-o", str(exe)],
                               capture_output=True, text=True)
        if build.returncode != 0:
            lines = build.stderr.strip().splitlines()
            return None, f"{compiler} could not build {FMA_SOURCE.name}: {lines[-1] if lines else 'no message'}"
        copies = [subprocess.Popen([str(exe), str(iterations or FMA_ITERATIONS)], stdout=subprocess.PIPE, text=True)
                  for _ in range(threads)]
        outputs = [copy.communicate()[0] for copy in copies]
    rates = [re.match(r"gflops ([0-9.]+) bits (\d+)", out) for out in outputs]
    if not all(rates):
        return None, f"unexpected output from {FMA_SOURCE.name}: {outputs[0]!r}"
    return (sum(float(r.group(1)) for r in rates),
            f"{FMA_SOURCE.name}: {threads} copies at once, {rates[0].group(2)}-bit fp32 FMAs, 12 chains each")


def cuda_datasheet(name: str) -> dict | None:
    for pattern, board, tflops, bandwidth in DATASHEETS:
        if re.search(pattern, name):
            return {"board": board, "tflops_dense": tflops, "bandwidth_gbps": bandwidth,
                    "source": "NVIDIA H100/H200 datasheets, dense (sparsity figures halved)"}
    return None


def _median_seconds(fn, device: str, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measured_matmul_gflops(device: str, precision: str, n: int | None = None, repeats: int = 5) -> float:
    """torch.matmul's rate in `precision` (a bench precision name: "tf32" is fp32 on TF32 tensor cores)."""
    n = n or MATMUL_N[device]
    a, b = (torch.randn(n, n, device=device).to(getattr(torch, tensor_dtype(precision))) for _ in range(2))
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = allows_tf32(precision)
    try:
        return 2.0 * n ** 3 / _median_seconds(lambda: torch.matmul(a, b), device, repeats) / 1e9
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved


def measured_copy_gbps(device: str, nbytes: int | None = None, repeats: int = 5) -> float:
    nbytes = nbytes or COPY_BYTES[device]
    src = torch.ones(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    return 2.0 * nbytes / _median_seconds(lambda: dst.copy_(src), device, repeats) / 1e9


def device_peaks(device: str, precisions) -> dict:
    """The peaks of `device` for the precisions a run used (see the module docstring)."""
    peaks = {
        "measured": {
            "matmul_gflops": {p: measured_matmul_gflops(device, p) for p in precisions},
            "copy_gbps": measured_copy_gbps(device),
            "method": f"median of 5 torch.matmul {MATMUL_N[device]}^3; median of 5 copies of "
                      f"{COPY_BYTES[device] >> 20} MiB counted as read + write",
        }
    }
    if device == "cpu":
        gflops, method = measured_fma_gflops(torch.get_num_threads())
        peaks["measured"]["fma_float32_gflops"] = gflops
        peaks["measured"]["fma_method"] = method
        peaks["theoretical"] = cpu_theoretical()
    else:
        name = torch.cuda.get_device_name()
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        peaks["datasheet"] = cuda_datasheet(name)
        peaks["device"] = {"name": name, "multiprocessors": props.multi_processor_count,
                           "memory_gib": round(props.total_memory / 2 ** 30, 1)}
    return peaks
