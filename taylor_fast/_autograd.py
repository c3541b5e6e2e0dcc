"""Autograd for the fused ops, shared by every backend whose ops follow the taylor_fast schemas
(csrc/bindings.cpp): the C++ ops (cpu, cuda) and the Triton ops.

expand_forward(f, y, w1, b1, w2, b2, order, slope) -> (out, gs) saves only 3-channel tensors
(f, y and gs = g^1..g^n) plus the weights; its backward op recomputes the hidden activation.
"""
from __future__ import annotations

import math

import torch


def _refuse_double_backward(tensors):
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        raise RuntimeError(
            "taylor_fast: the fused backward is not itself differentiable (double backward, "
            "create_graph=True); use backend='reference' for higher-order gradients"
        )


def _zeros_if_none(grad, like):
    return torch.zeros_like(like) if grad is None else grad


def register_expand_autograd(op_name: str, backward_op) -> None:
    def setup_context(ctx, inputs, output):
        f, y, w1, b1, w2, b2, order, slope = inputs
        ctx.save_for_backward(f, y, output[1], w1, b1, w2, b2)
        ctx.order, ctx.slope = order, slope
        ctx.mark_non_differentiable(output[1])

    def backward(ctx, grad_out, _grad_gs):
        f, y, gs, w1, b1, w2, b2 = ctx.saved_tensors
        _refuse_double_backward((grad_out, f, y, w1, b1, w2, b2))
        grad_out = _zeros_if_none(grad_out, f)
        grads = backward_op(grad_out, f, y, gs, w1, b1, w2, b2, ctx.order, ctx.slope)
        return (*grads, None, None)

    torch.library.register_autograd(op_name, backward, setup_context=setup_context)


def register_step_autograd(op_name: str, backward_op) -> None:
    def setup_context(ctx, inputs, output):
        g, y, acc, w1, b1, w2, b2, k, slope = inputs
        ctx.save_for_backward(g, y, w1, b1, w2, b2)
        ctx.k, ctx.slope = k, slope

    def backward(ctx, grad_g_next, grad_acc_next):
        g, y, w1, b1, w2, b2 = ctx.saved_tensors
        _refuse_double_backward((grad_g_next, grad_acc_next, g, y, w1, b1, w2, b2))
        grad_g_next = _zeros_if_none(grad_g_next, g)
        grad_acc_next = _zeros_if_none(grad_acc_next, g)
        # acc_next = acc + g_next / (k+1)!: fold the acc path into the gradient reaching g_next
        total = grad_g_next + grad_acc_next / float(math.factorial(ctx.k + 1))  # float: (k+1)! > int64 for k >= 20
        grad_g, grad_y, gw1, gb1, gw2, gb2 = backward_op(total, g, y, w1, b1, w2, b2, ctx.k, ctx.slope)
        return grad_g, grad_y, grad_acc_next, gw1, gb1, gw2, gb2, None, None

    torch.library.register_autograd(op_name, backward, setup_context=setup_context)


def register_fakes(prefix: str) -> None:
    """Fake (meta) kernels: output shapes and strides as the real kernels allocate them
    (like torch.empty_like of the first image argument; gs contiguous)."""

    @torch.library.register_fake(f"{prefix}expand_forward")
    def _expand_forward(f, y, w1, b1, w2, b2, order, slope):
        return torch.empty_like(f), f.new_empty((order, *f.shape))

    @torch.library.register_fake(f"{prefix}expand_backward")
    def _expand_backward(grad_out, f, y, gs, w1, b1, w2, b2, order, slope):
        return tuple(torch.empty_like(t) for t in (f, y, w1, b1, w2, b2))

    @torch.library.register_fake(f"{prefix}step_forward")
    def _step_forward(g, y, acc, w1, b1, w2, b2, k, slope):
        return torch.empty_like(g), torch.empty_like(acc)

    @torch.library.register_fake(f"{prefix}step_backward")
    def _step_backward(grad_g_next, g, y, w1, b1, w2, b2, k, slope):
        return tuple(torch.empty_like(t) for t in (g, y, w1, b1, w2, b2))
