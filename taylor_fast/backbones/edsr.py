"""EDSR: Lim et al., "Enhanced deep residual networks for single image super-resolution",
CVPRW 2017. `edsr_baseline` is the paper's small model (16 residual blocks, 64 features, no
residual scaling: 1,369,859 parameters at x2), `edsr` the large one (32 blocks, 256 features,
residual scaling 0.1: 40,729,603 at x2). The mean shift is a fixed buffer, as the original
keeps it out of training (its MeanShift convolution does not require grad)."""
import torch
from torch import nn

from . import register
from ._upsampler import SCALES, upsampler

# the DIV2K mean the original subtracts (RGB); grey images use the mean of the three
DIV2K_MEAN = (0.4488, 0.4371, 0.4040)


class ResidualBlock(nn.Module):
    def __init__(self, width, res_scale):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(width, width, 3, padding=1))
        self.res_scale = res_scale

    def forward(self, x):
        return x + self.body(x) * self.res_scale


class EDSR(nn.Module):
    """LR (N, C, h, w) in [0, 1] -> HR (N, C, scale*h, scale*w)."""

    def __init__(self, scale=2, channels=3, width=64, blocks=16, res_scale=1.0):
        super().__init__()
        mean = DIV2K_MEAN if channels == 3 else (sum(DIV2K_MEAN) / 3,) * channels
        self.register_buffer("mean", torch.tensor(mean).view(1, channels, 1, 1), persistent=False)
        self.head = nn.Conv2d(channels, width, 3, padding=1)
        self.body = nn.Sequential(*(ResidualBlock(width, res_scale) for _ in range(blocks)),
                                  nn.Conv2d(width, width, 3, padding=1))
        self.upsample = upsampler(scale, width)
        self.tail = nn.Conv2d(width, channels, 3, padding=1)
        self.scale = scale

    def forward(self, y):
        x = self.head(y - self.mean)
        return self.tail(self.upsample(x + self.body(x))) + self.mean


@register("edsr_baseline", scales=SCALES)
def edsr_baseline(scale=2, channels=3, width=64, blocks=16, res_scale=1.0):
    return EDSR(scale, channels, width, blocks, res_scale)


@register("edsr", scales=SCALES)
def edsr(scale=2, channels=3, width=256, blocks=32, res_scale=0.1):
    return EDSR(scale, channels, width, blocks, res_scale)
