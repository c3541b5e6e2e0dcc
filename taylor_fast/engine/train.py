"""The training loop: a TaylorNet on random patches, L1(O, x) + lam L1(f, x), Adam and MultiStepLR
(paper §4.3), resumable exactly from RUN/last.ckpt, on one process or many (torchrun DDP).

Exact resumption: the data drawn depends only on (seed, epoch, position) (see sampler.py), and
the checkpoint holds the weights, the optimiser and scheduler state, every process's RNG states
and the iteration reached, so a run killed and resumed sees the same batches and takes the same
steps as one that never stopped.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from .. import __version__
from ..data import TrainingPatches
from ..taylornet import TaylorNet, select_output, taylor_loss
from . import atomic, checkpoint, distributed, model, rng
from .config import ConfigError, dump
from .datasets import open_for_model
from .paths import inside
from .progress import TrainLog, image_grid
from .sampler import EpochSampler, Repeated

CHECKPOINT = "last.ckpt"
CONFIG = "config.yaml"


class TrainingError(RuntimeError):
    """Training cannot start or continue; the message says why and what to do."""


class TermsForward(nn.Module):
    """(O, f) of a TaylorNet as one forward() (what DDP and torch.compile wrap). With amp the
    mapping network runs under bf16 autocast and its output is cast back to float32 before the
    expansion: the Taylor ops take one dtype for all their inputs and y (or up(y)) stays float32."""

    def __init__(self, net: TaylorNet, amp: bool):
        super().__init__()
        self.net, self.amp = net, amp

    def forward(self, y):
        with torch.autocast(y.device.type, dtype=torch.bfloat16, enabled=self.amp):
            f = select_output(self.net.mapping(y), self.net.output, self.net.mapping)
        f = f.float()
        u = self.net.guide(y)
        self.net.check_sizes(f, u, y)
        return self.net.expand(f, u), f


def _check_patch(images, patch: int) -> None:
    """Every training image must hold a patch (checked from the file headers, before training);
    the patch is the target's (for super-resolution, the high-resolution one)."""
    for pair in images.pairs:
        height, width = pair.target.size()
        if height < patch or width < patch:
            raise ConfigError(f"data.train.patch: {patch} is larger than {pair.target.describe()} "
                              f"({height}x{width} HxW); lower the patch size")


def _use_amp(setting: str, device: torch.device) -> bool:
    return setting == "bf16" or (setting == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported())


class Training:
    def __init__(self, config: dict, run: Path, processes: distributed.Processes, resume: dict | None, bar: bool):
        self.config, self.folder, self.processes, self.bar = config, Path(run), processes, bar
        train, data, seed = config["train"], config["data"]["train"], config["seed"]
        device = processes.device
        if train["deterministic"]:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)

        torch.manual_seed(seed)  # the same initial weights on every process (and in every rerun)
        self.net = model.build(config["model"]).to(device)
        if self.net.order == 0:  # G takes no part in O = f: freeze it so DDP and Adam skip it
            self.net.derivative.requires_grad_(False)
        rng.seed_everything(seed + processes.rank)

        images = open_for_model(config["model"], data["dataset"], data["root"], data["split"], data["options"],
                                skip_bad=data["skip_bad"], where="data.train")
        _check_patch(images, data["patch"])
        self.patches = TrainingPatches(Repeated(images, data["repeat"]), patch=data["patch"], seed=seed,
                                       flips=data["flips"], rotations=data["rotations"])
        self.sampler = EpochSampler(len(self.patches), seed, processes.rank, processes.world)
        self.batch = data["batch_size"]
        self.per_epoch = self.sampler.per_rank // self.batch
        if self.per_epoch == 0:
            raise ConfigError(f"data.train.batch_size: {self.batch} is more than the {self.sampler.per_rank} patches "
                              f"each of the {processes.world} processes gets per epoch ({len(images)} images x "
                              f"repeat {data['repeat']}); lower it or raise data.train.repeat")
        self.total = train["iters"] or train["epochs"] * self.per_epoch
        self.loader = DataLoader(self.patches, batch_size=self.batch, sampler=self.sampler, drop_last=True,
                                 num_workers=data["workers"], pin_memory=device.type == "cuda",
                                 generator=torch.Generator())  # leaves the global RNG alone

        params = [p for p in self.net.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=train["lr"], betas=tuple(train["betas"]),
                                          weight_decay=train["weight_decay"])
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, [m * self.per_epoch for m in train["milestones"]], gamma=train["gamma"])
        self.iteration = 0
        if resume is not None:
            self._restore(resume)

        self.amp = _use_amp(train["amp"], device)
        forward = TermsForward(self.net, self.amp)
        if processes.distributed:
            forward = DistributedDataParallel(forward, device_ids=[device.index] if device.type == "cuda" else None)
        self.forward = torch.compile(forward) if train["compile"] else forward

    def _restore(self, state: dict) -> None:
        progress = state["progress"]
        if progress["world"] != self.processes.world:
            raise TrainingError(f"this run was trained by {progress['world']} processes; resume it with the same "
                                f"number (got {self.processes.world}) so that it sees the same batches")
        if progress["iters_per_epoch"] != self.per_epoch:
            raise TrainingError(f"the training set now gives {self.per_epoch} iterations per epoch, the run was "
                                f"trained with {progress['iters_per_epoch']}: the dataset under "
                                f"{self.config['data']['train']['root']} has changed")
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        rng.restore(state["rng"][self.processes.rank])
        self.iteration = progress["iteration"]

    # ------------------------------------------------------------------ the loop
    def open_log(self) -> TrainLog:
        paths, main = self.config["paths"], self.processes.main
        return TrainLog(inside(self.folder, paths["log"], "paths.log") if main else None,
                        inside(self.folder, paths["tensorboard"], "paths.tensorboard") if main else None,
                        self.total, self.iteration, self.bar, main)

    def iterate(self, log: TrainLog) -> Iterator[int]:
        """Train to the end, yielding the iteration reached after every step (checkpoints are
        saved on schedule and at the end; a caller may stop early and call save() itself)."""
        log.message(self._describe() if self.iteration < self.total else
                    f"nothing to do: the run is at iteration {self.iteration} of {self.total}")
        window = torch.zeros(3, dtype=torch.float64)  # summed loss, L1(O, x), L1(f, x) since the last log
        while self.iteration < self.total:
            epoch, done = divmod(self.iteration, self.per_epoch)
            self.patches.set_epoch(epoch)
            self.sampler.set_epoch(epoch, start=done * self.batch)
            for batch in self.loader:
                window += self._step(batch, log)
                log.advance()
                self._report(window, log)
                if self.iteration % self.config["train"]["checkpoint_every"] == 0 or self.iteration == self.total:
                    self._finite(window)  # never save a diverged state over the last good one
                    self.save()
                if self.iteration % self.config["log"]["every"] == 0:
                    window.zero_()
                yield self.iteration
                if self.iteration >= self.total:
                    break

    def run(self) -> dict:
        log = self.open_log()
        start_iteration, started = self.iteration, time.perf_counter()
        try:
            for _ in self.iterate(log):
                pass
        finally:
            log.close()
        return {"main": self.processes.main, "iterations": self.iteration,
                "trained_iterations": self.iteration - start_iteration, "seconds": time.perf_counter() - started,
                "checkpoint": str(self.folder / CHECKPOINT)}

    def _step(self, batch: dict, log: TrainLog) -> torch.Tensor:
        device = self.processes.device
        y = batch["input"].to(device, non_blocking=True)
        x = batch["target"].to(device, non_blocking=True)
        out, f = self.forward(y)
        loss = taylor_loss(out, f, x, lam=self.config["train"]["lam"])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config["train"]["grad_clip"]:
            nn.utils.clip_grad_norm_(self.net.parameters(), self.config["train"]["grad_clip"])
        self.optimizer.step()
        self.scheduler.step()
        self.iteration += 1
        every = self.config["log"]["images_every"]
        if every and self.iteration % every == 0:
            log.images(self.iteration, image_grid(self.net.guide(y), f, out, x))
        with torch.no_grad():
            terms = torch.stack([loss.detach(), nn.functional.l1_loss(out, x), nn.functional.l1_loss(f, x)])
        return terms.double().cpu()

    def _report(self, window: torch.Tensor, log: TrainLog) -> None:
        if self.iteration % self.config["log"]["every"] and self.iteration != self.total:
            return
        steps = (self.iteration - 1) % self.config["log"]["every"] + 1
        mean = self._finite(window / steps)
        log.scalars(self.iteration, {"loss": mean[0].item(), "l1_O": mean[1].item(), "l1_f": mean[2].item(),
                                     "lr": self.optimizer.param_groups[0]["lr"]})

    def _finite(self, window: torch.Tensor) -> torch.Tensor:
        """The mean of `window` over the processes; raises on every process if any loss was not finite."""
        mean = self.processes.mean(window)
        if not torch.isfinite(mean).all():
            raise TrainingError(f"training diverged by iteration {self.iteration} (loss {mean[0].item()}); "
                                f"{self.folder / CHECKPOINT} holds the last finite state: lower train.lr or set "
                                "train.grad_clip, then resume")
        return mean

    def _describe(self) -> str:
        c, n = self.config, self.net
        where = f"{self.processes.world} processes" if self.processes.distributed else str(self.processes.device)
        return (f"{'resuming at' if self.iteration else 'training from'} iteration {self.iteration} of {self.total} "
                f"({self.per_epoch} per epoch): {c['model']['backbone']}{f' x{n.scale}' if n.scale > 1 else ''} "
                f"order {n.order} "
                f"({'shared' if c['model']['shared'] else 'per-order'} G, backend {n.backend}), "
                f"{c['data']['train']['dataset']} patches {c['data']['train']['patch']} x batch {self.batch}, "
                f"on {where}{', bf16 autocast' if self.amp else ''}")

    # ------------------------------------------------------------------ checkpoints
    def state(self, rng_states: list) -> dict:
        return {
            "config": self.config,
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_states,
            "progress": {"iteration": self.iteration, "epoch": self.iteration // self.per_epoch,
                         "batch_in_epoch": self.iteration % self.per_epoch, "iters_per_epoch": self.per_epoch,
                         "total": self.total, "world": self.processes.world},
            "versions": {"taylor_fast": __version__, "torch": torch.__version__},
        }

    def save(self) -> None:
        rng_states = self.processes.gather(rng.capture())  # every process takes part
        if self.processes.main:
            checkpoint.save(self.folder / CHECKPOINT, self.state(rng_states))
        self.processes.barrier()


def prepare_run(run: Path, config: dict, processes: distributed.Processes) -> None:
    """Create the run folder, drop temporaries of killed writers, and record the resolved config."""
    if not processes.main:
        return
    run.mkdir(parents=True, exist_ok=True)
    for stale in atomic.leftovers(run / CHECKPOINT) + atomic.leftovers(run / CONFIG):
        stale.unlink(missing_ok=True)
    atomic.replace(run / CONFIG, dump(config).encode())


def train(config: dict, run, *, resume: dict | None = None, device: str = "auto", bar: bool = True) -> dict:
    """Train per `config` into the folder `run` (continuing from the checkpoint state `resume`)."""
    processes = distributed.start(device)
    try:
        # set up (model, data, optimiser) before the run folder exists, so a bad setting or
        # dataset leaves nothing behind
        training = Training(config, Path(run), processes, resume, bar and config["log"]["progress"])
        prepare_run(Path(run), config, processes)
        processes.barrier()
        return training.run()
    finally:
        distributed.stop(processes)
