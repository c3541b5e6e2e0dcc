"""Peak memory of one call of a workload, beyond what was live before it.

CUDA: torch.cuda.max_memory_allocated() after reset_peak_memory_stats(), minus
memory_allocated() before the call: exactly the caching allocator's high-water mark of
tensors, without its cached-but-free blocks.

CPU: torch has no allocator-level peak counter on CPU (its CPU allocator hands every request
to malloc), so the kernel's resident-set high-water mark is used, reset in-process:
  1. gc.collect() and glibc malloc_trim(0), so memory freed by earlier cases is handed back to
     the kernel instead of sitting resident in malloc's free lists (where a later allocation
     could reuse it without raising RSS, hiding it from the measure);
  2. write "5" to /proc/self/clear_refs, which resets VmHWM to the current RSS (Linux >= 4.0);
  3. baseline = VmRSS; run the call; peak = VmHWM - baseline.
RSS counts pages actually touched, so untouched allocations do not count, and allocator slack
does; the test suite checks that a known 64 MiB allocation reads as 64 MiB. A fresh
subprocess per case would give the same figure with a cleaner baseline, but costs a torch
import and, for compiled cases, a whole recompilation per case, and would measure the
compiling call rather than the steady state.
"""
from __future__ import annotations

import gc
import re

import torch

from . import allocator

CPU_METHOD = "peak RSS of one call: VmHWM reset via /proc/self/clear_refs after malloc_trim, minus VmRSS before"
CUDA_METHOD = "torch.cuda.max_memory_allocated minus memory_allocated before the call"


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        match = re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.MULTILINE)
    if match is None:
        raise OSError(f"/proc/self/status has no {field} line")
    return int(match.group(1))


def _malloc_trim() -> None:
    c = allocator.libc()
    if c is not None and hasattr(c, "malloc_trim"):
        c.malloc_trim(0)


def cpu_unavailable_reason() -> str | None:
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        _status_kib("VmHWM")
    except OSError as exc:
        return f"cannot reset the peak RSS here ({exc})"
    return None


def cpu_peak_bytes(fn) -> int:
    gc.collect()
    _malloc_trim()
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    baseline = _status_kib("VmRSS")
    fn()
    return max(0, _status_kib("VmHWM") - baseline) * 1024


def cuda_peak_bytes(fn) -> int:
    torch.cuda.synchronize()
    baseline = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - baseline


def method(device: str) -> str:
    """How `peak` measures on `device`, or why it cannot."""
    if device == "cuda":
        return CUDA_METHOD
    return cpu_unavailable_reason() or CPU_METHOD


def peak(workload) -> int | None:
    """Bytes of one call of `workload` beyond what was live before it (None where unmeasurable)."""
    if workload.spec.device == "cuda":
        return cuda_peak_bytes(workload.call)
    if cpu_unavailable_reason() is not None:
        return None
    return cpu_peak_bytes(workload.call)
