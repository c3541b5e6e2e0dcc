"""One writer per folder: an exclusive OS advisory lock held for as long as a job writes there.

    from taylor_fast.engine.lock import FolderBusy, exclusive

    with exclusive(run_folder, "train"):      # creates the folder if needed
        ...                                    # this process is the folder's only writer
    # FolderBusy (a RuntimeError) when another process holds it; its message is one line:
    # "RUN is in use by train (pid 4242 on node7) since 2025-...: wait for it to end or stop it"

The lock is fcntl.flock on FOLDER/.taylor_fast.lock. The kernel drops it when the holding process
ends in any way (kill -9 included), so a lock never outlives its holder and an immediate rerun
succeeds. The file itself stays (removing it would let a second process lock a fresh file while
a third still holds the old one); it records the holder's pid, host, purpose and start time for
the message above. Readers take no lock. flock locks are per host on most network file
systems, so two machines sharing one folder over NFS are not kept apart. fcntl is POSIX only;
it is imported when a lock is taken, so that LOCK_NAME (and the config checks that use it)
import everywhere.
"""
from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = ".taylor_fast.lock"
_HOLDER_WAIT = 1.0  # seconds to wait for a holder that has just locked to write who it is


class FolderBusy(RuntimeError):
    """Another process holds the folder's lock; the message names the folder and the holder."""


def _holder(fd: int) -> str:
    deadline = time.monotonic() + _HOLDER_WAIT
    while True:
        try:
            record = json.loads(os.pread(fd, 4096, 0).decode() or "null")
        except (OSError, ValueError):
            record = None
        if isinstance(record, dict) or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    if not isinstance(record, dict):
        return "another process (it has not said which)"
    return (f"{record.get('purpose', 'another job')} (pid {record.get('pid', '?')} on {record.get('host', '?')}) "
            f"since {record.get('since', '?')}")


@contextmanager
def exclusive(folder, purpose: str) -> Iterator[Path]:
    """Hold FOLDER's lock for the block (creating FOLDER if needed); yields the lock file's path.
    Raises FolderBusy at once, without waiting, when another process holds it."""
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusy(f"{folder} is in use by {_holder(fd)}: wait for it to end or stop it "
                             "(this lock goes when its process does)") from None
        record = {"purpose": purpose, "pid": os.getpid(), "host": socket.gethostname(),
                  "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock
