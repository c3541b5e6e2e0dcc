"""Registry of mapping networks F (BasicSR style): each backbone file registers its
constructor under the names of DESIGN §2.

    taylor_fast.backbones.names()                -> sorted list of names
    taylor_fast.backbones.create("prenet", **kw) -> nn.Module taking (N, 3, H, W) in [0, 1]

The paper's backbones (shared/BACKBONES.md): ddn; prenet, prn, prenet_r, prn_r; dualgcn;
mprnet_derain, mprnet_deblur; msresnet; rdn. `tiny` is the small default for the demo and
the tests. Every backbone returns the restored image at the input's size, for any H and W
(those that need a size multiple reflect-pad and crop back).

The multi-output networks return their final image from forward(), so they drop into
TaylorNet as they are; their other outputs (for deep supervision) come from forward_all(y):
PReNet family [x_1, ..., x_T] (final last), MPRNet [stage3, stage2, stage1] (final first),
MSResNet [full, 1/2, 1/4] (final first). A third-party model whose forward returns several
outputs is wrapped with an output selector: taylor_fast.wrap(model, output=0) (an index, a
dict key or a callable), or a `taylor_output_index` attribute on the model.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable

from torch import nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}

# one module per family; importing one registers its names
_MODULES = ("ddn", "dualgcn", "mprnet", "msresnet", "prenet", "rdn", "tiny")


def register(name: str):
    """Class/function decorator: make `create(name, **overrides)` call it."""

    def decorate(factory):
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} is registered twice")
        _REGISTRY[name] = factory
        return factory

    return decorate


def _load_all():
    for module in _MODULES:
        importlib.import_module(f"{__name__}.{module}")


def names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def create(name: str, **overrides) -> nn.Module:
    _load_all()
    if name not in _REGISTRY:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**overrides)
