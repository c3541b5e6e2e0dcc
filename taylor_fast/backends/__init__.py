"""The backends that run the ops, the contract they keep, and the choice between them.

    taylor_fast.backends()                 # {name: (available here, reason)}, the CPU code path included
    taylor_fast.explain(f, y, *weights, 3) # which backend runs this call, and why not each other one
    taylor_fast.backends.TABLE             # what each backend can serve (capabilities.py)

Backends: "reference" (pure PyTorch, the oracle; _reference.py), "cpu" and "cuda" (the fused C++
kernels of taylor_fast._C; _cpp.py), "triton" (the kernels of taylor_fast.triton; _triton.py).

The contract
------------
A backend is one module of this package with a function `create(name, capability)` returning
an object with the Backend protocol (contract.py), and one row in capabilities.TABLE naming
that module. Adding a backend is that module and that row; the conformance suite
(tests/test_backend_conformance.py) then runs it through every check below (a fused backend
also names the prefix of its custom ops in tests/backend_cases.py, for opcheck).

availability() -> (bool, reason)
    Whether it runs on this machine. Probed once per process, never raises; the reason is one
    line that says what runs (the CPU code path, the GPU and its architecture) or why not and
    how to fix it. Evaluated at trace time under torch.compile, so it may call anything.
capability
    Its row of capabilities.TABLE (devices, dtypes, G's kernel size, most channels and hidden
    channels), as it applies here. The registry refuses a call outside it with the reason
    (capabilities.refusal) before asking the backend anything else.
cannot_serve(call) -> None | reason
    Asked only for available backends and calls inside the row: what else rules the call out
    (Triton: shared memory of this GPU, bfloat16 before sm_80). Runs inside compiled code, so it
    must stay traceable by Dynamo (no pybind calls) and must not allocate or launch anything.
expand(call, f, y, w1, b1, w2, b2, order) -> out
step(call, g, y, acc, w1, b1, w2, b2, k) -> (g_next, acc_next)
    The computation, with validated arguments (one dtype and device, shapes checked, order >= 1;
    order 0 never reaches a backend) and the semantics of taylor_fast.reference:
    - differentiable with respect to every tensor argument;
    - float64 equal to the reference to rounding (1e-10 relative); a backend without float64
      (Triton) is held to float32 rounding in float32; bfloat16 and float16 accumulated in
      float32, within twice the error of the eager reference in the same dtype (both against
      float64);
    - any memory layout (channels_last, strided views, zero strides) read through its strides;
    - empty batches and images smaller than G's 2-pixel halo give the reference's results;
    - the same call twice gives bitwise the same outputs and gradients (on CUDA under
      torch.use_deterministic_algorithms(True));
    - NaN and +-inf in the images propagate as in the reference.
    The fused backends (all but the reference) also:
    - implement their ops as torch.library custom ops with the schemas of csrc/bindings.cpp,
      fake kernels and registered autograd, so that torch.library.opcheck passes and
      torch.compile(fullgraph=True) traces them without graph breaks;
    - allocate outputs and gradients like torch.empty_like(the matching input) (channels_last
      stays channels_last), the contract the fake kernels promise (csrc/taylor_step.h);
    - refuse double backward with a clear error (their backward is not itself differentiable).

Choosing: see _selection.py (backend="auto" takes the first available backend of the table that
can serve the call, in table order among those marked automatic for the tensors' device, else the
reference; TAYLOR_FAST_BACKEND overrides "auto").
"""
import sys
import types

from . import _cpp  # noqa: F401  (registers the C++ ops' fake kernels and autograd, wanted before any call)
from . import extension
from ._selection import ENV_VAR, NAMES, availabilities, capability, check_name, choose, explain_call
from .capabilities import MAX_ORDER, TABLE, Capability, describe, refusal
from .contract import Backend, Call, Explanation

__all__ = [
    "ENV_VAR", "MAX_ORDER", "NAMES", "TABLE", "Backend", "Call", "Capability", "Explanation", "availabilities",
    "capability", "check_name", "choose", "describe", "explain_call", "extension", "refusal",
]


class _CallablePackage(types.ModuleType):
    """taylor_fast.backends is this package and, as it was before the package existed, the
    function taylor_fast.backends() -> {name: (available, reason)}: a package attribute of the
    same name as a function would hide one or the other."""

    def __call__(self) -> dict[str, tuple[bool, str]]:
        return availabilities()


sys.modules[__name__].__class__ = _CallablePackage
