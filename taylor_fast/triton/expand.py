"""The whole expansion in Triton: out = f + sum_{k=1..n} g^k / k!, gs = (g^1..g^n), and its backward.

Every order needs all of g^k (a 3x3 neighbourhood of it, twice over), so each order is one launch
of the step kernels (step.py); only 3-channel tensors cross launches.

Backward, the adjoint recursion over a_k = dL/dg^k (g^0 = f):
    a_n = dO / n!,   a_k = dO / k! + J_k^T a_{k+1} + k a_{k+1}   (k = n-1 .. 0),   grad_f = a_0
where J_k is dG/dg at (g^k, y) with order k's weights. The step backward kernel computes
J_k^T a + k a + dO/k! in one pass and accumulates grad_y; a_k and grad_y are carried in fp32
whatever the input dtype, so low-precision inputs do not round them once per order.
"""
import torch
from torch import Tensor

from .. import _autograd
from ..reference import order_weights
from ._tiling import inverse_factorial
from ._registration import PREFIX, define, like
from .step import launch_backward, launch_forward


@define("expand_forward")
def expand_forward(f: Tensor, y: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, order: int,
                   negative_slope: float) -> tuple[Tensor, Tensor]:
    f_c, y_c = f.contiguous(), y.contiguous()
    gs = f_c.new_empty((order, *f_c.shape))
    # acc ping-pongs between two buffers: a kernel must not update its own input in place (the
    # autotuner benchmarks by running it repeatedly)
    accs = (torch.empty_like(f_c), torch.empty_like(f_c))
    g, acc = f_c, f_c
    for k in range(order):
        out = accs[k % 2]
        launch_forward(g, y_c, acc, order_weights(w1, b1, w2, b2, k), gs[k], out, k, negative_slope)
        g, acc = gs[k], out
    return like(f_c.clone() if order == 0 else acc, f), gs


@define("expand_backward")
def expand_backward(grad_out: Tensor, f: Tensor, y: Tensor, gs: Tensor, w1: Tensor, b1: Tensor, w2: Tensor,
                    b2: Tensor, order: int, negative_slope: float
                    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    weights = (w1, b1, w2, b2)
    if order == 0:  # out = f
        return (like(grad_out.clone(), f), torch.zeros_like(y), *(torch.zeros_like(w) for w in weights))
    d_out, f_c, y_c, gs = (t.contiguous() for t in (grad_out, f, y, gs))
    a = d_out.float() * inverse_factorial(order)
    dy = None
    a_bufs = (torch.empty_like(a), torch.empty_like(a))  # ping-pong, as in the forward
    dy_bufs = (torch.empty_like(a), torch.empty_like(a))
    sums_by_order = [None] * order
    for step, k in enumerate(reversed(range(order))):
        sums_by_order[k] = launch_backward(
            a, f_c if k == 0 else gs[k - 1], y_c, order_weights(*weights, k), k, negative_slope,
            grad_g=a_bufs[step % 2], grad_y=dy_bufs[step % 2],
            extra=d_out, extra_coef=inverse_factorial(k), dy_in=dy,
        )
        a, dy = a_bufs[step % 2], dy_bufs[step % 2]
    if w1.dim() == 5:
        weight_grads = [torch.stack([sums[i] for sums in sums_by_order]) for i in range(4)]
    else:  # shared weights: the orders' sums added in a fixed order, so deterministic
        weight_grads = [sum(sums[i] for sums in sums_by_order) for i in range(4)]
    return (
        like(a.to(f.dtype), f),
        like(dy.to(y.dtype), y),
        *(like(g.to(w.dtype), w) for g, w in zip(weight_grads, weights)),
    )


_autograd.register_expand_autograd(f"{PREFIX}expand_forward", torch.ops.taylor_fast.triton_expand_backward)
