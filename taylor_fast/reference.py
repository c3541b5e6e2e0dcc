"""Pure-PyTorch Deep Taylor's Approximations: the tests' ground truth and every backend's fallback.

Semantics (docs/semantics.md; the paper's equations 17, 19, 20):
    G(g, y)   = conv(act(conv(cat[g, y], w1, b1)), w2, b2)        zero padding, "same" size
    g^0       = f
    g^{k+1}   = G(g^k, y) + k * g^k                                k = 0 .. n-1
    O         = f + sum_{k=1..n} g^k / k!

Weights are shared across orders (w1: (hidden, 2C, kh, kw)) or given per order
(w1: (n, hidden, 2C, kh, kw), the paper's future work); the input channels of w1 are
ordered [g, y]. Arguments are not validated here: the public entry points in
taylor_fast.ops do that.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

ACTIVATIONS = ("relu", "leaky_relu")


def activate(x: torch.Tensor, activation: str = "relu", negative_slope: float = 0.2) -> torch.Tensor:
    # leaky_relu with slope 0 is relu, and answers as relu where torch's leaky_relu does not:
    # -inf -> 0 (not 0 * -inf = NaN) and a gradient that passes a NaN pre-activation (the fused
    # kernels take relu as slope 0: taylor_fast.backends.Call.kernel_slope)
    if activation == "relu" or (activation == "leaky_relu" and negative_slope == 0):
        return F.relu(x)
    if activation == "leaky_relu":
        return F.leaky_relu(x, negative_slope)
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")


def derivative_g(g, y, w1, b1, w2, b2, activation="relu", negative_slope=0.2):
    """G(g, y): two "same" convolutions with the activation between them."""
    h = F.conv2d(torch.cat([g, y], dim=1), w1, b1, padding=w1.shape[-1] // 2)
    return F.conv2d(activate(h, activation, negative_slope), w2, b2, padding=w2.shape[-1] // 2)


def taylor_step(g, y, acc, w1, b1, w2, b2, k, activation="relu", negative_slope=0.2):
    """One order: g_next = G(g, y) + k*g, acc_next = acc + g_next / (k+1)!."""
    g_next = derivative_g(g, y, w1, b1, w2, b2, activation, negative_slope)
    if k:
        g_next = g_next + k * g
    # a float: (k+1)! passes int64 from k = 20 on, and torch cannot take such an int as a scalar
    return g_next, acc + g_next / float(math.factorial(k + 1))


def order_weights(w1, b1, w2, b2, k):
    """The weight set of order k (k = 0 .. n-1): shared weights, or slice k of per-order ones."""
    if w1.dim() == 4:
        return w1, b1, w2, b2
    return w1[k], b1[k], w2[k], b2[k]


def taylor_terms(f, y, w1, b1, w2, b2, order, activation="relu", negative_slope=0.2):
    """(O, [g^1, ..., g^n]): the output and every derivative term."""
    out, g, terms = f, f, []
    for k in range(order):
        g, out = taylor_step(g, y, out, *order_weights(w1, b1, w2, b2, k), k, activation, negative_slope)
        terms.append(g)
    return out, terms


def taylor_expand(f, y, w1, b1, w2, b2, order, activation="relu", negative_slope=0.2):
    """O = f + sum_{k=1..order} g^k / k!  (order 0 returns f itself)."""
    return taylor_terms(f, y, w1, b1, w2, b2, order, activation, negative_slope)[0]
