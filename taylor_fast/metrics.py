"""PSNR and SSIM with the conventions spelled out (published numbers disagree because of them).

Both take batches (N, C, H, W) (or one (C, H, W) image) on any device and return (N,) float64.

data_range: the span of the input values: 1.0 for images in [0, 1], 255 for 0..255 images.
channel:
    "rgb": compare all channels; SSIM is computed per channel and averaged (as scikit-image and
        Python re-evaluations of GoPro/HIDE do; MATLAB's ssim on a 3-D array gives higher values).
    "y": MATLAB's rgb2ycbcr luma (ITU-R BT.601): the input is scaled to [0, 1] (divided by
        data_range) and Y = 16 + 65.481 R + 128.553 G + 24.966 B, on the 0..255 scale (16..235),
        compared with peak 255. (PSNR and SSIM do not change if both the values and the peak are
        rescaled together, so this equals Y / 255 with peak 1.) Needs C = 3.
    A grey (C = 1) image has one channel to compare: use "rgb".
quantize: round to 8-bit levels first, as evaluating saved uint8 PNGs does (MPRNet): the RGB
    input is clamped and rounded to 255 levels of data_range, and Y is rounded to an integer, as
    rgb2ycbcr on uint8 images returns uint8. Rounding is half up (MATLAB). "rgb": the RGB values
    are rounded but Y is not, as BasicSR and the super-resolution MATLAB scripts compute Y of
    uint8 images converted to double. False: no rounding and no clamping anywhere (PReNet's
    evaluation).
crop_border: pixels removed on every side before either metric.
SSIM: Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, population
    (co)variances, the mean over the valid region only (no padding); C1 = (K1 L)^2, C2 = (K2 L)^2
    with L the peak of the compared scale (data_range, or 255 for y).
Identical images give PSNR = inf.
"""
from __future__ import annotations

import math

import torch

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
_Y_WEIGHTS = (65.481, 128.553, 24.966)


def _batch(name: str, x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4:
        raise ValueError(f"{name}: expected (N, C, H, W) or (C, H, W), got shape {tuple(x.shape)}")
    return x.to(torch.float64)  # metrics are not a hot path: float64 keeps SSIM's variances exact


def _prepare(pred, target, channel, crop_border, quantize, data_range):
    """Both images on the scale the metric compares, and its peak: [0, 1] with peak 1 for rgb
    (the same numbers as 0..data_range with peak data_range), 0..255 with peak 255 for y."""
    pred, target = _batch("pred", pred), _batch("target", target)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target: shapes differ, {tuple(pred.shape)} vs {tuple(target.shape)}")
    if channel not in ("rgb", "y"):
        raise ValueError(f"channel: expected 'rgb' or 'y', got {channel!r}")
    if channel == "y" and pred.shape[1] != 3:
        raise ValueError(f"channel='y' needs 3 RGB channels, got {pred.shape[1]}")
    if not data_range > 0:
        raise ValueError(f"data_range: expected a positive number, got {data_range}")
    _check_quantize(quantize)
    if crop_border < 0 or 2 * crop_border >= min(pred.shape[-2:]):
        raise ValueError(f"crop_border: expected 0 <= crop_border < half the image side, got {crop_border} "
                         f"for a {pred.shape[-2]}x{pred.shape[-1]} image")
    if crop_border:
        pred = pred[..., crop_border:-crop_border, crop_border:-crop_border]
        target = target[..., crop_border:-crop_border, crop_border:-crop_border]
    images = []
    for x in (pred, target):
        x = x / data_range  # [0, 1]
        if quantize:
            x = torch.floor(x.clamp(0, 1) * 255 + 0.5) / 255
        if channel == "y":
            weights = torch.tensor(_Y_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            x = 16 + (x * weights).sum(dim=1, keepdim=True)
            if quantize and quantize != "rgb":
                x = torch.floor(x + 0.5)
        images.append(x)
    return images[0], images[1], 255.0 if channel == "y" else 1.0


def psnr(pred, target, channel="rgb", crop_border=0, quantize=False, data_range=1.0) -> torch.Tensor:
    """(N,) PSNR in dB: 10 log10(peak^2 / MSE), the MSE over all compared channels and pixels."""
    pred, target, peak = _prepare(pred, target, channel, crop_border, quantize, data_range)
    mse = (pred - target).pow(2).flatten(1).mean(dim=1)
    return 10 * torch.log10(peak**2 / mse)


def _gaussian_weights() -> list[float]:
    offsets = [i - SSIM_WINDOW // 2 for i in range(SSIM_WINDOW)]
    weights = [math.exp(-o * o / (2 * SSIM_SIGMA**2)) for o in offsets]
    return [w / sum(weights) for w in weights]


def _filter_valid(x: torch.Tensor, weights: list[float]) -> torch.Tensor:
    """Separable Gaussian average over the last two dims, full windows only. Shifted
    multiply-adds: on CPU, float64 conv2d with one input channel is several times slower."""
    for dim in (-2, -1):
        size = x.shape[dim] - len(weights) + 1
        out = x.narrow(dim, 0, size) * weights[0]
        for tap in range(1, len(weights)):
            out.add_(x.narrow(dim, tap, size), alpha=weights[tap])
        x = out
    return x


def ssim(pred, target, channel="rgb", crop_border=0, quantize=False, data_range=1.0) -> torch.Tensor:
    """(N,) mean SSIM; per channel over the valid region, then averaged over channels."""
    pred, target, peak = _prepare(pred, target, channel, crop_border, quantize, data_range)
    h, w = pred.shape[-2:]
    if min(h, w) < SSIM_WINDOW:
        raise ValueError(f"ssim needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} after cropping, got {h}x{w}")
    weights = _gaussian_weights()
    x, y = pred, target  # the names of Wang et al.'s formula
    mean_x, mean_y = _filter_valid(x, weights), _filter_valid(y, weights)
    var_x = _filter_valid(x * x, weights) - mean_x**2
    var_y = _filter_valid(y * y, weights) - mean_y**2
    cov = _filter_valid(x * y, weights) - mean_x * mean_y
    c1, c2 = (SSIM_K1 * peak) ** 2, (SSIM_K2 * peak) ** 2
    ssim_map = ((2 * mean_x * mean_y + c1) * (2 * cov + c2)) / ((mean_x**2 + mean_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(2).mean(dim=2).mean(dim=1)


def _check_quantize(quantize) -> None:
    if quantize not in (True, False, "rgb"):
        raise ValueError(f"quantize: expected True, False or 'rgb', got {quantize!r}")


def conventions(channel="rgb", crop_border=0, quantize=False, data_range=1.0) -> dict:
    """What psnr/ssim compute with these arguments, for result files (JSON-ready)."""
    if channel not in ("rgb", "y"):
        raise ValueError(f"channel: expected 'rgb' or 'y', got {channel!r}")
    _check_quantize(quantize)
    rounded_y = ", Y not rounded" if quantize == "rgb" else ", Y rounded to integers"
    return {
        "channel": channel,
        "colour_transform": "Y = 16 + 65.481 R + 128.553 G + 24.966 B (MATLAB rgb2ycbcr, BT.601), "
                            "R,G,B in [0,1], Y on 0..255" if channel == "y" else "none (RGB, or the grey channel)",
        "crop_border": int(crop_border),
        "quantize": quantize if quantize == "rgb" else bool(quantize),
        "quantization": ("RGB clamped and rounded half up to uint8 levels" + (rounded_y if channel == "y" else ""))
                        if quantize else "none (float values, not rounded)",
        "data_range": float(data_range),
        "compared_scale": "Y on 0..255, peak 255" if channel == "y" else "[0, 1], peak 1 (inputs divided by data_range)",
        "psnr": "10 log10(peak^2 / MSE), MSE over channels and pixels, per image",
        "ssim": {"window": "gaussian", "size": SSIM_WINDOW, "sigma": SSIM_SIGMA, "K1": SSIM_K1, "K2": SSIM_K2,
                 "covariance": "population", "region": "valid (no padding)",
                 "channels": "per channel, averaged" if channel == "rgb" else "Y only"},
    }


__all__ = ["conventions", "psnr", "ssim"]
