"""Evaluating a trained TaylorNet on a dataset: per-image and mean PSNR/SSIM at one or more
orders, with the metric conventions written next to the numbers."""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from tqdm import tqdm

from .. import metrics
from ..data import write_image
from ..taylornet import TaylorNet
from .chunks import Chunked
from .config import ConfigError
from .paths import safe_file_name
from .tiling import tiled


def parse_orders(text: str) -> list[int]:
    """'0-6' -> [0, ..., 6]; '0,3,6' -> [0, 3, 6]; '3' -> [3]."""
    orders = []
    try:
        for part in text.split(","):
            low, sep, high = part.strip().partition("-")
            orders += list(range(int(low), int(high) + 1)) if sep else [int(low)]
    except ValueError:
        raise ConfigError(f"--orders: expected e.g. 3, 0-6 or 0,3,6, got {text!r}") from None
    if not orders or min(orders) < 0 or max(orders) > 32:
        raise ConfigError(f"--orders: expected orders in 0..32, got {text!r}")
    return sorted(set(orders))


@torch.no_grad()
def restore(net: TaylorNet | Chunked, image: torch.Tensor, tile: int | None = None, overlap: int = 32,
            progress=None) -> torch.Tensor:
    """The model's output for a (C, H, W) image in [0, 1] (C x scale*H x scale*W for a
    super-resolution model), clamped to [0, 1] (progress(n) is
    called as tiles finish). Pass Chunked(net) when restoring many images, so that a batch size
    that ran out of memory is remembered from one image to the next (see tiling.tiled)."""
    module = net.model if isinstance(net, Chunked) else net
    device = next(module.parameters()).device
    return tiled(net, image[None].to(device), tile, overlap, progress=progress)[0].clamp(0, 1).cpu()


def evaluate(nets: dict[int, TaylorNet], dataset, *, channel: str, crop_border: int = 0, quantize: bool = False,
             tile: int | None = None, overlap: int = 32, images_dir: Path | None = None, bar: bool = True) -> dict:
    """{order: {"psnr", "ssim", "per_image": [{"name", "psnr", "ssim"}]}} for every net of `nets`."""
    per_order = {order: [] for order in nets}
    runs = {order: Chunked(net) for order, net in nets.items()}
    for index in tqdm(range(len(dataset)), desc="eval", unit="img", disable=not bar):
        item = dataset[index]
        target = item["target"]
        for order, run in runs.items():
            restored = restore(run, item["input"], tile, overlap)
            options = dict(channel=channel, crop_border=crop_border, quantize=quantize)
            per_order[order].append({"name": item["name"],
                                     "psnr": metrics.psnr(restored, target, **options).item(),
                                     "ssim": metrics.ssim(restored, target, **options).item()})
            if images_dir is not None:
                folder = images_dir / f"order{order}" if len(nets) > 1 else images_dir
                folder.mkdir(parents=True, exist_ok=True)
                write_image(folder / f"{safe_file_name(item['name'])}.png", restored)
    return {order: {"psnr": _mean(rows, "psnr"), "ssim": _mean(rows, "ssim"), "per_image": rows}
            for order, rows in per_order.items()}


def _mean(rows: list[dict], key: str) -> float:
    return math.fsum(row[key] for row in rows) / len(rows) if rows else float("nan")


def report(results: dict, *, primary: int, channel: str, crop_border: int, quantize: bool, about: dict) -> dict:
    """The metrics.json record: the primary order's numbers at the top level, every order under
    "orders" when there are several."""
    head = results[primary]
    record = {**about, "order": primary, "count": len(head["per_image"]), "psnr": head["psnr"], "ssim": head["ssim"],
              "per_image": head["per_image"],
              "conventions": {**metrics.conventions(channel, crop_border, quantize),
                              "output": "model output clamped to [0, 1] before the metrics"}}
    if len(results) > 1:
        record["orders"] = {str(order): result for order, result in results.items()}
    return record


def markdown(record: dict) -> str:
    c = record["conventions"]
    scale = f" x{record['scale']}" if record.get("scale", 1) > 1 else ""
    compared = "Y (BT.601)" if c["channel"] == "y" else ("the grey channel" if record.get("channels") == 1 else "RGB")
    outputs = {True: "uint8-quantised", "rgb": "uint8-quantised (Y not rounded)"}.get(c["quantize"], "float")
    lines = [f"# {record.get('model', 'model')}{scale} on {record.get('dataset', 'dataset')}", "",
             f"{record['count']} images; PSNR/SSIM on {compared}, crop border {c['crop_border']}, {outputs} outputs.", "",
             "| order | PSNR (dB) | SSIM |", "|---:|---:|---:|"]
    orders = record.get("orders") or {str(record["order"]): record}
    for order, result in orders.items():
        mark = " (trained)" if int(order) == record.get("trained_order") else ""
        lines.append(f"| {order}{mark} | {result['psnr']:.2f} | {result['ssim']:.4f} |")
    lines += ["", f"Per image (order {record['order']}):", "", "| image | PSNR (dB) | SSIM |", "|---|---:|---:|"]
    lines += [f"| {row['name']} | {row['psnr']:.2f} | {row['ssim']:.4f} |" for row in record["per_image"]]
    return "\n".join(lines) + "\n"


def write(out_dir: Path, record: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")
    (out_dir / "metrics.md").write_text(markdown(record))
