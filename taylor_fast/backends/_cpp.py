"""Backends "cpu" and "cuda": the fused C++ kernels of the extension (csrc/), one op per step and
one kernel per device, called as torch.ops.taylor_fast.*; this module registers their fake
kernels and autograd."""
from __future__ import annotations

import torch

from .. import _autograd
from . import extension
from .capabilities import Capability

_OPS = ("expand_forward", "expand_backward", "step_forward", "step_backward")

if extension.loaded():
    _autograd.register_fakes("taylor_fast::")
    _autograd.register_expand_autograd("taylor_fast::expand_forward", torch.ops.taylor_fast.expand_backward)
    _autograd.register_step_autograd("taylor_fast::step_forward", torch.ops.taylor_fast.step_backward)

    @torch.library.register_fake("taylor_fast::expand_inference")
    def _expand_inference(f, y, w1, b1, w2, b2, order, slope):
        return torch.empty_like(f)


def _cuda_usable() -> tuple[bool, str]:
    info = extension.build_info()
    if info.get("cuda_built") != "1":
        return False, f"the CUDA half was not built ({info.get('cuda_skip_reason') or 'unknown reason'})"
    if not torch.cuda.is_available():
        return False, f"built for {info.get('cuda_archs')}, but torch sees no CUDA device here"
    probe = extension.cuda_probe(torch.cuda.current_device())
    if not probe["ok"]:
        return False, f"built for {info.get('cuda_archs')}, but the GPU cannot run it: {probe['message']}"
    return True, f"built for {info.get('cuda_archs')}; running sm_{probe['binary_version'] or probe['ptx_version']}"


class ExtensionBackend:
    """The fused C++ kernels for one device type (the backend's name)."""

    def __init__(self, name: str, capability: Capability):
        self.name, self.capability = name, capability
        self._dispatch_key = name.upper()
        self._availability = None
        self._has_inference_op = False

    def availability(self) -> tuple[bool, str]:
        if self._availability is None:
            self._availability = self._probe()
        return self._availability

    def _probe(self) -> tuple[bool, str]:
        if not extension.loaded():
            return False, extension.status
        missing = [op for op in _OPS if not extension.has_kernel(op, self._dispatch_key)]
        self._has_inference_op = extension.has_kernel("expand_inference", self._dispatch_key)
        if self.name == "cuda":
            usable, reason = _cuda_usable()
            if not usable:
                return False, reason
        else:
            reason = f"fused kernels ({extension.cpu_isa()} code path)"
        if missing:
            return False, f"the extension has no {self._dispatch_key} kernel for {', '.join(missing)}"
        return True, reason

    def cannot_serve(self, call) -> str | None:
        return None  # the kernels take every call inside their capability row

    def expand(self, call, f, y, w1, b1, w2, b2, order):
        inputs = (f, y, w1, b1, w2, b2)
        if self._has_inference_op and not (torch.is_grad_enabled() and any(t.requires_grad for t in inputs)):
            # nothing to differentiate: no g^k kept for a backward (n images less)
            return torch.ops.taylor_fast.expand_inference(*inputs, order, call.kernel_slope)
        return torch.ops.taylor_fast.expand_forward(*inputs, order, call.kernel_slope)[0]

    def step(self, call, g, y, acc, w1, b1, w2, b2, k):
        return torch.ops.taylor_fast.step_forward(g, y, acc, w1, b1, w2, b2, k, call.kernel_slope)


create = ExtensionBackend
