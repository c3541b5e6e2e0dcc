"""RDN: Zhang et al., "Residual dense network for image super-resolution", CVPR 2018,
configuration B (G0=64, D=16 blocks, C=8 layers, G=64), with a restoration head in place of
the super-resolution upsampler: output = y + conv(features)."""
import torch
from torch import nn

from . import register


class ResidualDenseBlock(nn.Module):
    """`layers` densely connected conv3x3+ReLU, local feature fusion (1x1), + block input."""

    def __init__(self, width, growth, layers):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width + c * growth, growth, 3, padding=1), nn.ReLU(inplace=True))
            for c in range(layers)
        )
        self.fuse = nn.Conv2d(width + layers * growth, width, 1)

    def forward(self, x):
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))
        return x + self.fuse(torch.cat(features, dim=1))


@register("rdn")
class RDN(nn.Module):
    def __init__(self, channels=3, width=64, blocks=16, layers=8, growth=64):
        super().__init__()
        self.sfe1 = nn.Conv2d(channels, width, 3, padding=1)
        self.sfe2 = nn.Conv2d(width, width, 3, padding=1)
        self.blocks = nn.ModuleList(ResidualDenseBlock(width, growth, layers) for _ in range(blocks))
        self.global_fusion = nn.Sequential(nn.Conv2d(blocks * width, width, 1),
                                           nn.Conv2d(width, width, 3, padding=1))
        self.tail = nn.Conv2d(width, channels, 3, padding=1)

    def forward(self, y):
        shallow = self.sfe1(y)
        x, outputs = self.sfe2(shallow), []
        for block in self.blocks:
            x = block(x)
            outputs.append(x)
        return y + self.tail(self.global_fusion(torch.cat(outputs, dim=1)) + shallow)
