"""The run-folder lock: one holder at a time, the holder named in the refusal, released when the
holder's block ends (released when its process dies: tests/test_engine_faults.py kills one)."""
import json
import os
import socket

import pytest

from taylor_fast.engine.lock import LOCK_NAME, FolderBusy, exclusive


def test_a_second_holder_is_refused_naming_the_first(tmp_path):
    folder = tmp_path / "grid" / "run"  # created by the lock
    with exclusive(folder, "ablate") as path:
        assert path == folder / LOCK_NAME
        record = json.loads(path.read_text())
        assert (record["pid"], record["host"], record["purpose"]) == (os.getpid(), socket.gethostname(), "ablate")
        with pytest.raises(FolderBusy) as refused:
            with exclusive(folder, "train"):  # another open file description: flock refuses it as another process
                pytest.fail("two holders")
        message = str(refused.value)
        assert "\n" not in message
        assert message.startswith(f"{folder} is in use by ablate (pid {os.getpid()} on {socket.gethostname()}) since ")
    with exclusive(folder, "train"):  # released when the block ended
        assert json.loads((folder / LOCK_NAME).read_text())["purpose"] == "train"


def test_an_exception_in_the_block_releases_the_lock(tmp_path):
    with pytest.raises(KeyError):
        with exclusive(tmp_path, "train"):
            raise KeyError("boom")
    with exclusive(tmp_path, "train"):
        pass


def test_a_holder_that_has_not_written_its_record_is_still_refused(tmp_path):
    import fcntl

    fd = os.open(tmp_path / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # holds the lock with an empty record
        with pytest.raises(FolderBusy, match="in use by another process"):
            with exclusive(tmp_path, "train"):
                pass
    finally:
        os.close(fd)
