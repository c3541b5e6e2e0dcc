"""`taylor-fast restore IN -o OUT --checkpoint CKPT`: restore an image file or a folder of them.

Any size: images larger than --tile go through overlapping tiles blended smoothly (tiling.py),
so memory stays bounded and the output has the input's size, or `scale` times it for a
super-resolution checkpoint (the upscaled image). A grey checkpoint (model.channels 1) reads
images as grey and writes grey files. 8- and 16-bit PNG in and out (a 16-bit PNG gives a 16-bit
PNG), JPEG and the other formats of the data layer in, 8-bit out.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from tqdm import tqdm

from ...data import read_image, write_image
from ...data.image_io import image_size
from .. import model
from ..chunks import Chunked
from ..config import TASKS, ConfigError
from ..evaluate import restore as restore_image
from ..restore import PlanError, plan
from ..tiling import count
from . import check_task, check_tiles, reports_errors


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
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (never the inputs)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (over the tiles of all images)")


@reports_errors("restore", PlanError)
def main(args) -> int:
    check_tiles(args)
    jobs = plan(args.input, args.output, suffix=f".{args.format}" if args.format else None, bits=args.bits,
                overwrite=args.overwrite)
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    net, config, _ = model.load(args.checkpoint, device)
    check_task(args, config)
    if args.order is not None and args.order != net.order:
        try:
            net = model.at_order(net, args.order)
        except ValueError as exc:
            raise ConfigError(f"--order: {exc}") from None
    if args.input.is_dir():
        args.output.mkdir(parents=True, exist_ok=True)
    # one bar over the tiles of all images: a folder advances image by image, a large image tile by tile
    tiles = sum(count(*image_size(job.source), args.tile or None, args.overlap) for job in jobs)
    run = Chunked(net)  # one for all images: a tile batch that ran out of memory stays split
    with tqdm(total=tiles, desc="restore", unit="tile", disable=args.no_progress or tiles == 1) as bar:
        for job in jobs:
            bar.set_postfix_str(job.source.name, refresh=False)
            image = read_image(job.source, net.channels)
            restored = restore_image(run, image, args.tile or None, args.overlap, progress=bar.update)
            job.target.parent.mkdir(parents=True, exist_ok=True)
            write_image(job.target, restored, bits=job.bits)
    where = jobs[0].target if len(jobs) == 1 else args.output
    upscaled = f" (upscaled x{net.scale})" if net.scale > 1 else ""
    print(f"restored {len(jobs)} image{'s' if len(jobs) != 1 else ''}{upscaled} -> {where}", file=sys.stdout)
    return 0
