"""Backend "triton" for taylor_fast._dispatch: the same contract as _ext_ops.ExtensionBackend."""
import torch
import triton

from .. import _autograd
from . import expand, step  # noqa: F401  (importing them registers the ops)
from ._registration import INTERPRETED, PREFIX, TRACEABLE
from ._tiling import BACKWARD_CONFIGS, FORWARD_CONFIGS, ieee_fp32, shared_memory_bytes

if not TRACEABLE:  # a triton_op's fake kernel is its body; an opaque custom_op needs these
    _autograd.register_fakes(PREFIX)

SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
# Whole channel and hidden tiles live in registers (2C*9 and hidden columns, padded to powers of
# two): beyond these sizes the tiles no longer fit a GPU program; such calls fall back.
MAX_CHANNELS = 4
MAX_HIDDEN = 64


def _dtype_name(dtype):
    return str(dtype).replace("torch.", "")


def _shared_memory_shortfall(call) -> str | None:
    """Why the smallest tile of either kernel would not fit this GPU's shared memory, or None."""
    available = torch.cuda.get_device_properties(call.device).shared_memory_per_block_optin
    exact = ieee_fp32(call.dtype)
    size = call.dtype.itemsize
    for kernel, tuned in (("forward", FORWARD_CONFIGS), ("backward", BACKWARD_CONFIGS)):
        need = shared_memory_bytes(kernel, tuned[0], call.channels, call.hidden, size, exact)
        if need > available:
            return (f"the {kernel} kernel's smallest tile needs {need} bytes of shared memory for C={call.channels}, "
                    f"hidden={call.hidden}; this GPU has {available} per block")
    return None


class TritonBackend:
    name = "triton"

    def __init__(self):
        # The mode the kernels were decorated in: TRITON_INTERPRET is read at decoration time.
        self.interpreted = INTERPRETED
        self.device_type = "cpu" if self.interpreted else "cuda"

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
        if call.device.type != self.device_type:
            mode = "interpreted on cpu (TRITON_INTERPRET=1)" if self.interpreted else "compiled for cuda"
            return f"the tensors are on {call.device.type}; the Triton kernels are {mode}"
        if call.dtype not in SUPPORTED_DTYPES:
            names = ", ".join(_dtype_name(d) for d in SUPPORTED_DTYPES)
            return f"dtype {_dtype_name(call.dtype)} is not implemented (only {names})"
        if call.kernel_size != 3:
            return f"G's kernels are {call.kernel_size}x{call.kernel_size}; the Triton kernels implement 3x3"
        if call.channels > MAX_CHANNELS or call.hidden > MAX_HIDDEN:
            return (f"C={call.channels}, hidden={call.hidden}: the Triton kernels implement C <= {MAX_CHANNELS} "
                    f"and hidden <= {MAX_HIDDEN}")
        if not self.interpreted:
            if call.dtype == torch.bfloat16 and torch.cuda.get_device_capability(call.device) < (8, 0):
                return "bfloat16 tensor-core products need sm_80 or newer"
            return _shared_memory_shortfall(call)
        return None

    def expand(self, call, f, y, w1, b1, w2, b2, order):
        return torch.ops.taylor_fast.triton_expand_forward(f, y, w1, b1, w2, b2, order, call.kernel_slope)[0]

    def step(self, call, g, y, acc, w1, b1, w2, b2, k):
        return torch.ops.taylor_fast.triton_step_forward(g, y, acc, w1, b1, w2, b2, k, call.kernel_slope)
