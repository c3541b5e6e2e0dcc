"""Training faults, each with real processes: kill -9 at random points and in the middle of a
checkpoint write, two processes training into one run folder, SIGINT and SIGTERM (once, and a
second time), a truncated or damaged checkpoint, a disk that fills up during a save or an eval
report, and a diverging run resumed with a lower learning rate."""
import errno
import json
import math
import os
import random
import signal
import socket
import time

import pytest
import torch
from engine_helpers import child_output, logged_iterations, make_rain_set, max_difference, run_cli, start_cli

from taylor_fast import cli
from taylor_fast.engine import atomic, checkpoint
from taylor_fast.engine.interrupt import REPEAT_WINDOW
from taylor_fast.engine.lock import LOCK_NAME

EVERY = 3  # checkpoint interval (iterations)
ITERS = 30  # length of the runs compared with an uninterrupted one


@pytest.fixture(scope="module")
def rain_set(tmp_path_factory):
    return make_rain_set(tmp_path_factory.mktemp("faults") / "data")


def _train_args(data, run, iters, every=EVERY):
    return ["train", "--root", data, "--out", run, "--patch", 24, "--batch-size", 2, "--iters", iters,
            "--set", "model.hidden=8", "--set", "log.every=1", "--checkpoint-every", every, "--no-progress"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory, rain_set):
    """The final state of an uninterrupted ITERS-iteration run."""
    run = tmp_path_factory.mktemp("straight") / "run"
    assert run_cli(_train_args(rain_set, run, ITERS)) == 0
    return checkpoint.load(run / "last.ckpt")


def _assert_same_training(resumed: dict, straight: dict) -> None:
    """Resumed and uninterrupted runs end in the same weights, Adam moments and schedule."""
    assert resumed["progress"]["iteration"] == straight["progress"]["iteration"]
    assert max_difference(resumed["model"], straight["model"]) < 1e-6
    moments = [(s["exp_avg"], r["exp_avg"]) for s, r in zip(straight["optimizer"]["state"].values(),
                                                             resumed["optimizer"]["state"].values())]
    assert max((a - b).abs().max().item() for a, b in moments) < 1e-6
    assert resumed["scheduler"]["last_epoch"] == straight["scheduler"]["last_epoch"]


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


def test_kill9_at_random_points_then_resume_matches_uninterrupted(tmp_path, rain_set, straight):
    iters = ITERS
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
    _assert_same_training(checkpoint.load(run / "last.ckpt"), straight)
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


# ---------------------------------------------------------------- one writer per run folder
def test_two_trainings_racing_for_one_folder_one_trains_the_other_exits(tmp_path, rain_set):
    run = tmp_path / "run"
    argv = _train_args(rain_set, run, 40) + ["--resume"]  # as a requeued job would be started
    racers = [start_cli(argv, output=tmp_path / f"racer{i}") for i in range(2)]
    for racer in racers:
        racer.join(300)
    codes = [racer.exitcode for racer in racers]
    assert sorted(codes) == [0, 1]
    winner, loser = racers[codes.index(0)], codes.index(1)
    err = child_output(tmp_path / f"racer{loser}")
    assert len(err) == 1 and err[0].startswith(
        f"taylor-fast train: {run} is in use by train (pid {winner.pid} on {socket.gethostname()}) since ")
    assert err[0].endswith("wait for it to end or stop it (this lock goes when its process does)")
    log = (run / "train.log").read_text()
    assert log.count("training from iteration 0") == 1 and "resuming" not in log
    assert logged_iterations(log) == list(range(1, 41))  # one writer: every iteration logged once
    assert checkpoint.load(run / "last.ckpt")["progress"]["iteration"] == 40


def test_kill9_of_the_holder_leaves_no_stale_lock(tmp_path, rain_set, straight):
    run = tmp_path / "run"
    holder = start_cli(_train_args(rain_set, run, ITERS))
    _wait_for_iteration(run / "train.log", 0, 5, holder)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join()
    assert f'"pid": {holder.pid}' in (run / LOCK_NAME).read_text()  # the record of a dead holder stays...
    assert run_cli(_train_args(rain_set, run, ITERS) + ["--resume"]) == 0  # ...and does not stop a resume
    _assert_same_training(checkpoint.load(run / "last.ckpt"), straight)


# ---------------------------------------------------------------- SIGINT and SIGTERM
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_saves_the_current_step_and_the_resumed_run_matches(tmp_path, rain_set, straight, signum):
    run, log = tmp_path / "run", tmp_path / "run" / "train.log"
    argv = _train_args(rain_set, run, ITERS, every=500)  # the default interval: no checkpoint before the signal
    process = start_cli(argv, output=tmp_path / "first")
    target = random.Random(int(signum)).randint(2, ITERS - 8)
    _wait_for_iteration(log, 0, target, process)
    os.kill(process.pid, signum)
    os.kill(process.pid, signum)  # the same request twice at once (a terminal's Ctrl-C and torchrun's copy)
    process.join(120)
    assert process.exitcode == 128 + signum  # 130 / 143
    state = checkpoint.load(run / "last.ckpt")
    stopped = state["progress"]["iteration"]
    assert target <= stopped == max(logged_iterations(log.read_text())) < ITERS  # the step it was in, no more
    assert f"stopped by {signal.Signals(signum).name} at iteration {stopped} of {ITERS}" in log.read_text()
    announced = "\n".join(child_output(tmp_path / "first"))
    assert f"{signal.Signals(signum).name}: finishing this step and saving" in announced
    assert run_cli(argv + ["--resume"]) == 0
    _assert_same_training(checkpoint.load(run / "last.ckpt"), straight)


def test_a_second_signal_stops_at_once(tmp_path, rain_set):
    run, marker = tmp_path / "run", tmp_path / "stalled"
    argv = _train_args(rain_set, run, 12, every=500)
    process = start_cli(argv, stall_on_save=str(marker), stall_at=1, output=tmp_path / "out")
    _wait_for_iteration(run / "train.log", 0, 2, process)
    os.kill(process.pid, signal.SIGINT)
    first = time.monotonic()
    deadline = first + 60
    while not marker.exists() and time.monotonic() < deadline:  # the save the signal asked for hangs halfway
        time.sleep(0.01)
    assert marker.exists()
    time.sleep(max(0.0, first + REPEAT_WINDOW + 0.2 - time.monotonic()))
    os.kill(process.pid, signal.SIGINT)
    process.join(20)
    assert process.exitcode == -signal.SIGINT  # ended by the signal itself, in the middle of the save
    assert not (run / "last.ckpt").exists() and len(atomic.leftovers(run / "last.ckpt")) == 1
    assert run_cli(argv + ["--resume"]) == 0  # starts afresh, drops the half-written temporary
    assert checkpoint.load(run / "last.ckpt")["progress"]["iteration"] == 12
    assert not atomic.leftovers(run / "last.ckpt")


# ---------------------------------------------------------------- divergence
def _finite(state: dict) -> bool:
    tensors = list(state["model"].values())
    tensors += [t for s in state["optimizer"]["state"].values() for t in s.values() if torch.is_tensor(t)]
    return all(torch.isfinite(t).all() for t in tensors)


def test_divergence_advice_can_be_followed(tmp_path, rain_set, capsys):
    run = tmp_path / "run"
    milestone = ["--set", "train.milestones=[1]"]  # 8 images / batch 2: lr x0.2 from iteration 4

    def train(iters, *more):
        code = cli.main([str(a) for a in _train_args(rain_set, run, iters) + milestone + list(more)])
        return code, capsys.readouterr().err.strip().splitlines()

    # diverges before the first checkpoint: nothing to resume, so the advice is to start again
    code, err = train(6, "--set", "train.lr=.inf")
    assert code == 1 and not (run / "last.ckpt").exists()
    assert "training diverged by iteration 2 (loss nan)" in err[-1] and "no checkpoint was saved" in err[-1]
    assert "start again, with a lower train.lr (--set train.lr=1e-3)" in err[-1]
    code, _ = train(3)  # following it: the same folder, a finite learning rate
    assert code == 0
    # a resumed run may raise the learning rate; at .inf the first step's update makes the weights
    # infinite: that state is not saved (checkpoint every step), the iteration-3 checkpoint stays
    code, err = train(9, "--resume", "--checkpoint-every", 1, "--set", "train.lr=.inf")
    assert code == 1
    assert "diverged by iteration 4 (the weights or optimiser moments are no longer finite)" in err[-1]
    assert f"{run / 'last.ckpt'} holds the last finite state (iteration 3): continue from it with --resume" in err[-1]
    kept = checkpoint.load(run / "last.ckpt")
    assert kept["progress"]["iteration"] == 3 and _finite(kept)
    assert f"stopped: {err[-1].removeprefix('taylor-fast train: ')}" in (run / "train.log").read_text()
    # following that advice: a lower rate and clipping, both recorded in the log
    code, _ = train(9, "--resume", "--set", "train.lr=1e-4", "--set", "train.grad_clip=1")
    assert code == 0
    state = checkpoint.load(run / "last.ckpt")
    assert state["progress"]["iteration"] == 9 and _finite(state)
    assert state["config"]["train"]["lr"] == 1e-4 and state["config"]["train"]["grad_clip"] == 1
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-4 * 0.2)  # the milestone at 4 applied
    assert state["scheduler"]["base_lrs"] == [1e-4]
    assert ("resumed with a changed recipe: train.lr 0.001 -> 0.0001 (learning rate now 0.0001); "
            "train.grad_clip None -> 1") in (run / "train.log").read_text()


# ---------------------------------------------------------------- reports
def test_disk_full_during_eval_keeps_the_previous_metrics(tmp_path, rain_set, monkeypatch, capsys):
    run, out = tmp_path / "run", tmp_path / "eval"
    assert cli.main([str(a) for a in _train_args(rain_set, run, 2)]) == 0
    argv = ["eval", "--checkpoint", run / "last.ckpt", "--dataset", "paired", "--root", rain_set, "--out", out,
            "--no-progress"]
    assert cli.main([str(a) for a in argv]) == 0
    before = {name: (out / name).read_bytes() for name in ("metrics.json", "metrics.md")}
    capsys.readouterr()

    def fill_disk(fh, blob):
        fh.write(memoryview(blob)[: len(blob) // 3])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "write_chunks", fill_disk)
    assert cli.main([str(a) for a in argv + ["--channel", "rgb"]]) == 1  # another report than the one on disk
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"taylor-fast eval: could not write {out / 'metrics.json'}: the disk is full; the previous "
                   f"{out / 'metrics.json'} is intact"]
    assert {name: (out / name).read_bytes() for name in before} == before
    assert math.isfinite(json.loads(before["metrics.json"])["psnr"])
    assert not atomic.leftovers(out / "metrics.json")
