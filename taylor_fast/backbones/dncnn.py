"""DnCNN: Zhang et al., "Beyond a Gaussian denoiser: residual learning of deep CNN for image
denoising", IEEE TIP 2017: 17 conv3x3 layers of 64 features predicting the noise, which is
subtracted from the input. As in the authors' PyTorch port: a bias in the first layer only,
BatchNorm and ReLU in the 15 middle ones, the BatchNorm with eps 1e-4 and momentum 0.95 (the port
keeps its running statistics close to recent batches, which the noise makes stable); weights
start from PyTorch's default initialisation, not the port's orthogonal one. 556,096 parameters for
grey images, 558,400 for colour."""
from torch import nn

from . import register


@register("dncnn")
class DnCNN(nn.Module):
    def __init__(self, channels=3, width=64, depth=17):
        super().__init__()
        layers = [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width, eps=1e-4, momentum=0.95),
                       nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(width, channels, 3, padding=1, bias=False))
        self.noise = nn.Sequential(*layers)

    def forward(self, y):
        return y - self.noise(y)
