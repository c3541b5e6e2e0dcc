"""Where the engine may write: only inside the folder the user named on the command line.

A config file is data that may come from anywhere (a shared grid, a downloaded recipe), so the
locations it names are relative to the run folder and are refused when they would leave it:
an absolute path, a `..` step, or a symlink inside the run folder that points outside it.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath


class UnsafePathError(ValueError):
    """A path taken from a configuration or a dataset would write outside the output folder."""


def check_run_relative(rel, key: str) -> None:
    """Static check of a configured location: a non-empty relative path without `..` steps."""
    if not isinstance(rel, str) or not rel.strip() or "\0" in rel:
        raise UnsafePathError(f"{key}: expected a non-empty path relative to the run folder, got {rel!r}")
    for flavour in (PurePosixPath(rel), PureWindowsPath(rel)):
        if flavour.is_absolute() or flavour.anchor or ".." in flavour.parts:
            raise UnsafePathError(f"{key}: {rel!r} would leave the run folder; use a path relative to it "
                                  "without '..' steps")


def inside(folder: Path, rel: str, key: str) -> Path:
    """folder / rel, after checking that it stays inside `folder` once symlinks are followed."""
    check_run_relative(rel, key)
    target = Path(folder) / rel
    root = Path(folder).resolve()
    if not target.resolve().is_relative_to(root):
        raise UnsafePathError(f"{key}: {rel!r} resolves to {target.resolve()}, outside the run folder {root} "
                              "(through a symbolic link)")
    return target


def safe_file_name(name: str) -> str:
    """A dataset item name made into one file name: separators and leading dots replaced."""
    cleaned = "".join("_" if ch in '/\\:\0' else ch for ch in str(name)).lstrip(".")
    return cleaned or "image"
