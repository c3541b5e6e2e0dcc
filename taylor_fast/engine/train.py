"""The training loop: a TaylorNet on random patches, L1(O, x) + lam L1(f, x), Adam and MultiStepLR
(the paper's recipe: docs/semantics.md), resumable exactly from RUN/last.ckpt, on one process or many (torchrun DDP).

Exact resumption: the data drawn depends only on (seed, epoch, position) (see sampler.py), and
the checkpoint holds the weights, the optimiser and scheduler state, every process's RNG states
and the iteration reached, so a run killed and resumed sees the same batches and takes the same
steps as one that never stopped.

One writer per run: rank 0 holds the run folder's lock (lock.py) from before the checkpoint is
read until the last save. SIGINT or SIGTERM ends the run after the current step, with a
checkpoint (interrupt.py); all processes stop at the same step. A diverged run (a non-finite loss,
weight or optimiser moment) is never saved; it can be resumed from its last checkpoint with a
lower train.lr or a train.grad_clip, the one change besides length, logging and speed settings
that a resumed run may make to its recipe.
"""
from __future__ import annotations

import os
import signal
import time
from bisect import bisect_right
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from .. import __version__
from ..data import TrainingPatches
from ..taylornet import TaylorNet, select_output, taylor_loss
from . import atomic, checkpoint, distributed, lock, model, rng
from .config import ConfigError, dump
from .datasets import open_for_model
from .interrupt import StopRequest
from .paths import CHECKPOINT, CONFIG, inside
from .progress import TrainLog, image_grid
from .sampler import EpochSampler, Repeated

_FOLDERS = ("tensorboard",)  # paths.* entries that name a folder; the others name a file


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

        model.check(config["model"])
        torch.manual_seed(seed)  # the same initial weights on every process (and in every rerun)
        self.net = model.build(config["model"]).to(device)
        model.check_backend(self.net, device, "choose another with --backend or --set model.backend (auto picks "
                                              "one that runs here; `taylor-fast info` lists them)")
        if self.net.order == 0:  # G takes no part in O = f: freeze it so DDP and Adam skip it
            self.net.derivative.requires_grad_(False)
        rng.seed_everything(seed + processes.rank)

        images = open_for_model(config["model"], data["dataset"], data["root"], data["split"], data["options"],
                                skip_bad=data["skip_bad"], skip_hint="--set data.train.skip_bad=true",
                                keys=("data.train.dataset", "data.train.root", "data.train.options"))
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
        self.saved_at: int | None = None  # the iteration last.ckpt holds (None: no checkpoint yet)
        self.recovery: list[str] = []  # recipe changes a resumed run made (train.lr, train.grad_clip)
        self.stopped_by = 0  # the signal that stopped the run early (0: none)
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
        self.iteration = self.saved_at = progress["iteration"]
        self._recover(state["config"]["train"])

    def _recover(self, saved: dict) -> None:
        """Apply a train.lr or train.grad_clip that differs from the checkpoint's (a resumed run may
        change these two to get past a divergence) and note the change for the log."""
        train = self.config["train"]
        if train["lr"] != saved["lr"]:
            # the new base rate with the milestones already passed applied, as if the run had used it from the start
            milestones = sorted(self.scheduler.milestones.elements())
            lr = train["lr"] * train["gamma"] ** bisect_right(milestones, self.scheduler.last_epoch)
            for group in self.optimizer.param_groups:
                group["lr"], group["initial_lr"] = lr, train["lr"]
            self.scheduler.base_lrs = [train["lr"]] * len(self.optimizer.param_groups)
            self.scheduler._last_lr = [lr] * len(self.optimizer.param_groups)
            self.recovery.append(f"train.lr {saved['lr']:g} -> {train['lr']:g} (learning rate now {lr:g})")
        if train["grad_clip"] != saved["grad_clip"]:
            self.recovery.append(f"train.grad_clip {saved['grad_clip']} -> {train['grad_clip']}")

    # ------------------------------------------------------------------ the loop
    def open_log(self) -> TrainLog:
        main = self.processes.main
        return TrainLog(location(self.folder, self.config, "log") if main else None,
                        location(self.folder, self.config, "tensorboard") if main else None,
                        self.total, self.iteration, self.bar, main)

    def iterate(self, log: TrainLog, stop: StopRequest | None = None) -> Iterator[int]:
        """Train to the end, yielding the iteration reached after every step (checkpoints are
        saved on schedule and at the end; a caller may stop early and call save() itself). When
        `stop` has caught a signal on any process, every process finishes the step it is in, the
        state is saved and the loop ends (self.stopped_by says which signal)."""
        if self.recovery:
            log.message("resumed with a changed recipe: " + "; ".join(self.recovery))
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
                scheduled = self.iteration % self.config["train"]["checkpoint_every"] == 0
                if scheduled or self.iteration == self.total:
                    self._checked_save(window)
                # one collective per step under DDP: a signal may have reached only some processes
                self.stopped_by = self.processes.largest(stop.signal) if stop is not None else 0
                if self.stopped_by:
                    if not scheduled and self.iteration != self.total:
                        self._checked_save(window)
                    log.message(f"stopped by {signal.Signals(self.stopped_by).name} at iteration {self.iteration} "
                                f"of {self.total}; {self.folder / CHECKPOINT} holds it: continue with --resume")
                    return
                if self.iteration % self.config["log"]["every"] == 0:
                    window.zero_()
                yield self.iteration
                if self.iteration >= self.total:
                    break

    def run(self) -> dict:
        log = self.open_log()
        start_iteration, started = self.iteration, time.perf_counter()
        try:
            with StopRequest(announce=self.processes.main) as stop:
                for _ in self.iterate(log, stop):
                    pass
        except (TrainingError, checkpoint.CheckpointError) as exc:
            log.record(f"stopped: {exc}")
            raise
        finally:
            log.close()
        return {"main": self.processes.main, "iterations": self.iteration, "stopped_by": self.stopped_by,
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
            raise self._diverged(f"loss {mean[0].item()}")
        return mean

    def _checked_save(self, window: torch.Tensor) -> None:
        """save(), unless a loss since the last log, a weight or an Adam moment is not finite: a
        diverged state never replaces the last good checkpoint."""
        self._finite(window)
        tensors = [p.detach() for p in self.net.parameters()]
        tensors += [t for state in self.optimizer.state.values() for t in state.values() if torch.is_tensor(t)]
        device = self.processes.device  # Adam's step counters stay on the CPU when the weights do not
        bad = int(not torch.stack([torch.isfinite(t).all().to(device) for t in tensors]).all())
        if self.processes.largest(bad):
            raise self._diverged("the weights or optimiser moments are no longer finite")
        self.save()

    def _diverged(self, what: str) -> TrainingError:
        lr = self.config["train"]["lr"]
        lower = f"--set train.lr={lr / 10:g}" if lr != float("inf") else "--set train.lr=1e-3"
        if self.saved_at is None:
            advice = (f"no checkpoint was saved before that, so start again, with a lower train.lr ({lower}) or "
                      "with train.grad_clip set (--set train.grad_clip=1)")
        else:
            advice = (f"{self.folder / CHECKPOINT} holds the last finite state (iteration {self.saved_at}): continue "
                      f"from it with --resume and a lower train.lr ({lower}) or train.grad_clip set "
                      "(--set train.grad_clip=1)")
        return TrainingError(f"training diverged by iteration {self.iteration} ({what}); {advice}")

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
        self.saved_at = self.iteration
        self.processes.barrier()


def location(run: Path, config: dict, key: str) -> Path:
    """Where paths.KEY points in the run folder, checked (inside it, and of the right kind)."""
    return inside(run, config["paths"][key], f"paths.{key}", folder_wanted=key in _FOLDERS)


def check_locations(run: Path, config: dict) -> None:
    """Every paths.* entry checked against what the run folder holds (nothing is created)."""
    for key in config["paths"]:
        location(run, config, key)


def prepare_run(run: Path, config: dict, processes: distributed.Processes) -> None:
    """Check the configured locations against what the run folder holds, create the folder, drop
    temporaries of killed writers, and record the resolved config."""
    if not processes.main:
        return
    check_locations(run, config)
    run.mkdir(parents=True, exist_ok=True)
    for stale in atomic.leftovers(run / CHECKPOINT) + atomic.leftovers(run / CONFIG):
        stale.unlink(missing_ok=True)
    atomic.replace(run / CONFIG, dump(config).encode())


def _on_main(processes: distributed.Processes, action: Callable[[], None]) -> None:
    """action() on rank 0 alone; when it fails, every process raises (rank 0 its own error), so
    that no process waits for one that has given up."""
    error = None
    if processes.main:
        try:
            action()
        except Exception as exc:  # handed on below, on every process
            error = exc
    message = processes.gather(None if error is None else str(error))[0]
    if error is not None:
        raise error
    if message is not None:
        raise TrainingError(f"rank 0 stopped: {message}")


def train(run, settings: Callable[[bool], tuple[dict, dict | None]], *, device: str = "auto",
          bar: bool = True) -> dict:
    """Train into the folder `run`. settings(final) gives (config, checkpoint state to continue
    from or None); `final` is False for the call whose result is only checked, True for the call
    whose result is trained.

    Rank 0 holds the run folder's lock from before the checkpoint is read for training until the
    last save, and a refused run changes nothing (not even the lock's record, which lives in the
    run folder): settings(False) and a Training built from it (paths.*, model, backend, data,
    patch and batch sizes, and for a resumed run the process count and iterations per epoch) are
    checked first, reading the checkpoint as any reader may; then the folder is created and
    locked, and settings(True) is read under the lock. A new run keeps the Training built for the
    checks unless another writer saved a checkpoint in between; a resumed run is built again from
    the state read under the lock (reading the checkpoint and opening the data twice, once per run).
    """
    run = Path(run)
    processes = distributed.start(device)
    try:
        early_config, early_resume = settings(False)
        _on_main(processes, lambda: check_locations(run, early_config))  # the cheap check first
        early = Training(early_config, run, processes, early_resume, bar and early_config["log"]["progress"])
        fresh = early_resume is None
        del early_resume  # the Training holds what it needs of it
        with ExitStack() as held:
            _on_main(processes, lambda: held.enter_context(lock.exclusive(run, "train")))
            config, resume = settings(True)
            unchanged = fresh and resume is None and early_config == config
            if processes.largest(int(not unchanged)):  # every process takes the same branch
                early = None  # let its model and data go before building another
                training = Training(config, run, processes, resume, bar and config["log"]["progress"])
            else:
                training = early
            _on_main(processes, lambda: prepare_run(run, config, processes))
            return training.run()
    finally:
        distributed.stop(processes)
