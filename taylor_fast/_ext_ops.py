"""The C++ ops torch.ops.taylor_fast.* (csrc/): fake kernels, autograd, and the "cpu" and
"cuda" backends that call them. One op per step, one kernel per device (DESIGN §3)."""
from __future__ import annotations

import torch

from . import _autograd, _extension

# dtypes each device's kernels implement; the C++ kernels dispatch on exactly these (on CPU,
# bfloat16 and float16 are computed in float32 and rounded once on output)
SUPPORTED_DTYPES = {
    "cpu": (torch.float32, torch.float64, torch.float16, torch.bfloat16),
    "cuda": (torch.float32, torch.float64, torch.float16, torch.bfloat16),
}
_OPS = ("expand_forward", "expand_backward", "step_forward", "step_backward")
# image channels C each device's kernels take at most (csrc/cuda/step_params.h kMaxChannels)
MAX_CHANNELS = {"cuda": 4}

if _extension.loaded():
    _autograd.register_fakes("taylor_fast::")
    _autograd.register_expand_autograd("taylor_fast::expand_forward", torch.ops.taylor_fast.expand_backward)
    _autograd.register_step_autograd("taylor_fast::step_forward", torch.ops.taylor_fast.step_backward)

    @torch.library.register_fake("taylor_fast::expand_inference")
    def _expand_inference(f, y, w1, b1, w2, b2, order, slope):
        return torch.empty_like(f)


def _cuda_usable() -> tuple[bool, str]:
    info = _extension.build_info()
    if info.get("cuda_built") != "1":
        return False, f"the CUDA half was not built ({info.get('cuda_skip_reason') or 'unknown reason'})"
    if not torch.cuda.is_available():
        return False, f"built for {info.get('cuda_archs')}, but torch sees no CUDA device here"
    probe = _extension.module.cuda_probe(torch.cuda.current_device())
    if not probe["ok"]:
        return False, f"built for {info.get('cuda_archs')}, but the GPU cannot run it: {probe['message']}"
    return True, f"built for {info.get('cuda_archs')}; running sm_{probe['binary_version'] or probe['ptx_version']}"


class ExtensionBackend:
    """Backend "cpu" or "cuda": the fused C++ kernels for one device type."""

    def __init__(self, device_type: str):
        self.name = device_type
        self.device_type = device_type
        self._dispatch_key = device_type.upper()
        self._availability = None
        self._has_inference_op = False

    def availability(self) -> tuple[bool, str]:
        if self._availability is None:
            self._availability = self._probe()
        return self._availability

    def _probe(self) -> tuple[bool, str]:
        if not _extension.loaded():
            return False, _extension.status
        missing = [op for op in _OPS if not _extension.has_kernel(op, self._dispatch_key)]
        self._has_inference_op = _extension.has_kernel("expand_inference", self._dispatch_key)
        if self.device_type == "cuda":
            usable, reason = _cuda_usable()
            if not usable:
                return False, reason
        else:
            reason = f"fused kernels ({_extension.module.cpu_isa()} code path)"
        if missing:
            return False, f"the extension has no {self._dispatch_key} kernel for {', '.join(missing)}"
        return True, reason

    def cannot_serve(self, call) -> str | None:
        if call.device.type != self.device_type:
            return f"the tensors are on {call.device.type}, this backend runs on {self.device_type}"
        if call.dtype not in SUPPORTED_DTYPES[self.device_type]:
            names = ", ".join(str(d).replace("torch.", "") for d in SUPPORTED_DTYPES[self.device_type])
            return f"dtype {str(call.dtype).replace('torch.', '')} is not implemented (only {names})"
        limit = MAX_CHANNELS.get(self.device_type)
        if limit is not None and call.channels > limit:
            return f"the images have {call.channels} channels; the fused kernels take at most {limit}"
        if call.kernel_size != 3:
            return f"G's kernels are {call.kernel_size}x{call.kernel_size}; the fused kernels implement 3x3"
        return None

    def expand(self, call, f, y, w1, b1, w2, b2, order):
        inputs = (f, y, w1, b1, w2, b2)
        if self._has_inference_op and not (torch.is_grad_enabled() and any(t.requires_grad for t in inputs)):
            # nothing to differentiate: no g^k kept for a backward (n images less)
            return torch.ops.taylor_fast.expand_inference(*inputs, order, call.kernel_slope)
        return torch.ops.taylor_fast.expand_forward(*inputs, order, call.kernel_slope)[0]

    def step(self, call, g, y, acc, w1, b1, w2, b2, k):
        return torch.ops.taylor_fast.step_forward(g, y, acc, w1, b1, w2, b2, k, call.kernel_slope)
