"""Peak extra memory of one forward+backward of the Taylor expansion, fused CPU kernels vs the
eager reference, at one size (the CPU kernels' memory target, at most a fifth of the reference's
peak, is stated at 1x3x1024x1024, which the benchmark grid does not hold). Same measure as the suite (taylor_fast.bench.memory).

    python benchmarks/peak_memory.py [--size 1024] [--order 3] [--hidden 32]
"""
import argparse

import torch

from taylor_fast import ops
from taylor_fast.bench.memory import CPU_METHOD, cpu_peak_bytes
from taylor_fast.taylornet import DerivativeG


def peak_mib(backend: str, size: int, order: int, hidden: int) -> float:
    gen = torch.Generator().manual_seed(0)
    f, y, grad_out = (torch.rand(1, 3, size, size, generator=gen) for _ in range(3))
    f.requires_grad_(True)
    weights = [w.detach().requires_grad_(True) for w in DerivativeG(3, hidden).weights()]

    def call():
        for t in (f, *weights):
            t.grad = None
        ops.taylor_expand(f, y, *weights, order, backend=backend).backward(grad_out)

    call()  # steady state: one call first, as the suite does
    return cpu_peak_bytes(call) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="image height and width (default 1024)")
    parser.add_argument("--order", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=32)
    args = parser.parse_args()
    fused = peak_mib("cpu", args.size, args.order, args.hidden)
    eager = peak_mib("reference", args.size, args.order, args.hidden)
    print(f"1x3x{args.size}x{args.size}, order {args.order}, hidden {args.hidden}, fp32, forward+backward "
          f"({CPU_METHOD}):")
    print(f"  cpu {fused:.1f} MiB, reference {eager:.1f} MiB, ratio {fused / eager:.3f}")


if __name__ == "__main__":
    main()
