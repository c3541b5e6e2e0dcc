"""Reading and writing images as float (3, H, W) tensors in [0, 1], or (1, H, W) grey ones.

8-bit files become k/255, 16-bit files k/65535 (16-bit PNGs through png16, since Pillow would
drop their low byte) and alpha is dropped. Read as colour (channels=3), grey images are repeated
to 3 channels; read as grey (channels=1), colour images become their BT.601 luma
0.299 R + 0.587 G + 0.114 B rounded to the file's levels, as PIL's convert("L") and OpenCV's
grey reading do for the denoising benchmarks.
"""
from __future__ import annotations

import re
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .png16 import is_png16, read_png16, write_png16

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".webp")
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
_EIGHT_BIT_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr")


class ImageReadError(OSError):
    """An image file is missing, not an image, truncated or in an unsupported pixel format."""


def natural_key(text: str):
    """Sort key that orders 'rain-2' before 'rain-10'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside `folder`, in natural order."""
    files = [p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: natural_key(p.name))


_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601


def _to_tensor(samples: np.ndarray, scale: float, channels: int) -> torch.Tensor:
    if samples.ndim == 2:
        samples = samples[:, :, None]
    samples = samples[:, :, :3] if samples.shape[2] >= 3 else samples[:, :, :1]  # drop alpha
    if channels == 1 and samples.shape[2] == 3:
        luma = sum(weight * samples[:, :, c].astype(np.float64) for c, weight in enumerate(_LUMA))
        samples = np.floor(luma + 0.5)[:, :, None]
    image = torch.from_numpy(samples.astype(np.float32) / scale).permute(2, 0, 1)
    return image.expand(3, -1, -1).contiguous() if image.shape[0] < channels else image.contiguous()


def _read(path: Path, channels: int) -> torch.Tensor:
    if is_png16(path):
        return _to_tensor(read_png16(path), 65535.0, channels)
    with Image.open(path) as img:
        img.load()
        if img.mode in _SIXTEEN_BIT_MODES:
            return _to_tensor(np.asarray(img).astype(np.uint16), 65535.0, channels)
        if img.mode not in _EIGHT_BIT_MODES:
            raise ValueError(f"pixel format {img.mode!r} has no defined [0, 1] range")
        grey = channels == 1 and img.mode in ("1", "L", "LA")
        return _to_tensor(np.asarray(img.convert("L" if grey else "RGB")), 255.0, channels)


def to_grey(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) -> (1, H, W): the BT.601 luma 0.299 R + 0.587 G + 0.114 B (not rounded)."""
    weights = torch.tensor(_LUMA, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return (image * weights).sum(dim=0, keepdim=True)


def check_channels(channels) -> int:
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ValueError(f"channels: expected 1 (grey) or 3 (colour), got {channels!r}")
    return channels


def read_image(path, channels: int = 3) -> torch.Tensor:
    """The image at `path` as a float32 (channels, H, W) tensor in [0, 1] (channels 3: colour,
    1: grey); ImageReadError names the file."""
    check_channels(channels)
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"image file {path} does not exist")
    try:
        return _read(path, channels)
    except (OSError, ValueError, SyntaxError, zlib.error) as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from exc


def image_size(path) -> tuple[int, int]:
    """(height, width) of the image at `path` from its header alone (cheap; the pixels stay unread)."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"image file {path} does not exist")
    try:
        with Image.open(path) as img:
            width, height = img.size
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from exc
    return height, width


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) [0, 1] tensor -> (H, W, 3) uint8, rounding half up as MATLAB's im2uint8 does."""
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"image: expected a (3, H, W) or (1, H, W) tensor, got shape {tuple(image.shape)}")
    levels = torch.floor(image.detach().float().clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    return levels.permute(1, 2, 0).cpu().numpy()


def bit_depth(path) -> int:
    """16 for a 16-bit-per-sample file, else 8 (from the header)."""
    path = Path(path)
    if is_png16(path):
        return 16
    try:
        with Image.open(path) as img:
            return 16 if img.mode in _SIXTEEN_BIT_MODES else 8
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from exc


def write_image(path, image: torch.Tensor, bits: int = 8) -> None:
    """Save a (3, H, W) or grey (1, H, W) [0, 1] tensor; the format follows the extension. bits=16 writes a 16-bit
    PNG (levels round(65535 v)), which only the .png extension can hold."""
    path = Path(path)
    if bits == 16:
        if path.suffix.lower() != ".png":
            raise ValueError(f"bits=16: only PNG files hold 16 bits per sample, got {path.name}")
        levels = torch.floor(image.detach().float().clamp(0, 1) * 65535 + 0.5).to(torch.int32)
        write_png16(path, levels.permute(1, 2, 0).cpu().numpy().astype(np.uint16))
        return
    if bits != 8:
        raise ValueError(f"bits: expected 8 or 16, got {bits}")
    array = to_uint8(image)
    Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array).save(path)

