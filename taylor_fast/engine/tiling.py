"""Running an image model on an image of any size through overlapping tiles, blended smoothly.

Windows of `tile` pixels step by `tile - overlap` (the last one flush with the image edge).
Where two windows overlap, each one's output is weighted by a ramp: zero over the quarter of
the overlap nearest its own edge (pixels a convolution saw with the window's zero padding
instead of the real neighbours), a linear cross-fade over the middle half, one beyond. Image
borders are real borders and keep full weight. So a model whose receptive field reaches at most
overlap/4 pixels gives exactly its whole-image output, and a deeper one shows no seams.

A super-resolution model's output is s times larger than its input: windows are laid out on the
input and their outputs placed, and blended, on the s times larger grid (ramps s times longer).
"""
from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

from .chunks import Chunked, ChunkingWarning, OutOfMemory


def starts(size: int, tile: int, overlap: int) -> list[int]:
    """Window starts along one axis: every tile - overlap pixels, the last ending at `size`."""
    if size <= tile:
        return [0]
    stride = tile - overlap
    out = list(range(0, size - tile, stride))
    return out + [size - tile]


def ramp(start: int, length: int, size: int, overlap: int) -> torch.Tensor:
    """(length,) blending weights of the window [start, start + length) on an axis of `size`."""
    weights = torch.ones(length, dtype=torch.float64)
    if overlap == 0 or length == size:
        return weights
    distance = torch.arange(length, dtype=torch.float64) + 0.5  # from the window's first pixel centre
    rise = ((distance - overlap / 4) / (overlap / 2)).clamp(0, 1)
    if start > 0:
        weights = torch.minimum(weights, rise)
    if start + length < size:
        weights = torch.minimum(weights, rise.flip(0))
    return weights


def check(tile: int, overlap: int) -> None:
    if tile < 1:
        raise ValueError(f"tile: expected a positive size in pixels, got {tile}")
    if overlap < 0 or overlap >= tile:
        raise ValueError(f"overlap: expected 0 <= overlap < tile ({tile}), got {overlap}")
    if overlap and overlap < 4:
        raise ValueError(f"overlap: expected 0 or at least 4 pixels (a quarter is discarded, half cross-faded), "
                         f"got {overlap}")


def tiled(model: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, tile: int | None,
          overlap: int = 32, batch: int = 4, progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """model(image) for an (N, C, H, W) image, computed tile by tile when H or W exceeds `tile`
    (tile None: in one piece). Tiles go through the model `batch` at a time; the output has the
    input's size times the model's scale (the ratio of its output's to its input's size) and the
    input's dtype, accumulated in float32 on the input's device. progress(n) is called as n more
    windows (count() in all) are done.

    Memory: a batch of tiles (or of images) that runs out of memory is split (chunks.Chunked;
    pass a Chunked model to keep the part size it learnt across calls), and when a single tile
    or image does not fit, the image is redone in tiles of half the side, down to tiles just
    larger than the overlap; below that chunks.OutOfMemory is raised."""
    run = model if isinstance(model, Chunked) else Chunked(model)
    height, width = image.shape[-2:]
    while True:
        try:
            return _tiled(run, image, tile, overlap, batch, progress)
        except OutOfMemory as exc:
            tile = _smaller_tile(height, width, tile, overlap, exc)


def _smaller_tile(height: int, width: int, tile: int | None, overlap: int, exc: OutOfMemory) -> int:
    side = (max(height, width) if tile is None else min(tile, max(height, width))) // 2
    if side <= max(overlap, 4):
        raise OutOfMemory(f"{exc}; tiles of {side} pixels would not be larger than the overlap ({overlap}), "
                          "so there is no smaller tiling to fall back to") from exc
    warnings.warn(f"{exc}; retrying the {height}x{width} image in tiles of {side} pixels (overlap {overlap})",
                  ChunkingWarning, stacklevel=3)
    return side


def _tiled(run: Chunked, image: torch.Tensor, tile: int | None, overlap: int, batch: int,
           progress: Callable[[int], None] | None) -> torch.Tensor:
    n, _, height, width = image.shape
    if tile is None or (height <= tile and width <= tile):
        out = run(image)
        if progress is not None:
            progress(1)
        return out
    check(tile, overlap)
    windows = [(top, left, min(tile, height), min(tile, width))
               for top in starts(height, tile, overlap) for left in starts(width, tile, overlap)]
    out = weight = None
    for first in range(0, len(windows), batch):
        group = windows[first:first + batch]
        crops = torch.cat([image[:, :, t:t + h, l:l + w] for t, l, h, w in group])
        results = run(crops).float()
        if out is None:
            s = _scale(crops, results)
            out = image.new_zeros((n, results.shape[1], height * s, width * s), dtype=torch.float32)
            weight = image.new_zeros((1, 1, height * s, width * s), dtype=torch.float32)
        for index, (t, l, h, w) in enumerate(group):
            t, l, h, w = t * s, l * s, h * s, w * s
            mask = (ramp(t, h, height * s, overlap * s)[:, None] * ramp(l, w, width * s, overlap * s)[None, :]).float()
            mask = mask.to(image.device)
            out[:, :, t:t + h, l:l + w] += results[index * n:(index + 1) * n] * mask
            weight[:, :, t:t + h, l:l + w] += mask
        if progress is not None:
            progress(len(group))
    return (out / weight).to(image.dtype)


def _scale(crops: torch.Tensor, results: torch.Tensor) -> int:
    """The model's upscaling factor, from a batch of windows and its output."""
    (h, w), (out_h, out_w) = crops.shape[-2:], results.shape[-2:]
    if out_h % h or out_w % w or out_h // h != out_w // w:
        raise ValueError(f"the model turned {h}x{w} windows into {out_h}x{out_w}, not a whole multiple of their size")
    return out_h // h


def count(height: int, width: int, tile: int | None, overlap: int) -> int:
    """How many windows tiled() runs for an image of this size."""
    if tile is None or (height <= tile and width <= tile):
        return 1
    return len(starts(height, tile, overlap)) * len(starts(width, tile, overlap))
