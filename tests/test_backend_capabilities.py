"""The capability table (taylor_fast/backends/capabilities.py): the limits compiled into the C++
kernels are the ones it holds, each column refuses a call outside it with a reason that names
the limit, and the order bound is the one every reader of an order enforces. Checked on any
machine: no GPU is needed to read a limit."""
import re
from pathlib import Path

import pytest
import torch

import taylor_fast
from taylor_fast import backends
from taylor_fast.backends import MAX_ORDER, TABLE, Call, extension, refusal
from taylor_fast.engine.config import ConfigError, resolve
from taylor_fast.engine.evaluate import parse_orders

CSRC = Path(__file__).resolve().parents[1] / "csrc"


def call(**changes):
    base = dict(device=torch.device("cuda"), dtype=torch.float32, channels=3, hidden=32, kernel_size=3,
                per_order=False, activation="relu", negative_slope=0.2)
    return Call(**{**base, **changes})


def test_the_cuda_channel_limit_is_the_one_compiled_from_the_kernels_header():
    source = (CSRC / "cuda" / "step_params.h").read_text()
    in_header = int(re.search(r"constexpr int kMaxChannels = (\d+);", source).group(1))
    assert extension.limits()["cuda_max_channels"] == in_header, "taylor_fast._C was built from other sources"
    assert TABLE["cuda"].max_channels == in_header


@pytest.mark.parametrize("backend,changes,reason", [
    ("cuda", dict(channels=5), "the images have 5 channels; the fused kernels take at most 4"),
    ("cuda", dict(kernel_size=5), "G's kernels are 5x5; the fused kernels implement 3x3"),
    ("cpu", dict(), "the tensors are on cuda; the fused kernels run on cpu"),
    ("triton", dict(dtype=torch.float64), "dtype float64 is not implemented (only float32, bfloat16, float16)"),
    ("triton", dict(kernel_size=5), "5x5"),
    ("triton", dict(hidden=128), "G has 128 hidden channels; the Triton kernels take at most 64"),
    ("triton", dict(channels=8), "the images have 8 channels; the Triton kernels take at most 4"),
    ("triton", dict(device=torch.device("meta")), "the tensors are on meta"),
])
def test_a_call_outside_a_row_is_refused_naming_the_limit(backend, changes, reason):
    assert reason in refusal(TABLE[backend], call(**changes))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_a_call_at_the_limits_is_inside_the_row(dtype):
    for backend in ("cuda", "triton"):
        assert refusal(TABLE[backend], call(dtype=dtype, channels=4, hidden=64)) is None
    assert refusal(TABLE["reference"], call(dtype=torch.float64, channels=100, kernel_size=7)) is None


def test_the_triton_interpreter_moves_the_row_to_cpu_tensors():
    from taylor_fast.triton import INTERPRETED

    applied = backends.capability("triton")
    assert applied.devices == (("cpu",) if INTERPRETED else ("cuda",))
    assert (applied.max_channels, applied.max_hidden, applied.dtypes) == (
        TABLE["triton"].max_channels, TABLE["triton"].max_hidden, TABLE["triton"].dtypes)


def test_auto_tries_the_fused_backends_of_the_device_in_table_order():
    assert backends.capabilities.automatic_order("cpu") == ("cpu",)
    assert backends.capabilities.automatic_order("cuda") == ("cuda", "triton")
    assert backends.capabilities.automatic_order("meta") == ()


def test_every_reader_of_an_order_enforces_the_one_bound():
    f = torch.rand(1, 3, 4, 4)
    weights = taylor_fast.DerivativeG(3, 4).weights()
    assert taylor_fast.ops.taylor_expand(f, f, *weights, MAX_ORDER, backend="reference").shape == f.shape
    with pytest.raises(ValueError, match=rf"'order' must be in \[0, {MAX_ORDER}\]"):
        taylor_fast.ops.taylor_expand(f, f, *weights, MAX_ORDER + 1)
    with pytest.raises(ValueError, match=rf"'k' must be in \[0, {MAX_ORDER - 1}\]"):
        taylor_fast.ops.taylor_step(f, f, f, *weights, MAX_ORDER)
    taylor_fast.TaylorNet(torch.nn.Identity(), order=MAX_ORDER)
    with pytest.raises(ValueError, match=rf"order must be an int in \[0, {MAX_ORDER}\]"):
        taylor_fast.TaylorNet(torch.nn.Identity(), order=MAX_ORDER + 1)
    assert resolve(overrides={"model.order": MAX_ORDER})["model"]["order"] == MAX_ORDER
    with pytest.raises(ConfigError, match=rf"model.order: expected 0..{MAX_ORDER}"):
        resolve(overrides={"model.order": MAX_ORDER + 1})
    assert parse_orders(f"0-{MAX_ORDER}")[-1] == MAX_ORDER
    with pytest.raises(ConfigError, match=rf"expected orders in 0..{MAX_ORDER}"):
        parse_orders(f"{MAX_ORDER + 1}")
