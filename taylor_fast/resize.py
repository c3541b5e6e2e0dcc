"""Bicubic resizing as MATLAB's `imresize(x, scale, 'bicubic')` computes it (pure PyTorch).

Super-resolution benchmarks make their low-resolution images with MATLAB's imresize, so the
degradation and the bicubic baseline must be that function, not torch's or PIL's bicubic: MATLAB
uses Keys' cubic with a = -0.5 (torch: -0.75), widens the kernel by 1/scale when shrinking
(antialiasing; torch's bicubic does not), mirrors the image at its borders (symmetric padding)
and makes ceil(scale * size) pixels. Each 1-D pass gathers the P = ceil(kernel width) + 2 input
pixels an output pixel depends on (MATLAB's `contributions`), height first, then width.

On uint8 images MATLAB rounds after each pass (`levels=255` reproduces that for [0, 1] values
on 8-bit levels: the passes then run on the integer levels in float64, where the x2 and x4
weights are exact binary fractions, so exact halves round up as MATLAB rounds them).
"""
from __future__ import annotations

import functools
import math

import torch


def cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's `cubic`)."""
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    return near + far


def contributions(in_length: int, out_length: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(indices, weights), each (out_length, P): output pixel i is sum_p weights[i, p] *
    input[indices[i, p]] (0-based indices, already mirrored at the borders). float64 weights."""
    kernel_width = 4.0
    antialias = scale < 1
    if antialias:
        kernel_width /= scale
    x = torch.arange(1, out_length + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)  # where output pixel x lies on the input's 1-based axis
    left = torch.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    indices = left[:, None] + torch.arange(taps, dtype=torch.float64)
    distance = u[:, None] - indices
    weights = scale * cubic(scale * distance) if antialias else cubic(distance)
    weights = weights / weights.sum(dim=1, keepdim=True)
    mirror = torch.cat([torch.arange(in_length), torch.arange(in_length - 1, -1, -1)])  # 1..n, n..1 (0-based)
    indices = mirror[(indices.long() - 1) % (2 * in_length)]
    used = (weights != 0).any(dim=0)  # MATLAB drops taps that no output pixel uses
    return indices[:, used].contiguous(), weights[:, used].contiguous()


@functools.lru_cache(maxsize=64)
def _plan(in_length: int, out_length: int, scale: float, device: torch.device, dtype: torch.dtype):
    """contributions() on `device` (cached: a network resizes the same sizes at every step)."""
    indices, weights = contributions(in_length, out_length, scale)
    return indices.to(device), weights.to(device, dtype)


def _resize_last(x: torch.Tensor, out_length: int, scale: float) -> torch.Tensor:
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    indices, weights = _plan(x.shape[-1], out_length, scale, x.device, compute)
    return (x[..., indices].to(compute) * weights).sum(dim=-1).to(x.dtype)  # gathered: (..., out_length, P)


def imresize(x: torch.Tensor, scale: float, *, levels: int | None = None) -> torch.Tensor:
    """MATLAB's imresize(x, scale, 'bicubic') over the last two dims of a float tensor: output
    ceil(scale * H) x ceil(scale * W), antialiased when shrinking. levels=255 rounds to 8-bit
    levels after each pass, as MATLAB does on a uint8 image (clamping to [0, 1] first)."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        given = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"x: expected a floating-point tensor, got {given}")
    if x.dim() < 2:
        raise ValueError(f"x: expected at least 2 dims (..., H, W), got shape {tuple(x.shape)}")
    if not (isinstance(scale, (int, float)) and not isinstance(scale, bool) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale: expected a positive finite number, got {scale!r}")
    height, width = x.shape[-2:]
    if min(height, width) < 1:
        raise ValueError(f"x: expected a non-empty image, got shape {tuple(x.shape)}")
    out_height, out_width = math.ceil(scale * height), math.ceil(scale * width)
    if levels is None:
        x = _resize_last(x.transpose(-1, -2), out_height, scale).transpose(-1, -2)
        return _resize_last(x, out_width, scale).contiguous()
    dtype, x = x.dtype, torch.floor(x.double().clamp(0, 1) * levels + 0.5)
    x = torch.floor(_resize_last(x.transpose(-1, -2), out_height, scale).clamp(0, levels) + 0.5).transpose(-1, -2)
    x = torch.floor(_resize_last(x, out_width, scale).clamp(0, levels) + 0.5)
    return (x / levels).to(dtype).contiguous()


def _check_image(x, scale, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() not in (3, 4):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected a (C, H, W) or (N, C, H, W) tensor, got {shape}")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale: expected a positive integer, got {scale!r}")


def bicubic_downsample(x: torch.Tensor, scale: int, *, levels: int | None = None) -> torch.Tensor:
    """MATLAB's imresize(x, 1/scale, 'bicubic') of a float (C, H, W) or (N, C, H, W) image in
    [0, 1]: the field's standard super-resolution degradation. The result is not clamped (the
    cubic kernel overshoots a little at edges) unless levels rounds it."""
    _check_image(x, scale, "x")
    return imresize(x, 1 / scale, levels=levels)


def bicubic_upsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    """MATLAB's imresize(x, scale, 'bicubic'): the "Bicubic" baseline of super-resolution tables."""
    _check_image(x, scale, "x")
    return imresize(x, scale)
