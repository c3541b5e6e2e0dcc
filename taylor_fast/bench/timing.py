"""Timing a workload.

CPU: wall-clock (time.perf_counter) per call after warm-up; the median is the figure, the
IQR its spread. CUDA: kernels are asynchronous, so a wall-clock around a launch measures the
launch only. The figure is CUDA events around a loop of calls (enough calls per sample that
a sample lasts ~1 ms, so event resolution and launch gaps vanish), median over samples. It is
cross-checked against (a) the wall-clock of the same loop bracketed by synchronize() and (b)
triton.testing.do_bench (which also flushes L2 between calls, so it reads a little slower on
small cases); both are recorded with the result.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass, field

import torch

# (seconds of timed calls per case, least rounds, most rounds)
BUDGETS = {"full": (2.0, 3, 100), "quick": (0.5, 2, 30)}
CUDA_SAMPLE_S = 1e-3


@dataclass
class Timing:
    median_ms: float
    min_ms: float
    iqr_ms: float
    rounds: int
    method: str
    samples_ms: list[float] = field(default_factory=list)
    cross_check: dict = field(default_factory=dict)

    @classmethod
    def from_samples(cls, samples_s, method: str) -> "Timing":
        ms = [s * 1e3 for s in samples_s]
        if len(ms) >= 2:
            q = statistics.quantiles(ms, n=4, method="inclusive")
            iqr = q[2] - q[0]
        else:
            iqr = 0.0
        return cls(statistics.median(ms), min(ms), iqr, len(ms), method, [round(v, 4) for v in ms])

    def to_json(self) -> dict:
        return asdict(self)


def warm_up(workload) -> float:
    """Run the warm-up calls, then one more timed; seconds of that steady-state call."""
    for _ in range(workload.warmup_calls):
        workload.call_synced()
    start = time.perf_counter()
    workload.call_synced()
    return time.perf_counter() - start


def rounds_for(estimate_s: float, budget: str) -> int:
    seconds, least, most = BUDGETS[budget]
    return max(least, min(most, math.ceil(seconds / max(estimate_s, 1e-9))))


def wall_clock(workload, rounds: int) -> Timing:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        workload.call_synced()
        samples.append(time.perf_counter() - start)
    return Timing.from_samples(samples, "perf_counter per call" + (" + synchronize" if workload.spec.device == "cuda" else ""))


def cuda_events(workload, estimate_s: float, rounds: int) -> Timing:
    """Median per-call time from CUDA events; also records the synchronised wall-clock of each loop."""
    calls = max(1, math.ceil(CUDA_SAMPLE_S / max(estimate_s, 1e-9)))
    event_samples, wall_samples = [], []
    for _ in range(rounds):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        wall = time.perf_counter()
        start.record()
        for _ in range(calls):
            workload.call()
        end.record()
        end.synchronize()
        wall_samples.append((time.perf_counter() - wall) / calls)
        event_samples.append(start.elapsed_time(end) / 1e3 / calls)
    timing = Timing.from_samples(event_samples, f"CUDA events around {calls} call(s) per sample")
    timing.cross_check["synchronized_wall_ms"] = statistics.median(wall_samples) * 1e3
    return timing


def do_bench_ms(workload, budget: str) -> float | None:
    """triton.testing.do_bench's median, or None where Triton is not installed."""
    try:
        from triton.testing import do_bench
    except ImportError:
        return None
    rep_ms = 100 if budget == "full" else 25
    return float(do_bench(workload.call, warmup=10, rep=rep_ms, return_mode="median"))


def cross_check_cuda(timing: Timing, workload, budget: str) -> None:
    """Add do_bench's figure and how far it and the wall-clock are from the events median."""
    bench = do_bench_ms(workload, budget)
    if bench is not None:
        timing.cross_check["do_bench_ms"] = bench
    for key in ("synchronized_wall_ms", "do_bench_ms"):
        if key in timing.cross_check:
            timing.cross_check[key.replace("_ms", "_vs_events")] = timing.cross_check[key] / timing.median_ms


def cuda_timing(workload, estimate_s: float, rounds: int, budget: str) -> Timing:
    """The CUDA figure: events median, cross-checked (see the module docstring)."""
    timing = cuda_events(workload, estimate_s, max(BUDGETS[budget][1], min(rounds, 50)))
    cross_check_cuda(timing, workload, budget)
    return timing


def measure(workload, budget: str = "full") -> Timing:
    """Warm up, then time `workload` by the device's method (see the module docstring)."""
    estimate = warm_up(workload)
    rounds = rounds_for(estimate, budget)
    if workload.spec.device != "cuda":
        return wall_clock(workload, rounds)
    return cuda_timing(workload, estimate, rounds, budget)
