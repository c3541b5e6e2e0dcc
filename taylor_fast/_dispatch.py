"""Choosing a backend for a call, and saying why the others were not chosen.

backend="auto" takes the first backend in AUTO_PREFERENCE for the tensors' device that is
available on this machine and can serve the call, else the reference. The environment
variable TAYLOR_FAST_BACKEND replaces "auto" and then counts as an explicit request. An
explicit request that cannot be served raises; an automatic choice that falls back to the
reference says so once, at debug level, on the "taylor_fast" logger.
"""
from __future__ import annotations

import logging
import os

import torch

from . import reference
from ._ext_ops import ExtensionBackend

BACKEND_NAMES = ("reference", "cpu", "cuda", "triton")
ENV_VAR = "TAYLOR_FAST_BACKEND"

# Order of preference of backend="auto" per device type. On CUDA the order comes from the
# benchmark suite (benchmarks/README.md); the reference is always the last resort.
# cuda before triton is provisional: issue 6 §4 has auto pick cuda or triton per dtype by
# measurement on a GPU, which has not been done yet. Triton is never chosen automatically on a
# CPU: its CPU path is the interpreter, for tests only.
AUTO_PREFERENCE = {"cpu": ("cpu",), "cuda": ("cuda", "triton")}

log = logging.getLogger("taylor_fast")
_logged: set[str] = set()


class ReferenceBackend:
    name = "reference"

    def availability(self):
        return True, "pure PyTorch (always available; the numerical oracle)"

    def cannot_serve(self, call):
        return None

    def expand(self, call, f, y, w1, b1, w2, b2, order):
        return reference.taylor_expand(f, y, w1, b1, w2, b2, order, call.activation, call.negative_slope)

    def step(self, call, g, y, acc, w1, b1, w2, b2, k):
        return reference.taylor_step(g, y, acc, w1, b1, w2, b2, k, call.activation, call.negative_slope)


class _LazyTriton:
    """Imports taylor_fast.triton (and triton itself) only when first asked."""

    name = "triton"

    def __init__(self):
        self._impl = None
        self._error = None

    def _load(self):
        if self._impl is None and self._error is None:
            try:
                from .triton import TritonBackend

                self._impl = TritonBackend()
            except ImportError as exc:
                self._error = f"cannot import the Triton backend: {exc}"
        return self._impl

    def availability(self):
        impl = self._load()
        return impl.availability() if impl is not None else (False, self._error)

    def cannot_serve(self, call):
        return self._load().cannot_serve(call)

    def expand(self, *args):
        return self._load().expand(*args)

    def step(self, *args):
        return self._load().step(*args)


_BACKENDS = {
    "reference": ReferenceBackend(),
    "cpu": ExtensionBackend("cpu"),
    "cuda": ExtensionBackend("cuda"),
    "triton": _LazyTriton(),
}


# Dynamo runs this at trace time and keeps the answer as a constant: the probes behind it call
# torch._C and pybind functions that it cannot trace (so a process whose first call of an op is
# inside torch.compile(fullgraph=True) would fail), and the answer cannot change within a process.
@torch.compiler.assume_constant_result
def availability(name: str) -> tuple[bool, str]:
    """(available on this machine, reason) for backend `name`; probed once, then cached."""
    return _BACKENDS[name].availability()


def backends() -> dict[str, tuple[bool, str]]:
    """{name: (available on this machine, reason)} for every backend."""
    return {name: availability(name) for name in BACKEND_NAMES}


def check_backend_name(backend, fn: str) -> str:
    if backend != "auto" and backend not in BACKEND_NAMES:
        raise ValueError(f"{fn}: argument 'backend' must be 'auto' or one of {BACKEND_NAMES}, got {backend!r}")
    return backend


def _debug_once(message: str) -> None:
    if message not in _logged:
        _logged.add(message)
        log.debug(message)


def rejection(name: str, call) -> str | None:
    """Why backend `name` cannot serve `call`, or None if it can."""
    available, reason = availability(name)
    if not available:
        return f"not available: {reason}"
    return _BACKENDS[name].cannot_serve(call)


def select(requested: str, call, fn: str):
    """The backend object for `call` (see the module docstring)."""
    if requested == "auto":
        env = os.environ.get(ENV_VAR, "").strip()
        if env and env != "auto":
            if env not in BACKEND_NAMES:
                raise ValueError(f"environment variable {ENV_VAR} must be 'auto' or one of {BACKEND_NAMES}, got {env!r}")
            requested = env
    if requested != "auto":
        why = rejection(requested, call)
        if why is not None:
            raise RuntimeError(f"{fn}: backend {requested!r} cannot run this call: {why}")
        return _BACKENDS[requested]
    reasons = []
    for name in AUTO_PREFERENCE.get(call.device.type, ()):
        why = rejection(name, call)
        if why is None:
            return _BACKENDS[name]
        reasons.append(f"{name}: {why}")
    if reasons and not torch.compiler.is_compiling():
        _debug_once(f"{fn}: falling back to the reference backend ({'; '.join(reasons)})")
    return _BACKENDS["reference"]


def explain(call) -> dict[str, str | None]:
    """{backend: None if it could serve `call`, else why not} (for users and `taylor-fast info`)."""
    return {name: rejection(name, call) for name in BACKEND_NAMES}
