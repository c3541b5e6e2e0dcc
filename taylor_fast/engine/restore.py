"""Restoring image files with a trained model: which files go where, and the bit depth they keep.

Inputs are never overwritten: an output path that is (or links to) an input file is refused,
whatever --overwrite says. Two inputs that would land on one output (`photo.jpg` and `photo.png`
under `--format png`) are refused before any work, naming both. An existing output is refused
(`existing="refuse"`), replaced ("overwrite") or kept and skipped ("keep", for `--resume`: outputs
are written to a temporary and renamed, so one that exists under its name is complete).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..data.image_io import IMAGE_EXTENSIONS, ImageReadError, bit_depth, image_size, list_images
from .atomic import is_temporary

EXISTING = ("refuse", "overwrite", "keep")


class PlanError(ValueError):
    """The inputs and outputs asked for cannot be matched up safely."""


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path
    bits: int
    size: tuple[int, int]  # (height, width) from the input's header


@dataclass
class Plan:
    jobs: list[Job]  # to restore, in input order
    kept: list[Path] = field(default_factory=list)  # outputs already complete (existing="keep")
    unreadable: list[str] = field(default_factory=list)  # why each input skipped under skip_bad is unreadable


def _same_file(a: Path, b: Path) -> bool:
    return b.exists() and (a.resolve() == b.resolve() or a.samefile(b))


def _output_bits(source: Path, target: Path, bits: str) -> int:
    if bits == "same":
        return 16 if bit_depth(source) == 16 and target.suffix.lower() == ".png" else 8
    wanted = int(bits)
    if wanted == 16 and target.suffix.lower() != ".png":
        raise PlanError(f"--bits 16: only PNG holds 16 bits per sample, but the output is {target.name}")
    return wanted


def _pairs(source: Path, out: Path, suffix: str | None) -> list[tuple[Path, Path]]:
    if not source.exists():
        raise PlanError(f"input {source} does not exist")
    if not source.is_dir():
        if source.suffix.lower() not in IMAGE_EXTENSIONS:
            raise PlanError(f"input {source} is not an image file ({', '.join(IMAGE_EXTENSIONS)})")
        if not out.is_dir() and not out.suffix:
            raise PlanError(f"-o {out}: the input is a file, so the output must be a file name with an image extension "
                            f"(e.g. -o {out / source.name}) or an existing folder")
        if suffix and not out.is_dir() and out.suffix.lower() != suffix:
            raise PlanError(f"--format {suffix[1:]} but -o {out} has another extension")
        return [(source, out / (source.stem + (suffix or source.suffix)) if out.is_dir() else out)]
    # a temporary of an earlier restore into this very folder is no input
    files = [f for f in list_images(source) if not is_temporary(f)]
    if not files:
        raise PlanError(f"input folder {source} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    if (out.exists() and not out.is_dir()) or (not out.exists() and out.suffix.lower() in IMAGE_EXTENSIONS):
        raise PlanError(f"-o {out}: the input is a folder, so the output must be a folder too, not an image file")
    pairs, claimed = [], {}
    for f in files:
        target = out / (f.stem + (suffix or f.suffix))
        # case-folded: on macOS and Windows file systems Photo.png and photo.png are one file
        first = claimed.setdefault(target.name.casefold(), f)
        if first != f:
            raise PlanError(f"inputs {first.name} and {f.name} would both be written to {target}; restore one of "
                            f"them separately{' or leave out --format' if suffix else ''}")
        pairs.append((f, target))
    return pairs


def plan(source: Path, out: Path, *, suffix: str | None = None, bits: str = "same", existing: str = "refuse",
         skip_bad: bool = False) -> Plan:
    """What to restore, checked before any work.

    source: an image file (out is then a file, or an existing folder to put it in) or a folder
    (out is a folder; names are kept, the extension too unless `suffix` is given). An input whose
    header cannot be read is an error, or with `skip_bad` noted in Plan.unreadable and left out.
    """
    if existing not in EXISTING:
        raise ValueError(f"existing: expected one of {', '.join(EXISTING)}, got {existing!r}")
    pairs = _pairs(source, out, suffix)
    inputs = [f for f, _ in pairs]
    for _, dst in pairs:
        if dst.suffix.lower() not in IMAGE_EXTENSIONS:
            raise PlanError(f"output {dst}: unknown image extension {dst.suffix!r} ({', '.join(IMAGE_EXTENSIONS)})")
        if any(_same_file(f, dst) for f in inputs):
            raise PlanError(f"output {dst} is an input file; restore never overwrites its inputs (choose another -o)")
        if dst.exists() and existing == "refuse":
            raise PlanError(f"output {dst} exists; pass --overwrite to replace it, or --resume to keep it and "
                            "restore only the missing outputs")
    result = Plan([])
    for src, dst in pairs:
        if dst.exists() and existing == "keep":
            result.kept.append(dst)
            continue
        try:
            size = image_size(src)
            job = Job(src, dst, _output_bits(src, dst, bits), size)
        except ImageReadError as exc:
            if not skip_bad:
                raise PlanError(f"{exc}{'; pass --skip-bad to skip unreadable inputs' if source.is_dir() else ''}"
                                ) from None
            result.unreadable.append(str(exc))
            continue
        result.jobs.append(job)
    return result
