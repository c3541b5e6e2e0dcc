"""Synthetic rain: layers of oriented line streaks, screen-blended over the clean image.

Each layer scatters drops at random (its density), smears every drop into a streak of the
layer's length, width and angle (one FFT convolution with a line kernel), and the layers add up.
All randomness comes from one numpy Generator, so a seed reproduces the image exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .convolve import convolve_valid


@dataclass(frozen=True)
class RainStyle:
    """Ranges (low, high) that each image or layer draws from uniformly."""

    layers: tuple[int, int]  # streak layers per image
    density: tuple[float, float]  # drops per pixel, per layer
    length: tuple[float, float]  # streak length in pixels, per layer
    width: tuple[float, float]  # streak width (full width at half maximum) in pixels, per layer
    angle: tuple[float, float]  # the image's rain direction, degrees from vertical
    spread: float  # standard deviation of each layer's direction around it, degrees
    brightness: tuple[float, float]  # peak streak brightness, per layer (drops vary from 50 to 100% of it)


# Rain100L: sparse, thin, short streaks of one direction. Rain100H: several dense layers of
# long, wide streaks in different directions. Tuned so that input PSNR (Y channel) lands near the
# published test sets' (about 27 dB and 13-14 dB on BSD-like photos).
RAIN_PRESETS = {
    "light": RainStyle(layers=(1, 1), density=(0.001, 0.002), length=(10, 25), width=(1.0, 1.5),
                       angle=(-20, 20), spread=0.0, brightness=(0.45, 0.7)),
    "heavy": RainStyle(layers=(3, 5), density=(0.0015, 0.003), length=(25, 55), width=(1.5, 3.0),
                       angle=(-30, 30), spread=12.0, brightness=(0.35, 0.6)),
}


def line_kernel(length: float, width: float, angle: float) -> torch.Tensor:
    """A streak of peak 1: a Gaussian profile across (FWHM `width`), anti-aliased ends along,
    tilted `angle` degrees from vertical; float64, odd square."""
    sigma = width / (2 * math.sqrt(2 * math.log(2)))
    radius = math.ceil(length / 2 + 3 * sigma)
    axis = torch.arange(-radius, radius + 1, dtype=torch.float64)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    theta = math.radians(angle)
    along = x * math.sin(theta) + y * math.cos(theta)
    across = x * math.cos(theta) - y * math.sin(theta)
    return torch.exp(-across**2 / (2 * sigma**2)) * (length / 2 - along.abs() + 0.5).clamp(0, 1)


def _draw(rng: np.random.Generator, bounds) -> float:
    return float(rng.uniform(*bounds))


def rain_layer(height: int, width: int, style: RainStyle, rng: np.random.Generator) -> torch.Tensor:
    """(height, width) float32 streak intensities in [0, 1]."""
    direction = _draw(rng, style.angle)
    total = torch.zeros(height, width, dtype=torch.float64)
    for _ in range(int(rng.integers(style.layers[0], style.layers[1] + 1))):
        kernel = line_kernel(_draw(rng, style.length), _draw(rng, style.width),
                             direction + float(rng.normal(0, style.spread)))
        side = kernel.shape[0]
        # drops on a canvas one kernel larger than the image, so streaks also enter from outside
        shape = (height + side - 1, width + side - 1)
        drops = (rng.random(shape) < _draw(rng, style.density)) * rng.uniform(0.5, 1.0, shape)
        total += _draw(rng, style.brightness) * convolve_valid(torch.from_numpy(drops), kernel)
    return total.clamp(0, 1).float()


def add_rain(clean: torch.Tensor, style="light", seed=0) -> torch.Tensor:
    """Rainy version of a (C, H, W) image in [0, 1]: 1 - (1 - clean) * (1 - streaks).

    style: "light", "heavy" (RAIN_PRESETS) or a RainStyle; seed: int or numpy Generator."""
    if clean.dim() != 3:
        raise ValueError(f"clean: expected a (C, H, W) image, got shape {tuple(clean.shape)}")
    if isinstance(style, str):
        if style not in RAIN_PRESETS:
            raise ValueError(f"style: expected one of {sorted(RAIN_PRESETS)} or a RainStyle, got {style!r}")
        style = RAIN_PRESETS[style]
    streaks = rain_layer(clean.shape[1], clean.shape[2], style, np.random.default_rng(seed))
    return 1 - (1 - clean) * (1 - streaks.to(clean))
