"""Loading the native extension taylor_fast._C, and saying why it is not usable when it is not.

The package works without _C (every op then runs on the reference backend); this module
records the reason, which `taylor-fast info` and `taylor_fast.backends()` report.
"""
from __future__ import annotations

import torch  # noqa: F401  (torch's libraries must be loaded before _C)

REBUILD_HINT = "rebuild it with: pip install --no-build-isolation --no-deps -e .  (or: make build)"


def _load():
    try:
        from . import _C
    except ImportError as exc:
        return None, f"taylor_fast._C could not be imported ({exc}); {REBUILD_HINT}"
    built_for = _C.build_info().get("torch_version", "?")
    if built_for != torch.__version__:
        return None, (
            f"taylor_fast._C was built for torch {built_for} but torch {torch.__version__} is running; "
            f"{REBUILD_HINT}"
        )
    return _C, "loaded"


module, status = _load()


def loaded() -> bool:
    return module is not None


def build_info() -> dict:
    return dict(module.build_info()) if module is not None else {}


def has_kernel(op: str, dispatch_key: str) -> bool:
    """Whether torch.ops.taylor_fast.<op> has a kernel for dispatch_key ("CPU", "CUDA")."""
    if module is None:
        return False
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"taylor_fast::{op}", dispatch_key)
