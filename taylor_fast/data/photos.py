"""Colour photographs that ship inside scikit-image (its wheel holds the files: no download)."""
from __future__ import annotations

import importlib.util

import numpy as np
import torch

# Checked to load with the network blocked (scikit-image 0.26). Others in skimage.data
# (lily, kidney, skin, eagle, ...) are fetched by pooch on first use, so they are left out.
BUNDLED_PHOTOS = ("astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry",
                  "retina", "rocket", "stereo_motorcycle")


_NEEDS = "the bundled photographs come from scikit-image: pip install scikit-image"


def unavailable() -> str | None:
    """Why the bundled photographs cannot be loaded here, or None when they can."""
    return None if importlib.util.find_spec("skimage") is not None else _NEEDS


def bundled_photo(name: str) -> torch.Tensor:
    """The photo `name` as a float32 (3, H, W) tensor in [0, 1]."""
    if name not in BUNDLED_PHOTOS:
        raise ValueError(f"name: expected one of {', '.join(BUNDLED_PHOTOS)}, got {name!r}")
    try:
        from skimage import data
    except ImportError as exc:
        raise ImportError(_NEEDS) from exc
    pixels = getattr(data, name)()
    if name == "stereo_motorcycle":  # (left view, right view, disparity)
        pixels = pixels[0]
    return torch.from_numpy(np.ascontiguousarray(pixels[:, :, :3])).permute(2, 0, 1).float() / 255
