"""PReNet and its variants: Ren et al., "Progressive image deraining networks: a better and
simpler baseline", CVPR 2019.

T stages with weights shared across stages; each stage sees cat([y, x_{t-1}]) and predicts
x_t = y + residual. Variants: PRN drops the ConvLSTM; the "_r" variants apply one residual
block `blocks` times instead of `blocks` distinct ones (recursive, by design of the paper).

forward(y) returns x_T; forward_all(y) returns [x_1, ..., x_T] (the final image last), the
per-stage outputs the original code also returns.
"""
import torch
from torch import nn

from . import register


class _ResidualBlock(nn.Module):
    """relu(x + [conv3x3 + ReLU] x2 (x))."""

    def __init__(self, width):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True))

    def forward(self, x):
        return torch.relu(x + self.body(x))


class _ConvLSTM(nn.Module):
    """ConvLSTM cell; the four gate convolutions (input, forget, candidate, output), each
    (2*width)->width, are held as one (2*width)->(4*width) convolution: same parameters."""

    def __init__(self, width):
        super().__init__()
        self.gates = nn.Conv2d(2 * width, 4 * width, 3, padding=1)

    def forward(self, x, state):
        h, c = state if state is not None else (torch.zeros_like(x), torch.zeros_like(x))
        i, f, g, o = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)


class PReNet(nn.Module):
    def __init__(self, channels=3, width=32, stages=6, blocks=5, recurrent=True, recursive_block=False):
        super().__init__()
        self.stages, self.blocks = stages, blocks
        self.head = nn.Sequential(nn.Conv2d(2 * channels, width, 3, padding=1), nn.ReLU(inplace=True))
        self.lstm = _ConvLSTM(width) if recurrent else None
        self.res = nn.ModuleList(_ResidualBlock(width) for _ in range(1 if recursive_block else blocks))
        self.tail = nn.Conv2d(width, channels, 3, padding=1)

    def _residual_blocks(self, x):
        for b in range(self.blocks):
            x = self.res[b % len(self.res)](x)
        return x

    def forward_all(self, y):
        x, state, outputs = y, None, []
        for _ in range(self.stages):
            feat = self.head(torch.cat([y, x], dim=1))
            if self.lstm is not None:
                feat, state = self.lstm(feat, state)
            x = y + self.tail(self._residual_blocks(feat))
            outputs.append(x)
        return outputs

    def forward(self, y):
        return self.forward_all(y)[-1]


@register("prenet")
def prenet(**overrides):
    return PReNet(**overrides)


@register("prn")
def prn(**overrides):
    return PReNet(**{"recurrent": False, **overrides})


@register("prenet_r")
def prenet_r(**overrides):
    return PReNet(**{"recursive_block": True, **overrides})


@register("prn_r")
def prn_r(**overrides):
    return PReNet(**{"recurrent": False, "recursive_block": True, **overrides})
