"""DualGCN (the paper's "DCM"): Fu et al., "Rain streak removal via dual graph convolutional
network", AAAI 2021.

Eleven basic units (5 encoder, 1 middle, 5 decoder with mirrored skips), each a spatial GCN,
a dilated convolution module and a channel GCN. Every convolution has a bias (the authors'
TensorFlow layers default). Every unit owns its weights: a popular port builds its lists as
`[unit] * n`, which silently shares one unit's weights everywhere.
"""
import torch
from torch import nn

from . import register


def _softmax_per_sample(x: torch.Tensor) -> torch.Tensor:
    """Softmax over all entries of each sample (how the authors normalise the projections)."""
    return torch.softmax(x.flatten(1), dim=1).view_as(x)


def _tokens(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, HW, C)."""
    return x.flatten(2).transpose(1, 2)


def _image(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, HW, C) -> (N, C, H, W)."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, height, width)


class SpatialGCN(nn.Module):
    """x + out(theta A), with the C/2 x C/2 relation A = softmax(nu)^T softmax(xi) over positions."""

    def __init__(self, width):
        super().__init__()
        half = width // 2
        self.theta, self.nu, self.xi = (nn.Conv2d(width, half, 1) for _ in range(3))
        self.out = nn.Conv2d(half, width, 1)

    def forward(self, x):
        height, width = x.shape[-2:]
        theta = _tokens(self.theta(x))
        nu = _softmax_per_sample(_tokens(self.nu(x)))
        xi = _softmax_per_sample(_tokens(self.xi(x)))
        relation = nu.transpose(1, 2) @ xi
        return x + self.out(_image(theta @ relation, height, width))


class ChannelGCN(nn.Module):
    """A graph of C/4 nodes with C/2-dimensional states, projected from and back to the pixels.

    zeta: 1x1 to C/2 states; kappa: 1x1 to C/4 node assignments; the graph is
    softmax(kappa^T zeta) (C/4 x C/2). The node update relu(V + V W_state) mixes each node's
    state, then W_node mixes the nodes; zeta maps the graph back to pixels (C/4 channels) and
    a 1x1 convolution restores C channels.
    """

    def __init__(self, width):
        super().__init__()
        states, nodes = width // 2, width // 4
        self.zeta = nn.Conv2d(width, states, 1)
        self.kappa = nn.Conv2d(width, nodes, 1)
        self.state_conv = nn.Linear(states, states)
        self.node_conv = nn.Linear(nodes, nodes)
        self.out = nn.Conv2d(nodes, width, 1)

    def forward(self, x):
        height, width = x.shape[-2:]
        zeta = _tokens(self.zeta(x))                                    # (N, HW, C/2)
        kappa = _tokens(self.kappa(x))                                  # (N, HW, C/4)
        graph = _softmax_per_sample(kappa.transpose(1, 2) @ zeta)       # (N, C/4, C/2)
        graph = torch.relu(graph + self.state_conv(graph))
        graph = self.node_conv(graph.transpose(1, 2))                   # (N, C/2, C/4)
        return x + self.out(_image(zeta @ graph, height, width))


class DilatedModule(nn.Module):
    """Two 3x3 convolutions at dilation 1 and two at dilation 3 (each + ReLU), fused by 1x1 + ReLU."""

    def __init__(self, width):
        super().__init__()

        def conv(dilation):
            return nn.Sequential(nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation),
                                 nn.ReLU(inplace=True))

        self.near1, self.near2, self.far1, self.far2 = conv(1), conv(1), conv(3), conv(3)
        self.fuse = nn.Sequential(nn.Conv2d(5 * width, width, 1), nn.ReLU(inplace=True))

    def forward(self, x):
        near1 = self.near1(x)
        far1 = self.far1(x)
        return self.fuse(torch.cat([x, near1, self.near2(near1), far1, self.far2(far1)], dim=1))


class BasicUnit(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.body = nn.Sequential(SpatialGCN(width), DilatedModule(width), ChannelGCN(width))

    def forward(self, x):
        return x + self.body(x)


@register("dualgcn")
class DualGCN(nn.Module):
    def __init__(self, channels=3, width=72, depth=5):
        super().__init__()
        self.stem0 = nn.Conv2d(channels, width, 3, padding=1)
        self.stem1 = nn.Conv2d(width, width, 3, padding=1)
        self.encoders = nn.ModuleList(BasicUnit(width) for _ in range(depth))
        self.middle = BasicUnit(width)
        self.merges = nn.ModuleList(nn.Conv2d(2 * width, width, 1) for _ in range(depth))
        self.decoders = nn.ModuleList(BasicUnit(width) for _ in range(depth))
        self.reconstruct = nn.Sequential(nn.Conv2d(2 * width, width, 3, padding=1), nn.ReLU(inplace=True))
        self.tail = nn.Conv2d(width, channels, 3, padding=1)

    def forward(self, y):
        f0 = self.stem0(y)
        f1 = self.stem1(f0)
        x, skips = f1, []
        for unit in self.encoders:
            x = unit(x)
            skips.append(x)
        x = self.middle(x)
        for merge, unit, skip in zip(self.merges, self.decoders, reversed(skips)):
            x = unit(merge(torch.cat([x, skip], dim=1)))
        x = self.reconstruct(torch.cat([x, f1], dim=1)) + f0
        return y + self.tail(x)
