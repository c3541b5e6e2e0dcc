"""The super-resolution layouts as BasicSR distributes them, each registered under its name:
the test sets (ROOT/GTmod12 with ROOT/LRbicx{2,3,4}), DIV2K, and a folder of high-resolution
images whose low-resolution inputs are made on the fly. Option `scale` picks the factor."""
from __future__ import annotations

from .degradations import Bicubic, check_scale
from .image_io import list_images
from .matching import by_name, by_stem, match, require_folder, same_name
from .pairs import ImageRef, Pair
from .registry import register

_BENCHMARK = "ROOT/GTmod12/NAME.png with ROOT/LRbicx{2,3,4}/NAME.png (BasicSR)"


def _benchmark(root, dataset: str, scale) -> tuple[list[Pair], list[str]]:
    scale = check_scale(scale, dataset)
    truth, small = require_folder(root / "GTmod12", dataset), root / f"LRbicx{scale}"
    (inputs, input_clashes), (targets, target_clashes) = by_stem(small), by_stem(truth)
    pairs, problems = match(inputs, targets, same_name(truth), same_name(small), scale=scale)
    return pairs, input_clashes + target_clashes + problems


@register("set5", layout=_BENCHMARK, splits=("test",), count=5)
def set5(root, split, scale=None):
    return _benchmark(root, "set5", scale)


@register("set14", layout=_BENCHMARK, splits=("test",), count=14)
def set14(root, split, scale=None):
    return _benchmark(root, "set14", scale)


@register("bsd100", layout=_BENCHMARK, splits=("test",), count=100)
def bsd100(root, split, scale=None):
    return _benchmark(root, "bsd100", scale)


@register("urban100", layout=_BENCHMARK, splits=("test",), count=100)
def urban100(root, split, scale=None):
    return _benchmark(root, "urban100", scale)


@register("manga109", layout=_BENCHMARK, splits=("test",), count=109)
def manga109(root, split, scale=None):
    return _benchmark(root, "manga109", scale)


@register("div2k", layout="ROOT/DIV2K_{train,valid}_HR/0001.png with ROOT/DIV2K_{train,valid}_LR_bicubic/"
          "X{2,3,4}/0001x2.png", splits=("train", "valid"))
def div2k(root, split, scale=None):
    scale = check_scale(scale, "div2k")
    truth = require_folder(root / f"DIV2K_{split}_HR", "div2k")
    small = root / f"DIV2K_{split}_LR_bicubic" / f"X{scale}"
    suffix = f"x{scale}"
    (inputs, input_clashes), (targets, target_clashes) = by_stem(small), by_stem(truth)
    inputs = {stem[: -len(suffix)]: p for stem, p in inputs.items() if stem.endswith(suffix)}
    pairs, problems = match(inputs, targets, lambda key, path: truth / f"{key}{path.suffix}",
                            lambda key, path: small / f"{key}{suffix}{path.suffix}", scale=scale)
    return pairs, input_clashes + target_clashes + problems


@register("hr-folder", layout="ROOT/* high-resolution images; the x{2,3,4} inputs made on the fly by MATLAB-style "
          "bicubic downsampling (each image cropped to a multiple of the scale first)")
def hr_folder(root, split, scale=None):
    degradation = Bicubic(check_scale(scale, "hr-folder"))
    files, clashes = by_name(list_images(root))
    return [Pair(name, None, ImageRef(p, multiple=degradation.scale), scale=degradation.scale,
                 degradation=degradation) for name, p in files.items()], clashes
