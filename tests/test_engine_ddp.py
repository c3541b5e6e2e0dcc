"""Two training processes (torch.distributed, gloo on CPU, torchrun's environment variables)
take the same steps as one process with twice the batch, only rank 0 writes (and holds the run
folder's lock), and a signal that reaches one rank stops both at the same step."""
import os
import signal
import time

import pytest
from engine_helpers import child_output, free_port, logged_iterations, make_rain_set, max_difference, run_cli, start_cli

from taylor_fast.engine import checkpoint


@pytest.fixture(scope="module")
def rain_set(tmp_path_factory):
    return make_rain_set(tmp_path_factory.mktemp("ddp") / "data")


def _args(data, run, batch, iters, every=2):
    return ["train", "--root", data, "--out", run, "--patch", 24, "--batch-size", batch, "--iters", iters,
            "--set", "model.hidden=8", "--set", "log.every=1", "--set", "log.images_every=2",
            "--checkpoint-every", every, "--no-progress"]


def _start_two_ranks(argv):
    port = str(free_port())
    return [start_cli(argv, env={"RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
                                 "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}) for r in (0, 1)]


def _two_ranks(argv):
    processes = _start_two_ranks(argv)
    for process in processes:
        process.join(300)
    return [process.exitcode for process in processes]


def test_two_gloo_processes_match_one_process_with_double_batch(tmp_path, rain_set):
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    assert _two_ranks(_args(rain_set, ddp, 2, 4)) == [0, 0]
    assert run_cli(_args(rain_set, single, 4, 4)) == 0
    a, b = checkpoint.load(ddp / "last.ckpt"), checkpoint.load(single / "last.ckpt")
    assert a["progress"]["world"] == 2 and a["progress"]["iters_per_epoch"] == b["progress"]["iters_per_epoch"] == 2
    assert max_difference(a["model"], b["model"]) < 1e-5
    assert len(a["rng"]) == 2  # every rank's generators
    # rank 0 alone logs: one line per iteration, one TensorBoard file
    assert [line.split()[1] for line in (ddp / "train.log").read_text().splitlines()
            if line.startswith("iter ")] == ["1", "2", "3", "4"]
    assert len(list((ddp / "tb").iterdir())) == 1

    assert _two_ranks(_args(rain_set, ddp, 2, 6) + ["--resume"]) == [0, 0]
    assert checkpoint.load(ddp / "last.ckpt")["progress"]["iteration"] == 6
    assert run_cli(_args(rain_set, ddp, 2, 8) + ["--resume"]) == 1  # trained by 2 processes: resume with 2


def test_a_signal_to_one_rank_stops_both_at_the_same_step(tmp_path, rain_set):
    ddp, single, log = tmp_path / "ddp", tmp_path / "single", tmp_path / "ddp" / "train.log"
    iters = 40
    ranks = _start_two_ranks(_args(rain_set, ddp, 2, iters, every=500))
    deadline = time.monotonic() + 120
    while not (log.exists() and logged_iterations(log.read_text())) and time.monotonic() < deadline:
        time.sleep(0.01)
    # rank 0 holds the run folder: another writer is turned away, naming it
    assert run_cli(_args(rain_set, ddp, 2, iters) + ["--resume"], output=tmp_path / "intruder") == 1
    assert f"is in use by train (pid {ranks[0].pid} " in child_output(tmp_path / "intruder")[0]
    os.kill(ranks[1].pid, signal.SIGTERM)  # as when a scheduler preempts one node of a job
    for rank in ranks:
        rank.join(120)
    assert [rank.exitcode for rank in ranks] == [128 + signal.SIGTERM] * 2
    stopped = checkpoint.load(ddp / "last.ckpt")["progress"]["iteration"]
    assert stopped == max(logged_iterations(log.read_text())) < iters
    assert f"stopped by SIGTERM at iteration {stopped}" in log.read_text()
    assert _two_ranks(_args(rain_set, ddp, 2, iters) + ["--resume"]) == [0, 0]
    assert run_cli(_args(rain_set, single, 4, iters)) == 0
    a, b = checkpoint.load(ddp / "last.ckpt"), checkpoint.load(single / "last.ckpt")
    assert a["progress"]["iteration"] == iters and max_difference(a["model"], b["model"]) < 1e-5
