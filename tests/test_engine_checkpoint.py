"""Checkpoint format: safetensors + JSON, so loading runs no code; the training
state round-trips exactly; tensors carry readable names and older numbered files still load;
taylor_fast.load gives the trained model; the sampler order is reproducible and resumable."""
import pickle
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

import taylor_fast
from taylor_fast.engine import checkpoint, config, model, rng
from taylor_fast.engine.sampler import EpochSampler

# Written by checkpoint.save when tensors were named t0, t1, ... in order of appearance: the
# config of tiny (width 4) with per-order G (hidden 4, order 2) and the state dict of that model,
# every parameter set to arange(n) / n - 0.5 in its shape, so the test knows the weights.
NUMBERED = Path(__file__).resolve().parent / "fixtures" / "numbered_tensors.ckpt"


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


def test_a_checkpoint_with_numbered_tensors_still_loads():
    from safetensors import safe_open

    with safe_open(str(NUMBERED), framework="pt") as reader:
        assert sorted(reader.keys(), key=lambda k: int(k[1:])) == [f"t{i}" for i in range(10)]  # the old naming
    net = taylor_fast.load(NUMBERED)
    assert isinstance(net, taylor_fast.TaylorNet) and not net.training and net.order == 2
    assert not net.derivative.shared and net.derivative.hidden == 4
    for name, param in net.named_parameters():
        expected = torch.arange(param.numel(), dtype=torch.float32).reshape(param.shape) / param.numel() - 0.5
        assert torch.equal(param.detach(), expected), name


def test_tensors_are_named_by_their_place_so_any_safetensors_reader_finds_the_weights(tmp_path):
    from safetensors.torch import load_file

    resolved = config.resolve(overrides={"model.hidden": 4, "model.backbone_options": {"width": 4}, "train.iters": 1})
    torch.manual_seed(3)
    net = model.build(resolved["model"])
    optimizer = torch.optim.Adam(net.parameters())
    net(torch.rand(1, 3, 8, 8)).sum().backward()
    optimizer.step()
    path = tmp_path / "last.ckpt"
    checkpoint.save(path, {"config": resolved, "model": net.state_dict(), "optimizer": optimizer.state_dict()})
    tensors = load_file(path)
    assert {"model.derivative.w1", "model.mapping.body.0.weight", "optimizer.state[0].exp_avg"} <= set(tensors)
    plain = model.build(resolved["model"])
    plain.load_state_dict({k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")})
    loaded = taylor_fast.load(path)
    y = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        assert torch.equal(plain.eval()(y), loaded(y)) and torch.equal(loaded(y), net.eval()(y))


def test_a_dict_key_spelling_another_place_keeps_both_tensors(tmp_path):
    state = {"a.b": torch.ones(2), "a": {"b": torch.zeros(2)}}
    checkpoint.save(tmp_path / "x.ckpt", state)
    back = checkpoint.load(tmp_path / "x.ckpt")
    assert torch.equal(back["a.b"], torch.ones(2)) and torch.equal(back["a"]["b"], torch.zeros(2))


def test_the_engine_modules_are_attributes_in_a_fresh_interpreter():
    code = ("import taylor_fast; print(taylor_fast.engine.model.load.__name__, taylor_fast.load.__name__, "
            "taylor_fast.engine.checkpoint.FORMAT)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.split() == ["load", "load", checkpoint.FORMAT], out.stderr


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
