"""taylor_fast: fused kernels and tooling for Deep Taylor's Approximations (Zhou et al., NeurIPS 2021).

    net = taylor_fast.wrap(my_restoration_model, order=3)     # or TaylorNet(mapping, ...)
    out, f = net.forward_terms(y)
    loss = taylor_fast.taylor_loss(out, f, target)
    taylor_fast.backends()                                    # what can run here, and why not
    taylor_fast.explain(f, y, *net.derivative.weights(), 3)  # which backend runs a call, why not the others
    net = taylor_fast.load("runs/t/last.ckpt")                # a trained TaylorNet, ready for eval
"""
import importlib

from . import backbones, backends, ops, reference
from .ops import explain
from .taylornet import DerivativeG, TaylorNet, taylor_loss, wrap

__version__ = "0.1.0"
__all__ = ["DerivativeG", "TaylorNet", "backbones", "backends", "explain", "load", "ops", "reference", "taylor_loss",
           "wrap"]

_LAZY = ("data", "metrics", "engine", "info")


def load(path, device="cpu") -> TaylorNet:
    """The TaylorNet a training checkpoint holds (a run's last.ckpt: its config and weights), in
    eval mode on `device`. Loading runs no code from the file."""
    from .engine.model import load as load_checkpoint

    return load_checkpoint(path, device)[0]


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
