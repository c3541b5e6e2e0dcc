"""Times the fused CUDA expansion against the eager reference, side by side in one process, on
the headline cases of a GPU run (order 3, hidden 32; N=4 at 3x512x512 and N=1 at 3x1080x1920; bf16 and
fp32): forward and forward+backward time, peak memory of forward+backward, achieved TFLOP/s and
the minimum-traffic GB/s. bf16 rows also time the SIMT forward (TAYLOR_FAST_CUDA_TENSOR_CORES=0)
beside the default tensor-core one. Needs a GPU; benchmarks/gpu_check.sh runs it.

    python benchmarks/cuda_kernel_timings.py --json OUT.json [--quick] [--compile]

--compile adds the forward of torch.compile(reference) (compiling takes tens of seconds a case).
The JSON is rewritten after every case, so a run stopped by a time limit keeps what it measured.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

import torch

from taylor_fast import ops, reference
from taylor_fast.bench.memory import cuda_peak_bytes

ORDER, HIDDEN, C = 3, 32, 3
FLOPS_PER_PIXEL_ORDER = 2 * 9 * (2 * C * HIDDEN + HIDDEN * C)  # 5184 for C=3, hidden 32 (docs/semantics.md)
CASES = [(4, 512, 512), (1, 1080, 1920)]
DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}  # bf16 first: the tensor-core path


def time_ms(fn, iters: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def make_case(n, h, w, dtype):
    gen = torch.Generator(device="cuda").manual_seed(0)
    f, y = (torch.rand(n, C, h, w, device="cuda", generator=gen).to(dtype) for _ in range(2))
    shapes = [(HIDDEN, 2 * C, 3, 3), (HIDDEN,), (C, HIDDEN, 3, 3), (C,)]
    weights = [(0.1 * torch.randn(s, device="cuda", generator=gen)).to(dtype) for s in shapes]
    return f, y, weights


def simt(fused):
    """fused, run with the tensor-core forward switched off (TAYLOR_FAST_CUDA_TENSOR_CORES=0)."""
    def run(*args):
        previous = os.environ.get("TAYLOR_FAST_CUDA_TENSOR_CORES")
        os.environ["TAYLOR_FAST_CUDA_TENSOR_CORES"] = "0"
        try:
            return fused(*args)
        finally:
            if previous is None:
                del os.environ["TAYLOR_FAST_CUDA_TENSOR_CORES"]
            else:
                os.environ["TAYLOR_FAST_CUDA_TENSOR_CORES"] = previous
    return run


def forward_backward(expand, f, y, weights, grad):
    leaves = [t.detach().requires_grad_() for t in (f, y, *weights)]
    expand(*leaves).backward(grad)


def measure(n, h, w, dtype_name, iters, with_compile):
    dtype = DTYPES[dtype_name]
    f, y, weights = make_case(n, h, w, dtype)
    grad = torch.ones_like(f)
    fused = lambda *a: ops.taylor_expand(*a, ORDER, backend="cuda")  # noqa: E731
    eager = lambda *a: reference.taylor_expand(*a, ORDER)  # noqa: E731
    candidates = {"cuda": fused, "reference": eager}
    forward_only = {}
    if dtype != torch.float32:  # the SIMT kernel too, for comparison with the tensor-core one
        forward_only["cuda_simt"] = simt(fused)
    if with_compile:  # compiling costs tens of seconds per case: the forward target only
        forward_only["reference_compiled"] = torch.compile(eager)
    flops = n * h * w * ORDER * FLOPS_PER_PIXEL_ORDER
    # per order at least: read g and y, write g_next, read and write acc
    min_bytes = n * C * h * w * f.element_size() * ORDER * 5
    row = {"case": f"{n}x{C}x{h}x{w}", "dtype": dtype_name, "order": ORDER, "hidden": HIDDEN,
           "forward_flops": flops}
    for name, fn in {**candidates, **forward_only}.items():
        with torch.no_grad():
            fwd = time_ms(lambda: fn(f, y, *weights), iters)
        row[name] = {"forward_ms": fwd, "forward_tflops": flops / fwd / 1e9,
                     "forward_min_traffic_gbs": min_bytes / fwd / 1e6}
        if name in candidates:
            row[name]["forward_backward_ms"] = time_ms(lambda: forward_backward(fn, f, y, weights, grad), iters)
            row[name]["peak_forward_backward_mib"] = cuda_peak_bytes(
                lambda: forward_backward(fn, f, y, weights, grad)) / 2**20
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        row["cuda"]["forward_backward_deterministic_ms"] = time_ms(
            lambda: forward_backward(fused, f, y, weights, grad), iters)
    finally:
        torch.use_deterministic_algorithms(deterministic_before)
    ref, cu = row["reference"], row["cuda"]
    row["speedup_forward_vs_eager"] = ref["forward_ms"] / cu["forward_ms"]
    row["speedup_forward_backward_vs_eager"] = ref["forward_backward_ms"] / cu["forward_backward_ms"]
    row["peak_memory_ratio_vs_eager"] = cu["peak_forward_backward_mib"] / ref["peak_forward_backward_mib"]
    if with_compile:
        row["speedup_forward_vs_compiled"] = row["reference_compiled"]["forward_ms"] / cu["forward_ms"]
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True)
    ap.add_argument("--quick", action="store_true", help="fewer iterations")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile of the reference")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 1
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
              "cases": []}
    for n, h, w in CASES:
        for dtype_name in DTYPES:
            row = measure(n, h, w, dtype_name, 5 if args.quick else 20, args.compile)
            result["cases"].append(row)
            with open(args.json, "w") as fh:  # after every case: a time limit keeps what was measured
                json.dump(result, fh, indent=2)
            cu, ref = row["cuda"], row["reference"]
            print(f"{row['case']:>14s} {dtype_name:8s} fwd {cu['forward_ms']:7.3f} ms (eager {ref['forward_ms']:7.3f}, "
                  f"x{row['speedup_forward_vs_eager']:.2f})  fwd+bwd {cu['forward_backward_ms']:7.3f} ms "
                  f"(eager {ref['forward_backward_ms']:7.3f}, x{row['speedup_forward_backward_vs_eager']:.2f})  "
                  f"peak {cu['peak_forward_backward_mib']:.0f}/{ref['peak_forward_backward_mib']:.0f} MiB  "
                  f"{cu['forward_tflops']:.1f} TFLOP/s  {cu['forward_min_traffic_gbs']:.0f} GB/s"
                  + (f"  (SIMT fwd {row['cuda_simt']['forward_ms']:.3f} ms)" if "cuda_simt" in row else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
