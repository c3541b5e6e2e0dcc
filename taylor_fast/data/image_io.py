"""Reading and writing images as float tensors in [0, 1].

read_image(path) gives the pixels as a (3, H, W) RGB tensor: 8-bit files become k/255, 16-bit
files k/65535 (16-bit PNGs through png16, since Pillow would drop their low byte), the EXIF
orientation is applied (the pixels come upright, as viewers show the photo), grey images are
repeated to 3 channels and alpha is dropped. read_image(path, channels=1) gives a (1, H, W) grey
tensor instead: a grey file's own samples, and for a colour file its ITU-R 601-2 luma
0.299 R + 0.587 G + 0.114 B rounded to the file's levels, as Pillow's convert("L") and OpenCV's
grey reading give the denoising benchmarks.

read_picture(path, channels) gives the same pixels and what a restored copy of the file should
keep: its alpha channel, whether it is grey, and its ICC colour profile. write_image writes grey,
grey + alpha, RGB or RGBA, at 8 or 16 bits, with the profile, and JPEG/WebP at a chosen quality.
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..resize import bicubic_upsample
from .png16 import is_png16, read_png16, write_png16

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".webp")
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
_EIGHT_BIT_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr")
_GREY_MODES = ("1", "L", "LA")
_ORIENTATION_TAG = 0x0112
# channel counts (1 grey, 2 grey + alpha, 3 RGB, 4 RGBA) each format holds; others hold all four
_FORMAT_CHANNELS = {".jpg": (1, 3), ".jpeg": (1, 3), ".webp": (3, 4), ".bmp": (1, 3), ".ppm": (1, 3),
                    ".pgm": (1, 3)}
# an ICC profile's colour space (bytes 16..19 of its header) for each channel count
_ICC_SPACES = {1: b"GRAY", 2: b"GRAY", 3: b"RGB ", 4: b"RGB "}
# ITU-R 601-2 luma, as Pillow's convert("L") weighs R, G and B
_LUMA = (0.299, 0.587, 0.114)


class ImageReadError(OSError):
    """An image file is missing, not an image, truncated or in an unsupported pixel format."""


@dataclass(frozen=True)
class Picture:
    """An image file read for restoration: upright pixels for a model, and what its restored
    copy keeps (see keep)."""

    pixels: torch.Tensor  # (C, H, W) float32 in [0, 1]: RGB (C = 3) or grey (C = 1), as asked
    alpha: torch.Tensor | None  # (1, H, W) float32 in [0, 1], or None
    grey: bool  # the file is grey
    icc_profile: bytes | None

    def keep(self, restored: torch.Tensor) -> torch.Tensor:
        """`restored`, a (C, s H, s W) restoration of self.pixels (s = 1, or a super-resolution
        model's scale), with this picture's channels: one luma channel for a grey picture (see
        to_grey), grey output of a grey model staying grey, then this picture's alpha (bicubic-
        upscaled to the output's size where s > 1)."""
        image = to_grey(restored) if self.grey and restored.shape[0] == 3 else restored
        if self.alpha is not None:
            alpha = self.alpha.to(image)
            if image.shape[-1] != alpha.shape[-1]:
                alpha = bicubic_upsample(alpha, image.shape[-1] // alpha.shape[-1]).clamp(0, 1)
            image = torch.cat([image, alpha])
        return image


def natural_key(text: str):
    """Sort key that orders 'rain-2' before 'rain-10'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside `folder`, in natural order."""
    files = [p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: natural_key(p.name))


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation (1..8; 1 = stored upright) of an opened image."""
    try:
        # the base class's getexif reads what the header gave; PNG's own would decode every pixel
        # looking for a late eXIf chunk, and header-only callers (image_size) must see the same
        value = Image.Image.getexif(img).get(_ORIENTATION_TAG, 1)
    except (OSError, ValueError, SyntaxError, TypeError):  # damaged EXIF: the pixels are still good
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _upright(samples: np.ndarray, orientation: int) -> np.ndarray:
    """(H, W, C) samples turned as EXIF `orientation` says to show them (the transposition of
    Pillow's ImageOps.exif_transpose, applied to any bit depth)."""
    turns = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
             5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1),
             7: lambda a: np.rot90(a, 2).transpose(1, 0, 2), 8: lambda a: np.rot90(a, 1)}
    return turns[orientation](samples) if orientation in turns else samples


def _decode(path: Path) -> tuple[np.ndarray, float, bool, bool, bytes | None]:
    """(upright samples (H, W, C), their full scale, grey, has alpha, ICC profile); the samples
    are grey or RGB, followed by alpha when there is one."""
    with Image.open(path) as img:
        orientation = _orientation(img)
        icc_profile = img.info.get("icc_profile") or None
        if is_png16(path):
            samples, scale = read_png16(path), 65535.0
            grey, alpha = samples.shape[2] <= 2, samples.shape[2] in (2, 4)
        else:
            img.load()
            if img.mode in _SIXTEEN_BIT_MODES:
                samples, scale, grey, alpha = np.asarray(img).astype(np.uint16)[:, :, None], 65535.0, True, False
            elif img.mode not in _EIGHT_BIT_MODES:
                raise ValueError(f"pixel format {img.mode!r} has no defined [0, 1] range")
            else:
                grey = img.mode in _GREY_MODES
                alpha = "A" in img.getbands() or "transparency" in img.info
                samples, scale = np.asarray(img.convert("RGBA" if alpha else "RGB")), 255.0
                if grey:  # R = G = B: keep one
                    samples = samples[:, :, [0, 3]] if alpha else samples[:, :, :1]
    return _upright(samples, orientation), scale, grey, alpha, icc_profile


def to_grey(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) -> (1, H, W): the luma 0.299 R + 0.587 G + 0.114 B (not rounded)."""
    weights = torch.tensor(_LUMA, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return (image * weights).sum(dim=0, keepdim=True)


def _luma_levels(samples: np.ndarray) -> np.ndarray:
    """(H, W, 3) integer samples -> (H, W, 1) luma rounded to the same levels."""
    luma = sum(weight * samples[:, :, c].astype(np.float64) for c, weight in enumerate(_LUMA))
    return np.floor(luma + 0.5)[:, :, None]


def _as_tensor(samples: np.ndarray, scale: float) -> torch.Tensor:
    """(H, W, C) samples -> a contiguous float32 (C, H, W) tensor in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(samples).astype(np.float32) / scale).permute(2, 0, 1).contiguous()


def check_channels(channels) -> int:
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ValueError(f"channels: expected 1 (grey) or 3 (colour), got {channels!r}")
    return channels


def read_picture(path, channels: int = 3) -> Picture:
    """The image at `path` as a Picture (upright pixels with `channels` channels, 3: RGB, 1: grey;
    alpha, grey or not, ICC profile); ImageReadError names the file."""
    check_channels(channels)
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"image file {path} does not exist")
    try:
        samples, scale, grey, alpha, icc_profile = _decode(path)
    except (OSError, ValueError, SyntaxError, zlib.error) as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from exc
    colour = samples[:, :, :-1] if alpha else samples
    if channels == 1 and colour.shape[2] == 3:
        colour = _luma_levels(colour)
    pixels = _as_tensor(colour, scale)
    return Picture(pixels.expand(channels, -1, -1).contiguous() if pixels.shape[0] < channels else pixels,
                   _as_tensor(samples[:, :, -1:], scale) if alpha else None, grey, icc_profile)


def read_image(path, channels: int = 3) -> torch.Tensor:
    """The image at `path` as a float32 (channels, H, W) tensor in [0, 1], upright (channels 3:
    RGB, 1: grey); ImageReadError names the file."""
    return read_picture(path, channels).pixels


def image_size(path) -> tuple[int, int]:
    """(height, width) of the image at `path` as read_image returns it (upright), from its header
    alone (cheap; the pixels stay unread)."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"image file {path} does not exist")
    try:
        with Image.open(path) as img:
            width, height = img.size
            if _orientation(img) >= 5:  # orientations 5..8 turn the image a quarter
                width, height = height, width
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from exc
    return height, width


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) [0, 1] tensor -> (H, W, C) uint8, rounding half up as MATLAB's im2uint8 does."""
    if image.dim() != 3 or image.shape[0] not in (1, 2, 3, 4):
        raise ValueError(f"image: expected a (C, H, W) tensor with C in 1..4 (grey, grey + alpha, RGB, RGBA), "
                         f"got shape {tuple(image.shape)}")
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


def _fit_channels(image: torch.Tensor, suffix: str) -> torch.Tensor:
    """`image` with channels the format of `suffix` holds: grey becomes RGB where only colour is
    held (WebP), then alpha is dropped where none is held (JPEG, BMP, PPM)."""
    held = _FORMAT_CHANNELS.get(suffix, (1, 2, 3, 4))
    channels = image.shape[0]
    if channels not in held and channels in (1, 2) and channels + 2 in held:
        image = torch.cat([image[:1].expand(3, -1, -1), image[1:]])
    if image.shape[0] not in held and image.shape[0] in (2, 4):
        image = image[:-1]
    return image


def write_image(path, image: torch.Tensor, bits: int = 8, *, quality: int = 95, icc_profile: bytes | None = None):
    """Save a (C, H, W) [0, 1] tensor, C = 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA); the
    format follows the extension.

    bits=16 writes a 16-bit PNG (levels round(65535 v)), which only the .png extension can hold.
    quality: JPEG and WebP quality, 1..100; JPEG keeps full-resolution colour (no chroma
        subsampling, 4:4:4).
    icc_profile: attached when its colour space (grey or RGB) is the written image's; a profile
        of another space (a CMYK one, a grey one on colour pixels) would misdescribe the pixels,
        so it is left out. BMP and PPM/PGM files hold no profile.
    Channels a format cannot hold: JPEG, BMP, PPM and PGM drop alpha (Pillow reads BMP alpha back
    as RGB); WebP stores grey as RGB.
    """
    path = Path(path)
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"quality: expected an integer in 1..100, got {quality!r}")
    if bits not in (8, 16):
        raise ValueError(f"bits: expected 8 or 16, got {bits}")
    suffix = path.suffix.lower()
    if bits == 16 and suffix != ".png":
        raise ValueError(f"bits=16: only PNG files hold 16 bits per sample, got {path.name}")
    if image.dim() != 3 or image.shape[0] not in (1, 2, 3, 4):
        raise ValueError(f"image: expected a (C, H, W) tensor with C in 1..4 (grey, grey + alpha, RGB, RGBA), "
                         f"got shape {tuple(image.shape)}")
    image = _fit_channels(image, suffix)
    profile = icc_profile if icc_profile and icc_profile[16:20] == _ICC_SPACES[image.shape[0]] else None
    if bits == 16:
        levels = torch.floor(image.detach().float().clamp(0, 1) * 65535 + 0.5).to(torch.int32)
        write_png16(path, levels.permute(1, 2, 0).cpu().numpy().astype(np.uint16), icc_profile=profile)
        return
    array = to_uint8(image)
    options = {"icc_profile": profile} if profile else {}
    if suffix in (".jpg", ".jpeg"):
        options.update(quality=quality, subsampling=0)
    elif suffix == ".webp":
        options.update(quality=quality)
    Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array).save(path, **options)
