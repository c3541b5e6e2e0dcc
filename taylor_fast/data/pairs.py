"""Input/target pairs of image files and the Dataset that reads them (whole images, read-only).

A pair's input is a file, or made from its target on the fly (noise, bicubic downsampling) when
the layout holds clean images only; a super-resolution pair's target is `scale` times larger."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from .image_io import ImageReadError, check_channels, image_size, read_image

_HALVES = (None, "left", "right")


class DatasetError(ValueError):
    """A dataset folder does not hold the expected layout; the message names the file or folder."""


class DatasetWarning(UserWarning):
    """Pairs were skipped because of missing, unreadable or mismatched files."""


@dataclass(frozen=True)
class ImageRef:
    """One image file, or one half of a side-by-side file (Rain800 stores clean|rainy in one JPEG).

    An odd width drops the middle column, so both halves have width W // 2. multiple > 1 crops
    the bottom and right to a multiple of it (a high-resolution image made divisible by the scale).
    """

    path: Path
    half: str | None = None
    multiple: int = 1

    def __post_init__(self):
        if self.half not in _HALVES:
            raise ValueError(f"half: expected one of {_HALVES}, got {self.half!r}")

    def describe(self) -> str:
        crop = f" (cropped to a multiple of {self.multiple})" if self.multiple > 1 else ""
        return (str(self.path) if self.half is None else f"{self.path} ({self.half} half)") + crop

    def size(self) -> tuple[int, int]:
        height, width = image_size(self.path)
        if self.half is not None:
            width //= 2
        return height - height % self.multiple, width - width % self.multiple

    def crop(self, image: torch.Tensor) -> torch.Tensor:
        if self.half is not None:
            width = image.shape[-1]
            image = image[..., : width // 2] if self.half == "left" else image[..., width - width // 2:]
        height, width = image.shape[-2:]
        return image[..., : height - height % self.multiple, : width - width % self.multiple]

    def load(self, channels: int = 3) -> torch.Tensor:
        return self.crop(read_image(self.path, channels))


@dataclass(frozen=True)
class Pair:
    """input None: made from the target by `degradation` (a callable of degradations.py).
    scale: the target is `scale` times the input's height and width (super-resolution)."""

    name: str
    input: ImageRef | None
    target: ImageRef
    scale: int = 1
    degradation: object = None

    def __post_init__(self):
        if (self.input is None) == (self.degradation is None):
            raise ValueError("a pair has an input file or a degradation that makes its input, not both or neither")


def _mismatch(pair: Pair, input_size, target_size) -> str:
    expected = "" if pair.scale == 1 else (f"; at scale {pair.scale} the target should be "
                                           f"{input_size[0] * pair.scale}x{input_size[1] * pair.scale}")
    return (f"size mismatch: input {pair.input.describe()} is {input_size[0]}x{input_size[1]} (HxW), "
            f"target {pair.target.describe()} is {target_size[0]}x{target_size[1]}{expected}")


def pair_problem(pair: Pair, full: bool) -> str | None:
    """Why `pair` cannot be used (naming the file), or None. `full` decodes the pixels too."""
    try:
        target_size = tuple(pair.target.load().shape[1:] if full else pair.target.size())
        if pair.input is not None:
            input_size = tuple(pair.input.load().shape[1:] if full else pair.input.size())
    except ImageReadError as exc:
        return str(exc)
    if min(target_size) < 1:
        return f"empty image: {pair.target.describe()}"
    if pair.input is not None and (input_size[0] * pair.scale, input_size[1] * pair.scale) != target_size:
        return _mismatch(pair, input_size, target_size)
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
    """Whole-image pairs: item i is {"input": (C,h,w), "target": (C,H,W), "name": str}, float32
    in [0, 1]; C = `channels` (3 colour, 1 grey), (H, W) = scale * (h, w).

    Only reads files. Evaluation uses it as is; training wraps it in TrainingPatches, which asks
    load(i, degrade=False) for the clean target alone where the input is made on the fly."""

    def __init__(self, pairs: list[Pair], name: str = "paired", channels: int = 3):
        self.pairs = list(pairs)
        self.name = name
        self.channels = check_channels(channels)
        scales = {pair.scale for pair in self.pairs}
        if len(scales) > 1:
            raise ValueError(f"{name}: pairs of several scales {sorted(scales)}")
        self.scale = scales.pop() if scales else 1

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int, degrade: bool = True) -> dict:
        """Item `index`; with degrade=False a made-on-the-fly input is left out ("input": None)
        and "degradation" says how to make it."""
        pair = self.pairs[index]
        whole_target = read_image(pair.target.path, self.channels)
        target_image = pair.target.crop(whole_target)
        if pair.input is None:
            item = {"input": pair.degradation.for_image(target_image, pair.name) if degrade else None,
                    "target": target_image, "name": pair.name}
            return item if degrade else {**item, "degradation": pair.degradation}
        # a side-by-side file holds both images: decode it once
        same_file = pair.input.path == pair.target.path
        whole_input = whole_target if same_file else read_image(pair.input.path, self.channels)
        input_image = pair.input.crop(whole_input)
        if tuple(s * pair.scale for s in input_image.shape[1:]) != tuple(target_image.shape[1:]):
            raise DatasetError(f"{self.name}: " + _mismatch(pair, input_image.shape[1:], target_image.shape[1:]))
        return {"input": input_image, "target": target_image, "name": pair.name}

    def __getitem__(self, index: int) -> dict:
        return self.load(index)

    def __repr__(self) -> str:
        return f"PairedImages({self.name!r}, {len(self)} pairs)"
