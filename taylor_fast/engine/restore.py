"""Restoring image files with a trained model: which files go where, and the bit depth they keep.

Inputs are never overwritten: an output path that is (or links to) an input file is refused,
whatever --overwrite says; other existing outputs are refused unless --overwrite is given.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..data.image_io import IMAGE_EXTENSIONS, bit_depth, list_images


class PlanError(ValueError):
    """The inputs and outputs asked for cannot be matched up safely."""


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path
    bits: int


def _same_file(a: Path, b: Path) -> bool:
    return b.exists() and (a.resolve() == b.resolve() or a.samefile(b))


def _output_bits(source: Path, target: Path, bits: str) -> int:
    if bits == "same":
        return 16 if bit_depth(source) == 16 and target.suffix.lower() == ".png" else 8
    wanted = int(bits)
    if wanted == 16 and target.suffix.lower() != ".png":
        raise PlanError(f"--bits 16: only PNG holds 16 bits per sample, but the output is {target.name}")
    return wanted


def plan(source: Path, out: Path, *, suffix: str | None = None, bits: str = "same",
         overwrite: bool = False) -> list[Job]:
    """The (input, output, bit depth) of every image to restore.

    source: an image file (out is then a file, or an existing folder to put it in) or a folder
    (out is a folder; names are kept, the extension too unless `suffix` is given).
    """
    if not source.exists():
        raise PlanError(f"input {source} does not exist")
    if source.is_dir():
        files = list_images(source)
        if not files:
            raise PlanError(f"input folder {source} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        if (out.exists() and not out.is_dir()) or (not out.exists() and out.suffix.lower() in IMAGE_EXTENSIONS):
            raise PlanError(f"-o {out}: the input is a folder, so the output must be a folder too, not an image file")
        pairs = [(f, out / (f.stem + (suffix or f.suffix))) for f in files]
    else:
        if source.suffix.lower() not in IMAGE_EXTENSIONS:
            raise PlanError(f"input {source} is not an image file ({', '.join(IMAGE_EXTENSIONS)})")
        if not out.is_dir() and not out.suffix:
            raise PlanError(f"-o {out}: the input is a file, so the output must be a file name with an image extension "
                            f"(e.g. -o {out / source.name}) or an existing folder")
        target = out / (source.stem + (suffix or source.suffix)) if out.is_dir() else out
        if suffix and not out.is_dir() and out.suffix.lower() != suffix:
            raise PlanError(f"--format {suffix[1:]} but -o {out} has another extension")
        pairs = [(source, target)]
    inputs = [f for f, _ in pairs]
    jobs = []
    for src, dst in pairs:
        if dst.suffix.lower() not in IMAGE_EXTENSIONS:
            raise PlanError(f"output {dst}: unknown image extension {dst.suffix!r} ({', '.join(IMAGE_EXTENSIONS)})")
        if any(_same_file(f, dst) for f in inputs):
            raise PlanError(f"output {dst} is an input file; restore never overwrites its inputs (choose another -o)")
        if dst.exists() and not overwrite:
            raise PlanError(f"output {dst} exists; pass --overwrite to replace it")
        jobs.append(Job(src, dst, _output_bits(src, dst, bits)))
    return jobs
