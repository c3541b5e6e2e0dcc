"""Run one case end to end (build, time, measure memory), and a whole grid for one device."""
from __future__ import annotations

import sys

import torch

from . import allocator, memory, peaks, results, timing, workloads


def run_case(spec, budget: str, time_fn=None) -> dict:
    """The record of one case. `time_fn(workload) -> Timing` replaces timing.measure (pytest uses it)."""
    try:
        workload = workloads.build(spec)
    except workloads.Unavailable as exc:
        return results.case_record(spec, skipped=str(exc))
    measured = (time_fn or (lambda w: timing.measure(w, budget)))(workload)
    record = results.case_record(spec, timing=measured, memory=memory.peak(workload), workload=workload)
    del workload
    if spec.device == "cuda":
        torch.cuda.empty_cache()
    return record


def finish(device: str, grid_name: str, records: list[dict], load_at_start=None) -> dict:
    """The results document of a run: measures the device's peaks, then derives the figures."""
    dtypes = sorted({getattr(torch, r["dtype"]) for r in records if r["status"] == "ok"} | {torch.float32}, key=str)
    return results.document(device, grid_name, records, peaks.device_peaks(device, dtypes), memory.method(device),
                            load_at_start)


def run_grid(specs, device: str, budget: str, grid_name: str, progress=sys.stderr) -> dict:
    load_at_start, records = results.load_average(), []
    if device == "cpu":
        allocator.keep_freed_memory()
    for i, spec in enumerate(specs, 1):
        record = run_case(spec, budget)
        records.append(record)
        if progress is not None:
            status = (f"{record['time']['median_ms']:.3f} ms" if record["status"] == "ok"
                      else f"skipped: {record['reason']}")
            print(f"[{i}/{len(specs)}] {spec.id}: {status}", file=progress, flush=True)
    return finish(device, grid_name, records, load_at_start)
