"""The types of the backend contract (stated in full in taylor_fast/backends/__init__.py): the
Call a backend is asked about, the Backend protocol every backend module implements, and the
Explanation of a choice that taylor_fast.explain returns."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

import torch

from .capabilities import Capability


@dataclass(frozen=True)
class Call:
    """What a backend needs to know to decide whether it can serve a call (the ops build it from
    validated arguments)."""

    device: torch.device
    dtype: torch.dtype
    channels: int
    hidden: int
    kernel_size: int
    per_order: bool
    activation: str
    negative_slope: float  # as given; relu ignores it

    @property
    def kernel_slope(self) -> float:
        """The slope the fused kernels use: relu is leaky_relu with slope 0."""
        return 0.0 if self.activation == "relu" else float(self.negative_slope)


class Backend(Protocol):
    name: str
    capability: Capability  # its row of capabilities.TABLE, as it applies on this machine

    def availability(self) -> tuple[bool, str]:
        """(runs on this machine, a one-line reason); probed once, never raises."""

    def cannot_serve(self, call: Call) -> str | None:
        """Why this available backend cannot serve `call` beyond what its capability row already
        refuses (asked only for calls inside the row), or None."""

    def expand(self, call: Call, f, y, w1, b1, w2, b2, order: int) -> torch.Tensor:
        """O = f + sum_{k=1..order} g^k / k!, order >= 1, differentiable in all six tensors."""

    def step(self, call: Call, g, y, acc, w1, b1, w2, b2, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(g_next, acc_next) of one order with one shared weight set, differentiable in all seven tensors."""


class Explanation(NamedTuple):
    """Which backend runs a call, and why the others would not.

    backend: the name of the backend that runs it; None when none does: at order 0 (taylor_expand
    returns f itself) or when the backend asked for (argument or TAYLOR_FAST_BACKEND) cannot serve
    the call (the op raises; `reasons` says why).
    reasons: for every backend, None if it could serve the call, else why not.
    """

    backend: str | None
    reasons: dict[str, str | None]
