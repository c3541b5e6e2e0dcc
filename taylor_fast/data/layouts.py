"""The deraining and deblurring benchmark layouts as distributed, each registered under its name
(denoising: layouts_denoise.py; super-resolution: layouts_sr.py).

A lister returns (pairs, problems): problems are files without a partner, each naming the file
found and the partner file expected; the registry then checks the pairs' files and sizes.
Structural faults (a missing folder or list file) raise DatasetError at once.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

from .image_io import list_images, natural_key
from .matching import by_name, by_stem, match, require_folder, same_name
from .pairs import DatasetError, DatasetWarning, ImageRef, Pair
from .registry import register


def _numbered(folder: Path, prefix: str) -> tuple[dict[str, Path], list[str]]:
    """{'rain-N': path} for the files named PREFIX-N.ext in `folder` (N keeps its zero padding),
    and the names two files share."""
    pattern = re.compile(rf"{prefix}-(\d+)")
    files = [p for p in list_images(folder) if pattern.fullmatch(p.stem)]
    return by_name(files, key=lambda p: f"rain-{pattern.fullmatch(p.stem).group(1)}")


def input_target(input_dir: Path, target_dir: Path, dataset: str, scale: int = 1) -> tuple[list[Pair], list[str]]:
    """Files paired by name; when no name matches (rain-N / norain-N) and the counts agree, by
    sorted order. Partial matches are paired by name, so a stray file is reported, not shifted.
    One of the two folders may be missing: each file of the other then names its partner."""
    if not input_dir.is_dir() and not target_dir.is_dir():
        raise DatasetError(f"{dataset}: expected folders {input_dir} and {target_dir}, which do not exist")
    (inputs, input_clashes), (targets, target_clashes) = by_stem(input_dir), by_stem(target_dir)
    clashes = input_clashes + target_clashes
    if not set(inputs) & set(targets) and len(inputs) == len(targets) and not clashes:
        return [Pair(i.stem, ImageRef(i), ImageRef(t), scale=scale)
                for i, t in zip(inputs.values(), targets.values())], []
    pairs, problems = match(inputs, targets, same_name(target_dir), same_name(input_dir), scale=scale)
    return pairs, clashes + problems


def _exclusions(exclude, dataset: str) -> set[int]:
    """Image numbers to drop, from a list file (one 'rain-12.png', 'norain-12.png' or '12' per
    line, '#' starts a comment) or from an iterable of such entries."""
    if isinstance(exclude, (str, Path)):
        source = Path(exclude)
        if not source.is_file():
            raise DatasetError(f"{dataset}: exclusion list {source} does not exist")
        entries = source.read_text().splitlines()
    else:
        source, entries = "exclude", [str(e) for e in exclude]
    numbers = set()
    for line_no, line in enumerate(entries, 1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        digits = re.findall(r"\d+", Path(entry).name)
        if not digits:
            raise DatasetError(f"{dataset}: line {line_no} of {source}: {line!r} names no image number")
        numbers.add(int(digits[-1]))
    return numbers


def _rain100(input_dir: Path, target_dir: Path, dataset: str, exclude=None):
    (inputs, input_clashes), (targets, target_clashes) = _numbered(input_dir, "rain"), _numbered(target_dir, "norain")
    if exclude is not None:
        dropped = _exclusions(exclude, dataset)
        number = {key: int(key.rsplit("-", 1)[1]) for key in set(inputs) | set(targets)}
        unmatched = dropped - set(number.values())
        if unmatched:
            warnings.warn(f"{dataset}: {len(unmatched)} excluded numbers match no image "
                          f"(e.g. {sorted(unmatched)[:5]})", DatasetWarning, stacklevel=4)
        inputs = {k: p for k, p in inputs.items() if number[k] not in dropped}
        targets = {k: p for k, p in targets.items() if number[k] not in dropped}
    # rain-001.png <-> norain-001.png
    pairs, problems = match(inputs, targets, lambda key, path: target_dir / f"no{path.name}",
                            lambda key, path: input_dir / path.name[2:])
    return pairs, input_clashes + target_clashes + problems


_RAIN100_TEST = "ROOT/rainy/rain-001.png ... with ground truth ROOT/norain-001.png ..."
_RAIN100_TRAIN = "ROOT/rain-1.png ... with ground truth ROOT/norain-1.png ... in one folder"


@register("rain100h", layout=_RAIN100_TEST, splits=("test",))
def rain100h(root, split):
    return _rain100(require_folder(root / "rainy", "rain100h"), root, "rain100h")


@register("rain100l", layout=_RAIN100_TEST, splits=("test",))
def rain100l(root, split):
    return _rain100(require_folder(root / "rainy", "rain100l"), root, "rain100l")


@register("rain100h-train", layout=_RAIN100_TRAIN, splits=("train",))
def rain100h_train(root, split, exclude=None):
    """RainTrainH; `exclude` (a list file or entries) drops e.g. the 546 images whose backgrounds
    reappear in Rain100H's test set, as the paper does."""
    return _rain100(root, root, "rain100h-train", exclude)


@register("rain100l-train", layout=_RAIN100_TRAIN, splits=("train",))
def rain100l_train(root, split, exclude=None):
    return _rain100(root, root, "rain100l-train", exclude)


@register("rain800", layout="ROOT/{training,test_syn}/N.jpg, each clean (left half) | rainy (right half)",
          splits=("train", "test"))
def rain800(root, split):
    folder = require_folder(root / {"train": "training", "test": "test_syn"}[split], "rain800")
    return [Pair(p.stem, ImageRef(p, "right"), ImageRef(p, "left")) for p in list_images(folder)], []


@register("rain13k", layout="ROOT/input/* and ROOT/target/* (MPRNet layout; its test sets too)")
def rain13k(root, split):
    return input_target(root / "input", root / "target", "rain13k")


@register("paired", layout="ROOT/input/* and ROOT/target/*, or input=DIR and target=DIR", root_optional=True)
def paired(root, split, input=None, target=None, scale=1):
    """`scale` > 1: the targets are that many times larger than the inputs (super-resolution)."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale: expected a positive integer, got {scale!r}")
    if (input is None) != (target is None):
        raise DatasetError("paired: give both input= and target= folders, or neither and a root")
    if input is None and root is None:
        raise DatasetError("paired: give a root holding input/ and target/, or input= and target= folders")
    input_dir = Path(input) if input is not None else root / "input"
    target_dir = Path(target) if target is not None else root / "target"
    return input_target(input_dir, target_dir, "paired", scale)


@register("gopro", layout="ROOT/{train,test}/GOPRxxxx_xx_xx/{blur,blur_gamma,sharp}/NNNNNN.png",
          splits=("train", "test"))
def gopro(root, split, blur="blur"):
    """`blur` picks the blurred images: "blur" (most papers) or "blur_gamma"."""
    if blur not in ("blur", "blur_gamma"):
        raise DatasetError(f"gopro: option blur: expected 'blur' or 'blur_gamma', got {blur!r}")
    pairs, problems = [], []
    for sequence in sorted((p for p in require_folder(root / split, "gopro").iterdir() if p.is_dir()),
                           key=lambda p: natural_key(p.name)):
        folders = [sequence / blur, sequence / "sharp"]
        if not any(f.is_dir() for f in folders):
            problems.append(f"missing folders {folders[0]} and {folders[1]}")
            continue
        (inputs, input_clashes), (targets, target_clashes) = (
            by_name(list_images(f) if f.is_dir() else [], key=lambda p: f"{sequence.name}/{p.stem}") for f in folders)
        found, unpaired = match(inputs, targets, same_name(folders[1]), same_name(folders[0]))
        pairs += found
        problems += input_clashes + target_clashes + unpaired
    return pairs, problems


@register("hide", layout="ROOT/test/{test-close-ups,test-long-shot}/NAME.png with ground truth "
          "ROOT/GT/NAME.png, or ROOT/input/* and ROOT/target/*", splits=("test",))
def hide(root, split):
    if (root / "input").is_dir() and (root / "target").is_dir():
        return input_target(root / "input", root / "target", "hide")
    test, truth = require_folder(root / "test", "hide"), root / "GT"
    subsets = [test / s for s in ("test-close-ups", "test-long-shot") if (test / s).is_dir()]
    if not subsets:
        raise DatasetError(f"hide: expected folder {test / 'test-close-ups'} or {test / 'test-long-shot'}")
    inputs, clashes = by_name([p for s in subsets for p in list_images(s)], key=lambda p: f"{p.parent.name}/{p.stem}")
    targets = {key: truth / p.name for key, p in inputs.items() if (truth / p.name).is_file()}
    pairs, problems = match(inputs, targets, same_name(truth), None)  # GT/ also holds the training set's ground truth
    return pairs, clashes + problems


def _realblur(root: Path, split: str, camera: str, list_file) -> tuple[list[Pair], list[str]]:
    dataset = f"realblur-{camera.lower()}"
    listing = root / (list_file or f"RealBlur_{camera}_{split}_list.txt")
    if not listing.is_file():
        raise DatasetError(f"{dataset}: list file {listing} does not exist")
    pairs = []
    for line_no, line in enumerate(listing.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise DatasetError(f"{dataset}: line {line_no} of {listing}: expected '<gt path> <blur path>', "
                               f"got {line.strip()!r}")
        sharp, blurred = fields
        pairs.append(Pair(str(Path(blurred).with_suffix("").as_posix()), ImageRef(root / blurred),
                          ImageRef(root / sharp)))
    return pairs, []


_REALBLUR = "ROOT/RealBlur_{camera}_{split}_list.txt with lines '<gt path> <blur path>' relative to ROOT"


@register("realblur-j", layout=_REALBLUR.format(camera="J", split="{train,test}"), splits=("train", "test"))
def realblur_j(root, split, list_file=None):
    """`list_file` (relative to ROOT, or absolute) replaces RealBlur_J_<split>_list.txt."""
    return _realblur(root, split, "J", list_file)


@register("realblur-r", layout=_REALBLUR.format(camera="R", split="{train,test}"), splits=("train", "test"))
def realblur_r(root, split, list_file=None):
    """`list_file` (relative to ROOT, or absolute) replaces RealBlur_R_<split>_list.txt."""
    return _realblur(root, split, "R", list_file)
