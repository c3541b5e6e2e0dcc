"""Where the engine may write: only inside the folder the user named on the command line, and
never over the files the engine itself keeps there.

A config file is data that may come from anywhere (a shared grid, a downloaded recipe), so the
locations it names are relative to the run folder and are refused when they would leave it:
an absolute path, a `..` step, or a symlink inside the run folder that points outside it.
They are also refused when they would land on the run's own files (RUN_FILES: the checkpoint,
the resolved config, the lock, or the temporaries they are written through), on the run folder
itself, or on (or inside) another configured location.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

from .lock import LOCK_NAME

CHECKPOINT = "last.ckpt"
CONFIG = "config.yaml"
RUN_FILES = (CHECKPOINT, CONFIG, LOCK_NAME)  # fixed names in every run folder, written by the engine alone


class UnsafePathError(ValueError):
    """A path taken from a configuration or a dataset would write outside the output folder or
    over a file that something else writes."""


def check_run_relative(rel, key: str) -> None:
    """Static check of a configured location: a non-empty relative path without `..` steps."""
    if not isinstance(rel, str) or not rel.strip() or "\0" in rel:
        raise UnsafePathError(f"{key}: expected a non-empty path relative to the run folder, got {rel!r}")
    for flavour in (PurePosixPath(rel), PureWindowsPath(rel)):
        if flavour.is_absolute() or flavour.anchor or ".." in flavour.parts:
            raise UnsafePathError(f"{key}: {rel!r} would leave the run folder; use a path relative to it "
                                  "without '..' steps")


def _parts(rel: str) -> tuple[str, ...]:
    """The steps of a relative location, as the file system will see them ('./a//b/' -> ('a', 'b')),
    case-folded because macOS and Windows file systems ignore case."""
    return tuple(part.casefold() for part in PurePosixPath(rel.replace("\\", "/")).parts)


def _reserved(name: str) -> str | None:
    """The run file that `name` (a file name directly in the run folder) is, or is a temporary of."""
    for run_file in RUN_FILES:
        if name == run_file.casefold() or name.startswith(f".{run_file}.tmp-".casefold()):
            return run_file
    return None


def check_run_locations(locations: dict[str, str]) -> None:
    """Static check of all configured locations ({key: relative path}) together: each stays in
    the run folder, names neither the folder itself nor one of RUN_FILES (or a temporary of one),
    and none equals or contains another."""
    steps = {}
    for key, rel in locations.items():
        check_run_relative(rel, key)
        steps[key] = _parts(rel)
        if not steps[key]:
            raise UnsafePathError(f"{key}: {rel!r} is the run folder itself; name a file or folder inside it")
        taken = _reserved(steps[key][0])
        if taken:
            raise UnsafePathError(f"{key}: {rel!r} would write over the run's {taken}, which the engine keeps "
                                  f"there ({', '.join(RUN_FILES)} are reserved); choose another name")
    keys = list(steps)
    for i, key in enumerate(keys):
        for other in keys[i + 1:]:
            shorter = min(len(steps[key]), len(steps[other]))
            if steps[key][:shorter] == steps[other][:shorter]:
                raise UnsafePathError(f"{key} and {other}: {locations[key]!r} and {locations[other]!r} would "
                                      "overlap; give each its own location")


def inside(folder: Path, rel: str, key: str, *, folder_wanted: bool = False) -> Path:
    """folder / rel, after checking that it stays inside `folder` once symlinks are followed, and
    that what exists there already is of the kind wanted (a file, or a folder if folder_wanted)."""
    check_run_relative(rel, key)
    target = Path(folder) / rel
    root = Path(folder).resolve()
    if not target.resolve().is_relative_to(root):
        raise UnsafePathError(f"{key}: {rel!r} resolves to {target.resolve()}, outside the run folder {root} "
                              "(through a symbolic link)")
    if target.exists() and target.is_dir() != folder_wanted:
        raise UnsafePathError(f"{key}: {target} is a {'file' if folder_wanted else 'folder'}, but a "
                              f"{'folder' if folder_wanted else 'file'} is needed there; choose another name")
    for parent in target.relative_to(folder).parents:
        if (Path(folder) / parent).is_file():
            raise UnsafePathError(f"{key}: {Path(folder) / parent} is a file, but {rel!r} needs a folder there; "
                                  "choose another name")
    return target


def safe_file_name(name: str) -> str:
    """A dataset item name made into one file name: separators and leading dots replaced."""
    cleaned = "".join("_" if ch in '/\\:\0' else ch for ch in str(name)).lstrip(".")
    return cleaned or "image"
