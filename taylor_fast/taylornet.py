"""TaylorNet: a restoration network F plus the derivative network G, unrolled n orders. Uses the
fused op whenever G is the standard two-conv DerivativeG.

Super-resolution (scale s > 1): F maps the low-resolution y to the high-resolution f, and G works
at high resolution on cat[g, up(y)], up = MATLAB-style bicubic upsampling by s (docs/tasks.md)."""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import ops, reference
from .backends import MAX_ORDER, check_name
from .resize import bicubic_upsample


class DerivativeG(nn.Module):
    """G(g, y) = conv(act(conv(cat[g, y], w1, b1)), w2, b2), 3x3 "same" convolutions.

    orders=None shares one weight set across orders (the paper); orders=n keeps n sets
    (w1: (n, hidden, 2C, 3, 3), ...), one per order (the paper's future work).
    """

    def __init__(self, channels=3, hidden=32, activation="relu", negative_slope=0.2, orders=None,
                 kernel_size=3):
        super().__init__()
        if activation not in reference.ACTIVATIONS:
            raise ValueError(f"activation must be one of {reference.ACTIVATIONS}, got {activation!r}")
        for name, value in (("channels", channels), ("hidden", hidden), ("kernel_size", kernel_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        if orders is not None and (isinstance(orders, bool) or not isinstance(orders, int) or orders < 0):
            raise ValueError(f"orders must be None (shared weights) or an int >= 0, got {orders!r}")
        self.channels, self.hidden = channels, hidden
        self.activation, self.negative_slope = activation, float(negative_slope)
        self.orders = orders
        lead = () if orders is None else (orders,)
        k = kernel_size
        self.w1 = nn.Parameter(torch.empty(*lead, hidden, 2 * channels, k, k))
        self.b1 = nn.Parameter(torch.empty(*lead, hidden))
        self.w2 = nn.Parameter(torch.empty(*lead, channels, hidden, k, k))
        self.b2 = nn.Parameter(torch.empty(*lead, channels))
        self.reset_parameters()

    @property
    def shared(self) -> bool:
        return self.orders is None

    def reset_parameters(self):
        """nn.Conv2d's default initialisation, per weight set."""
        for w, b in ((self.w1, self.b1), (self.w2, self.b2)):
            sets = w.reshape(-1, *w.shape[-4:]) if w.numel() else w.new_empty(0, *w.shape[-4:])
            bias = b.reshape(-1, b.shape[-1]) if b.numel() else b.new_empty(0, b.shape[-1])
            fan_in = w.shape[-3] * w.shape[-2] * w.shape[-1]
            with torch.no_grad():
                for ws, bs in zip(sets, bias):
                    nn.init.kaiming_uniform_(ws, a=math.sqrt(5))
                    nn.init.uniform_(bs, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))

    def weights(self, k: int | None = None):
        """(w1, b1, w2, b2): all sets, or the set that order k (0-based) uses."""
        all_sets = (self.w1, self.b1, self.w2, self.b2)
        return all_sets if k is None else reference.order_weights(*all_sets, k)

    def forward(self, g, y, k: int = 0):
        return reference.derivative_g(g, y, *self.weights(k), self.activation, self.negative_slope)

    def extra_repr(self):
        sets = "shared" if self.shared else f"{self.orders} per-order sets"
        return (f"channels={self.channels}, hidden={self.hidden}, kernel={self.w1.shape[-1]}, "
                f"activation={self.activation}, {sets}")


OutputSelector = int | str | Callable[[object], torch.Tensor] | None


def select_output(output, selector: OutputSelector = None, owner: nn.Module | None = None) -> torch.Tensor:
    """The image F contributes to the expansion, from whatever F returned.

    selector None: a tensor is used as is; for a list/tuple the model's `taylor_output_index`
    attribute is used if it has one. An int indexes a list/tuple, a str keys a dict, a
    callable receives the raw output.
    """
    if callable(selector):
        output = selector(output)
    elif selector is not None:
        output = output[selector]
    elif not isinstance(output, torch.Tensor):
        index = getattr(owner, "taylor_output_index", None)
        if index is None or not isinstance(output, (Sequence, Mapping)):
            raise TypeError(
                f"the mapping network returned {type(output).__name__}, not a tensor; pass "
                "output=<index, key or callable> to TaylorNet/wrap to say which element is the restored image"
            )
        output = output[index]
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"the selected mapping output is {type(output).__name__}, expected a tensor")
    return output


class TaylorNet(nn.Module):
    """O = F(y) + sum_{k=1..order} g^k / k!  with g^0 = F(y), g^{k+1} = G(g^k, u) + k g^k,
    u = guide(y): y itself, or its bicubic upsampling by `scale` when F is a super-resolution
    network (F(y) is then `scale` times larger than y).

    mapping: any image-to-image nn.Module (F). derivative: a custom G module taking (g, u, k)
    replaces the standard DerivativeG (then the reference loop runs, not the fused op).
    output: which element of a multi-output F is the restored image (see select_output).
    """

    def __init__(self, mapping: nn.Module, order=3, channels=3, hidden=32, activation="relu",
                 negative_slope=0.2, shared=True, backend="auto", output: OutputSelector = None,
                 derivative: nn.Module | None = None, scale: int = 1):
        super().__init__()
        if not isinstance(mapping, nn.Module):
            raise TypeError(f"mapping must be an nn.Module, got {type(mapping).__name__}")
        if isinstance(order, bool) or not isinstance(order, int) or not 0 <= order <= MAX_ORDER:
            raise ValueError(f"order must be an int in [0, {MAX_ORDER}], got {order!r}")
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ValueError(f"scale must be a positive int (1: same size, s: F upscales s times), got {scale!r}")
        self.mapping = mapping
        self.order = order
        self.scale = scale
        self.backend = check_name(backend, "TaylorNet")
        self.output = output
        self.derivative = derivative if derivative is not None else DerivativeG(
            channels, hidden, activation, negative_slope, orders=None if shared else order)
        if isinstance(self.derivative, DerivativeG) and not self.derivative.shared and self.derivative.orders != order:
            raise ValueError(f"per-order G has {self.derivative.orders} weight sets but order is {order}")

    @property
    def fused(self) -> bool:
        """Whether forward uses the fused op (G is the standard two-conv DerivativeG)."""
        return type(self.derivative) is DerivativeG

    def expand(self, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.fused:
            G = self.derivative
            return ops.taylor_expand(f, y, *G.weights(), self.order, G.activation, G.negative_slope,
                                     backend=self.backend)
        out, g = f, f
        for k in range(self.order):
            g = self.derivative(g, y, k) + k * g
            out = out + g / float(math.factorial(k + 1))  # (k+1)! overflows int64 from k = 20
        return out

    @property
    def channels(self) -> int | None:
        """Image channels of the standard G (None for a custom derivative module)."""
        return self.derivative.channels if isinstance(self.derivative, DerivativeG) else None

    def guide(self, y: torch.Tensor) -> torch.Tensor:
        """The image G reads next to g: y, or its bicubic upsampling to F's output size."""
        return y if self.scale == 1 else bicubic_upsample(y, self.scale)

    def check_sizes(self, f: torch.Tensor, u: torch.Tensor, y: torch.Tensor) -> None:
        if f.shape != u.shape:
            raise ValueError(f"the mapping network returned shape {tuple(f.shape)} for an input of shape "
                             f"{tuple(y.shape)}; TaylorNet(scale={self.scale}) needs {tuple(u.shape)}"
                             + (" (a super-resolution mapping needs scale=its factor)" if self.scale == 1 else ""))

    def forward_terms(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(O, f): the expansion and the mapping network's own output (for taylor_loss)."""
        f = select_output(self.mapping(y), self.output, self.mapping)
        u = self.guide(y)
        self.check_sizes(f, u, y)
        return self.expand(f, u), f

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.forward_terms(y)[0]

    def extra_repr(self):
        scale = f", scale={self.scale}" if self.scale != 1 else ""
        return f"order={self.order}, backend={self.backend!r}, fused={self.fused}{scale}"


def taylor_loss(output, mapping_output, target, lam=1.0):
    """Paper eq. 21: L1(O, x) + lam * L1(f, x), both mean absolute errors."""
    loss = F.l1_loss(output, target)
    return loss + lam * F.l1_loss(mapping_output, target) if lam else loss


def wrap(model: nn.Module, order=3, **options) -> TaylorNet:
    """Turn any image-to-image model into a TaylorNet (options as TaylorNet's, e.g. output=0)."""
    return TaylorNet(model, order=order, **options)
