"""`taylor-fast eval`: PSNR/SSIM of a checkpoint on a dataset -> OUT/metrics.json and metrics.md.

    taylor-fast eval --checkpoint RUN/last.ckpt --dataset rain100h --root DATA/Rain100H --out RESULTS
    taylor-fast eval --checkpoint RUN/last.ckpt --out RESULTS        # every set in the config's eval.sets
    taylor-fast eval ... --orders 0-6     # the same trained F and G unrolled to orders 0..6
    taylor-fast eval --task denoise --checkpoint RUN/last.ckpt --dataset set12 --root DATA/Set12 \
        --option sigma=25 --out RESULTS   # noise made on the fly, seeded per file name
    taylor-fast eval --task sr --checkpoint RUN/last.ckpt --dataset set5 --root DATA/Set5 --out RESULTS

--orders with a shared G (the paper's setting) applies the one trained G k times for every k
asked, also beyond the order it was trained at; with per-order G weights (model.shared false),
order m uses the first m trained sets, so orders above the trained one are refused. The paper's
Tables 3 and 4 train one model per order instead (configs/*_o0.yaml ... _o6.yaml).
"""
from __future__ import annotations

import sys
from pathlib import Path

from ...data.registry import applied_split
from .. import model
from ..config import TASKS, ConfigError, check_dataset, expand, parse_assignment
from ..datasets import open_for_model
from ..evaluate import check_sizes, evaluate, parse_orders, report, write
from . import BACKEND_FIX, check_folder, check_task, check_tiles, device, reports_errors


def add_arguments(parser):
    parser.add_argument("--checkpoint", type=Path, required=True, help="a run's last.ckpt")
    parser.add_argument("--task", choices=TASKS,
                        help="the task the checkpoint must have been trained for (checked; default: its own)")
    parser.add_argument("--dataset", help="dataset name (default: every entry of the checkpoint's eval.sets)")
    parser.add_argument("--root", help="dataset folder")
    parser.add_argument("--split", help="split for layouts that have several (default test; refused for the layouts "
                                        "whose folder is the set itself, such as paired)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="dataset reader option, e.g. --option blur=blur_gamma, --option sigma=25 (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help="folder for metrics.json, metrics.md, images/")
    parser.add_argument("--orders", help="orders to evaluate, e.g. 3, 0-6 or 0,3 (default: the trained order)")
    parser.add_argument("--channel", choices=("y", "rgb"),
                        help="y: BT.601 luma (deraining papers); rgb (deblurring); default: the config's eval.channel")
    parser.add_argument("--crop-border", type=int, help="pixels dropped on each side before the metrics")
    parser.add_argument("--quantize", action="store_true", help="round outputs to uint8 levels first (MPRNet)")
    parser.add_argument("--save-images", action="store_true", help="write the restored images to OUT/images/")
    parser.add_argument("--tile", type=int, default=0, help="run images larger than this in tiles (0: whole)")
    parser.add_argument("--overlap", type=int, default=32, help="tile overlap in pixels")
    parser.add_argument("--skip-bad", action="store_true", help="skip unreadable or unpaired images with a warning")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--no-progress", action="store_true")


def _sets(args, config: dict) -> list[dict]:
    """The sets to evaluate, each with the labels its settings go by in error messages."""
    if args.dataset:
        options = dict(parse_assignment(text, "--option", "blur=blur_gamma") for text in args.option)
        check_dataset(args.dataset, args.split, options, ("--dataset", "--split", "--option"))
        if args.split is not None and applied_split(args.dataset, args.split) is None:
            raise ConfigError(f"--split {args.split}: {args.dataset} has no splits (its folder is the set itself); "
                              "leave --split out")
        return [{"label": None, "dataset": args.dataset, "root": args.root, "split": args.split, "options": options,
                 "keys": ("--dataset", "--root", "--option")}]
    for flag, given in (("--root", args.root), ("--split", args.split), ("--option", args.option)):
        if given:
            raise ConfigError(f"{flag} needs --dataset (which layout the folder holds)")
    if not config["eval"]["sets"]:
        raise ConfigError("give --dataset and --root: the checkpoint's config lists no eval.sets")
    sets = []
    for index, entry in enumerate(config["eval"]["sets"]):
        entry = {"root": None, "split": None, "options": {}, **entry}
        where = f"eval.sets[{index}]"
        check_dataset(entry["dataset"], entry["split"], entry["options"],
                      (f"{where}.dataset", f"{where}.split", f"{where}.options"))
        sets.append({**entry, "keys": (f"{where}.dataset", f"{where}.root", f"{where}.options")})
    return sets


def _at_orders(net, orders: list[int]) -> dict:
    try:
        return {order: net if order == net.order else model.at_order(net, order) for order in orders}
    except ValueError as exc:
        raise ConfigError(f"--orders: {exc}") from None


def _degradation(dataset) -> dict | None:
    """How the inputs were made on the fly (noise level and seeding, bicubic scale), if they were."""
    made = [pair.degradation for pair in dataset.pairs if pair.degradation is not None]
    return made[0].describe() if made else None


@reports_errors("eval")
def main(args) -> int:
    # every check first (settings, checkpoint, datasets, image sizes, backend): nothing runs or is
    # written until all of them pass
    check_tiles(args)
    check_folder(args.out, "--out")
    where = device(args.device)
    net, config, progress = model.load(args.checkpoint, where)
    check_task(args, config)
    trained = net.order
    orders = parse_orders(args.orders) if args.orders else [trained]
    nets = _at_orders(net, orders)
    for each in nets.values():
        model.check_backend(each, where, BACKEND_FIX)
    conventions = {"channel": args.channel or config["eval"]["channel"],
                   "crop_border": config["eval"]["crop_border"] if args.crop_border is None else args.crop_border,
                   "quantize": args.quantize or config["eval"]["quantize"]}
    if args.channel == "y" and config["model"]["channels"] != 3:
        raise ConfigError("--channel y: the checkpoint's model is grey (model.channels 1) and Y needs colour images; "
                          "use --channel rgb (the grey channel)")
    crop_option = "--crop-border" if args.crop_border is not None else "eval.crop_border"
    sets = []
    for entry in _sets(args, config):
        dataset = open_for_model(config["model"], entry["dataset"], entry["root"], entry["split"], entry["options"],
                                 skip_bad=args.skip_bad, skip_hint="--skip-bad", keys=entry["keys"])
        check_sizes(dataset, conventions["crop_border"], crop_option)
        sets.append((entry, dataset))
    for entry, dataset in sets:
        out_dir = args.out if entry["label"] is None else args.out / entry["label"]
        results = evaluate(nets, dataset, **conventions, tile=args.tile or None, overlap=args.overlap,
                           images_dir=out_dir / "images" if args.save_images else None, bar=not args.no_progress)
        about = {"checkpoint": str(args.checkpoint), "iteration": progress.get("iteration"),
                 "model": config["model"]["backbone"], "trained_order": trained, "shared_g": config["model"]["shared"],
                 "task": config["task"], "scale": net.scale, "channels": config["model"]["channels"],
                 "dataset": entry["dataset"], "root": str(expand(entry["root"])),
                 "split": applied_split(entry["dataset"], entry["split"]), "degradation": _degradation(dataset),
                 "tile": args.tile or None}
        record = report(results, primary=trained if trained in results else orders[-1], about=about, **conventions)
        write(out_dir, record)
        summary = ", ".join(f"order {o}: {r['psnr']:.2f} dB / {r['ssim']:.4f}" for o, r in results.items())
        print(f"{entry['dataset']} ({record['count']} images, {conventions['channel']}): {summary} -> "
              f"{out_dir / 'metrics.json'}", file=sys.stdout)
    return 0
