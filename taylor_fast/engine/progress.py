"""What a training run reports: a tqdm bar (loss, lr, it/s, ETA), a plain-text log in the run
folder, and TensorBoard scalars and image grids. Only the main process reports; elsewhere every
method is a no-op."""
from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import torch
from tqdm import tqdm


class TrainLog:
    def __init__(self, log_file: Path | None, tensorboard_dir: Path | None, total: int, start: int,
                 bar: bool, active: bool):
        self.active = active
        self._file = self._bar = self._writer = None
        if not active:
            return
        log_file.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(log_file, "a", buffering=1)  # line-buffered: a killed run keeps its last lines
        self._bar = tqdm(total=total, initial=start, unit="it", dynamic_ncols=True, disable=not bar,
                         file=sys.stderr, desc="train")
        self._writer = _tensorboard(tensorboard_dir)
        self._last = (time.perf_counter(), start)

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def scalars(self, iteration: int, values: dict[str, float]) -> None:
        """Log `values` at `iteration`; 'loss' and 'lr' also go on the progress bar."""
        if not self.active:
            return
        now = time.perf_counter()
        then, before = self._last
        values = {**values, "it_per_s": (iteration - before) / max(now - then, 1e-9)}
        self._last = (now, iteration)
        self._bar.set_postfix(loss=f"{values['loss']:.4f}", lr=f"{values['lr']:.2e}", refresh=False)
        self._file.write(f"iter {iteration} " + " ".join(f"{k} {v:.6g}" for k, v in values.items()) + "\n")
        if self._writer is not None:
            for name, value in values.items():
                self._writer.add_scalar(f"train/{name}", value, iteration)

    def images(self, iteration: int, grid: torch.Tensor) -> None:
        """A (3, H, W) image in [0, 1] to TensorBoard."""
        if self._writer is not None:
            self._writer.add_image("train/input|f|O|target", grid.clamp(0, 1), iteration)

    def message(self, text: str) -> None:
        if not self.active:
            return
        self._file.write(text + "\n")
        tqdm.write(text, file=sys.stderr)

    def record(self, text: str) -> None:
        """A line for the log file alone (what the command reports on stderr itself)."""
        if self.active:
            self._file.write(text + "\n")

    def close(self) -> None:
        if not self.active:
            return
        self._bar.close()
        if self._writer is not None:
            self._writer.close()
        self._file.close()


def _tensorboard(folder: Path | None):
    if folder is None:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        warnings.warn(f"TensorBoard logging is off ({exc}); pip install tensorboard to turn it on", stacklevel=3)
        return None
    return SummaryWriter(log_dir=str(folder))


def image_grid(*batches: torch.Tensor, rows: int = 2) -> torch.Tensor:
    """The first `rows` samples of each (N, 3, H, W) batch side by side: one row per sample."""
    rows = min(rows, batches[0].shape[0])
    return torch.cat([torch.cat([b[i].detach().float().cpu() for b in batches], dim=2) for i in range(rows)], dim=1)
