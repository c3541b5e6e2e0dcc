"""Helpers for the data tests: small image files written with Pillow or by hand (16-bit PNG)."""
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def random_rgb(h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def save(path, array) -> Path:
    """Write a uint8 (H, W[, C]) array with Pillow; creates the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def as_tensor_values(array):
    """The [0, 1] float values read_image should return for a uint8 (H, W, 3) array, as (3, H, W)."""
    return np.transpose(array.astype(np.float32) / 255, (2, 0, 1))


def _paeth_scalar(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def encode_png16(samples: np.ndarray, filters) -> bytes:
    """A 16-bit PNG of uint16 samples (H, W, C), row r filtered with filters[r] (0..4), written
    byte by byte from the PNG specification as an independent check of the decoder."""
    height, width, channels = samples.shape
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    bpp = 2 * channels
    rows = [samples[r].astype(">u2").tobytes() for r in range(height)]
    out = bytearray()
    for r, row in enumerate(rows):
        prev = rows[r - 1] if r else bytes(len(row))
        kind = filters[r]
        out.append(kind)
        for i, value in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            predictor = [0, a, b, (a + b) // 2, _paeth_scalar(a, b, c)][kind]
            out.append((value - predictor) % 256)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(out))) + chunk(b"IEND", b"")


def snapshot(folder):
    """Every path under `folder` with its size and modification time, to prove nothing changed."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(Path(folder).rglob("*"))} | {
        str(folder): (0, Path(folder).stat().st_mtime_ns)}
