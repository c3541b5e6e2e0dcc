"""Dataset names -> layout readers (BasicSR-style registry), and open_dataset."""
from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .image_io import check_channels
from .pairs import DatasetError, DatasetWarning, PairedImages, settle


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    layout: str  # the expected folder layout, quoted in errors
    splits: tuple[str, ...] | None  # None: ROOT itself is the split, any split name is accepted
    lister: Callable  # (root, split, **options) -> (pairs, problems)
    root_optional: bool  # the lister can find its folders from options alone
    grey: bool  # a grey test set: read with channels=1 only
    count: int | None  # images in the published set (a folder holding another number is warned about)

    def options(self) -> list[str]:
        return list(inspect.signature(self.lister).parameters)[2:]


_REGISTRY: dict[str, DatasetSpec] = {}


def register(name: str, *, layout: str, splits: tuple[str, ...] | None = None, root_optional: bool = False,
             grey: bool = False, count: int | None = None):
    """Decorator: register `lister(root, split, **options) -> (pairs, problems)` under `name`."""

    def decorate(lister):
        if name in _REGISTRY:
            raise ValueError(f"dataset name {name!r} is already registered")
        _REGISTRY[name] = DatasetSpec(name, layout, splits, lister, root_optional, grey, count)
        return lister

    return decorate


def names() -> list[str]:
    return sorted(_REGISTRY)


def spec(name: str) -> DatasetSpec:
    if name not in _REGISTRY:
        raise DatasetError(f"unknown dataset name {name!r}; known: {', '.join(names())}")
    return _REGISTRY[name]


def _resolve_split(entry: DatasetSpec, split: str | None) -> str | None:
    if entry.splits is None:
        return split
    if split is None:
        return "test" if "test" in entry.splits else entry.splits[0]
    if split not in entry.splits:
        raise DatasetError(f"{entry.name} has the split{'s' if len(entry.splits) > 1 else ''} "
                           f"{' and '.join(map(repr, entry.splits))}, got {split!r}")
    return split


def _channels(entry: DatasetSpec, channels) -> int:
    if channels is None:
        return 1 if entry.grey else 3
    check_channels(channels)
    if entry.grey and channels != 1:
        raise ValueError(f"channels: {entry.name} is a grey test set; open it with channels=1 (a 1-channel model, "
                         f"model.channels: 1), got {channels}")
    return channels


def unknown_options(name: str, options) -> str | None:
    """Why `name` cannot take the options named in `options`, or None when it takes them all."""
    entry = spec(name)
    unknown = sorted(set(options) - set(entry.options()))
    if not unknown:
        return None
    return f"{entry.name} does not take {', '.join(unknown)}; it takes {', '.join(entry.options()) or 'no options'}"


def applied_split(name: str, split: str | None) -> str | None:
    """The split open_dataset(name, split=split) reads: the layout's default when `split` is None,
    and None for the layouts whose ROOT is the set itself (they take no split). DatasetError when
    the layout has no such split."""
    entry = spec(name)
    return None if entry.splits is None else _resolve_split(entry, split)


def open_dataset(name: str, root=None, split: str | None = None, *, skip_bad: bool = False,
                 verify: str = "header", skip_hint: str = "skip_bad=True", channels: int | None = None,
                 **options) -> PairedImages:
    """Open the benchmark `name` stored under `root` in its distributed layout (see names()).

    split: "train" or "test" for layouts that hold both; the default is "test" where the layout
        has one. Names whose ROOT is a single split (rain13k, paired) accept any split.
    skip_bad: skip pairs with a missing partner, an unreadable file or mismatched sizes, with
        one DatasetWarning listing them, instead of raising DatasetError naming the first.
    verify: "header" checks existence, format and size from file headers when opening (fast);
        "full" decodes every image once, catching truncated files too.
    skip_hint: how the caller turns skip_bad on, named in the error (a command passes its flag).
    channels: 3 reads colour images, 1 grey ones (colour files become their luma); the default
        is 1 for the grey test sets (bsd68, set12), which refuse 3, and 3 for the others.
    options: layout-specific (e.g. gopro's blur="blur_gamma", rain100h-train's exclude=FILE,
        the denoising sets' sigma=25, the super-resolution sets' scale=4).
    Never writes anything.
    """
    entry = spec(name)
    problem = unknown_options(name, options)
    if problem:
        raise TypeError(f"open_dataset: {problem}")
    split = _resolve_split(entry, split)
    channels = _channels(entry, channels)
    if root is not None:
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{name}: root folder {root} does not exist")
    elif not entry.root_optional:
        raise DatasetError(f"{name}: root is required (the folder laid out as {entry.layout})")
    pairs, problems = entry.lister(root, split, **options)
    if not pairs and not problems:
        raise DatasetError(f"{name}: no image pairs found under {root}; expected {entry.layout}")
    pairs = settle(name, pairs, problems, skip_bad, verify, skip_hint)
    if not pairs:
        raise DatasetError(f"{name}: no usable image pairs left under {root} after skipping problems")
    if entry.count is not None and len(pairs) != entry.count:
        warnings.warn(f"{name}: {len(pairs)} images under {root}, the published set has {entry.count}: scores are "
                      "not comparable with published ones", DatasetWarning, stacklevel=2)
    return PairedImages(pairs, name=name, channels=channels)
