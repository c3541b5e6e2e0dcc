"""What the backend-parametrised tests share: which backends run here, on which device each
computes, the pytest marks that say so, and one call of either public op, described by a dict
of its arguments so that a test can spoil one of them.

Every parametrisation over backends goes through `backend_params` / `backend_device_params`,
so each GPU case carries the `cuda` mark (and Triton's the `triton` mark): `pytest -m "cuda or
triton"` selects them all, and without a GPU conftest.py skips the `cuda` ones.

TAYLOR_FAST_PRETEND_GPU=1 is a test-only switch: the suite is collected as on a GPU machine
(cuda and compiled Triton treated as available, their tensors on "cuda"), so that a collection
error that only a GPU machine would meet shows up here (`make test` collects that way once).
The package itself never pretends: its backends still report what this machine can run.
"""
import os

import pytest
import torch

import taylor_fast
from sample_tensors import make_images, make_weights
from taylor_fast import backends, ops

OPS = ("taylor_expand", "taylor_step")
PRETEND_GPU = os.environ.get("TAYLOR_FAST_PRETEND_GPU", "") == "1"
# the custom ops behind each fused backend: torch.ops.taylor_fast.<prefix><op>
OP_PREFIX = {"cpu": "", "cuda": "", "triton": "triton_"}


def available_backends() -> list[str]:
    """Every backend that runs here (triton through its interpreter: conftest sets TRITON_INTERPRET);
    all of them when pretending to have a GPU."""
    if PRETEND_GPU:
        return list(backends.NAMES)
    return [name for name, (ok, _) in taylor_fast.backends().items() if ok]


def device_of(backend: str) -> str:
    """Where a backend's tensors live: the first device of its capability (the GPU for cuda, and
    for triton unless interpreted); the reference's are on the CPU."""
    devices = backends.capability(backend).devices
    return "cpu" if devices is None else devices[0]


def marks_for(backend: str, device: str) -> list:
    marks = [pytest.mark.triton] if backend == "triton" else []
    return marks + ([pytest.mark.cuda] if device == "cuda" else [])


def backend_params(backends=None) -> list:
    """pytest params, one per backend (default: every backend available here), with its marks."""
    return [pytest.param(name, id=name, marks=marks_for(name, device_of(name)))
            for name in (available_backends() if backends is None else backends)]


def backend_device_params(fused=False) -> list:
    """pytest params (backend, device) for every backend on the device it computes on, and the
    reference on the GPU too (fused=True: the fused backends only); the GPU ones marked `cuda`
    (collected everywhere, skipped without one)."""
    pairs = [(name, device_of(name)) for name in backends.NAMES] + [("reference", "cuda")]
    return [pytest.param(name, device, id=name if device == device_of(name) else f"{name}-{device}",
                         marks=marks_for(name, device)) for name, device in pairs
            if not (fused and name == "reference")]


def most_precise_dtype(backend: str) -> torch.dtype:
    """float64, or the widest dtype the backend implements (Triton: float32)."""
    dtypes = backends.capability(backend).dtypes
    return torch.float64 if dtypes is None else max(dtypes, key=lambda d: d.itemsize)


def valid_arguments(op: str, n=2, c=3, h=7, w=9, hidden=8, dtype=torch.float32, backend="auto", device=None) -> dict:
    """Keyword arguments of a valid call of ops.<op> (order / k = 2), on `device` (default: the
    backend's own)."""
    if device is None:
        device = "cpu" if backend == "auto" else device_of(backend)
    first, y = (t.to(device) for t in make_images(n, c, h, w, dtype=dtype))
    w1, b1, w2, b2 = (t.to(device) for t in make_weights(c, hidden, dtype=dtype))
    args = dict(y=y, w1=w1, b1=b1, w2=w2, b2=b2, activation="relu", negative_slope=0.2, backend=backend)
    if op == "taylor_expand":
        return dict(f=first, order=2, **args)
    return dict(g=first, acc=torch.rand_like(first), k=2, **args)


def call(op: str, args: dict):
    return getattr(ops, op)(**args)


def image_names(op: str) -> tuple[str, ...]:
    return ("f", "y") if op == "taylor_expand" else ("g", "y", "acc")


def classes(t: torch.Tensor) -> torch.Tensor:
    """0 NaN, 1 +inf, 2 -inf, 3 finite."""
    return torch.where(t.isnan(), 0, torch.where(t == float("inf"), 1, torch.where(t == -float("inf"), 2, 3)))


def outputs_and_grads(fn, args, seed=3):
    """fn(leaves) with every tensor of args as a fresh leaf, and the gradients of all of them
    (zeros where unused) for fixed random upstream gradients."""
    leaves = {k: v.detach().requires_grad_() if isinstance(v, torch.Tensor) else v for k, v in args.items()}
    outs = fn(leaves)
    outs = outs if isinstance(outs, tuple) else (outs,)
    gen = torch.Generator().manual_seed(seed)
    grad_outs = [torch.randn(o.shape, generator=gen, dtype=torch.float64).to(o.device, o.dtype) for o in outs]
    tensors = [k for k, v in leaves.items() if isinstance(v, torch.Tensor)]
    grads = torch.autograd.grad(outs, [leaves[k] for k in tensors], grad_outs, allow_unused=True)
    return outs, [torch.zeros_like(leaves[k]) if g is None else g for k, g in zip(tensors, grads)]
