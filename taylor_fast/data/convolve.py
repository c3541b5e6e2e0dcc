"""Large-kernel 2-D convolution through the FFT (streak and blur kernels reach 60 px a side)."""
from __future__ import annotations

import torch


def convolve_valid(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """True convolution of (..., H, W) with a (kh, kw) kernel, keeping the (H-kh+1, W-kw+1) pixels
    that need no padding. A circular convolution of size H x W wraps only into the first kh-1 rows
    and kw-1 columns, which are exactly the pixels dropped, so no zero padding is needed."""
    kh, kw = kernel.shape
    height, width = image.shape[-2:]
    if kh > height or kw > width:
        raise ValueError(f"kernel: {kh}x{kw} is larger than the {height}x{width} image")
    spectrum = torch.fft.rfft2(image, s=(height, width)) * torch.fft.rfft2(kernel.to(image), s=(height, width))
    return torch.fft.irfft2(spectrum, s=(height, width))[..., kh - 1:, kw - 1:]
