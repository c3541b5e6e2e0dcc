"""Results: one record per case, figures derived from the whole run, and the JSON document.

Ratios are speed-ups: t(eager reference) / t(backend) and t(compiled reference) / t(backend)
at the same point (kind, order, hidden, shape, dtype), so > 1 means faster than the
reference. "% of peak" divides achieved GFLOP/s by the measured matmul peak of the dtype
(and, in the JSON, also by the theoretical or datasheet peak); GB/s likewise by the measured
copy bandwidth (and the datasheet's).
"""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
from dataclasses import asdict
from pathlib import Path

import torch

from .. import __version__, backends
from . import allocator, cost
from .grid import CaseSpec
from .peaks import cpu_theoretical

SCHEMA = "taylor_fast.bench/1"
BASELINES = {"vs_reference": "reference", "vs_compiled": "reference_compiled"}


def case_record(spec: CaseSpec, *, timing=None, memory=None, workload=None, skipped: str | None = None) -> dict:
    record = {"id": spec.id, **asdict(spec), "shape": list(spec.shape)}
    if skipped is not None:
        return {**record, "status": "skipped", "reason": skipped}
    return {**record, "status": "ok", "time": timing.to_json(), "peak_memory_bytes": memory,
            "flops": workload.flops, "bytes": workload.bytes}


def _commit() -> dict:
    """The source checkout's commit, when taylor_fast runs from one (editable install or tree)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").exists() or not (root / "csrc").is_dir():
        return {"commit": None, "dirty": None}

    def git(*args):
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if head.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages: how busy the machine was (noise on shared machines)."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def environment(device: str, load_at_start=None) -> dict:
    env = {
        "taylor_fast": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": load_at_start,
        "load_average_at_end": load_average(),
        "backends": {name: {"available": ok, "reason": why} for name, (ok, why) in backends().items()},
        **_commit(),
    }
    if device == "cpu":
        env["cpu_allocator"] = allocator.state
    if device == "cuda":
        env["gpu"] = torch.cuda.get_device_name()
        env["cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
        env["matmul_allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
    return env


def busy_note(env: dict) -> str | None:
    """A warning when other work shared the machine (1-minute load above half the CPUs), else None."""
    loads = [load[0] for load in (env.get("load_average_at_start"), env.get("load_average_at_end")) if load]
    cpus = env.get("cpu_count") or 1
    if not loads or max(loads) <= cpus / 2:
        return None
    return (f"NOISY: the machine was busy (1-minute load average up to {max(loads):.1f} on {cpus} CPUs); "
            "other processes inflate and scatter these timings: re-record on an idle machine")


def _peak_gflops(peaks: dict, precision: str) -> dict:
    """The peaks a case in `precision` is held against ("tf32": the tensor-core figures)."""
    out = {"measured_matmul": peaks["measured"]["matmul_gflops"].get(precision)}
    if peaks["measured"].get("fma_float32_gflops") and precision == "float32":
        out["measured_fma"] = peaks["measured"]["fma_float32_gflops"]
    if "theoretical" in peaks and precision == "float32":
        out["theoretical"] = peaks["theoretical"]["float32_gflops"]
    sheet = peaks.get("datasheet")
    if sheet and precision in sheet["tflops_dense"]:
        out["datasheet"] = sheet["tflops_dense"][precision] * 1e3
    return out


def _peak_gbps(peaks: dict) -> dict:
    out = {"measured_copy": peaks["measured"]["copy_gbps"]}
    if peaks.get("datasheet"):
        out["datasheet"] = peaks["datasheet"]["bandwidth_gbps"]
    return out


def _fraction(value, peak):
    return value / peak if value is not None and peak else None


def derive(records: list[dict], peaks: dict) -> list[dict]:
    """Add ratios, GFLOP/s, GB/s and fractions of the peaks to every "ok" record (in place)."""
    ok = [r for r in records if r["status"] == "ok"]
    by_point = {(r["kind"], r["order"], r["hidden"], tuple(r["shape"]), r["dtype"], r["backend"]): r for r in ok}
    for r in ok:
        seconds = r["time"]["median_ms"] / 1e3
        point = (r["kind"], r["order"], r["hidden"], tuple(r["shape"]), r["dtype"])
        for key, baseline in BASELINES.items():
            base = by_point.get((*point, baseline))
            r[key] = base["time"]["median_ms"] / r["time"]["median_ms"] if base else None
        r["gflops"] = r["flops"] / seconds / 1e9
        r["gbps"] = r["bytes"] / seconds / 1e9 if r["bytes"] is not None else None
        r["fraction_of_peak_flops"] = {k: _fraction(r["gflops"], v) for k, v in _peak_gflops(peaks, r["dtype"]).items()}
        r["fraction_of_peak_bandwidth"] = {k: _fraction(r["gbps"], v) for k, v in _peak_gbps(peaks).items()}
    return records


def document(device: str, grid_name: str, records: list[dict], peaks: dict, memory_method: str,
             load_at_start=None) -> dict:
    return {
        "schema": SCHEMA,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": device_description(device),
        "grid": grid_name,
        "environment": environment(device, load_at_start),
        "peaks": peaks,
        "cost_model": cost.MODEL_DESCRIPTION,
        "memory_method": memory_method,
        "ratios": "speed-up: t(baseline) / t(backend) at the same point; > 1 is faster",
        "cases": derive(records, peaks),
    }


def partial_document(device: str, grid_name: str, records: list[dict], planned: int) -> dict:
    """What a run has measured so far (no peaks or derived figures yet: those come at the end)."""
    return {
        "schema": SCHEMA,
        "partial": f"{len(records)} of {planned} cases; the run had not finished when this was written",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": device_description(device),
        "grid": grid_name,
        "environment": environment(device),
        "cases": records,
    }


def device_description(device: str) -> dict:
    if device == "cuda":
        return {"type": "cuda", "name": torch.cuda.get_device_name()}
    return {"type": "cpu", "name": cpu_theoretical()["name"], "threads": torch.get_num_threads()}


def slug(doc: dict) -> str:
    """A file name for a results document: device type, name and (CPU) thread count."""
    dev = doc["device"]
    name = "".join(ch if ch.isalnum() else "-" for ch in dev["name"]).strip("-").lower()
    name = "-".join(part for part in name.split("-") if part)
    suffix = f"-{dev['threads']}t" if dev["type"] == "cpu" else ""
    return f"{dev['type']}-{name}{suffix}"
