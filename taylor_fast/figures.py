"""Labelled image grids (PNG) for the demo and the benchmark write-ups: one row per example,
one column per method, a caption strip above every image."""
from __future__ import annotations

from pathlib import Path

import torch


def labelled_grid(rows: list[list[torch.Tensor]], labels: list[list[str]], path: Path) -> None:
    """Save rows of (C, H, W) [0, 1] images (C = 3, or 1 for grey) with a caption above each."""
    from PIL import Image, ImageDraw, ImageFont

    try:
        font = ImageFont.load_default(size=14)
    except TypeError:  # Pillow < 10.1 has one bitmap font size
        font = ImageFont.load_default()
    band = 22  # label strip above each image
    width = max(image.shape[2] for row in rows for image in row)
    heights = [max(image.shape[1] for image in row) + band for row in rows]
    canvas = Image.new("RGB", (width * len(rows[0]), sum(heights)), "white")
    draw = ImageDraw.Draw(canvas)
    top = 0
    for images, texts, height in zip(rows, labels, heights):
        for c, (image, text) in enumerate(zip(images, texts)):
            pixels = (image.expand(3, -1, -1).clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
            canvas.paste(Image.fromarray(pixels), (c * width, top + band))
            draw.text((c * width + 4, top + 3), text, fill="black", font=font)
        top += height
    canvas.save(path)
