"""The Taylor expansion (forward, forward+backward) and a TaylorNet training step, per backend.

One test per case of taylor_fast.bench.grid (cases and options: conftest.py). On CPU the
figure is pytest-benchmark's own per-call wall-clock; on CUDA pytest-benchmark times each call
plus a synchronize (kept for --benchmark-compare), and the recorded figure is the CUDA-events
median with its do_bench cross-check (taylor_fast/bench/timing.py).
"""
import pytest

from taylor_fast.bench import runner, timing


def _pytest_benchmark_timer(benchmark, budget):
    def time_fn(workload):
        if benchmark.disabled:  # --benchmark-disable: still report a figure, from our own timer
            return timing.measure(workload, budget)
        estimate = timing.warm_up(workload)
        rounds = timing.rounds_for(estimate, budget)
        benchmark.pedantic(workload.call_synced, rounds=rounds)
        own = timing.Timing.from_samples(benchmark.stats.stats.data, "pytest-benchmark, wall-clock per call")
        if workload.spec.device != "cuda":
            return own
        events = timing.cuda_timing(workload, estimate, rounds, budget)
        events.cross_check["pytest_benchmark_ms"] = own.median_ms
        return events

    return time_fn


def test_taylor(benchmark, taylor_case, taylor_budget, taylor_records):
    spec = taylor_case
    benchmark.group = f"{spec.device} {spec.kind} o{spec.order} h{spec.hidden} {spec.shape_text} {spec.dtype}"
    record = runner.run_case(spec, taylor_budget, _pytest_benchmark_timer(benchmark, taylor_budget))
    if record["status"] == "skipped":
        pytest.skip(record["reason"])
    taylor_records.append(record)
    benchmark.extra_info.update(
        taylor_case=spec.id, flops=record["flops"], bytes=record["bytes"],
        peak_memory_bytes=record["peak_memory_bytes"], timing_method=record["time"]["method"],
        cross_check=record["time"]["cross_check"],
    )
