"""The registry of backends, and the choice of one for a call.

backend="auto" takes the first backend of capabilities.automatic_order for the tensors' device
that is available on this machine and can serve the call, else the reference. The environment
variable TAYLOR_FAST_BACKEND replaces "auto" and then counts as an explicit request. An explicit
request that cannot be served raises; an automatic choice that falls back to the reference says
so once, at debug level, on the "taylor_fast" logger.
"""
from __future__ import annotations

import importlib
import logging
import os

import torch

from .capabilities import TABLE, Capability, automatic_order, refusal
from .contract import Backend, Call, Explanation

NAMES = tuple(TABLE)
ENV_VAR = "TAYLOR_FAST_BACKEND"

log = logging.getLogger("taylor_fast")
_logged: set[str] = set()
_loaded: dict[str, Backend] = {}
_import_errors: dict[str, str] = {}


def _load(name: str) -> Backend | None:
    """The backend object, its module imported on first use (Triton's import is slow and may fail)."""
    if name not in _loaded and name not in _import_errors:
        try:
            module = importlib.import_module(f"{__package__}.{TABLE[name].module}")
        except ImportError as exc:
            _import_errors[name] = f"cannot import the {name} backend: {exc}"
        else:
            _loaded[name] = module.create(name, TABLE[name])
    return _loaded.get(name)


# Dynamo runs this at trace time and keeps the answer as a constant: the probes behind it call
# torch._C and pybind functions that it cannot trace (so a process whose first call of an op is
# inside torch.compile(fullgraph=True) would fail), and the answer cannot change within a process.
# It also loads the backend, so that traced code finds it in _loaded.
@torch.compiler.assume_constant_result
def availability(name: str) -> tuple[bool, str]:
    """(available on this machine, reason) for backend `name`; probed once, then cached."""
    backend = _load(name)
    return backend.availability() if backend is not None else (False, _import_errors[name])


_load("reference")  # backend="auto" falls back to it without asking it, so it must be loaded


def availabilities() -> dict[str, tuple[bool, str]]:
    """{name: (available on this machine, reason)} for every backend."""
    return {name: availability(name) for name in NAMES}


def capability(name: str) -> Capability:
    """What backend `name` can serve on this machine: its row of capabilities.TABLE as the
    backend applies it (the Triton interpreter moves it to CPU tensors)."""
    backend = _load(name)
    return backend.capability if backend is not None else TABLE[name]


def check_name(backend, fn: str) -> str:
    if backend != "auto" and backend not in NAMES:
        raise ValueError(f"{fn}: argument 'backend' must be 'auto' or one of {NAMES}, got {backend!r}")
    return backend


def _requested(backend: str) -> str:
    """`backend`, or the environment's choice where `backend` is "auto"."""
    if backend == "auto":
        env = os.environ.get(ENV_VAR, "").strip()
        if env and env != "auto":
            if env not in NAMES:
                raise ValueError(f"environment variable {ENV_VAR} must be 'auto' or one of {NAMES}, got {env!r}")
            return env
    return backend


def rejection(name: str, call: Call) -> str | None:
    """Why backend `name` cannot serve `call`, or None if it can."""
    available, reason = availability(name)
    if not available:
        return f"not available: {reason}"
    backend = _loaded[name]
    return refusal(backend.capability, call) or backend.cannot_serve(call)


def _choice(requested: str, call: Call) -> tuple[str | None, dict[str, str | None]]:
    """(the backend that serves `call`, or None if the one requested explicitly cannot; the
    reasons asked on the way)."""
    if requested != "auto":
        why = rejection(requested, call)
        return (requested if why is None else None), {requested: why}
    asked = {}
    for name in automatic_order(call.device.type):
        asked[name] = rejection(name, call)
        if asked[name] is None:
            return name, asked
    return "reference", asked


def _debug_once(message: str) -> None:
    if message not in _logged:
        _logged.add(message)
        log.debug(message)


def choose(backend: str, call: Call, fn: str) -> Backend:
    """The backend object that runs `call` (see the module docstring); `fn` names the caller in errors."""
    requested = _requested(backend)
    name, asked = _choice(requested, call)
    if name is None:
        raise RuntimeError(f"{fn}: backend {requested!r} cannot run this call: {asked[requested]}")
    if name == "reference" and requested == "auto" and asked and not torch.compiler.is_compiling():
        reasons = "; ".join(f"{other}: {why}" for other, why in asked.items())
        _debug_once(f"{fn}: falling back to the reference backend ({reasons})")
    return _loaded[name]


def explain_call(backend: str, call: Call) -> Explanation:
    """Which backend `choose` takes for `call`, and for every backend None or why it cannot serve it."""
    name, asked = _choice(_requested(backend), call)
    return Explanation(name, {other: asked[other] if other in asked else rejection(other, call) for other in NAMES})
