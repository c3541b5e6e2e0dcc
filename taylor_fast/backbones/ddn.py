"""DDN: Fu et al., "Removing rain from single images via a deep detail network", CVPR 2017.

The network sees only the detail layer (the image minus its guided-filter base layer) and
predicts the negative rain residual: output = y + net(y - base(y)).
"""
import torch
import torch.nn.functional as F
from torch import nn

from . import register


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over the (2r+1)^2 window clipped to the image, per channel (any H, W).

    Two separable average pools that exclude the padding give exactly the clipped-window mean
    (the 2-D clipped window is the product of the two 1-D ones).
    """
    size = 2 * radius + 1
    x = F.avg_pool2d(x, (size, 1), stride=1, padding=(radius, 0), count_include_pad=False)
    return F.avg_pool2d(x, (1, size), stride=1, padding=(0, radius), count_include_pad=False)


def guided_filter(guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """He et al.'s guided filter, channel by channel (a channel of `guide` guides the same channel of `src`)."""
    mean_i, mean_p = box_mean(guide, radius), box_mean(src, radius)
    cov_ip = box_mean(guide * src, radius) - mean_i * mean_p
    var_i = box_mean(guide * guide, radius) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_mean(a, radius) * guide + box_mean(b, radius)


def _conv_bn(in_channels, out_channels):
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels)]


class _ResidualUnit(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.body = nn.Sequential(*_conv_bn(width, width), nn.ReLU(inplace=True),
                                  *_conv_bn(width, width), nn.ReLU(inplace=True))

    def forward(self, x):
        return x + self.body(x)


@register("ddn")
class DDN(nn.Module):
    """conv+BN+ReLU, `units` residual units of two conv+BN+ReLU, conv+BN, on the detail layer."""

    def __init__(self, channels=3, width=16, units=12, radius=15, eps=1.0):
        super().__init__()
        self.radius, self.eps = radius, eps
        self.head = nn.Sequential(*_conv_bn(channels, width), nn.ReLU(inplace=True))
        self.units = nn.Sequential(*(_ResidualUnit(width) for _ in range(units)))
        self.tail = nn.Sequential(*_conv_bn(width, channels))

    def forward(self, y):
        detail = y - guided_filter(y, y, self.radius, self.eps)
        return y + self.tail(self.units(self.head(detail)))
