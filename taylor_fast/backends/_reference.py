"""Backend "reference": the pure-PyTorch expansion of taylor_fast.reference, the numerical oracle
the fused backends are tested against and the last resort of backend="auto"."""
from __future__ import annotations

from .. import reference
from .capabilities import Capability


class ReferenceBackend:
    def __init__(self, name: str, capability: Capability):
        self.name, self.capability = name, capability

    def availability(self):
        return True, "pure PyTorch (always available; the numerical oracle)"

    def cannot_serve(self, call):
        return None

    def expand(self, call, f, y, w1, b1, w2, b2, order):
        return reference.taylor_expand(f, y, w1, b1, w2, b2, order, call.activation, call.negative_slope)

    def step(self, call, g, y, acc, w1, b1, w2, b2, k):
        return reference.taylor_step(g, y, acc, w1, b1, w2, b2, k, call.activation, call.negative_slope)


create = ReferenceBackend
