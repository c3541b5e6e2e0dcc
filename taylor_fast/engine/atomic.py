"""Replacing a file so that readers, crashes and full disks only ever see the old or the new
version: write a temporary file in the same folder, flush and fsync it, rename it over the
target (atomic within one file system), then fsync the folder so the rename itself is durable."""
from __future__ import annotations

import os
from pathlib import Path

_CHUNK = 1 << 22  # bytes per write call


def write_chunks(fh, blob) -> None:
    """Write `blob` in chunks (tests replace this to simulate a disk filling up midway)."""
    view = memoryview(blob)
    for start in range(0, len(view), _CHUNK):
        fh.write(view[start:start + _CHUNK])


def temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def leftovers(path: Path) -> list[Path]:
    """Temporary files of `path` left by processes killed while writing it."""
    path = Path(path)
    return sorted(path.parent.glob(f".{path.name}.tmp-*")) if path.parent.is_dir() else []


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


def replace(path, blob) -> None:
    """Make `path` hold `blob` (bytes); on any error the old file stays and the temporary goes."""
    path = Path(path)
    temporary = temporary_name(path)
    try:
        with open(temporary, "wb") as fh:
            write_chunks(fh, blob)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
