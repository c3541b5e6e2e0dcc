"""Decoder and encoder for 16-bit PNGs.

Pillow reads 16-bit grey PNGs exactly but silently reduces 16-bit RGB/RGBA PNGs to 8 bits, and
neither it nor anything else installed here keeps their precision, so this module decodes them:
chunks, zlib, then the five PNG row filters (PNG spec §9). Interlaced 16-bit files are refused.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel (grey, RGB, grey+alpha, RGBA)
_COLOUR_TYPES = {channels: colour for colour, channels in _CHANNELS.items()}


def is_png16(path: Path) -> bool:
    """True when `path` is a PNG whose header says 16 bits per sample."""
    with open(path, "rb") as fh:
        head = fh.read(29)
    return len(head) == 29 and head[:8] == SIGNATURE and head[12:16] == b"IHDR" and head[24] == 16


def _chunks(blob: bytes):
    pos = len(SIGNATURE)
    while pos + 8 <= len(blob):
        (length,) = struct.unpack(">I", blob[pos:pos + 4])
        kind = blob[pos + 4:pos + 8]
        data = blob[pos + 8:pos + 8 + length]
        if len(data) != length:
            raise ValueError(f"truncated PNG: chunk {kind!r} needs {length} bytes, file has {len(data)}")
        yield kind, data
        if kind == b"IEND":
            return
        pos += 12 + length
    raise ValueError("truncated PNG: no IEND chunk")


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _unfilter(filtered: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    """Undo the per-row filters of `filtered` (H, W, bytes per pixel).

    A byte depends on its left, upper and upper-left neighbours, so all pixels on one
    anti-diagonal (row + column = d) are independent: H + W - 1 vectorised steps instead of a
    Python loop over every byte.
    """
    height, width, bpp = filtered.shape
    recon = np.zeros((height + 1, width + 1, bpp), np.int32)  # row 0 and column 0 are the zero border
    filtered = filtered.astype(np.int32)
    for d in range(height + width - 1):
        rows = np.arange(max(0, d - width + 1), min(height, d + 1))
        cols = d - rows
        left, up, up_left = recon[rows + 1, cols], recon[rows, cols + 1], recon[rows, cols]
        zero = np.zeros_like(left)
        predictors = np.stack([zero, left, up, (left + up) >> 1, _paeth(left, up, up_left)])
        predicted = predictors[kinds[rows], np.arange(len(rows))]
        recon[rows + 1, cols + 1] = (filtered[rows, cols] + predicted) & 0xFF
    return recon[1:, 1:].astype(np.uint8)


def read_png16(path: Path) -> np.ndarray:
    """Samples of a 16-bit PNG as uint16 (H, W, C), C = samples per pixel (alpha included)."""
    blob = Path(path).read_bytes()
    if blob[:8] != SIGNATURE:
        raise ValueError("not a PNG file")
    header, idat = None, []
    for kind, data in _chunks(blob):
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", data)
        elif kind == b"IDAT":
            idat.append(data)
    if header is None:
        raise ValueError("PNG without IHDR chunk")
    width, height, depth, colour, _, _, interlace = header
    if depth != 16 or colour not in _CHANNELS:
        raise ValueError(f"expected a 16-bit grey/RGB/RGBA PNG, got bit depth {depth}, colour type {colour}")
    if interlace:
        raise ValueError("interlaced (Adam7) 16-bit PNGs are not supported; re-save it without interlacing")
    channels = _CHANNELS[colour]
    stride = width * channels * 2
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8)
    if raw.size != height * (stride + 1):
        raise ValueError(f"PNG data holds {raw.size} bytes, {height} rows of {width} pixels need {height * (stride + 1)}")
    rows = raw.reshape(height, stride + 1)
    kinds = rows[:, 0].astype(np.intp)
    if kinds.max(initial=0) > 4:
        raise ValueError(f"PNG row filter type {kinds.max()} is not one of 0..4")
    data = _unfilter(rows[:, 1:].reshape(height, width, channels * 2), kinds)
    return (data[..., 0::2].astype(np.uint16) << 8) | data[..., 1::2]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png16(path: Path, samples: np.ndarray, icc_profile: bytes | None = None) -> None:
    """Save uint16 (H, W, C) samples, C = 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA), as a
    16-bit PNG, with `icc_profile` in an iCCP chunk when given. Every row uses the Up filter (the
    byte difference to the row above), which suits photographs and vectorises."""
    if samples.dtype != np.uint16 or samples.ndim != 3 or samples.shape[2] not in _COLOUR_TYPES:
        raise ValueError(f"samples: expected uint16 (H, W, 1..4), got {samples.dtype} {samples.shape}")
    height, width, channels = samples.shape
    rows = np.ascontiguousarray(samples, dtype=">u2").view(np.uint8).reshape(height, width * channels * 2)
    above = np.vstack([np.zeros((1, rows.shape[1]), np.uint8), rows[:-1]])
    filtered = np.hstack([np.full((height, 1), 2, np.uint8), rows - above])  # uint8 wraps mod 256, as PNG wants
    header = struct.pack(">IIBBBBB", width, height, 16, _COLOUR_TYPES[channels], 0, 0, 0)
    # iCCP (PNG spec 11.3.3.3): profile name, NUL, compression method 0 (zlib), compressed profile
    profile = _chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(icc_profile)) if icc_profile else b""
    Path(path).write_bytes(SIGNATURE + _chunk(b"IHDR", header) + profile
                           + _chunk(b"IDAT", zlib.compress(filtered.tobytes(), 6)) + _chunk(b"IEND", b""))
