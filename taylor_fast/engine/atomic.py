"""Replacing a file so that readers, crashes and full disks only ever see the old or the new
version: write a temporary file in the same folder, flush and fsync it, rename it over the
target (atomic within one file system), then fsync the folder so the rename itself is durable.

    atomic.replace(path, blob)              # bytes already in memory (checkpoints, reports)
    with atomic.writing(path) as temporary:  # a writer that wants a file name (images)
        write_image(temporary, image)

A temporary is named `.NAME.tmp-PID.EXT` (hidden, the writer's pid, the target's extension so
that writers choosing a format by extension still can); `leftovers(path)` finds those of killed
writers, and `is_temporary` tells them from real files.
"""
from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_CHUNK = 1 << 22  # bytes per write call
_TEMPORARY = re.compile(r"^\..+\.tmp-\d+")


class WriteError(RuntimeError):
    """A file could not be written; the message (failure()) says why and what became of the old one."""


def write_chunks(fh, blob) -> None:
    """Write `blob` in chunks (tests replace this to simulate a disk filling up midway)."""
    view = memoryview(blob)
    for start in range(0, len(view), _CHUNK):
        fh.write(view[start:start + _CHUNK])


def temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}{path.suffix}")


def is_temporary(path: Path) -> bool:
    """Whether `path` is named as a temporary of this module (of any file)."""
    return bool(_TEMPORARY.match(Path(path).name))


def leftovers(path: Path) -> list[Path]:
    """Temporary files of `path` left by processes killed while writing it."""
    path = Path(path)
    return sorted(path.parent.glob(f".{path.name}.tmp-*")) if path.parent.is_dir() else []


def failure(path: Path, exc: OSError, what: str = "") -> str:
    """'could not write WHAT PATH: WHY; the previous WHAT PATH is intact' (or that none existed)."""
    what = f"{what} " if what else ""
    why = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
    kept = f"the previous {what}{path} is intact" if Path(path).exists() else f"no earlier {what or 'file '}existed"
    return f"could not write {what}{path}: {why}; {kept}"


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; the rename is atomic there all the same
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def writing(path) -> Iterator[Path]:
    """Yield a temporary path next to `path` to write; once the block ends normally the temporary
    is fsynced and renamed over `path`. On any error (or interrupt) the old file stays and the
    temporary goes."""
    path = Path(path)
    temporary = temporary_name(path)
    try:
        yield temporary
        with open(temporary, "rb+") as fh:  # data written through another handle reaches the disk too
            os.fsync(fh.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def replace(path, blob) -> None:
    """Make `path` hold `blob` (bytes); on any error the old file stays and the temporary goes."""
    with writing(path) as temporary, open(temporary, "wb") as fh:
        write_chunks(fh, blob)
