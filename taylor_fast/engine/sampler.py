"""The order in which a training process visits its images, reproducible and resumable.

Epoch e visits the items of a permutation drawn from numpy's SeedSequence (seed, e); with W
processes, rank r takes every W-th item (the list padded to a multiple of W by wrapping around,
as DistributedSampler does). Everything follows from (seed, epoch, position), so a resumed run
restarts mid-epoch by skipping the batches it has already trained on, without drawing them.
"""
from __future__ import annotations

import math

import numpy as np
from torch.utils.data import Dataset, Sampler


class Repeated(Dataset):
    """`repeat` passes over a dataset per epoch (BasicSR's dataset_enlarge_ratio): item i is image
    i mod len(dataset); TrainingPatches seeds patches by i, so each pass crops differently."""

    def __init__(self, dataset, repeat: int):
        self.dataset, self.repeat = dataset, repeat
        self.scale = getattr(dataset, "scale", 1)

    def __len__(self):
        return len(self.dataset) * self.repeat

    def __getitem__(self, index):
        return self.dataset[index % len(self.dataset)]

    def load(self, index, degrade: bool = True):
        """PairedImages.load of image index mod len (TrainingPatches makes on-the-fly inputs per patch)."""
        return self.dataset.load(index % len(self.dataset), degrade)


class EpochSampler(Sampler):
    def __init__(self, size: int, seed: int, rank: int = 0, world: int = 1):
        if size < 1:
            raise ValueError(f"size: expected at least one item, got {size}")
        self.size, self.seed, self.rank, self.world = size, seed, rank, world
        self.epoch, self.start = 0, 0

    @property
    def per_rank(self) -> int:
        return math.ceil(self.size / self.world)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Visit epoch `epoch`, skipping this rank's first `start` items."""
        self.epoch, self.start = epoch, start

    def indices(self) -> list[int]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        padded = np.resize(order, self.per_rank * self.world)  # wraps around to a multiple of world
        return padded[self.rank::self.world].tolist()

    def __iter__(self):
        return iter(self.indices()[self.start:])

    def __len__(self):
        return self.per_rank - self.start
