"""Inference on batches that may not fit in memory: a batch whose forward pass runs out of memory
is split and its parts run one after another, down to single items, instead of failing.

    run = Chunked(net)          # net: any batch -> batch model, e.g. a TaylorNet
    out = run(batch)            # = net(batch), computed in parts if the whole does not fit

After an out-of-memory error the batch is halved and the part size is remembered, so later
calls start from a size that fitted. A single item that does not fit raises OutOfMemory, which
tiling.tiled turns into smaller tiles. Out-of-memory errors are torch.OutOfMemoryError (CUDA,
and other accelerators), CPU allocation failures (a RuntimeError from the allocator, or
std::bad_alloc from a kernel) and Python's MemoryError. On Linux the kernel may overcommit memory
and kill the process later instead of failing the allocation; no program can catch that.
"""
from __future__ import annotations

import gc
import warnings
from collections.abc import Callable

import torch

# What torch's CPU allocator, a C++ kernel's std::bad_alloc and CUDA-side libraries say when an
# allocation fails (torch.OutOfMemoryError covers the CUDA caching allocator itself)
_MESSAGES = ("can't allocate memory", "std::bad_alloc", "out of memory")


class OutOfMemory(RuntimeError):
    """Even a single item does not fit in memory."""


class ChunkingWarning(UserWarning):
    """A batch ran out of memory and is being processed in smaller parts."""


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in _MESSAGES)


def release_memory(device: torch.device) -> None:
    """Hand what the failed attempt allocated back before retrying (the caching allocator keeps it)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


class Chunked:
    """model(batch) along dim 0, in parts no larger than `limit` items (None: no limit yet),
    halving the limit whenever a part runs out of memory."""

    def __init__(self, model: Callable[[torch.Tensor], torch.Tensor], limit: int | None = None):
        if limit is not None and limit < 1:
            raise ValueError(f"limit: expected a positive number of items or None, got {limit}")
        self.model, self.limit = model, limit

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        total = batch.shape[0]
        if total == 0:
            return self.model(batch)
        parts, start = [], 0
        while start < total:
            size = total - start if self.limit is None else min(self.limit, total - start)
            out = self._attempt(batch[start:start + size])
            if out is None:  # out of memory: retry the same start with half the size
                self._shrink(size, batch)
                continue
            parts.append(out)
            start += size
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _attempt(self, part: torch.Tensor) -> torch.Tensor | None:
        try:
            return self.model(part)
        except Exception as exc:  # noqa: BLE001 (anything but an out-of-memory error is re-raised)
            if not is_out_of_memory(exc):
                raise
            if part.shape[0] == 1:
                raise OutOfMemory(f"a single item of shape {tuple(part.shape[1:])} does not fit in memory on "
                                  f"{part.device} ({str(exc).splitlines()[0][:200]})") from exc
        return None  # outside the except block, so the failed attempt's frames are freed first

    def _shrink(self, size: int, batch: torch.Tensor) -> None:
        release_memory(batch.device)
        self.limit = size // 2
        warnings.warn(f"out of memory on a batch of {size} items of shape {tuple(batch.shape[1:])} on "
                      f"{batch.device}; continuing {self.limit} at a time", ChunkingWarning, stacklevel=3)
