"""Inputs made from clean images on the fly: noise (denoising) and bicubic downsampling (SR).

A degradation is called as degradation(clean, rng) with a numpy Generator; `scale` says how
much smaller its output is. Test images get for_image(clean, name), which draws from
rng_for(seed, name), so an image gets the same noise whatever the order, the subset or the
machine; training patches draw from (seed, epoch, index), so every epoch sees new noise.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import torch

from ..resize import bicubic_downsample

SCALES = (2, 3, 4)  # the super-resolution factors of the benchmark layouts


def rng_for(seed: int, name: str) -> np.random.Generator:
    """The generator of test image `name`: numpy's SeedSequence of (seed, CRC-32 of the name)."""
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])


def check_sigma(sigma, what: str = "sigma") -> float:
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"{what}: expected a noise standard deviation >= 0 on the 0..255 scale "
                         f"(the field uses 15, 25, 50), got {sigma!r}")
    return float(sigma)


def check_scale(scale, dataset: str) -> int:
    if scale is None:
        raise ValueError(f"{dataset}: give scale= one of {', '.join(map(str, SCALES))} (the super-resolution factor)")
    if isinstance(scale, bool) or scale not in SCALES:
        raise ValueError(f"scale: {dataset} holds x{', x'.join(map(str, SCALES))} inputs, got {scale!r}")
    return int(scale)


@dataclass(frozen=True)
class Noise:
    """z = a * Poisson(x / a) + N(0, (sigma/255)^2) on [0, 1] images, per pixel and channel.

    sigma: Gaussian standard deviation on the 0..255 scale (15, 25, 50 in the literature).
    poisson: the gain a of the signal-dependent part, so var(z | x) = a x + (sigma/255)^2 (the
        Poisson-Gaussian model of Foi et al., IEEE TIP 2008); 0 gives plain Gaussian noise.
    seed: test images draw their noise from rng_for(seed, name).
    The result is neither clipped nor rounded, as the field's test scripts add float noise.
    """

    sigma: float = 25.0
    poisson: float = 0.0
    seed: int = 0
    scale = 1

    def __post_init__(self):
        check_sigma(self.sigma)
        check_sigma(self.poisson, "poisson")
        if self.sigma == 0 and self.poisson == 0:
            raise ValueError("sigma and poisson are both 0: that adds no noise")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed: expected a non-negative integer, got {self.seed!r}")

    def __call__(self, clean: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        noisy = clean.detach().cpu().double().numpy()
        if self.poisson:
            noisy = self.poisson * rng.poisson(np.clip(noisy, 0, None) / self.poisson)
        if self.sigma:
            noisy = noisy + (self.sigma / 255) * rng.standard_normal(noisy.shape)
        return torch.from_numpy(noisy).to(clean)

    def for_image(self, clean: torch.Tensor, name: str) -> torch.Tensor:
        return self(clean, rng_for(self.seed, name))

    def describe(self) -> dict:
        return {"kind": "poisson-gaussian" if self.poisson else "gaussian", "sigma_255": self.sigma,
                "poisson_gain": self.poisson, "seed": self.seed,
                "model": "z = a Poisson(x / a) + N(0, (sigma/255)^2), x in [0, 1], not clipped or rounded",
                "test_noise": "drawn from numpy SeedSequence(seed, CRC-32 of the image name)"}


@dataclass(frozen=True)
class Bicubic:
    """The low-resolution input: MATLAB's imresize(x, 1/scale, 'bicubic') of the uint8 image,
    rounded to 8-bit levels after each pass as MATLAB does, like the distributed LRbicx files."""

    scale: int

    def __post_init__(self):
        check_scale(self.scale, "bicubic")

    def __call__(self, clean: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        return bicubic_downsample(clean, self.scale, levels=255)

    def for_image(self, clean: torch.Tensor, name: str) -> torch.Tensor:
        return self(clean)

    def describe(self) -> dict:
        return {"kind": "bicubic", "scale": self.scale,
                "model": "MATLAB imresize(HR, 1/scale, 'bicubic') on 8-bit levels; HR cropped to a multiple of scale"}
