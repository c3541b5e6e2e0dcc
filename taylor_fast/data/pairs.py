"""Input/target pairs of image files and the Dataset that reads them (whole images, read-only)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from .image_io import ImageReadError, image_size, read_image

_HALVES = (None, "left", "right")


class DatasetError(ValueError):
    """A dataset folder does not hold the expected layout; the message names the file or folder."""


class DatasetWarning(UserWarning):
    """Pairs were skipped because of missing, unreadable or mismatched files."""


@dataclass(frozen=True)
class ImageRef:
    """One image file, or one half of a side-by-side file (Rain800 stores clean|rainy in one JPEG).

    An odd width drops the middle column, so both halves have width W // 2.
    """

    path: Path
    half: str | None = None

    def __post_init__(self):
        if self.half not in _HALVES:
            raise ValueError(f"half: expected one of {_HALVES}, got {self.half!r}")

    def describe(self) -> str:
        return str(self.path) if self.half is None else f"{self.path} ({self.half} half)"

    def size(self) -> tuple[int, int]:
        height, width = image_size(self.path)
        return (height, width) if self.half is None else (height, width // 2)

    def crop(self, image: torch.Tensor) -> torch.Tensor:
        if self.half is None:
            return image
        width = image.shape[-1]
        return image[..., : width // 2] if self.half == "left" else image[..., width - width // 2:]

    def load(self) -> torch.Tensor:
        return self.crop(read_image(self.path))


@dataclass(frozen=True)
class Pair:
    name: str
    input: ImageRef
    target: ImageRef


def _mismatch(pair: Pair, input_size, target_size) -> str:
    return (f"size mismatch: input {pair.input.describe()} is {input_size[0]}x{input_size[1]} (HxW), "
            f"target {pair.target.describe()} is {target_size[0]}x{target_size[1]}")


def pair_problem(pair: Pair, full: bool) -> str | None:
    """Why `pair` cannot be used (naming the file), or None. `full` decodes the pixels too."""
    try:
        if full:
            input_size, target_size = pair.input.load().shape[1:], pair.target.load().shape[1:]
        else:
            input_size, target_size = pair.input.size(), pair.target.size()
    except ImageReadError as exc:
        return str(exc)
    if tuple(input_size) != tuple(target_size):
        return _mismatch(pair, input_size, target_size)
    if min(input_size) < 1:
        return f"empty image: {pair.input.describe()}"
    return None


def settle(dataset: str, pairs: list[Pair], problems: list[str], skip_bad: bool, verify: str,
           skip_hint: str = "skip_bad=True") -> list[Pair]:
    """Check every pair; raise on the first problem, or drop bad pairs with one DatasetWarning.

    `problems` holds what the layout already found (files without a partner); the error names
    `skip_hint` as the way to skip them."""
    if verify not in ("header", "full"):
        raise ValueError(f"verify: expected 'header' or 'full', got {verify!r}")
    good, problems = [], list(problems)
    for pair in pairs:
        problem = pair_problem(pair, full=verify == "full")
        if problem is None:
            good.append(pair)
        else:
            problems.append(problem)
    if problems and not skip_bad:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise DatasetError(f"{dataset}: {problems[0]}{more}; pass {skip_hint} to skip such pairs")
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        warnings.warn(f"{dataset}: skipped {len(problems)} problem(s):\n  {shown}", DatasetWarning, stacklevel=3)
    return good


class PairedImages(Dataset):
    """Whole-image pairs: item i is {"input": (3,H,W), "target": (3,H,W), "name": str}, float32 in [0, 1].

    Only reads files. Evaluation uses it as is; training wraps it in TrainingPatches."""

    def __init__(self, pairs: list[Pair], name: str = "paired"):
        self.pairs = list(pairs)
        self.name = name

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        pair = self.pairs[index]
        whole_input = read_image(pair.input.path)
        # a side-by-side file holds both images: decode it once
        whole_target = whole_input if pair.target.path == pair.input.path else read_image(pair.target.path)
        input_image, target_image = pair.input.crop(whole_input), pair.target.crop(whole_target)
        if input_image.shape != target_image.shape:
            raise DatasetError(f"{self.name}: " + _mismatch(pair, input_image.shape[1:], target_image.shape[1:]))
        return {"input": input_image, "target": target_image, "name": pair.name}

    def __repr__(self) -> str:
        return f"PairedImages({self.name!r}, {len(self)} pairs)"
