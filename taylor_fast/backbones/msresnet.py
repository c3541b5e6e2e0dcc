"""MSResNet (DeepDeblur, the paper's "MSCNN"): Nah et al., "Deep multi-scale convolutional
neural network for dynamic scene deblurring", CVPR 2017.

Coarse-to-fine over a 3-level Gaussian pyramid of y. Works in [0, 255] with 127.5 subtracted
from the inputs and added back to the outputs, as the original does; takes and returns [0, 1].

forward(y) returns the full-resolution image; forward_all(y) returns the output pyramid
[full, 1/2, 1/4] (the original's order, for its multi-scale loss), and gaussian_pyramid(x)
builds the matching target pyramid.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from . import register
from ._padding import crop, mirror_pad, pad_to_multiple

RANGE = 255.0
MEAN = 127.5


def _gaussian_kernel(sigma: float, truncate: float = 4.0) -> torch.Tensor:
    radius = int(truncate * sigma + 0.5)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_pyramid(x: torch.Tensor, levels: int = 3) -> list[torch.Tensor]:
    """[x, x/2, x/4, ...] as scikit-image's pyramid_gaussian (used by the original's data
    loader) builds it: Gaussian blur with sigma 2/3 and symmetric borders, then linear
    resampling to half size. H and W must be multiples of 2**(levels-1)."""
    kernel = _gaussian_kernel(2 / 3).to(x)
    radius, channels = kernel.numel() // 2, x.shape[1]
    vertical = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    horizontal = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    pyramid = [x]
    for _ in range(levels - 1):
        blurred = mirror_pad(pyramid[-1], radius, radius, radius, radius, mode="symmetric")
        blurred = F.conv2d(F.conv2d(blurred, vertical, groups=channels), horizontal, groups=channels)
        # linear resampling by exactly 1/2 with pixel-centre alignment is the 2x2 mean
        pyramid.append(F.avg_pool2d(blurred, 2))
    return pyramid


class _ResBlock(nn.Module):
    def __init__(self, width, kernel_size):
        super().__init__()
        pad = kernel_size // 2
        self.body = nn.Sequential(nn.Conv2d(width, width, kernel_size, padding=pad), nn.ReLU(inplace=True),
                                  nn.Conv2d(width, width, kernel_size, padding=pad))

    def forward(self, x):
        return x + self.body(x)


def _scale_net(in_channels, out_channels, width, blocks, kernel_size):
    pad = kernel_size // 2
    return nn.Sequential(nn.Conv2d(in_channels, width, kernel_size, padding=pad),
                         *(_ResBlock(width, kernel_size) for _ in range(blocks)),
                         nn.Conv2d(width, out_channels, kernel_size, padding=pad))


@register("msresnet")
class MSResNet(nn.Module):
    def __init__(self, channels=3, width=64, blocks=19, kernel_size=5, scales=3):
        super().__init__()
        self.scales = scales
        pad = kernel_size // 2
        # index 0 is the finest scale; the coarsest sees only its pyramid level
        self.nets = nn.ModuleList(
            _scale_net(channels if s == scales - 1 else 2 * channels, channels, width, blocks, kernel_size)
            for s in range(scales)
        )
        # upconv[s] carries scale s+1's output to scale s
        self.upconv = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, 4 * channels, kernel_size, padding=pad), nn.PixelShuffle(2))
            for _ in range(scales - 1)
        )

    def forward_all(self, y):
        height, width = y.shape[-2:]
        levels = gaussian_pyramid(pad_to_multiple(y, 2 ** (self.scales - 1)), self.scales)
        levels = [level * RANGE - MEAN for level in levels]
        outputs = [None] * self.scales
        x = levels[-1]
        for s in reversed(range(self.scales)):
            outputs[s] = self.nets[s](x)
            if s:
                x = torch.cat([levels[s - 1], self.upconv[s - 1](outputs[s])], dim=1)
        return [crop((out + MEAN) / RANGE, math.ceil(height / 2 ** s), math.ceil(width / 2 ** s))
                for s, out in enumerate(outputs)]

    def forward(self, y):
        return self.forward_all(y)[0]
