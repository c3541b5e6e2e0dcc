"""Backend "triton": the Triton kernels of taylor_fast.triton, called as
torch.ops.taylor_fast.triton_*. Importing this module imports triton: an ImportError is how the
registry learns the backend is missing."""
from __future__ import annotations

import dataclasses

import torch
import triton

from ..triton import INTERPRETED, shared_memory_shortfall
from .capabilities import Capability


class TritonBackend:
    def __init__(self, name: str, capability: Capability):
        self.name = name
        # The mode the kernels were decorated in (TRITON_INTERPRET is read at decoration time).
        # The interpreter computes on CPU tensors, for tests: the table's row, moved to the CPU.
        self.interpreted = INTERPRETED
        self.capability = capability if not INTERPRETED else dataclasses.replace(
            capability, devices=("cpu",), kernels="the Triton kernels (interpreted: TRITON_INTERPRET=1)")

    def availability(self) -> tuple[bool, str]:
        version = f"Triton {triton.__version__}"
        if self.interpreted:
            return True, (f"{version} interpreter (TRITON_INTERPRET=1): runs the kernels on CPU tensors, slowly "
                          "(for tests)")
        if not torch.cuda.is_available():
            return False, (f"{version} is installed but torch sees no CUDA GPU (set TRITON_INTERPRET=1 before "
                           "importing taylor_fast to run the kernels on CPU tensors through Triton's interpreter)")
        major, minor = torch.cuda.get_device_capability()
        return True, f"{version} on {torch.cuda.get_device_name()} (sm_{major}{minor})"

    def cannot_serve(self, call) -> str | None:
        if self.interpreted:
            return None
        if call.dtype == torch.bfloat16 and torch.cuda.get_device_capability(call.device) < (8, 0):
            return "bfloat16 tensor-core products need sm_80 or newer"
        return shared_memory_shortfall(call.device, call.dtype, call.channels, call.hidden)

    def expand(self, call, f, y, w1, b1, w2, b2, order):
        return torch.ops.taylor_fast.triton_expand_forward(f, y, w1, b1, w2, b2, order, call.kernel_slope)[0]

    def step(self, call, g, y, acc, w1, b1, w2, b2, k):
        return torch.ops.taylor_fast.triton_step_forward(g, y, acc, w1, b1, w2, b2, k, call.kernel_slope)


create = TritonBackend
