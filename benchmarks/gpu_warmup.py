"""Compile ahead what the headline benchmark will need, so that its stage of gpu_check.sh spends
its minutes timing instead of compiling. gpu_check.sh starts this in the background after the
build, while the test stages keep the GPU busy with small work and leave CPU cores free, and
waits for it before the headline stage.

    python benchmarks/gpu_warmup.py [--device cuda|cpu]

What it compiles, into the caches a later process reads:
- the Triton kernels (Triton's cache): forward and backward in every headline precision, every
  tuned config (the bench autotunes). Images of any size share one binary per config and dtype
  (the kernels do not specialise on sizes), so a small image compiles what 1080p will run;
- the compiled reference (inductor's FX graph cache): torch.compile specialises on shapes, so
  each headline shape in the default precision, forward and forward+backward, as the bench
  builds it.
--device cpu (gpu_check.sh --dry-run) does the same for the CPU grid at a tiny size: the
machinery, not the GPU's figures.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from taylor_fast.bench import grid, workloads


def warm(spec: grid.CaseSpec) -> float:
    """Build the bench's own workload for spec and call it once: what compiles, compiles."""
    start = time.perf_counter()
    with workloads.precision_flags(spec):
        try:
            workload = workloads.build(spec)
        except workloads.Unavailable as exc:
            print(f"  {spec.id}: skipped ({exc})", flush=True)
            return 0.0
        for _ in range(workload.warmup_calls):
            workload.call_synced()
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=grid.DEVICES, default="cuda")
    parser.add_argument("--size", type=grid.parse_size, default=None,
                        help="the shape for the compiled reference (default: the headline grid's own)")
    parser.add_argument("--backends", type=lambda text: tuple(b.strip() for b in text.split(",")), default=None,
                        help="only these bench backends, as `taylor-fast bench --backends`")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_warmup: no CUDA GPU visible", file=sys.stderr)
        return 2
    small = (1, 3, 32, 32)
    specs = grid.cases(args.device, "headline", sizes=(args.size,) if args.size else None, backends=args.backends)
    # Triton: one small image per precision and kind compiles every config of both kernels
    kernels = {(s.kind, s.dtype): s for s in specs if s.backend == "triton"}
    todo = [grid.CaseSpec(kind, "triton", args.device, s.order, s.hidden, small, precision, "warmup")
            for (kind, precision), s in kernels.items()]
    todo += [s for s in specs if s.backend == "reference_compiled"]
    total = time.perf_counter()
    for spec in todo:
        print(f"  {spec.id}: {warm(spec):.1f} s", flush=True)
    print(f"gpu_warmup: {len(todo)} cases in {time.perf_counter() - total:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
