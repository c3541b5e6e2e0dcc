"""Training faults (issue 8 §4): kill -9 at random points, a kill in the middle of a checkpoint
write, a truncated or damaged checkpoint, and a disk that fills up during a save."""
import errno
import os
import random
import signal
import time

import pytest
import torch
from engine_helpers import logged_iterations, make_rain_set, max_difference, run_cli, start_cli

from taylor_fast import cli
from taylor_fast.engine import atomic, checkpoint

EVERY = 3  # checkpoint interval (iterations)


@pytest.fixture(scope="module")
def rain_set(tmp_path_factory):
    return make_rain_set(tmp_path_factory.mktemp("faults") / "data")


def _train_args(data, run, iters):
    return ["train", "--root", data, "--out", run, "--patch", 24, "--batch-size", 2, "--iters", iters,
            "--set", "model.hidden=8", "--set", "log.every=1", "--checkpoint-every", EVERY, "--no-progress"]


def _wait_for_iteration(log, start_size, target, process, timeout=120):
    """Block until the run's log shows iteration `target` (written after byte `start_size`) or the
    process ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.is_alive():
        if log.exists() and max(logged_iterations(log.read_text()[start_size:]), default=0) >= target:
            return
        time.sleep(0.005)
    if process.is_alive():
        raise TimeoutError(f"no training progress in {log}")


def test_kill9_at_random_points_then_resume_matches_uninterrupted(tmp_path, rain_set):
    iters = 30
    assert run_cli(_train_args(rain_set, tmp_path / "straight", iters)) == 0
    run, log = tmp_path / "killed", tmp_path / "killed" / "train.log"
    chooser = random.Random(8)
    kills = saved = 0
    while True:
        # kill at a random moment: after a random iteration within the next two intervals has been
        # logged, plus a random part of an iteration (computing, logging or saving)
        start_size = log.stat().st_size if log.exists() else 0
        process = start_cli(_train_args(rain_set, run, iters) + ["--resume"])
        _wait_for_iteration(log, start_size, chooser.randint(saved + 1, saved + 2 * EVERY), process)
        time.sleep(chooser.uniform(0.0, 0.05))
        if process.is_alive():
            os.kill(process.pid, signal.SIGKILL)
        process.join()
        if process.exitcode == 0:
            break
        assert process.exitcode == -signal.SIGKILL
        kills += 1
        # the checkpoint left behind always loads, and is at most one interval behind the training
        reached = max(logged_iterations(log.read_text()))
        saved = checkpoint.load(run / "last.ckpt")["progress"]["iteration"] if (run / "last.ckpt").exists() else 0
        assert reached - EVERY <= saved <= reached
        assert kills < 20, "the run never finished"
    assert kills >= 2
    straight = checkpoint.load(tmp_path / "straight" / "last.ckpt")
    resumed = checkpoint.load(run / "last.ckpt")
    assert resumed["progress"]["iteration"] == straight["progress"]["iteration"] == iters
    assert max_difference(resumed["model"], straight["model"]) < 1e-6
    moments = [(s["exp_avg"], r["exp_avg"]) for s, r in zip(straight["optimizer"]["state"].values(),
                                                             resumed["optimizer"]["state"].values())]
    assert max((a - b).abs().max().item() for a, b in moments) < 1e-6
    assert resumed["scheduler"]["last_epoch"] == iters
    assert not atomic.leftovers(run / "last.ckpt")


def test_kill9_during_checkpoint_write_keeps_previous_checkpoint(tmp_path, rain_set):
    run, marker = tmp_path / "run", tmp_path / "stalled"
    process = start_cli(_train_args(rain_set, run, 12), stall_on_save=str(marker))
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.exists(), "the second checkpoint write never started"
    os.kill(process.pid, signal.SIGKILL)
    process.join()
    partial = atomic.leftovers(run / "last.ckpt")
    assert len(partial) == 1 and partial[0].stat().st_size > 0  # the half-written temporary
    assert checkpoint.load(run / "last.ckpt")["progress"]["iteration"] == EVERY  # the first save, intact
    assert run_cli(_train_args(rain_set, run, 12) + ["--resume"]) == 0
    assert checkpoint.load(run / "last.ckpt")["progress"]["iteration"] == 12
    assert not atomic.leftovers(run / "last.ckpt")  # cleaned up when the run resumed


def _state():
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.randn(64, 64))])
    optimizer.param_groups[0]["params"][0].grad = torch.ones(64, 64)
    optimizer.step()
    return {"model": {"w": torch.randn(64, 64)}, "optimizer": optimizer.state_dict(), "progress": {"iteration": 7}}


def test_disk_full_during_save_leaves_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    first = _state()
    checkpoint.save(path, first)
    before = path.read_bytes()

    def fill_disk(fh, blob):
        fh.write(memoryview(blob)[: len(blob) // 3])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "write_chunks", fill_disk)
    with pytest.raises(checkpoint.CheckpointError, match=r"disk is full; the previous checkpoint .* is intact"):
        checkpoint.save(path, _state())
    assert path.read_bytes() == before
    assert torch.equal(checkpoint.load(path)["model"]["w"], first["model"]["w"])
    assert not atomic.leftovers(path)


def test_disk_full_during_training_exits_with_one_line(tmp_path, rain_set, monkeypatch, capsys):
    saves = []
    original = atomic.write_chunks

    def full_on_second(fh, blob):
        saves.append("last.ckpt" in fh.name)
        if sum(saves) == 2 and saves[-1]:
            raise OSError(errno.ENOSPC, "No space left on device")
        original(fh, blob)

    monkeypatch.setattr(atomic, "write_chunks", full_on_second)
    run = tmp_path / "run"
    assert cli.main([str(a) for a in _train_args(rain_set, run, 9)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("taylor-fast train: could not write checkpoint") and "disk is full" in err[-1]
    assert checkpoint.load(run / "last.ckpt")["progress"]["iteration"] == EVERY


def test_truncated_checkpoint_gives_clear_error(tmp_path):
    path = tmp_path / "last.ckpt"
    checkpoint.save(path, _state())
    blob = path.read_bytes()
    for size in (0, 4, 8, 100, len(blob) // 2, len(blob) - 1):
        path.write_bytes(blob[:size])
        with pytest.raises(checkpoint.CheckpointError, match=rf"{size} bytes\) is truncated or not a checkpoint"):
            checkpoint.load(path)


def test_damaged_checkpoint_is_detected(tmp_path):
    path = tmp_path / "last.ckpt"
    checkpoint.save(path, _state())
    blob = bytearray(path.read_bytes())
    blob[-100] ^= 0x01  # one bit of tensor data
    path.write_bytes(bytes(blob))
    with pytest.raises(checkpoint.CheckpointError, match="damaged"):
        checkpoint.load(path)


def test_truncated_checkpoint_through_the_cli_is_one_line(tmp_path, rain_set, capsys):
    run = tmp_path / "run"
    assert cli.main([str(a) for a in _train_args(rain_set, run, 3)]) == 0
    blob = (run / "last.ckpt").read_bytes()
    (run / "last.ckpt").write_bytes(blob[: len(blob) // 2])
    capsys.readouterr()
    for argv in (_train_args(rain_set, run, 6) + ["--resume"],
                 ["eval", "--checkpoint", run / "last.ckpt", "--dataset", "paired", "--root", rain_set,
                  "--out", tmp_path / "eval"]):
        assert cli.main([str(a) for a in argv]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "is truncated or not a checkpoint" in err[0]
