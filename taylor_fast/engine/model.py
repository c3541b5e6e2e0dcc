"""Building a TaylorNet from the `model` section of a config, and loading a trained one."""
from __future__ import annotations

import torch

from .. import backbones
from ..taylornet import DerivativeG, TaylorNet
from . import checkpoint
from .config import ConfigError, complete


def _backbone_options(model: dict) -> dict:
    """backbone_options plus what model.channels and model.scale ask of the backbone."""
    name, scale, channels = model["backbone"], model["scale"], model["channels"]
    try:
        scales = backbones.scales(name)
    except ValueError as exc:
        raise ConfigError(f"model.backbone: {exc}") from None
    options = dict(model["backbone_options"])
    if scales:
        if scale not in scales:
            raise ConfigError(f"model.scale: {name} upscales by {', '.join(map(str, scales))}, got {scale}")
        options["scale"] = scale
    elif scale != 1:
        upscaling = [n for n in backbones.names() if backbones.scales(n)]
        raise ConfigError(f"model.scale: {name} keeps the input's size, so it cannot upscale by {scale}; "
                          f"super-resolution backbones: {', '.join(upscaling)}")
    if channels != 3:
        if "channels" not in backbones.arguments(name):
            raise ConfigError(f"model.channels: {name} takes colour images only, got {channels}")
        options["channels"] = channels
    return options


def build(model: dict) -> TaylorNet:
    """A freshly initialised TaylorNet for a resolved config's `model` section."""
    options = _backbone_options(model)
    try:
        mapping = backbones.create(model["backbone"], **options)
    except ValueError as exc:
        raise ConfigError(f"model.backbone: {exc}") from None
    except TypeError as exc:
        raise ConfigError(f"model.backbone_options for {model['backbone']}: {exc}") from None
    return TaylorNet(mapping, order=model["order"], channels=model["channels"], hidden=model["hidden"],
                     activation=model["activation"], negative_slope=model["negative_slope"], shared=model["shared"],
                     backend=model["backend"], scale=model["scale"])


def at_order(net: TaylorNet, order: int) -> TaylorNet:
    """The same trained F and G unrolled to `order` terms (sharing their parameters).

    Shared G: the one G is applied `order` times, whatever order it was trained at. Per-order G
    (n sets): order m <= n uses the first m sets; higher orders have no trained G and are refused.
    """
    G = net.derivative
    if not isinstance(G, DerivativeG):
        raise ValueError("at_order: the model has a custom derivative network; only DerivativeG can be re-unrolled")
    if G.shared:
        derivative = G
    else:
        if order > G.orders:
            raise ValueError(f"the model has per-order G weights for orders 1..{G.orders}; order {order} has no "
                             "trained weights (only a shared G can be unrolled beyond its training order)")
        derivative = DerivativeG(G.channels, G.hidden, G.activation, G.negative_slope, orders=order,
                                 kernel_size=G.w1.shape[-1]).to(G.w1.device, G.w1.dtype)
        with torch.no_grad():
            for name in ("w1", "b1", "w2", "b2"):
                getattr(derivative, name).copy_(getattr(G, name)[:order])
    return TaylorNet(net.mapping, order=order, channels=G.channels, hidden=G.hidden, backend=net.backend,
                     output=net.output, derivative=derivative, scale=net.scale)


def load(path, device="cpu") -> tuple[TaylorNet, dict, dict]:
    """(model in eval mode on `device`, its resolved config, the checkpoint's progress record)."""
    state = checkpoint.load(path)
    try:
        config, weights = complete(state["config"]), state["model"]
    except (KeyError, TypeError, AttributeError):
        raise checkpoint.CheckpointError(f"checkpoint {path} holds no model and config") from None
    net = build(config["model"])
    missing, unexpected = net.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise checkpoint.CheckpointError(
            f"checkpoint {path} does not fit the model its config describes ({config['model']['backbone']}): "
            f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
    return net.to(device).eval(), config, state.get("progress", {})
