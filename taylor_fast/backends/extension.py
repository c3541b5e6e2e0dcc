"""The compiled extension taylor_fast._C: loading it, saying why it is not usable when it is not,
and the facts it reports (how it was built, the CPU code path, the limits it was compiled with).

The package works without _C (every op then runs on the reference backend); `status` records
the reason, which `taylor-fast info` and `taylor_fast.backends()` report.
"""
from __future__ import annotations

import torch  # noqa: F401  (torch's libraries must be loaded before _C)

REBUILD_HINT = "rebuild it with: pip install --no-build-isolation --no-deps -e .  (or: make build)"


def _load():
    try:
        from .. import _C
    except ImportError as exc:
        return None, f"taylor_fast._C could not be imported ({exc}); {REBUILD_HINT}"
    built_for = _C.build_info().get("torch_version", "?")
    if built_for != torch.__version__:
        return None, (
            f"taylor_fast._C was built for torch {built_for} but torch {torch.__version__} is running; "
            f"{REBUILD_HINT}"
        )
    if not hasattr(_C, "limits"):  # its kernels' limits would be unknown to the capability table
        return None, f"taylor_fast._C was built from older sources (it reports no limits); {REBUILD_HINT}"
    return _C, "loaded"


_module, status = _load()
# read once: the capability table is consulted inside torch.compile'd code, which cannot call pybind
_LIMITS = dict(_module.limits()) if _module is not None else {}


def loaded() -> bool:
    return _module is not None


def build_info() -> dict:
    """What the build recorded (torch and compiler versions, whether the CUDA half was built...)."""
    return dict(_module.build_info()) if _module is not None else {}


def limits() -> dict:
    """The sizes the compiled kernels are limited to, e.g. {"cuda_max_channels": 4}; {} without _C."""
    return dict(_LIMITS)


def cpu_isa() -> str | None:
    """The best CPU code path of this machine the kernels were compiled for (baseline, avx2, avx512)."""
    return _module.cpu_isa() if _module is not None else None


def cuda_compiled_archs() -> list[int]:
    """The virtual architectures the CUDA half was compiled for (e.g. [800, 860, 890, 900]); [] if not built."""
    return list(_module.cuda_compiled_archs()) if hasattr(_module, "cuda_compiled_archs") else []


def cuda_probe(device: int) -> dict:
    """Whether CUDA device `device` can run the compiled kernels: {"ok", "binary_version", "ptx_version", "message"}."""
    return dict(_module.cuda_probe(device))


def has_kernel(op: str, dispatch_key: str) -> bool:
    """Whether torch.ops.taylor_fast.<op> has a kernel for dispatch_key ("CPU", "CUDA")."""
    if _module is None:
        return False
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"taylor_fast::{op}", dispatch_key)
