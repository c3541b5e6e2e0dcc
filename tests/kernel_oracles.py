"""Oracles for the fused kernels' tests: fp64 reference outputs and gradients, and the accuracy
bar for bf16/fp16 (no worse than 2x the error of the same-precision eager reference)."""
from __future__ import annotations

import torch

from taylor_fast import reference


def activation_of(slope: float) -> str:
    return "relu" if slope == 0 else "leaky_relu"


def reference_terms(f, y, weights, order, slope):
    """(out, gs) of the reference in f's dtype."""
    out, terms = reference.taylor_terms(f, y, *weights, order, activation_of(slope), slope)
    gs = torch.stack(terms) if terms else f.new_empty((0, *f.shape))
    return out, gs


def reference_grads(f, y, weights, order, slope, grad_out):
    """Gradients of sum(out * grad_out) w.r.t. (f, y, w1, b1, w2, b2), by autograd through the reference."""
    leaves = [t.detach().clone().requires_grad_() for t in (f, y, *weights)]
    out = reference.taylor_expand(*leaves, order, activation_of(slope), slope)
    grads = torch.autograd.grad(out, leaves, grad_out.to(out.dtype), allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for g, t in zip(grads, leaves)]  # order 0: weights unused


def reference_step(g, y, acc, weights, k, slope):
    return reference.taylor_step(g, y, acc, *weights, k, activation_of(slope), slope)


def reference_step_grads(g, y, weights, k, slope, grad_g_next):
    """Gradients of sum(g_next * grad_g_next) w.r.t. (g, y, w1, b1, w2, b2)."""
    leaves = [t.detach().clone().requires_grad_() for t in (g, y, *weights)]
    g_next, _ = reference.taylor_step(leaves[0], leaves[1], torch.zeros_like(leaves[0]), *leaves[2:], k,
                                      activation_of(slope), slope)
    return torch.autograd.grad(g_next, leaves, grad_g_next.to(g_next.dtype))


def as64(tensors):
    return [t.detach().to(torch.float64) for t in tensors]


def max_error(got, expected) -> float:
    return (got.detach().double() - expected.detach().double()).abs().max().item()


def assert_fp64_close(got, expected, rel=1e-10, names="0 1 2 3 4 5 6"):
    """Each of `got` within rel * max(1, its largest expected value) of `expected` (max norm)."""
    assert len(got) == len(expected)
    for name, a, b in zip(names.split(), got, expected):
        assert a.shape == b.shape, f"{name}: shape {tuple(a.shape)}, expected {tuple(b.shape)}"
        if b.numel() == 0:
            continue
        scale = max(b.abs().max().item(), 1.0)
        err = max_error(a, b)
        assert err <= rel * scale, f"output {name}: max error {err:.3g} vs scale {scale:.3g}"


def assert_within_low_precision_bound(got, eager, exact, what: str, slack: float = 2.0):
    """|got - exact| <= slack * |eager - exact| (max norms), eager being the same-precision reference.

    A tiny absolute floor (a few ulps of the result's scale) keeps an eager error that happens
    to be near zero from demanding more than the format can hold.
    """
    for name, g, e, x in zip(what.split(), got, eager, exact):
        ours, theirs = max_error(g, x), max_error(e, x)
        floor = 4 * torch.finfo(g.dtype).eps * max(x.abs().max().item(), 1e-30)
        assert ours <= slack * theirs + floor, (
            f"{name}: error {ours:.3g} vs fp64, more than {slack}x the eager {g.dtype} reference's {theirs:.3g}")
