"""Building a TaylorNet from the `model` section of a config, and loading a trained one."""
from __future__ import annotations

import os
import warnings

import torch

from .. import backbones, backends
from ..taylornet import DerivativeG, TaylorNet, select_output
from . import checkpoint
from .config import ConfigError, complete


def _backbone_options(model: dict) -> dict:
    """backbone_options plus what model.channels and model.scale ask of the backbone."""
    name, scale, channels = model["backbone"], model["scale"], model["channels"]
    scales = backbones.scales(name)
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


# the image size of check()'s dry run: large enough for every backbone's downsampling
_DRY_RUN_SIDE = 64


def build(model: dict) -> TaylorNet:
    """A freshly initialised TaylorNet for a resolved config's `model` section."""
    known = backbones.names()
    if model["backbone"] not in known:
        raise ConfigError(f"model.backbone: unknown backbone {model['backbone']!r}; known: {', '.join(known)}")
    options = _backbone_options(model)
    try:
        mapping = backbones.create(model["backbone"], **options)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"model.backbone_options for {model['backbone']}: {exc}") from None
    try:
        return TaylorNet(mapping, order=model["order"], channels=model["channels"], hidden=model["hidden"],
                         activation=model["activation"], negative_slope=model["negative_slope"],
                         shared=model["shared"], backend=model["backend"], scale=model["scale"])
    except ValueError as exc:
        raise ConfigError(f"model: {exc}") from None


def check(model: dict) -> None:
    """Build the model on the meta device (no memory, no arithmetic, no random numbers drawn) and
    run its mapping network once on a 1xCx64x64 image (C = model.channels), so that settings the
    constructors accept but the network cannot run (a zero width, a size no layer can take) are
    refused before any training starts, naming the setting."""
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")  # e.g. "Initializing zero-element tensors is a no-op"
        net = build(model)
        image = torch.empty(1, model["channels"], _DRY_RUN_SIDE, _DRY_RUN_SIDE)
        try:
            f = select_output(net.mapping(image), net.output, net.mapping)
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise ConfigError(f"model.backbone_options {model['backbone_options'] or '{}'}: {model['backbone']} cannot "
                              f"run with them: {' '.join(str(exc).split())}") from None
    scale = model["scale"]
    expected = (1, model["channels"], _DRY_RUN_SIDE * scale, _DRY_RUN_SIDE * scale)
    if tuple(f.shape) != expected:
        needs = "the input's shape" if scale == 1 else f"the input's channels at {scale} times its size (model.scale)"
        raise ConfigError(f"model.backbone_options {model['backbone_options'] or '{}'}: {model['backbone']} returns "
                          f"{tuple(f.shape)} for a {tuple(image.shape)} image; TaylorNet needs {needs}")


def check_backend(net: TaylorNet, device, fix: str) -> None:
    """ConfigError when the Taylor op's backend (the model's, or TAYLOR_FAST_BACKEND when that is
    'auto') cannot run on `device` here: said before any work, not at the first step. `fix` ends
    the message (what the user can do about it)."""
    G = net.derivative
    if not net.fused or net.order == 0:  # custom G runs in PyTorch; order 0 never calls the op
        return
    call = backends.Call(torch.device(device), torch.float32, G.channels, G.hidden, G.w1.shape[-1], not G.shared,
                G.activation, G.negative_slope)
    try:
        backends.choose(net.backend, call, "model.backend")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    except RuntimeError as exc:
        if net.backend == "auto" and os.environ.get(backends.ENV_VAR, "").strip() not in ("", "auto"):
            fix = f"the environment variable {backends.ENV_VAR} chose it: unset it or name a backend available here"
        raise ConfigError(f"{exc}; {fix}") from None


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


def _misfits(net: TaylorNet, weights: dict) -> list[str]:
    """What in `weights` does not fit `net`: tensors missing, unexpected or of another shape."""
    expected = net.state_dict()
    problems = [f"{name} is {tuple(weights[name].shape)} where the config gives {tuple(tensor.shape)}"
                for name, tensor in expected.items() if name in weights and weights[name].shape != tensor.shape]
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing:
        problems.append(f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        problems.append(f"unexpected {', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}")
    return problems


def load(path, device="cpu") -> tuple[TaylorNet, dict, dict]:
    """(model in eval mode on `device`, its resolved config, the checkpoint's progress record)."""
    state = checkpoint.load(path)
    try:
        config, weights = complete(state["config"]), state["model"]
        described = config["model"]
    except (KeyError, TypeError, AttributeError):
        raise checkpoint.CheckpointError(f"checkpoint {path} holds no model and config") from None
    net = build(described)
    problems = _misfits(net, weights)
    if problems:
        raise checkpoint.CheckpointError(
            f"checkpoint {path}: its weights do not fit the model its config describes ({described['backbone']}, "
            f"hidden {described['hidden']}, {'shared' if described['shared'] else 'per-order'} G, order "
            f"{described['order']}): {'; '.join(problems[:3])}{' ...' if len(problems) > 3 else ''}")
    net.load_state_dict(weights)
    return net.to(device).eval(), config, state.get("progress", {})
