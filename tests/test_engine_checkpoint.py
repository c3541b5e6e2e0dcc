"""Checkpoint format (issue 8 §6): safetensors + JSON, so loading runs no code; the training
state round-trips exactly; the sampler order is reproducible and resumable."""
import pickle
import random
from collections import Counter

import numpy as np
import pytest
import torch

from taylor_fast.engine import checkpoint, rng
from taylor_fast.engine.sampler import EpochSampler


class _Payload:
    """Unpickling this calls os.system: what a malicious pickle-based checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_pickle_checkpoint_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "last.ckpt"
    torch.save({"model": _Payload(marker)}, path)  # a torch.save file with a code-running pickle inside
    with pytest.raises(checkpoint.CheckpointError, match="truncated or not a checkpoint"):
        checkpoint.load(path)
    path.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.load(path)
    assert not marker.exists()


def test_training_state_round_trips(tmp_path):
    param = torch.nn.Parameter(torch.randn(5, 3))
    optimizer = torch.optim.Adam([param], lr=1e-3)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [2, 4], gamma=0.2)
    for _ in range(3):
        param.grad = torch.randn(5, 3)
        optimizer.step()
        scheduler.step()
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng.capture(),
             "misc": {"tuple": (1, 2.5, None), "ints": {3: "a"}, "nan": float("inf"), "bf16": torch.ones(2).bfloat16(),
                      "empty": torch.zeros(0, 4), "__odd": 1}}
    path = tmp_path / "s.ckpt"
    checkpoint.save(path, state)
    back = checkpoint.load(path)
    assert back["scheduler"]["milestones"] == Counter({2: 1, 4: 1}) and isinstance(back["scheduler"]["milestones"],
                                                                                 Counter)
    assert back["misc"] == {**back["misc"], "tuple": (1, 2.5, None), "ints": {3: "a"}, "nan": float("inf"), "__odd": 1}
    assert back["misc"]["bf16"].dtype == torch.bfloat16 and back["misc"]["empty"].shape == (0, 4)
    restored = torch.optim.Adam([torch.nn.Parameter(param.detach().clone())], lr=1e-3)
    restored.load_state_dict(back["optimizer"])
    for key in ("exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(restored.state_dict()["state"][0][key], optimizer.state_dict()["state"][0][key])
    # the RNG states continue the same streams
    expected = (torch.rand(3), np.random.rand(3), random.random())
    rng.restore(back["rng"])
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


def test_unsupported_values_are_refused_when_saving(tmp_path):
    with pytest.raises(TypeError, match=r"state.model: cannot store a set"):
        checkpoint.save(tmp_path / "x.ckpt", {"model": {1, 2}})
    assert not (tmp_path / "x.ckpt").exists()


def test_a_foreign_safetensors_file_is_named_as_such(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, tmp_path / "model.safetensors")
    with pytest.raises(checkpoint.CheckpointError, match="not a taylor_fast checkpoint"):
        checkpoint.load(tmp_path / "model.safetensors")


def test_sampler_is_reproducible_sharded_and_resumable():
    whole = EpochSampler(10, seed=3)
    whole.set_epoch(2)
    order = whole.indices()
    assert sorted(order) == list(range(10))
    again = EpochSampler(10, seed=3)
    again.set_epoch(2)
    assert again.indices() == order
    again.set_epoch(3)
    assert again.indices() != order
    shards = [EpochSampler(10, seed=3, rank=r, world=3) for r in range(3)]
    for s in shards:
        s.set_epoch(2)
    assert all(len(s) == 4 for s in shards)  # 10 padded to 12 by wrapping around
    assert sorted(i for s in shards for i in s) == sorted(order + order[:2])
    resumed = EpochSampler(10, seed=3)
    resumed.set_epoch(2, start=6)
    assert list(resumed) == order[6:] and len(resumed) == 4
