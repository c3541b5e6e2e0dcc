"""The CPU allocator state the benchmarks run in: glibc's malloc keeps the memory that calls free.

torch's CPU allocator hands every tensor to malloc. With glibc's defaults, a block above the mmap
threshold (128 KiB, raised as large blocks are freed, to 32 MiB at most) is mmap'ed for the one
tensor and unmapped when it dies, and the top of the heap is handed back beyond the trim
threshold; a call then faults its fresh pages in, one 4 KiB page at a time, each zeroed by the
kernel. How much of a call that is depends on what ran before it in the process: the eager
reference's 1x3x512x512 order-3 forward took about 160 ms in a fresh process and 41 ms after the
backbone benchmarks had run, on the same 2-core box. Raising both thresholds at the start of a
run (what MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ do from the environment) puts every case
in the steady state of a long-running process whose allocator reuses its memory, as jemalloc or
tcmalloc would, whatever ran before it. The peak-memory measure is unaffected: it calls
malloc_trim(0) first, which hands the kept memory back (taylor_fast.bench.memory).
"""
from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
KEEP_BYTES = 1 << 30
# the process-wide state, as recorded in a results document's environment
state = "default (the C library's own thresholds)"


def keep_freed_memory() -> str:
    """Raise glibc's mmap and trim thresholds to KEEP_BYTES; returns (and records in `state`)
    what was done, or why not."""
    global state
    state = _set_thresholds()
    return state


def libc():
    """The C library, or None where ctypes cannot find it."""
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def _set_thresholds() -> str:
    c = libc()
    if c is None or not hasattr(c, "mallopt") or not hasattr(c, "gnu_get_libc_version"):
        return "default (not glibc: thresholds left alone)"
    c.gnu_get_libc_version.restype = ctypes.c_char_p
    version = c.gnu_get_libc_version().decode()
    if not (c.mallopt(M_MMAP_THRESHOLD, KEEP_BYTES) and c.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES)):
        return f"glibc {version}: mallopt refused the thresholds (left at their defaults)"
    return (f"glibc {version} keeping freed memory: mmap and trim thresholds {KEEP_BYTES >> 20} MiB "
            "(set by the benchmark run)")
