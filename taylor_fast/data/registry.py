"""Dataset names -> layout readers (BasicSR-style registry), and open_dataset."""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .pairs import DatasetError, PairedImages, settle


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    layout: str  # the expected folder layout, quoted in errors
    splits: tuple[str, ...] | None  # None: ROOT itself is the split, any split name is accepted
    lister: Callable  # (root, split, **options) -> (pairs, problems)
    root_optional: bool  # the lister can find its folders from options alone

    def options(self) -> list[str]:
        return list(inspect.signature(self.lister).parameters)[2:]


_REGISTRY: dict[str, DatasetSpec] = {}


def register(name: str, *, layout: str, splits: tuple[str, ...] | None = None, root_optional: bool = False):
    """Decorator: register `lister(root, split, **options) -> (pairs, problems)` under `name`."""

    def decorate(lister):
        if name in _REGISTRY:
            raise ValueError(f"dataset name {name!r} is already registered")
        _REGISTRY[name] = DatasetSpec(name, layout, splits, lister, root_optional)
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
                 verify: str = "header", skip_hint: str = "skip_bad=True", **options) -> PairedImages:
    """Open the benchmark `name` stored under `root` in its distributed layout (see names()).

    split: "train" or "test" for layouts that hold both; the default is "test" where the layout
        has one. Names whose ROOT is a single split (rain13k, paired) accept any split.
    skip_bad: skip pairs with a missing partner, an unreadable file or mismatched sizes, with
        one DatasetWarning listing them, instead of raising DatasetError naming the first.
    verify: "header" checks existence, format and size from file headers when opening (fast);
        "full" decodes every image once, catching truncated files too.
    skip_hint: how the caller turns skip_bad on, named in the error (a command passes its flag).
    options: layout-specific (e.g. gopro's blur="blur_gamma", rain100h-train's exclude=FILE).
    Never writes anything.
    """
    entry = spec(name)
    problem = unknown_options(name, options)
    if problem:
        raise TypeError(f"open_dataset: {problem}")
    split = _resolve_split(entry, split)
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
    return PairedImages(pairs, name=name)
