"""The sub-pixel upsampler of EDSR and RDN: conv3x3 to s^2 times the features, then pixel
shuffle (Shi et al., CVPR 2016); x4 is two x2 steps, as in both originals."""
from torch import nn

SCALES = (2, 3, 4)


def upsampler(scale: int, width: int, out_width: int | None = None) -> nn.Sequential:
    """(N, width, h, w) -> (N, width, scale*h, scale*w). out_width: RDN's UPNet convolves to
    out_width * s^2 features (its growth rate G), EDSR to width * s^2."""
    if isinstance(scale, bool) or scale not in SCALES:
        raise ValueError(f"scale: expected one of {', '.join(map(str, SCALES))}, got {scale!r}")
    out_width = width if out_width is None else out_width
    steps = [2, 2] if scale == 4 else [scale]
    layers, channels = [], width
    for step in steps:
        layers += [nn.Conv2d(channels, out_width * step * step, 3, padding=1), nn.PixelShuffle(step)]
        channels = out_width
    return nn.Sequential(*layers)
