"""What the layout readers share: required folders, item names (two files sharing one are
reported, not narrowed to one), and pairing inputs with targets by item name, where an input
without its target (or a target without its input) is reported with the exact file that was
expected."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .image_io import list_images, natural_key
from .pairs import DatasetError, ImageRef, Pair

# (item key, the file found) -> the partner file the layout expects for it
Partner = Callable[[str, Path], Path]


def require_folder(path: Path, dataset: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{dataset}: expected folder {path}, which does not exist")
    return path


def by_name(files: list[Path], key: Callable[[Path], str] = lambda p: p.stem) -> tuple[dict[str, Path], list[str]]:
    """{key: file}, and a problem for each key that two files share (a.png and a.jpg): which one is
    meant cannot be guessed, so neither is used."""
    found: dict[str, list[Path]] = {}
    for path in files:
        found.setdefault(key(path), []).append(path)
    problems = [f"ambiguous name: {' and '.join(str(p) for p in paths)} are both item {name!r}; keep one of them"
                for name, paths in found.items() if len(paths) > 1]
    return {name: paths[0] for name, paths in found.items() if len(paths) == 1}, problems


def by_stem(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """by_name() of the images in `folder` ({} when it does not exist, so that every file of the
    other half names the partner it lacks)."""
    return by_name(list_images(folder)) if folder.is_dir() else ({}, [])


def match(inputs: dict[str, Path], targets: dict[str, Path], target_for: Partner, input_for: Partner | None,
          scale: int = 1, target_multiple: int = 1) -> tuple[list[Pair], list[str]]:
    """Pair inputs and targets that share a key (the item name). Inputs without a target are
    problems naming the target expected; so are targets without an input unless `input_for` is
    None (a shared ground-truth folder that holds more than this set)."""
    problems = [f"missing partner: input {path} has no target {target_for(key, path)}"
                for key, path in inputs.items() if key not in targets]
    if input_for is not None:
        problems += [f"missing partner: target {path} has no input {input_for(key, path)}"
                     for key, path in targets.items() if key not in inputs]
    keys = sorted(set(inputs) & set(targets), key=natural_key)
    return [Pair(k, ImageRef(inputs[k]), ImageRef(targets[k], multiple=target_multiple), scale=scale)
            for k in keys], problems


def same_name(folder: Path) -> Partner:
    """The partner has the same file name, in `folder`."""
    return lambda key, path: folder / path.name
