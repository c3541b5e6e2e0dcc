"""`taylor-fast synth`: make a `paired` dataset (OUT/input, OUT/target) of synthetic rain, blur,
noise or low resolution.

Clean images come from --clean DIR, or else from the colour photographs bundled in scikit-image
(no download). Rain and blur of pair i draw from numpy's SeedSequence (seed, i); noise draws from
(seed, CRC-32 of the pair's name), as the on-the-fly denoising test sets do, so a seed reproduces
the set. Noisy inputs are saved as 8-bit PNGs, so unlike the on-the-fly sets they are clipped to
[0, 1] and rounded. Low-resolution inputs (--kind sr) are MATLAB-style bicubic downsamplings of
the target, which is first cropped to a multiple of --scale; open them with scale=S.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .data import BUNDLED_PHOTOS, RAIN_PRESETS, Bicubic, BlurStyle, Noise, add_motion_blur, add_rain, bundled_photo
from .data.degradations import SCALES, check_sigma
from .data.image_io import IMAGE_EXTENSIONS, list_images, read_image, to_grey, write_image
from .data.photos import unavailable

_FORMAT = ".png"


def add_arguments(parser):
    parser.add_argument("--kind", required=True, choices=("rain", "blur", "noise", "sr"),
                        help="degradation to synthesise (sr: bicubic downsampling by --scale)")
    parser.add_argument("--clean", type=Path, help="folder of clean images (default: scikit-image's bundled photos)")
    parser.add_argument("--out", type=Path, required=True, help="dataset folder to create (gets input/ and target/)")
    parser.add_argument("--count", type=int, help="number of pairs (default: one per clean image; "
                        "more reuse the images with new degradations)")
    parser.add_argument("--seed", type=int, default=0, help="seed for every random choice (default 0)")
    parser.add_argument("--preset", choices=sorted(RAIN_PRESETS), help="rain style (rain only; default light)")
    parser.add_argument("--noise", type=float, default=0.0,
                        help="Gaussian noise std on the 0..255 scale added after blurring (blur only; default 0)")
    parser.add_argument("--sigma", type=float, help="Gaussian noise std on the 0..255 scale (noise only; default 25)")
    parser.add_argument("--poisson", type=float, default=0.0,
                        help="Poisson gain a on [0, 1] before the Gaussian noise, var = a x + sigma^2 (noise only)")
    parser.add_argument("--scale", type=int, choices=SCALES, help="downsampling factor (sr only; required there)")
    parser.add_argument("--grey", action="store_true", help="write 1-channel grey images (BT.601 luma of colour ones)")
    parser.add_argument("--max-side", type=int, help="shrink clean images whose longer side exceeds this (area filter)")
    parser.add_argument("--overwrite", action="store_true", help="replace files already in OUT")


def _sources(clean: Path | None):
    """[(name, loader)] of the clean images (a --clean folder was checked by _check)."""
    if clean is None:
        return [(name, lambda name=name: bundled_photo(name)) for name in BUNDLED_PHOTOS]
    return [(path.stem, lambda path=path: read_image(path)) for path in list_images(clean)]


def shrunk_size(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    """(height, width) of an image once --max-side has shrunk it (unchanged when it fits)."""
    if max_side is None or max(height, width) <= max_side:
        return height, width
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _shrink(image: torch.Tensor, max_side: int | None) -> torch.Tensor:
    size = shrunk_size(*image.shape[1:], max_side)
    return image if size == tuple(image.shape[1:]) else F.interpolate(image[None], size=size, mode="area")[0]


def _degrade(args, clean: torch.Tensor, index: int, name: str) -> torch.Tensor:
    seed = [args.seed, index]
    if args.kind == "rain":
        return add_rain(clean, args.preset or "light", seed=seed)
    if args.kind == "noise":
        return Noise(_sigma(args), args.poisson, args.seed).for_image(clean, name).clamp(0, 1)
    if args.kind == "sr":
        return Bicubic(args.scale)(clean)
    sigma = args.noise / 255
    return add_motion_blur(clean, BlurStyle(noise=(sigma, sigma)), seed=seed)[0]


def _sigma(args) -> float:
    return 25.0 if args.sigma is None else args.sigma


def _check(args) -> str | None:
    if args.count is not None and args.count < 1:
        return f"--count: expected a positive number, got {args.count}"
    if args.seed < 0:
        return f"--seed: expected a non-negative integer, got {args.seed}"
    if args.preset is not None and args.kind != "rain":
        return "--preset applies to --kind rain only"
    if args.noise and args.kind != "blur":
        return "--noise applies to --kind blur only"
    if args.noise < 0:
        return f"--noise: expected a non-negative std, got {args.noise}"
    if (args.sigma is not None or args.poisson) and args.kind != "noise":
        return "--sigma and --poisson apply to --kind noise only"
    if args.kind == "noise":
        try:
            Noise(check_sigma(_sigma(args), "--sigma"), check_sigma(args.poisson, "--poisson"), args.seed)
        except ValueError as exc:
            return str(exc)
    if (args.scale is not None) != (args.kind == "sr"):
        return "--scale applies to --kind sr only" if args.scale is not None else "--kind sr needs --scale 2, 3 or 4"
    if args.max_side is not None and args.max_side < 1:
        return f"--max-side: expected a positive size, got {args.max_side}"
    if args.out.exists() and not args.out.is_dir():
        return f"--out {args.out}: expected a folder, but it is an existing file"
    if args.clean is None and unavailable():
        return f"{unavailable()}, or give --clean DIR"
    if args.clean is not None and not args.clean.is_dir():
        why = "it is a file" if args.clean.exists() else "it does not exist"
        return f"--clean {args.clean}: expected a folder of clean images, but {why}"
    if args.clean is not None and not list_images(args.clean):
        return f"--clean {args.clean} holds no images ({', '.join(IMAGE_EXTENSIONS)})"
    return None


def main(args) -> int:
    problem = _check(args)
    if problem:
        print(f"taylor-fast synth: {problem}", file=sys.stderr)
        return 2
    sources = _sources(args.clean)
    count = args.count or len(sources)
    names = [f"{i:04d}_{sources[i % len(sources)][0]}" for i in range(count)]
    outputs = [args.out / folder / f"{name}{_FORMAT}" for name in names for folder in ("input", "target")]
    record = args.out / "synth.json"
    existing = [p for folder in ("input", "target") if (args.out / folder).is_dir()
                for p in (args.out / folder).iterdir()] + ([record] if record.exists() else [])
    if existing and not args.overwrite:
        print(f"taylor-fast synth: {args.out} already holds {len(existing)} files (e.g. {existing[0]}); "
              "pass --overwrite to replace them, or choose another --out", file=sys.stderr)
        return 1
    strays = sorted(set(existing) - set(outputs) - {record})
    if strays:
        print(f"synth: warning: {len(strays)} files in {args.out} are not part of this set and stay "
              f"(e.g. {strays[0]}); the paired loader will see them", file=sys.stderr)
    for folder in ("input", "target"):
        (args.out / folder).mkdir(parents=True, exist_ok=True)

    multiple = args.scale or 1
    for index, name in enumerate(tqdm(names, desc=f"synth {args.kind}", unit="pair")):
        clean = _shrink(sources[index % len(sources)][1](), args.max_side)
        clean = to_grey(clean) if args.grey else clean
        clean = clean[:, : clean.shape[1] - clean.shape[1] % multiple, : clean.shape[2] - clean.shape[2] % multiple]
        clean = torch.floor(clean.clamp(0, 1) * 255 + 0.5) / 255  # the target as saved: degrade exactly that
        write_image(args.out / "target" / f"{name}{_FORMAT}", clean)
        write_image(args.out / "input" / f"{name}{_FORMAT}", _degrade(args, clean, index, name))
    settings = {"kind": args.kind, "count": count, "seed": args.seed, "max_side": args.max_side, "grey": args.grey,
                "clean": str(args.clean) if args.clean else "scikit-image bundled photos",
                "preset": (args.preset or "light") if args.kind == "rain" else None,
                "noise_std_255": args.noise if args.kind == "blur" else None,
                "noise": Noise(_sigma(args), args.poisson, args.seed).describe() if args.kind == "noise" else None,
                "scale": args.scale, "pairs": names}
    record.write_text(json.dumps(settings, indent=2) + "\n")
    how = f"'paired', {str(args.out)!r}" + (f", scale={args.scale}" if args.scale else "") + (
        ", channels=1" if args.grey else "")
    print(f"wrote {count} pairs to {args.out} (open with open_dataset({how}))")
    return 0
