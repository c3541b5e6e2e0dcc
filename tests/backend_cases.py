"""What the reliability tests share: the backends this machine can run, and one call of either
public op, described by a dict of its arguments so that a test can spoil one of them, and the
backends paired with the device each computes on."""
import pytest
import torch

import taylor_fast
from conftest import make_images, make_weights
from taylor_fast import ops

OPS = ("taylor_expand", "taylor_step")


def available_backends() -> list[str]:
    """Every backend that runs here (triton through its interpreter: conftest sets TRITON_INTERPRET)."""
    return [name for name, (ok, _) in taylor_fast.backends().items() if ok]


def valid_arguments(op: str, n=2, c=3, h=7, w=9, hidden=8, dtype=torch.float32, backend="auto") -> dict:
    """Keyword arguments of a valid call of ops.<op> (order / k = 2)."""
    first, y = make_images(n, c, h, w, dtype=dtype)
    w1, b1, w2, b2 = make_weights(c, hidden, dtype=dtype)
    args = dict(y=y, w1=w1, b1=b1, w2=w2, b2=b2, activation="relu", negative_slope=0.2, backend=backend)
    if op == "taylor_expand":
        return dict(f=first, order=2, **args)
    return dict(g=first, acc=torch.rand_like(first), k=2, **args)


def call(op: str, args: dict):
    return getattr(ops, op)(**args)


def image_names(op: str) -> tuple[str, ...]:
    return ("f", "y") if op == "taylor_expand" else ("g", "y", "acc")


def backend_device_params() -> list:
    """pytest params (backend, device) for every backend on the device it computes on: triton on
    CPU tensors through its interpreter without a GPU; the cuda ones marked `cuda`."""
    from taylor_fast.triton import TritonBackend

    triton_device = "cpu" if TritonBackend().interpreted else "cuda"
    return [
        pytest.param("reference", "cpu", id="reference"),
        pytest.param("cpu", "cpu", id="cpu"),
        pytest.param("triton", triton_device, id="triton", marks=[pytest.mark.triton]),
        pytest.param("cuda", "cuda", id="cuda", marks=[pytest.mark.cuda]),
        pytest.param("reference", "cuda", id="reference-cuda", marks=[pytest.mark.cuda]),
    ]


def classes(t: torch.Tensor) -> torch.Tensor:
    """0 NaN, 1 +inf, 2 -inf, 3 finite."""
    return torch.where(t.isnan(), 0, torch.where(t == float("inf"), 1, torch.where(t == -float("inf"), 2, 3)))


def outputs_and_grads(fn, args, seed=3):
    """fn(leaves) with every tensor of args as a fresh leaf, and the gradients of all of them
    (zeros where unused) for fixed random upstream gradients."""
    leaves = {k: v.detach().clone().requires_grad_() if isinstance(v, torch.Tensor) else v for k, v in args.items()}
    outs = fn(leaves)
    outs = outs if isinstance(outs, tuple) else (outs,)
    gen = torch.Generator().manual_seed(seed)
    grad_outs = [torch.randn(o.shape, generator=gen, dtype=torch.float64).to(o.dtype) for o in outs]
    tensors = [k for k, v in leaves.items() if isinstance(v, torch.Tensor)]
    grads = torch.autograd.grad(outs, [leaves[k] for k in tensors], grad_outs, allow_unused=True)
    return outs, [torch.zeros_like(leaves[k]) if g is None else g for k, g in zip(tensors, grads)]
