"""Turn a CaseSpec into something to time: inputs on the device, a zero-argument call, its cost.

Backends: "reference" is the eager pure-PyTorch oracle; "reference_compiled" is the same
function under torch.compile(fullgraph=True, dynamic=False) (specialised per shape, like a
deployment at a fixed resolution; its backward is compiled by AOTAutograd); "cpu", "cuda" and
"triton" are the fused backends, requested explicitly so a fallback can never be timed in
their name.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import torch

from .. import backbones, backends, ops
from ..taylornet import DerivativeG, TaylorNet, taylor_loss
from . import cost
from .grid import CaseSpec, allows_tf32, tensor_dtype

COMPILED_SUFFIX = "_compiled"


class Unavailable(Exception):
    """This case cannot run on this machine; the message says why."""


@dataclass
class Workload:
    spec: CaseSpec
    call: Callable[[], None]
    flops: float
    bytes: float | None
    warmup_calls: int  # calls before timing: compilation plus one steady-state call

    def sync(self) -> None:
        if self.spec.device == "cuda":
            torch.cuda.synchronize()

    def call_synced(self) -> None:
        self.call()
        self.sync()


def op_backend(spec: CaseSpec) -> str:
    """The taylor_fast backend name behind a benchmark backend."""
    return spec.backend.removesuffix(COMPILED_SUFFIX)


def static_skip_reason(spec: CaseSpec) -> str | None:
    """Why `spec` cannot run here, from what is known without allocating anything."""
    if spec.device == "cuda" and not torch.cuda.is_available():
        return "needs a CUDA GPU (torch sees none)"
    backend = op_backend(spec)
    if allows_tf32(spec.dtype) and spec.device != "cuda":
        return "TF32 is a mode of NVIDIA tensor cores (a CUDA precision)"
    if backend == "triton" and spec.device == "cpu":
        return ("Triton runs on CPU tensors only through its interpreter (TRITON_INTERPRET=1), "
                "a correctness tool, not a performance path")
    available, why = backends()[backend]
    if not available:
        return f"backend {backend!r} is not available: {why}"
    return None


def _dtype(precision: str) -> torch.dtype:
    return getattr(torch, tensor_dtype(precision))


def _weights(spec: CaseSpec, device, dtype, requires_grad: bool):
    channels = spec.shape[1]
    g = DerivativeG(channels, spec.hidden).to(device=device, dtype=dtype)
    return [w.detach().requires_grad_(requires_grad) for w in g.weights()]


def _check_served(spec: CaseSpec, f, y, weights) -> None:
    backend = op_backend(spec)
    why = ops.explain(f, y, *weights, spec.order, "relu", 0.2, backend=backend).reasons[backend]
    if why is not None:
        raise Unavailable(f"backend {backend!r} cannot run this case: {why}")


def _maybe_compile(spec: CaseSpec, fn):
    if not spec.backend.endswith(COMPILED_SUFFIX):
        return fn
    # a fresh Dynamo cache per case: every case recompiles the same code objects, and past the
    # recompile limit Dynamo would silently fall back to eager under the compiled name
    torch._dynamo.reset()
    return torch.compile(fn, fullgraph=True, dynamic=False)


def _warmup_calls(spec: CaseSpec) -> int:
    """Compiling backends (torch.compile, Triton's JIT) spend their first call compiling."""
    return 2 if spec.backend.endswith(COMPILED_SUFFIX) or spec.backend == "triton" else 1


def _expansion(spec: CaseSpec, device, dtype) -> Workload:
    gen = torch.Generator().manual_seed(0)
    f, y = (torch.rand(spec.shape, generator=gen).to(device=device, dtype=dtype) for _ in range(2))
    backward = spec.kind == "forward_backward"
    weights = _weights(spec, device, dtype, requires_grad=backward)
    _check_served(spec, f, y, weights)
    backend, order = op_backend(spec), spec.order

    def expand(f, y, w1, b1, w2, b2):
        return ops.taylor_expand(f, y, w1, b1, w2, b2, order, backend=backend)

    expand = _maybe_compile(spec, expand)
    if backward:
        f.requires_grad_(True)
        grad_out = torch.rand(spec.shape, generator=gen).to(device=device, dtype=dtype)
        leaves = [f, *weights]

        def call():
            for t in leaves:
                t.grad = None
            expand(f, y, *weights).backward(grad_out)
    else:
        def call():
            with torch.no_grad():
                expand(f, y, *weights)

    flops, nbytes = cost.case_cost(spec.kind, spec.shape, order, spec.hidden, f.element_size())
    return Workload(spec, call, flops, nbytes, _warmup_calls(spec))


def _train_step(spec: CaseSpec, device, dtype) -> Workload:
    torch.manual_seed(0)
    channels = spec.shape[1]
    backbone = backbones.create("tiny", channels=channels)
    model = TaylorNet(backbone, order=spec.order, channels=channels, hidden=spec.hidden,
                      backend=op_backend(spec)).to(device=device, dtype=dtype)
    gen = torch.Generator().manual_seed(0)
    y, target = (torch.rand(spec.shape, generator=gen).to(device=device, dtype=dtype) for _ in range(2))
    _check_served(spec, y, y, [w.detach() for w in model.derivative.weights()])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)  # the paper's optimiser and rate
    terms = _maybe_compile(spec, model.forward_terms)

    def call():
        optimizer.zero_grad(set_to_none=True)
        out, f = terms(y)
        taylor_loss(out, f, target).backward()
        optimizer.step()

    flops, nbytes = cost.case_cost(spec.kind, spec.shape, spec.order, spec.hidden, y.element_size(), backbone, y)
    return Workload(spec, call, flops, nbytes, _warmup_calls(spec))


@contextlib.contextmanager
def precision_flags(spec: CaseSpec):
    """TF32 on for a "tf32" case and off for every other, while the case is built and timed: the
    cuDNN flag governs the reference's convolutions and the Triton kernels alike."""
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = allows_tf32(spec.dtype)
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = saved


def build(spec: CaseSpec) -> Workload:
    """The workload of `spec`, or Unavailable with the reason it cannot run here."""
    reason = static_skip_reason(spec)
    if reason is not None:
        raise Unavailable(reason)
    device, dtype = torch.device(spec.device), _dtype(spec.dtype)
    if spec.kind == "train_step":
        return _train_step(spec, device, dtype)
    return _expansion(spec, device, dtype)
