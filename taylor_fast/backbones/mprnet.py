"""MPRNet: Zamir et al., "Multi-stage progressive image restoration", CVPR 2021.

Stage 1 runs an encoder-decoder on four quadrants, stage 2 on two halves, stage 3 (ORSNet)
at full resolution; supervised attention modules (SAM) pass features and an intermediate
image between stages, and cross-stage feature fusion feeds stage-1 features into stage 2 and
stage-2 features into stage 3. Convolutions have no bias; as in the original, one PReLU
(a single parameter) is shared by every channel-attention block.

forward(y) returns the final image; forward_all(y) returns [stage3 + y, stage2, stage1]
(the original's order, final image first) for the paper's supervision of every stage.
"""
import torch
import torch.nn.functional as F
from torch import nn

from . import register
from ._padding import crop, pad_to_multiple

MULTIPLE = 8  # two halvings of a half-size patch


def _conv(in_channels, out_channels, kernel_size=3):
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)


class ChannelAttention(nn.Module):
    def __init__(self, width, reduction):
        super().__init__()
        self.weights = nn.Sequential(nn.AdaptiveAvgPool2d(1), _conv(width, width // reduction, 1),
                                     nn.ReLU(inplace=True), _conv(width // reduction, width, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.weights(x)


class CAB(nn.Module):
    """Channel-attention block: x + CA(conv(act(conv(x))))."""

    def __init__(self, width, reduction, act):
        super().__init__()
        self.body = nn.Sequential(_conv(width, width), act, _conv(width, width), ChannelAttention(width, reduction))

    def forward(self, x):
        return x + self.body(x)


def _cabs(width, count, reduction, act):
    return nn.Sequential(*(CAB(width, reduction, act) for _ in range(count)))


class _Resample(nn.Module):
    """Bilinear resize by `scale` followed by a 1x1 channel change."""

    def __init__(self, in_channels, out_channels, scale):
        super().__init__()
        self.scale = scale
        self.conv = _conv(in_channels, out_channels, 1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False))


class Encoder(nn.Module):
    """Three levels of 2 CABs at widths w, w+s, w+2s; with fusion, stage-1 encoder and decoder
    features (1x1 each) are added at every level."""

    def __init__(self, width, grow, reduction, act, fusion):
        super().__init__()
        widths = [width + i * grow for i in range(3)]
        self.levels = nn.ModuleList(_cabs(w, 2, reduction, act) for w in widths)
        self.down = nn.ModuleList(_Resample(w, w + grow, 0.5) for w in widths[:2])
        self.fuse_enc = nn.ModuleList(_conv(w, w, 1) for w in widths) if fusion else None
        self.fuse_dec = nn.ModuleList(_conv(w, w, 1) for w in widths) if fusion else None

    def forward(self, x, previous_enc=None, previous_dec=None):
        outs = []
        for level in range(3):
            if level:
                x = self.down[level - 1](x)
            x = self.levels[level](x)
            if previous_enc is not None:
                x = x + self.fuse_enc[level](previous_enc[level]) + self.fuse_dec[level](previous_dec[level])
            outs.append(x)
        return outs


class Decoder(nn.Module):
    """Coarse to fine: 2 CABs per level; upsampled features plus a CAB of the encoder skip."""

    def __init__(self, width, grow, reduction, act):
        super().__init__()
        widths = [width + i * grow for i in range(3)]
        self.levels = nn.ModuleList(_cabs(w, 2, reduction, act) for w in widths)
        self.skip = nn.ModuleList(CAB(w, reduction, act) for w in widths[:2])
        self.up = nn.ModuleList(_Resample(w + grow, w, 2) for w in widths[:2])

    def forward(self, enc):
        x = self.levels[2](enc[2])
        outs = [x]
        for level in (1, 0):
            x = self.levels[level](self.up[level](x) + self.skip[level](enc[level]))
            outs.insert(0, x)
        return outs


class SAM(nn.Module):
    """Supervised attention: predicts the stage's image and gates the features by it."""

    def __init__(self, width, channels):
        super().__init__()
        self.features = _conv(width, width, 1)
        self.image = _conv(width, channels, 1)
        self.gate = _conv(channels, width, 1)

    def forward(self, x, y):
        image = self.image(x) + y
        return x + self.features(x) * torch.sigmoid(self.gate(image)), image


class ORB(nn.Module):
    def __init__(self, width, cabs, reduction, act):
        super().__init__()
        self.body = nn.Sequential(*_cabs(width, cabs, reduction, act), _conv(width, width))

    def forward(self, x):
        return x + self.body(x)


class ORSNet(nn.Module):
    """Three original-resolution blocks; after block i, the stage-2 encoder and decoder
    features of level i (upsampled to full resolution) are added through 1x1 convolutions."""

    def __init__(self, width, grow, ors_grow, cabs, reduction, act):
        super().__init__()
        full = width + ors_grow
        self.orbs = nn.ModuleList(ORB(full, cabs, reduction, act) for _ in range(3))
        self.up_enc = nn.ModuleList(self._upsampler(width, grow, level) for level in range(3))
        self.up_dec = nn.ModuleList(self._upsampler(width, grow, level) for level in range(3))
        self.fuse_enc = nn.ModuleList(_conv(width, full, 1) for _ in range(3))
        self.fuse_dec = nn.ModuleList(_conv(width, full, 1) for _ in range(3))

    @staticmethod
    def _upsampler(width, grow, level):
        """Level `level` (width + level*grow channels, 1/2**level size) -> width channels, full size."""
        steps = reversed(range(level))
        return nn.Sequential(*(_Resample(width + (i + 1) * grow, width + i * grow, 2) for i in steps))

    def forward(self, x, enc, dec):
        for level, orb in enumerate(self.orbs):
            x = orb(x)
            x = x + self.fuse_enc[level](self.up_enc[level](enc[level]))
            x = x + self.fuse_dec[level](self.up_dec[level](dec[level]))
        return x


class MPRNet(nn.Module):
    def __init__(self, channels=3, width=96, grow=48, ors_grow=32, cabs=8, reduction=4):
        super().__init__()
        act = nn.PReLU()
        self.shallow = nn.ModuleList(nn.Sequential(_conv(channels, width), CAB(width, reduction, act))
                                     for _ in range(3))
        self.encoder1 = Encoder(width, grow, reduction, act, fusion=False)
        self.decoder1 = Decoder(width, grow, reduction, act)
        self.encoder2 = Encoder(width, grow, reduction, act, fusion=True)
        self.decoder2 = Decoder(width, grow, reduction, act)
        self.orsnet = ORSNet(width, grow, ors_grow, cabs, reduction, act)
        self.sam12 = SAM(width, channels)
        self.sam23 = SAM(width, channels)
        self.concat12 = _conv(2 * width, width)
        self.concat23 = _conv(2 * width, width + ors_grow)
        self.tail = _conv(width + ors_grow, channels)

    @staticmethod
    def _join(parts_a, parts_b, dim):
        return [torch.cat(pair, dim=dim) for pair in zip(parts_a, parts_b)]

    def forward_all(self, y):
        height, width = y.shape[-2:]
        x3 = pad_to_multiple(y, MULTIPLE)
        halves = x3.chunk(2, dim=2)                                   # top, bottom
        quarters = [q for half in halves for q in half.chunk(2, dim=3)]  # tl, tr, bl, br

        # stage 1: quadrants through the encoder, joined into halves for the decoder
        enc1 = [self.encoder1(self.shallow[0](q)) for q in quarters]
        enc1 = [self._join(enc1[0], enc1[1], 3), self._join(enc1[2], enc1[3], 3)]
        dec1 = [self.decoder1(e) for e in enc1]
        sam1 = [self.sam12(d[0], half) for d, half in zip(dec1, halves)]
        stage1 = torch.cat([image for _, image in sam1], dim=2)

        # stage 2: halves, fused with stage-1 features, joined into the full image for the decoder
        enc2 = [self.encoder2(self.concat12(torch.cat([self.shallow[1](half), feats], dim=1)), e, d)
                for half, (feats, _), e, d in zip(halves, sam1, enc1, dec1)]
        enc2 = self._join(enc2[0], enc2[1], 2)
        dec2 = self.decoder2(enc2)
        feats, stage2 = self.sam23(dec2[0], x3)

        # stage 3: full resolution
        x = self.concat23(torch.cat([self.shallow[2](x3), feats], dim=1))
        stage3 = self.tail(self.orsnet(x, enc2, dec2)) + x3
        return [crop(image, height, width) for image in (stage3, stage2, stage1)]

    def forward(self, y):
        return self.forward_all(y)[0]


@register("mprnet_derain")
def mprnet_derain(**overrides):
    return MPRNet(**{"width": 40, "grow": 20, "ors_grow": 16, **overrides})


@register("mprnet_deblur")
def mprnet_deblur(**overrides):
    return MPRNet(**{"width": 96, "grow": 48, "ors_grow": 32, **overrides})
