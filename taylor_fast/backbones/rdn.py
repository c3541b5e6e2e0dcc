"""RDN: Zhang et al., "Residual dense network for image super-resolution", CVPR 2018,
configuration B (G0=64, D=16 blocks, C=8 layers, G=64). `rdn` has a restoration head in place of
the super-resolution upsampler: output = y + conv(features) (21,975,683 parameters); `rdn_sr` is
the original super-resolution network with its upsampler (UPNet): 22,123,395 parameters at x2,
22,308,035 at x3, 22,271,107 at x4."""
import torch
from torch import nn

from . import register
from ._upsampler import SCALES, upsampler


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

    def features(self, y):
        """Global residual learning: the fused features of every block plus the shallow ones."""
        shallow = self.sfe1(y)
        x, outputs = self.sfe2(shallow), []
        for block in self.blocks:
            x = block(x)
            outputs.append(x)
        return self.global_fusion(torch.cat(outputs, dim=1)) + shallow

    def forward(self, y):
        return y + self.tail(self.features(y))


@register("rdn_sr", scales=SCALES)
class RDNSR(RDN):
    """LR (N, C, h, w) -> HR (N, C, scale*h, scale*w): the features through UPNet (sub-pixel
    convolution to G * s^2 features, pixel shuffle) and the final conv (here `tail`)."""

    def __init__(self, scale=2, channels=3, width=64, blocks=16, layers=8, growth=64):
        super().__init__(channels, width, blocks, layers, growth)
        self.upsample = upsampler(scale, width, growth)
        self.tail = nn.Conv2d(growth, channels, 3, padding=1)
        self.scale = scale

    def forward(self, y):
        return self.tail(self.upsample(self.features(y)))
