"""What each backend can serve: the one table every limit is read from.

A row names the module implementing the backend and the calls its kernels implement: the device
types of the tensors, the dtypes, G's kernel size, the most image channels C and hidden channels.
A call outside a row is refused with a one-line reason (`refusal`) before the backend is asked
anything else. Limits the C++ kernels are compiled with come from the extension
(`extension.limits()`, defined in the csrc headers), never restated here; raising one is a change
to that header alone. The order bound of the ops is here too, read by everything that checks an
order (the ops, TaylorNet, the config and the command line).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from . import extension

if TYPE_CHECKING:
    from .contract import Call

# The largest order (and k + 1) the ops take: 1/33! is still a normal float32; far above the
# paper's 0..6.
MAX_ORDER = 32

_ALL_FLOATS = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class Capability:
    module: str  # the module of taylor_fast.backends that implements the backend
    kernels: str  # what a refusal calls its kernels
    devices: tuple[str, ...] | None  # device types of the tensors it computes on (None: any)
    dtypes: tuple[torch.dtype, ...] | None  # None: every dtype the ops take
    kernel_sizes: tuple[int, ...] | None  # G's convolution sizes (None: any odd size)
    max_channels: int | None  # image channels C (None: no limit)
    max_hidden: int | None  # G's hidden channels (None: no limit)
    automatic: bool  # backend="auto" may choose it for tensors on its devices, in table order


TABLE: dict[str, Capability] = {
    # the numerical oracle and the last resort of backend="auto": anything the ops accept
    "reference": Capability("_reference", "the reference", None, None, None, None, None, automatic=False),
    # bfloat16 and float16 are computed in float32 and rounded once on output
    "cpu": Capability("_cpp", "the fused kernels", ("cpu",), _ALL_FLOATS, (3,), None, None, automatic=True),
    # C is bounded by the kernels' per-channel registers and shared-memory layout
    "cuda": Capability("_cpp", "the fused kernels", ("cuda",), _ALL_FLOATS, (3,),
                       extension.limits().get("cuda_max_channels"), None, automatic=True),
    # tl.dot has no float64. Whole channel and hidden tiles live in registers (2C*9 and hidden
    # columns, padded to powers of two): beyond these sizes they no longer fit a GPU program. The
    # devices are those of compiled Triton; its interpreter (TRITON_INTERPRET=1, for tests) runs
    # on CPU tensors instead and is never chosen automatically (_triton.py).
    "triton": Capability("_triton", "the Triton kernels", ("cuda",), (torch.float32, torch.bfloat16, torch.float16),
                         (3,), 4, 64, automatic=True),
}


def automatic_order(device_type: str) -> tuple[str, ...]:
    """The backends backend="auto" tries for tensors on `device_type`, in order (the reference,
    always possible, comes after them). On CUDA the order comes from the benchmark suite
    (benchmarks/README.md); cuda before triton is provisional until auto picks per dtype from
    measurements on a GPU."""
    return tuple(name for name, row in TABLE.items()
                 if row.automatic and row.devices is not None and device_type in row.devices)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def refusal(capability: Capability, call: Call) -> str | None:
    """Why `call` is outside `capability`, or None if it is inside."""
    kernels = capability.kernels
    if capability.devices is not None and call.device.type not in capability.devices:
        return f"the tensors are on {call.device.type}; {kernels} run on {' and '.join(capability.devices)}"
    if capability.dtypes is not None and call.dtype not in capability.dtypes:
        names = ", ".join(_dtype_name(d) for d in capability.dtypes)
        return f"dtype {_dtype_name(call.dtype)} is not implemented (only {names})"
    if capability.kernel_sizes is not None and call.kernel_size not in capability.kernel_sizes:
        sizes = " and ".join(f"{k}x{k}" for k in capability.kernel_sizes)
        return f"G's kernels are {call.kernel_size}x{call.kernel_size}; {kernels} implement {sizes}"
    if capability.max_channels is not None and call.channels > capability.max_channels:
        return f"the images have {call.channels} channels; {kernels} take at most {capability.max_channels}"
    if capability.max_hidden is not None and call.hidden > capability.max_hidden:
        return f"G has {call.hidden} hidden channels; {kernels} take at most {capability.max_hidden}"
    return None


def describe(capability: Capability) -> str:
    """One line: what `capability` serves (for `taylor-fast info`)."""
    def listed(values, name=str):
        return "any" if values is None else " ".join(name(v) for v in values)

    def at_most(limit):
        return "any" if limit is None else f"<= {limit}"

    sizes = "any odd" if capability.kernel_sizes is None else " ".join(f"{k}x{k}" for k in capability.kernel_sizes)
    return (f"devices {listed(capability.devices)}; dtypes {listed(capability.dtypes, _dtype_name)}; "
            f"G {sizes}; C {at_most(capability.max_channels)}; hidden {at_most(capability.max_hidden)}")
