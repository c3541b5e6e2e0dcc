"""One process or many: torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR...)
starts a process group (NCCL on GPUs, gloo on CPUs); without it everything is a no-op.

    torchrun --nproc_per_node 8 -m taylor_fast train --config ... --out RUN                # one node
    torchrun --nnodes 2 --node_rank R --master_addr HOST --nproc_per_node 8 -m taylor_fast train ...
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass
class Processes:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Rank 0 writes checkpoints, logs and TensorBoard events; the others only train."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The element-wise mean of `values` over all processes."""
        if not self.distributed:
            return values
        values = values.to(self.device, torch.float64).clone()
        dist.all_reduce(values)
        return values.cpu() / self.world

    def largest(self, value: int) -> int:
        """The largest `value` over all processes (so that all take the same decision)."""
        if not self.distributed:
            return value
        values = torch.tensor([value], dtype=torch.int64, device=self.device)
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
        return int(values.item())

    def gather(self, obj) -> list:
        """[obj of rank 0, obj of rank 1, ...] on every process."""
        if not self.distributed:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out


def _device(choice: str, local_rank: int) -> torch.device:
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda: torch sees no CUDA device here")
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        return torch.device("cuda", torch.cuda.current_device())
    if choice != "cpu":
        raise ValueError(f"device: expected auto, cpu or cuda, got {choice!r}")
    return torch.device("cpu")


def start(device: str = "auto") -> Processes:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    where = _device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if where.type == "cuda" else "gloo", timeout=timedelta(minutes=30),
                                **({"device_id": where} if where.type == "cuda" else {}))
    return Processes(rank, world, local_rank, where)


def stop(processes: Processes) -> None:
    if processes.distributed and dist.is_initialized():
        dist.destroy_process_group()
