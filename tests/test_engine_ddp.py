"""Two training processes (torch.distributed, gloo on CPU, torchrun's environment variables)
take the same steps as one process with twice the batch, and only rank 0 writes."""
import pytest
from engine_helpers import free_port, make_rain_set, max_difference, run_cli, start_cli

from taylor_fast.engine import checkpoint


@pytest.fixture(scope="module")
def rain_set(tmp_path_factory):
    return make_rain_set(tmp_path_factory.mktemp("ddp") / "data")


def _args(data, run, batch, iters):
    return ["train", "--root", data, "--out", run, "--patch", 24, "--batch-size", batch, "--iters", iters,
            "--set", "model.hidden=8", "--set", "log.every=1", "--set", "log.images_every=2", "--checkpoint-every", 2,
            "--no-progress"]


def _two_ranks(argv):
    port = str(free_port())
    processes = [start_cli(argv, env={"RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
                                      "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}) for r in (0, 1)]
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
