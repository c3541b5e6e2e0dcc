"""Synthetic motion blur: random camera-shake trajectory kernels, plus optional Gaussian noise.

The trajectory follows Boracchi and Foi's model ("Modeling the performance of image restoration
from motion blur", IEEE TIP 2012): a constant-speed path whose velocity takes Gaussian jitter, is
pulled back towards the start, and now and then turns abruptly. The path is splatted
(bilinearly) onto the kernel grid and normalised to sum 1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .convolve import convolve_valid


@dataclass(frozen=True)
class BlurStyle:
    size: int = 31  # kernel side, odd; longer paths are scaled down to fit
    length: tuple[float, float] = (12.0, 40.0)  # camera path length in pixels
    steps: int = 256  # trajectory samples
    noise: tuple[float, float] = (0.0, 0.0)  # Gaussian noise standard deviation on [0, 1]

    def __post_init__(self):
        if self.size < 3 or self.size % 2 == 0:
            raise ValueError(f"size: expected an odd kernel side >= 3, got {self.size}")


def camera_trajectory(length: float, steps: int, rng: np.random.Generator) -> np.ndarray:
    """(steps,) complex positions (x + iy) of a shaking camera, path length `length`."""
    step = length / (steps - 1)
    anxiety = 0.1 * rng.random()  # how erratic this camera is
    jitter, centripetal, shake_rate = 10 * rng.random(), 0.7 * rng.random(), 0.2 * rng.random()
    velocity = step * np.exp(2j * math.pi * rng.random())
    path = np.zeros(steps, complex)
    for t in range(steps - 1):
        shake = 0j
        if rng.random() < shake_rate * anxiety:  # an abrupt turn, roughly backwards
            shake = 2 * velocity * np.exp(1j * (math.pi + rng.random() - 0.5))
        drift = jitter * complex(rng.normal(), rng.normal()) - centripetal * path[t]
        velocity += shake + anxiety * drift * step
        velocity *= step / max(abs(velocity), 1e-12)
        path[t + 1] = path[t] + velocity
    return path


def motion_kernel(style: BlurStyle = BlurStyle(), seed=0) -> torch.Tensor:
    """A (size, size) float64 blur kernel, non-negative, summing to 1; seed: int or Generator."""
    rng = np.random.default_rng(seed)
    path = camera_trajectory(float(rng.uniform(*style.length)), style.steps, rng)
    xs, ys = path.real, path.imag
    extent = max(np.ptp(xs), np.ptp(ys))
    scale = min(1.0, (style.size - 2) / extent) if extent > 0 else 1.0
    centre = style.size // 2
    xs = (xs - (xs.min() + xs.max()) / 2) * scale + centre
    ys = (ys - (ys.min() + ys.max()) / 2) * scale + centre
    kernel = np.zeros((style.size, style.size))
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    for dy, dx, weight in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        np.add.at(kernel, (y0 + dy, x0 + dx), weight)
    return torch.from_numpy(kernel / kernel.sum())


def blur_with(clean: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve each channel of (C, H, W) with `kernel`, edges extended by replication."""
    radius_y, radius_x = kernel.shape[0] // 2, kernel.shape[1] // 2
    padded = F.pad(clean[None], (radius_x, radius_x, radius_y, radius_y), mode="replicate")[0]
    return convolve_valid(padded, kernel)


def add_motion_blur(clean: torch.Tensor, style: BlurStyle = BlurStyle(), seed=0):
    """(blurred, kernel): (C, H, W) image in [0, 1] blurred by a random shake, noise added, clamped."""
    if clean.dim() != 3:
        raise ValueError(f"clean: expected a (C, H, W) image, got shape {tuple(clean.shape)}")
    rng = np.random.default_rng(seed)
    kernel = motion_kernel(style, rng)
    blurred = blur_with(clean, kernel)
    sigma = float(rng.uniform(*style.noise))
    if sigma > 0:
        blurred = blurred + sigma * torch.from_numpy(rng.standard_normal(blurred.shape)).to(blurred)
    return blurred.clamp(0, 1), kernel
