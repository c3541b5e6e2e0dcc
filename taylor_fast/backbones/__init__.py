"""Registry of mapping networks F (BasicSR style): each backbone file registers its
constructor under its name.

    taylor_fast.backbones.names()                -> sorted list of names
    taylor_fast.backbones.create("prenet", **kw) -> nn.Module taking (N, 3, H, W) in [0, 1]
    taylor_fast.backbones.scales("edsr")         -> (2, 3, 4): the factors a super-resolution
                                                    backbone takes as scale=; () for the others

The paper's backbones: ddn; prenet, prn, prenet_r, prn_r; dualgcn; mprnet_derain,
mprnet_deblur; msresnet; rdn. Denoising: dncnn. Super-resolution (the output is `scale` times
larger): edsr, edsr_baseline, rdn_sr. `tiny` is the small default for the demo and the tests.
Every other backbone returns the restored image at the input's size, for any H and W (those that
need a size multiple reflect-pad and crop back). All take `channels` (1 for grey images).

The multi-output networks return their final image from forward(), so they drop into
TaylorNet as they are; their other outputs (for deep supervision) come from forward_all(y):
PReNet family [x_1, ..., x_T] (final last), MPRNet [stage3, stage2, stage1] (final first),
MSResNet [full, 1/2, 1/4] (final first). A third-party model whose forward returns several
outputs is wrapped with an output selector: taylor_fast.wrap(model, output=0) (an index, a
dict key or a callable), or a `taylor_output_index` attribute on the model.
"""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

from torch import nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_SCALES: dict[str, tuple[int, ...]] = {}

# one module per family; importing one registers its names
_MODULES = ("ddn", "dncnn", "dualgcn", "edsr", "mprnet", "msresnet", "prenet", "rdn", "tiny")


def register(name: str, scales: tuple[int, ...] = ()):
    """Class/function decorator: make `create(name, **overrides)` call it. `scales`: the
    super-resolution factors it takes as its `scale` argument (none: it keeps the input's size)."""

    def decorate(factory):
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} is registered twice")
        _REGISTRY[name] = factory
        _SCALES[name] = tuple(scales)
        return factory

    return decorate


def _load_all():
    for module in _MODULES:
        importlib.import_module(f"{__name__}.{module}")


def names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def _known(name: str) -> None:
    _load_all()
    if name not in _REGISTRY:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(sorted(_REGISTRY))}")


def scales(name: str) -> tuple[int, ...]:
    """The upscaling factors of a super-resolution backbone; () for one that keeps the size."""
    _known(name)
    return _SCALES[name]


def arguments(name: str) -> list[str]:
    """The keyword arguments `create(name, ...)` accepts."""
    _known(name)
    return list(inspect.signature(_REGISTRY[name]).parameters)


def create(name: str, **overrides) -> nn.Module:
    _known(name)
    return _REGISTRY[name](**overrides)
