"""Registry of mapping networks F (BasicSR style): each backbone file registers its
constructor under the names of DESIGN §2.

    taylor_fast.backbones.names()                -> sorted list of names
    taylor_fast.backbones.create("prenet", **kw) -> nn.Module taking (N, 3, H, W) in [0, 1]
"""
from __future__ import annotations

import importlib
from collections.abc import Callable

from torch import nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}

# one module per family; importing one registers its names
_MODULES = ("tiny",)


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
