"""Argument checks for the public ops: every error names the argument, what was expected and
what was given, and fires before any kernel runs. A valid call is described by a
taylor_fast.backends.Call, which the backends are asked about."""
from __future__ import annotations

import math
import numbers

import torch

from .backends import MAX_ORDER, Call
from .reference import ACTIVATIONS

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _shape(t):
    return tuple(t.shape)


def _tensor(name, value, fn):
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{fn}: argument '{name}' must be a torch.Tensor, got {type(value).__name__}")
    if value.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{fn}: argument '{name}' must be a floating-point tensor "
            f"(float16, bfloat16, float32 or float64), got dtype {value.dtype}"
        )
    return value


def _image(name, value, fn):
    _tensor(name, value, fn)
    if value.dim() != 4:
        raise ValueError(f"{fn}: argument '{name}' must be 4-D (N, C, H, W), got shape {_shape(value)}")
    n, c, h, w = value.shape
    if c < 1 or h < 1 or w < 1:
        raise ValueError(f"{fn}: argument '{name}' needs C, H and W >= 1, got shape {_shape(value)}")
    return value


def _same(name, value, ref_name, ref, fn, what="shape"):
    if what == "shape" and value.shape != ref.shape:
        raise ValueError(
            f"{fn}: argument '{name}' must have the shape of '{ref_name}' {_shape(ref)}, got {_shape(value)}"
        )
    if value.dtype != ref.dtype:
        raise TypeError(f"{fn}: argument '{name}' has dtype {value.dtype} but '{ref_name}' has {ref.dtype}")
    if value.device != ref.device:
        raise ValueError(f"{fn}: argument '{name}' is on {value.device} but '{ref_name}' is on {ref.device}")


def _int_arg(name, value, fn, low, high):
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, torch.SymInt)):
        raise TypeError(f"{fn}: argument '{name}' must be an int, got {type(value).__name__} {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{fn}: argument '{name}' must be in [{low}, {high}], got {value}")
    return int(value)


def _activation(activation, negative_slope, fn):
    if activation not in ACTIVATIONS:
        raise ValueError(f"{fn}: argument 'activation' must be one of {ACTIVATIONS}, got {activation!r}")
    if isinstance(negative_slope, bool) or not isinstance(negative_slope, numbers.Real) or not math.isfinite(
        negative_slope
    ):
        raise ValueError(f"{fn}: argument 'negative_slope' must be a finite number, got {negative_slope!r}")


def _weights(w1, b1, w2, b2, x, sets, fn):
    """Check G's weights against the images x (N, C, H, W). sets=None: one shared set (4-D w1);
    sets=n: n per-order sets (5-D w1 with leading dim n). Returns (hidden, kernel_size)."""
    for name, value in (("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2)):
        _tensor(name, value, fn)
        _same(name, value, "y", x, fn, what="dtype/device")
    lead = () if sets is None else (sets,)
    if w1.dim() != 4 + len(lead):
        form = "(hidden, 2C, k, k)" if sets is None else f"({sets}, hidden, 2C, k, k) (one set per order)"
        raise ValueError(f"{fn}: argument 'w1' must have shape {form}, got {_shape(w1)}")
    c = x.shape[1]
    hidden, in1, kh, kw = w1.shape[len(lead):]
    if hidden < 1:  # G without hidden channels is no network, and torch's convolution refuses it
        raise ValueError(f"{fn}: argument 'w1' needs hidden >= 1 output channels, got shape {_shape(w1)}")
    if in1 != 2 * c or kh != kw or kh % 2 == 0:
        raise ValueError(
            f"{fn}: argument 'w1' must have shape {lead + (hidden, 2 * c, 'k', 'k')} with k odd "
            f"(input channels ordered [g, y], C = {c}), got {_shape(w1)}"
        )
    expected = {"b1": lead + (hidden,), "w2": lead + (c, hidden, kh, kh), "b2": lead + (c,)}
    for name, value in (("b1", b1), ("w2", w2), ("b2", b2)):
        if _shape(value) != expected[name]:
            raise ValueError(f"{fn}: argument '{name}' must have shape {expected[name]}, got {_shape(value)}")
    return hidden, kh


def check_expand(f, y, w1, b1, w2, b2, order, activation, negative_slope, fn="taylor_expand") -> Call:
    _image("f", f, fn)
    _image("y", y, fn)
    _same("y", y, "f", f, fn)
    order = _int_arg("order", order, fn, 0, MAX_ORDER)
    _activation(activation, negative_slope, fn)
    _tensor("w1", w1, fn)
    per_order = w1.dim() == 5
    if per_order and w1.shape[0] != order:
        raise ValueError(
            f"{fn}: per-order weights need one set per order: 'w1' has {w1.shape[0]} sets "
            f"(shape {_shape(w1)}) but order is {order}"
        )
    hidden, kernel = _weights(w1, b1, w2, b2, y, order if per_order else None, fn)
    return Call(f.device, f.dtype, f.shape[1], hidden, kernel, per_order, activation, negative_slope)


def check_step(g, y, acc, w1, b1, w2, b2, k, activation, negative_slope, fn="taylor_step") -> Call:
    _image("g", g, fn)
    _image("y", y, fn)
    _image("acc", acc, fn)
    _same("y", y, "g", g, fn)
    _same("acc", acc, "g", g, fn)
    _int_arg("k", k, fn, 0, MAX_ORDER - 1)
    _activation(activation, negative_slope, fn)
    hidden, kernel = _weights(w1, b1, w2, b2, y, None, fn)
    return Call(g.device, g.dtype, g.shape[1], hidden, kernel, False, activation, negative_slope)
