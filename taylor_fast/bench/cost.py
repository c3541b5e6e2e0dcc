"""FLOP and byte models: the work a case does, counted the same way for every backend.

FLOPs. One order of G at one pixel is two 3x3 convolutions, 2C->hidden and hidden->C, i.e.
2 * 9 * (2C * hidden + hidden * C) multiply-adds-as-two-FLOPs (5184 for C=3, hidden=32).
Biases, the activation, k*g and the accumulation into O are O(C + hidden) per pixel and are
left out (under 1%). A backward pass is counted as 2x its forward (input gradient plus weight
gradient per convolution), so forward+backward is 3x. These are the *algorithmic* FLOPs of
the reference formulation: a fused kernel that computes the y half of conv1 once, or that
recomputes h in its backward, is still credited with the same count, so GFLOP/s compares
backends as a throughput, not as hardware utilisation.

Training step: 3x (forward + backward) of the expansion plus 3x the backbone's convolution
FLOPs (counted with forward hooks during one no-grad forward of the case's input); Adam and
the L1 loss are O(parameters + pixels) and left out.

Bytes. The compulsory traffic of the fused schedule (docs/kernels.md): per order a pass
reads g, y and acc and writes g_next and acc, five C-channel images; the backward moves
about as much again (saved g^k, y, the incoming gradients in, gradient of g^k out), so
forward+backward is 2x. The reference moves much more (it writes and reads the
hidden-channel h, hidden/C times an image, per order); GB/s against this model says how far a
backend is from being bandwidth-bound. The training step has no byte model: a conv
backbone's traffic depends on the convolution algorithm the library picks.
"""
from __future__ import annotations

import torch
from torch import nn

BACKWARD_FLOP_FACTOR = 2.0
BACKWARD_BYTE_FACTOR = 1.0
IMAGES_PER_ORDER = 5  # g, y, acc read; g_next, acc written


def flops_per_pixel_per_order(channels: int, hidden: int, kernel: int = 3) -> int:
    return 2 * kernel * kernel * (2 * channels * hidden + hidden * channels)


def expansion_flops(shape, order: int, hidden: int) -> float:
    n, c, h, w = shape
    return float(flops_per_pixel_per_order(c, hidden) * order * n * h * w)


def expansion_bytes(shape, order: int, itemsize: int) -> float:
    n, c, h, w = shape
    return float(IMAGES_PER_ORDER * order * n * c * h * w * itemsize)


def conv_flops(module: nn.Module, example: torch.Tensor) -> float:
    """Forward FLOPs of every nn.Conv2d in `module` for the input `example` (one no-grad forward)."""
    total = [0.0]

    def count(conv, _inputs, output):
        kh, kw = conv.kernel_size
        total[0] += 2.0 * output.numel() * (conv.in_channels // conv.groups) * kh * kw

    hooks = [m.register_forward_hook(count) for m in module.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            module(example)
    finally:
        for hook in hooks:
            hook.remove()
    return total[0]


def case_cost(kind: str, shape, order: int, hidden: int, itemsize: int, backbone: nn.Module | None = None,
              example: torch.Tensor | None = None):
    """(flops, bytes or None) of one call of a case; a train_step needs its backbone and an input."""
    fwd_flops = expansion_flops(shape, order, hidden)
    fwd_bytes = expansion_bytes(shape, order, itemsize)
    train_factor = 1.0 + BACKWARD_FLOP_FACTOR
    if kind == "forward":
        return fwd_flops, fwd_bytes
    if kind == "forward_backward":
        return fwd_flops * train_factor, fwd_bytes * (1.0 + BACKWARD_BYTE_FACTOR)
    if kind == "train_step":
        if backbone is None or example is None:
            raise ValueError("case_cost: a train_step needs its backbone and an example input to count its FLOPs")
        return (fwd_flops + conv_flops(backbone, example)) * train_factor, None
    raise ValueError(f"case_cost: unknown kind {kind!r}")


MODEL_DESCRIPTION = {
    "flops_per_pixel_per_order": "2*9*(2C*hidden + hidden*C)",
    "backward_flops": f"{BACKWARD_FLOP_FACTOR:g}x forward (forward+backward = {1 + BACKWARD_FLOP_FACTOR:g}x)",
    "train_step_flops": "3x (expansion + backbone convolutions); Adam and loss not counted",
    "bytes_per_order": f"{IMAGES_PER_ORDER} C-channel images (read g, y, acc; write g_next, acc)",
    "backward_bytes": f"{BACKWARD_BYTE_FACTOR:g}x forward (forward+backward = {1 + BACKWARD_BYTE_FACTOR:g}x)",
    "train_step_bytes": "not modelled",
    "note": "the same algorithmic count for every backend: GFLOP/s and GB/s are effective rates",
}
