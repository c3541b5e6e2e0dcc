"""The denoising layouts, each registered under its name: the clean test sets as distributed,
whose noisy inputs are made on the fly (seeded per file name, so a set is the same everywhere),
and SIDD's real noisy/ground-truth pairs."""
from __future__ import annotations

import re
from pathlib import Path

from .degradations import Noise
from .image_io import list_images, natural_key
from .matching import by_name, match, require_folder
from .pairs import DatasetError, ImageRef, Pair
from .registry import register


def _clean_only(root: Path, dataset: str, sigma, poisson, seed) -> tuple[list[Pair], list[str]]:
    if sigma is None:
        raise ValueError(f"{dataset}: give sigma= the noise standard deviation on the 0..255 scale "
                         "(the field uses 15, 25, 50)")
    noise = Noise(sigma, poisson, seed)
    files, clashes = by_name(list_images(root))  # the noise is seeded by the item name: one file per name
    return [Pair(name, None, ImageRef(p), degradation=noise) for name, p in files.items()], clashes


_NOISE = "; noise made on the fly (options sigma on 0..255, poisson gain, seed)"


@register("bsd68", layout="ROOT/test001.png ... test068.png (grey)" + _NOISE, grey=True, count=68)
def bsd68(root, split, sigma=None, poisson=0.0, seed=0):
    return _clean_only(root, "bsd68", sigma, poisson, seed)


@register("cbsd68", layout="ROOT/101085.png ... (68 colour BSD images)" + _NOISE, count=68)
def cbsd68(root, split, sigma=None, poisson=0.0, seed=0):
    return _clean_only(root, "cbsd68", sigma, poisson, seed)


@register("set12", layout="ROOT/01.png ... 12.png (grey)" + _NOISE, grey=True, count=12)
def set12(root, split, sigma=None, poisson=0.0, seed=0):
    return _clean_only(root, "set12", sigma, poisson, seed)


@register("kodak24", layout="ROOT/kodim01.png ... kodim24.png" + _NOISE, count=24)
def kodak24(root, split, sigma=None, poisson=0.0, seed=0):
    return _clean_only(root, "kodak24", sigma, poisson, seed)


@register("mcmaster", layout="ROOT/1.tif ... 18.tif" + _NOISE, count=18)
def mcmaster(root, split, sigma=None, poisson=0.0, seed=0):
    return _clean_only(root, "mcmaster", sigma, poisson, seed)


@register("clean-folder", layout="ROOT/* clean images (e.g. a training set such as BSD400 or CBSD432)" + _NOISE)
def clean_folder(root, split, sigma=None, poisson=0.0, seed=0):
    return _clean_only(root, "clean-folder", sigma, poisson, seed)


_SIDD_FILE = re.compile(r"(\d+)_(NOISY|GT)_SRGB_(\d+)")


def _sidd_data(root: Path) -> Path:
    for data in (root / "SIDD_Medium_Srgb" / "Data", root / "Data"):
        if data.is_dir():
            return data
    raise DatasetError(f"sidd: expected folder {root / 'SIDD_Medium_Srgb' / 'Data'} (or ROOT/Data), "
                       "which does not exist")


@register("sidd", layout="ROOT/SIDD_Medium_Srgb/Data/<scene>/NNNN_NOISY_SRGB_010.PNG with NNNN_GT_SRGB_010.PNG "
          "(and _011)")
def sidd(root, split):
    """SIDD-Medium sRGB: every scene folder holds two noisy captures and their ground truths."""
    pairs, problems = [], []
    data = _sidd_data(require_folder(root, "sidd"))
    for scene in sorted((p for p in data.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name)):
        files = {"NOISY": {}, "GT": {}}
        for path in list_images(scene):
            if m := _SIDD_FILE.fullmatch(path.stem):
                files[m.group(2)][f"{scene.name}/{m.group(1)}_{m.group(3)}"] = path
        found, unpaired = match(files["NOISY"], files["GT"],
                                lambda key, path: path.with_name(path.name.replace("_NOISY_", "_GT_")),
                                lambda key, path: path.with_name(path.name.replace("_GT_", "_NOISY_")))
        pairs += found
        problems += unpaired
    return pairs, problems
