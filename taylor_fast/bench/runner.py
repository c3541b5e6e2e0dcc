"""Run one case end to end (build, time, measure memory), and a whole grid for one device."""
from __future__ import annotations

import sys

import torch

from . import allocator, memory, peaks, results, timing, workloads


def run_case(spec, budget: str, time_fn=None) -> dict:
    """The record of one case. `time_fn(workload) -> Timing` replaces timing.measure (pytest uses it)."""
    with workloads.precision_flags(spec):
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
    precisions = sorted({r["dtype"] for r in records if r["status"] == "ok"} | {"float32"})
    return results.document(device, grid_name, records, peaks.device_peaks(device, precisions),
                            memory.method(device), load_at_start)


def run_grid(specs, device: str, budget: str, grid_name: str, progress=sys.stderr, partial=None) -> dict:
    """Every case of `specs`, then the document. `partial(records)` is called after each case, so
    that a run cut off part-way still leaves what it measured."""
    load_at_start, records = results.load_average(), []
    if device == "cpu":
        allocator.keep_freed_memory()
    for i, spec in enumerate(specs, 1):
        record = run_case(spec, budget)
        records.append(record)
        if partial is not None:
            partial(records)
        if progress is not None:
            status = (f"{record['time']['median_ms']:.3f} ms" if record["status"] == "ok"
                      else f"skipped: {record['reason']}")
            print(f"[{i}/{len(specs)}] {spec.id}: {status}", file=progress, flush=True)
    return finish(device, grid_name, records, load_at_start)
