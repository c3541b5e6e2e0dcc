"""Training view: random aligned patches with flips and 90-degree rotations, reproducible.

Each item's randomness comes from numpy's SeedSequence of (seed, epoch, index) and nothing else,
so the result does not depend on DataLoader workers, their number or their order: there is no
RNG state to share or to fork. Call set_epoch(e) before each epoch (as with DistributedSampler);
DataLoader workers pick it up when they start, so use persistent_workers=False (the default).

Super-resolution pairs (a dataset with `scale` s > 1): the patch is the target's, a multiple of
s, and the input patch is the aligned one s times smaller. Inputs made on the fly (noise, bicubic
downsampling) are made from the target patch, with randomness of (seed, epoch, index) too, so
every epoch sees new noise.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset


@dataclass(frozen=True)
class PatchParams:
    top: int
    left: int
    flip: bool  # mirror left-right, applied first
    rot90: int  # then rotate by rot90 * 90 degrees counter-clockwise


def dihedral(image: torch.Tensor, flip: bool, rot90: int) -> torch.Tensor:
    """One of the 8 symmetries of the square, on the last two dims."""
    if flip:
        image = torch.flip(image, dims=(-1,))
    return torch.rot90(image, rot90, dims=(-2, -1)).contiguous()


class TrainingPatches(Dataset):
    """Aligned random patches of a paired dataset: item i is a patch of whole-image pair i.

    patch: side, or (height, width); 100 as in the paper.
    flips / rotations: draw a left-right mirror / a multiple of 90 degrees (8 symmetries with both;
        a non-square patch keeps its orientation, so rotations then use only 0 and 180 degrees).
    """

    def __init__(self, dataset, patch=100, *, seed: int = 0, flips: bool = True, rotations: bool = True):
        height, width = (patch, patch) if isinstance(patch, int) else tuple(patch)
        if height < 1 or width < 1:
            raise ValueError(f"patch: expected a positive size, got {patch!r}")
        if seed < 0:
            raise ValueError(f"seed: expected a non-negative integer, got {seed}")
        self.scale = getattr(dataset, "scale", 1)
        if height % self.scale or width % self.scale:
            raise ValueError(f"patch: {patch!r} is not a multiple of the dataset's scale {self.scale} (the patch is the "
                             f"high-resolution target's, e.g. {48 * self.scale} for 48x48 inputs)")
        self.dataset, self.patch, self.seed = dataset, (height, width), seed
        self.flips, self.rotations = flips, rotations
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        if epoch < 0:
            raise ValueError(f"epoch: expected a non-negative integer, got {epoch}")
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def params(self, index: int, height: int, width: int, name: str = "image") -> PatchParams:
        """Where patch `index` of this epoch lies in a height x width target, and its symmetry;
        top and left count input pixels (target pixels / scale)."""
        ph, pw = self.patch
        if height < ph or width < pw:
            raise ValueError(f"{name} is {height}x{width} (HxW), smaller than the {ph}x{pw} training patch")
        s = self.scale
        rng = np.random.default_rng([self.seed, self.epoch, index])
        top, left = int(rng.integers(0, (height - ph) // s + 1)), int(rng.integers(0, (width - pw) // s + 1))
        flip = bool(rng.integers(0, 2)) if self.flips else False
        if not self.rotations:
            rot90 = 0
        elif ph == pw:
            rot90 = int(rng.integers(0, 4))
        else:
            rot90 = 2 * int(rng.integers(0, 2))  # a quarter turn would swap the patch's height and width
        return PatchParams(top, left, flip, rot90)

    def __getitem__(self, index: int) -> dict:
        load = getattr(self.dataset, "load", None)
        item = load(index, degrade=False) if load is not None else self.dataset[index]
        target = item["target"]
        p = self.params(index, *target.shape[-2:], name=item["name"])
        (ph, pw), s = self.patch, self.scale
        target = target[..., p.top * s:p.top * s + ph, p.left * s:p.left * s + pw]
        if item["input"] is None:
            made = item["degradation"](target, np.random.default_rng([self.seed, self.epoch, index, 1]))
        else:
            made = item["input"][..., p.top:p.top + ph // s, p.left:p.left + pw // s]
        return {"input": dihedral(made, p.flip, p.rot90), "target": dihedral(target, p.flip, p.rot90),
                "name": item["name"]}
