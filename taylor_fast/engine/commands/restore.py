"""`taylor-fast restore IN -o OUT --checkpoint CKPT`: restore an image file or a folder of them.

Any size: images larger than --tile go through overlapping tiles blended smoothly (tiling.py),
so memory stays bounded and the output has the input's size, or `scale` times it for a
super-resolution checkpoint (the upscaled image). 8- and 16-bit PNG in and out (a 16-bit PNG
gives a 16-bit PNG), JPEG and the other formats of the data layer in, 8-bit out. Outputs are
upright (EXIF orientation applied), keep the input's ICC profile, its alpha (upscaled with the
image by a super-resolution checkpoint) and greyness (--channels rgb: always RGB), and JPEG/WebP
are written at --quality. A grey checkpoint (model.channels 1) reads every image as grey (a
colour one as its luma) and writes grey files; a colour checkpoint restores a grey image in
colour and writes the luma of the result.

Each output is written to a temporary file in its folder and renamed once complete, so a killed
run leaves no truncated image under an output's name; `--resume` keeps the outputs already there
and restores the rest (with the options given now, so give the stopped run's), and temporaries of
killed runs are removed. `--skip-bad` skips inputs that cannot be read (a macOS `._x.png`, a
truncated file) with a warning instead of stopping.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from tqdm import tqdm

from ..._arguments import integer
from ...data import ImageReadError, write_image
from ...data.image_io import Picture, read_picture
from .. import atomic, model
from ..chunks import Chunked
from ..config import TASKS, ConfigError
from ..evaluate import restore as restore_image
from ..restore import PlanError, plan
from ..tiling import count
from . import BACKEND_FIX, CommandError, check_task, check_tiles, device, reports_errors


def add_arguments(parser):
    parser.add_argument("input", type=Path, metavar="IN", help="an image file or a folder of images")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT",
                        help="output file, or folder (created) for a folder input")
    parser.add_argument("--checkpoint", type=Path, required=True, help="a run's last.ckpt")
    parser.add_argument("--task", choices=TASKS,
                        help="the task the checkpoint must have been trained for (checked; default: its own)")
    parser.add_argument("--order", type=int, help="unroll to this order instead of the trained one (see eval --orders)")
    parser.add_argument("--tile", type=int, default=512, help="tile side for large images (0: whole image; default 512)")
    parser.add_argument("--overlap", type=int, default=64, help="tile overlap in pixels (default 64)")
    parser.add_argument("--format", choices=("png", "jpg", "tif", "bmp", "webp"),
                        help="output format for a folder (default: each input's own)")
    parser.add_argument("--bits", choices=("same", "8", "16"), default="same",
                        help="output bits per sample (default: 16 for a 16-bit PNG input, else 8)")
    parser.add_argument("--quality", type=integer(1, 100), default=95,
                        help="JPEG and WebP quality, 1..100 (default 95; JPEG without chroma subsampling)")
    parser.add_argument("--channels", choices=("same", "rgb"), default="same",
                        help="same: a grey input or a grey checkpoint gives a grey output, and alpha is kept "
                             "(default); rgb: always RGB")
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace existing outputs (never the inputs)")
    existing.add_argument("--resume", action="store_true",
                          help="keep the outputs already there (a stopped run's) and restore only the missing ones")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip inputs that cannot be read, with a warning, instead of stopping")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (over the tiles of all images)")


def _warn(text: str) -> None:
    tqdm.write(f"taylor-fast restore: {text}", file=sys.stderr)


def _summary(written: int, kept: int, skipped: int, where: Path, scale: int) -> str:
    notes = ([f"{kept} already there kept"] if kept else []) + ([f"{skipped} unreadable skipped"] if skipped else [])
    upscaled = f" (upscaled x{scale})" if scale > 1 else ""
    return f"restored {written} image{'s' if written != 1 else ''}{upscaled} -> {where}" + (
        f" ({', '.join(notes)})" if notes else "")


def _channels(restored: torch.Tensor, picture: Picture, channels: str) -> torch.Tensor:
    """What --channels asks to write: the input `picture`'s channels (same), or RGB (rgb: a grey
    model's output repeated to three channels)."""
    if channels == "same":
        return picture.keep(restored)
    return restored.expand(3, -1, -1) if restored.shape[0] == 1 else restored


def _write(job, restored: torch.Tensor, picture: Picture, args) -> None:
    """The output of `job`, with the input `picture`'s channels (unless --channels rgb), ICC
    profile and --quality, through a temporary renamed when complete (never a truncated file
    under the output's name). The temporary keeps the output's extension, so the format is the
    output's."""
    job.target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic.writing(job.target) as temporary:
            write_image(temporary, _channels(restored, picture, args.channels), bits=job.bits, quality=args.quality,
                        icc_profile=picture.icc_profile)
    except OSError as exc:
        raise atomic.WriteError(atomic.failure(job.target, exc, "output")) from exc


@reports_errors("restore", PlanError)
def main(args) -> int:
    check_tiles(args)
    todo = plan(args.input, args.output, suffix=f".{args.format}" if args.format else None, bits=args.bits,
                existing="overwrite" if args.overwrite else "keep" if args.resume else "refuse",
                skip_bad=args.skip_bad)
    jobs = todo.jobs
    on = device(args.device)
    net, config, _ = model.load(args.checkpoint, on)
    check_task(args, config)
    if args.order is not None and args.order != net.order:
        try:
            net = model.at_order(net, args.order)
        except ValueError as exc:
            raise ConfigError(f"--order: {exc}") from None
    model.check_backend(net, on, BACKEND_FIX)
    for text in todo.unreadable:  # after the checks above, so that a refused command prints one line
        _warn(f"skipped: {text}")
    if args.input.is_dir():
        args.output.mkdir(parents=True, exist_ok=True)
    for job in jobs:  # temporaries of killed runs; never outputs, since they were not renamed
        for stale in atomic.leftovers(job.target):
            stale.unlink(missing_ok=True)
    # one bar over the tiles of all images: a folder advances image by image, a large image tile by tile
    tiles = sum(count(*job.size, args.tile or None, args.overlap) for job in jobs)
    run = Chunked(net)  # one for all images: a tile batch that ran out of memory stays split
    written, skipped = 0, len(todo.unreadable)
    with tqdm(total=tiles, desc="restore", unit="tile", disable=args.no_progress or tiles <= 1) as bar:
        for job in jobs:
            bar.set_postfix_str(job.source.name, refresh=False)
            try:
                picture = read_picture(job.source, net.channels)
            except ImageReadError as exc:
                if not args.skip_bad:
                    raise CommandError(f"{exc}; outputs written before it: {written}; rerun with --resume to keep "
                                       "them, and --skip-bad to skip unreadable inputs" if args.input.is_dir()
                                       else str(exc)) from None
                _warn(f"skipped: {exc}")
                skipped += 1
                bar.update(count(*job.size, args.tile or None, args.overlap))
                continue
            restored = restore_image(run, picture.pixels, args.tile or None, args.overlap, progress=bar.update)
            _write(job, restored, picture, args)
            written += 1
    where = jobs[0].target if len(jobs) == 1 and not todo.kept else args.output
    print(_summary(written, len(todo.kept), skipped, where, net.scale), file=sys.stdout)
    return 0
