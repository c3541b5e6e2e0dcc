"""How the Triton ops become torch.ops.taylor_fast.triton_*.

Compiled Triton (a GPU): torch.library.triton_op where torch has it (2.6+), so torch.compile and
torch.export trace into the kernels (each launch becomes a triton_kernel_wrapper node that
inductor can schedule and autotune) instead of treating the op as an opaque call.
Otherwise an opaque torch.library.custom_op with the fake kernels of taylor_fast/_autograd.py.
That includes the interpreter (TRITON_INTERPRET=1): torch's wrap_triton hands interpreted
kernels back unwrapped, so a triton_op could not be traced there (its fake kernel would run the
interpreter on fake tensors); as an opaque op, torch.compile(fullgraph=True) still captures it.
"""
import os

import torch

# TRITON_INTERPRET is read when a kernel is decorated (at import, like here): the kernels' mode
try:
    from triton import knobs

    INTERPRETED = bool(knobs.runtime.interpret)
except ImportError:  # Triton < 3.4
    INTERPRETED = os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "yes", "on")
TRACEABLE = hasattr(torch.library, "triton_op") and hasattr(torch.library, "wrap_triton") and not INTERPRETED

if TRACEABLE:
    from torch.library import wrap_triton
else:  # an opaque custom op launches its kernels directly

    def wrap_triton(kernel):
        return kernel


# The same four schemas as csrc/bindings.cpp, under triton_-prefixed names, so the shared autograd
# wiring (taylor_fast/_autograd.py) serves the Triton ops unchanged. The op functions carry the
# matching type annotations too: some torch versions (2.7) ignore triton_op's schema= and infer
# it from them (identical but for int -> SymInt).
SCHEMAS = {
    "step_forward": "(Tensor g, Tensor y, Tensor acc, Tensor w1, Tensor b1, Tensor w2, Tensor b2, int k, "
    "float negative_slope) -> (Tensor, Tensor)",
    "step_backward": "(Tensor grad_g_next, Tensor g, Tensor y, Tensor w1, Tensor b1, Tensor w2, Tensor b2, "
    "int k, float negative_slope) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)",
    "expand_forward": "(Tensor f, Tensor y, Tensor w1, Tensor b1, Tensor w2, Tensor b2, int order, "
    "float negative_slope) -> (Tensor, Tensor)",
    "expand_backward": "(Tensor grad_out, Tensor f, Tensor y, Tensor gs, Tensor w1, Tensor b1, Tensor w2, "
    "Tensor b2, int order, float negative_slope) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)",
}
PREFIX = "taylor_fast::triton_"


def define(name: str):
    """Decorator registering a function as the op taylor_fast::triton_<name> (schema above)."""
    qualname = PREFIX + name
    if TRACEABLE:
        # triton_op also registers the function itself as the fake kernel: it allocates exactly
        # what the real call allocates, and its kernel launches do nothing on fake tensors
        return torch.library.triton_op(qualname, mutates_args=(), schema=SCHEMAS[name])
    return torch.library.custom_op(qualname, mutates_args=(), schema=SCHEMAS[name])


def like(result: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """`result` (computed contiguous) laid out like torch.empty_like(reference), the allocation
    contract every backend follows (csrc/taylor_step.h); a copy only for non-contiguous inputs."""
    if reference.is_contiguous():
        return result
    return torch.empty_like(reference, dtype=result.dtype).copy_(result)
