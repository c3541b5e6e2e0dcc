"""Evaluating a trained TaylorNet on a dataset: per-image and mean PSNR/SSIM at one or more
orders, with the metric conventions written next to the numbers."""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from tqdm import tqdm

from .. import metrics
from ..backends import MAX_ORDER
from ..data import write_image
from ..taylornet import TaylorNet
from . import atomic
from .chunks import Chunked
from .config import ConfigError
from .paths import safe_file_name
from .tiling import tiled


def parse_orders(text: str) -> list[int]:
    """'0-6' -> [0, ..., 6]; '0,3,6' -> [0, 3, 6]; '3' -> [3]."""
    orders = []
    for part in text.split(","):
        low, sep, high = part.strip().partition("-")
        try:
            low, high = int(low), int(high) if sep else int(low)
        except ValueError:
            raise ConfigError(f"--orders: expected e.g. 3, 0-6 or 0,3,6, got {text!r}") from None
        if high < low:
            raise ConfigError(f"--orders: the range {part.strip()!r} is reversed; write {high}-{low}")
        orders += range(low, high + 1)
    if min(orders) < 0 or max(orders) > MAX_ORDER:
        raise ConfigError(f"--orders: expected orders in 0..{MAX_ORDER}, got {text!r}")
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


def check_sizes(dataset, crop_border: int, option: str = "--crop-border") -> None:
    """ConfigError naming the first image of `dataset` too small for SSIM's window once
    `crop_border` pixels are cropped from every side (read from the file headers, before any
    model runs); `option` names the setting the crop came from."""
    if crop_border < 0:
        raise ConfigError(f"{option}: expected 0 or more pixels, got {crop_border}")
    need = metrics.SSIM_WINDOW
    for pair in dataset.pairs:
        # the metrics compare the output with the target: for super-resolution the high-resolution image
        height, width = pair.target.size()
        left = (height - 2 * crop_border, width - 2 * crop_border)
        if min(left) >= need:
            continue
        image = f"{pair.target.describe()} is {height}x{width} (HxW)"
        if not crop_border:
            raise ConfigError(f"{image}; SSIM needs at least {need}x{need} pixels: leave it out of the set")
        kept = f"leaves {left[0]}x{left[1]}" if min(left) > 0 else "crops the whole image away"
        fix = f"lower {option}" if min(height, width) >= need else "leave the image out of the set"
        raise ConfigError(f"{image}; {option} {crop_border} {kept}; SSIM needs at least {need}x{need} pixels: {fix}")


def evaluate(nets: dict[int, TaylorNet], dataset, *, channel: str, crop_border: int = 0, quantize: bool = False,
             tile: int | None = None, overlap: int = 32, images_dir: Path | None = None, bar: bool = True) -> dict:
    """{order: {"psnr", "ssim", "perfect", "undefined", "per_image": [{"name", "psnr", "ssim"}]}} for
    every net of `nets`; the means are over finite values (see summary)."""
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
    return {order: summary(rows) for order, rows in per_order.items()}


AVERAGING = ("psnr and ssim are means over the images whose value is finite. An image restored exactly (equal "
             "to its target) has an infinite PSNR: it is counted in 'perfect', left out of the PSNR mean "
             "(its SSIM, 1, is kept), and its psnr is null. An output holding NaN gives NaN metrics: it is "
             "counted in 'undefined', left out of both means, and its values are null. A mean over no "
             "image is null.")


def summary(rows: list[dict]) -> dict:
    """Means of per-image rows over their finite values, and the counts of images left out."""
    return {"psnr": _finite_mean(row["psnr"] for row in rows), "ssim": _finite_mean(row["ssim"] for row in rows),
            "perfect": sum(row["psnr"] == math.inf for row in rows),
            "undefined": sum(math.isnan(row["psnr"]) or math.isnan(row["ssim"]) for row in rows),
            "per_image": rows}


def _finite_mean(values) -> float:
    finite = [value for value in values if math.isfinite(value)]
    return math.fsum(finite) / len(finite) if finite else float("nan")


def _json_safe(node):
    """Non-finite floats as null, so that the record is standard JSON (no Infinity or NaN)."""
    if isinstance(node, float):
        return node if math.isfinite(node) else None
    if isinstance(node, dict):
        return {key: _json_safe(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_json_safe(value) for value in node]
    return node


def report(results: dict, *, primary: int, channel: str, crop_border: int, quantize: bool, about: dict) -> dict:
    """The metrics.json record (standard JSON values only): the primary order's numbers at the top
    level, every order under "orders" when there are several."""
    head = results[primary]
    record = {**about, "order": primary, "count": len(head["per_image"]), "psnr": head["psnr"], "ssim": head["ssim"],
              "perfect": head["perfect"], "undefined": head["undefined"], "averaging": AVERAGING,
              "per_image": head["per_image"],
              "conventions": {**metrics.conventions(channel, crop_border, quantize),
                              "output": "model output clamped to [0, 1] before the metrics (not rounded unless "
                                        "quantize is true)"}}
    if len(results) > 1:
        record["orders"] = {str(order): result for order, result in results.items()}
    return _json_safe(record)


def _number(value, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _left_out(result: dict) -> str:
    notes = []
    if result["perfect"]:
        notes.append(f"{result['perfect']} restored exactly (PSNR infinite, left out of the PSNR mean)")
    if result["undefined"]:
        notes.append(f"{result['undefined']} with NaN outputs (left out of both means)")
    return "; ".join(notes)


def markdown(record: dict) -> str:
    c = record["conventions"]
    scale = f" x{record['scale']}" if record.get("scale", 1) > 1 else ""
    compared = "Y (BT.601)" if c["channel"] == "y" else ("the grey channel" if record.get("channels") == 1 else "RGB")
    outputs = {True: "uint8-quantised", "rgb": "uint8-quantised (Y not rounded)"}.get(c["quantize"], "float")
    lines = [f"# {record.get('model', 'model')}{scale} on {record.get('dataset', 'dataset')}", "",
             f"{record['count']} images; PSNR/SSIM on {compared}, crop border {c['crop_border']}, {outputs} outputs "
             "clamped to [0, 1]; means over finite values.", "",
             "| order | PSNR (dB) | SSIM | left out of the means |", "|---:|---:|---:|---|"]
    orders = record.get("orders") or {str(record["order"]): record}
    for order, result in orders.items():
        mark = " (trained)" if int(order) == record.get("trained_order") else ""
        lines.append(f"| {order}{mark} | {_number(result['psnr'], 2)} | {_number(result['ssim'], 4)} | "
                     f"{_left_out(result)} |")
    lines += ["", f"Per image (order {record['order']}):", "", "| image | PSNR (dB) | SSIM |", "|---|---:|---:|"]
    for row in record["per_image"]:
        # a null PSNR beside a number is an exact restoration; NaN outputs make both null
        psnr = "inf (exact)" if row["psnr"] is None and row["ssim"] is not None else _number(row["psnr"], 2)
        lines.append(f"| {row['name']} | {psnr} | {_number(row['ssim'], 4)} |")
    return "\n".join(lines) + "\n"


def write(out_dir: Path, record: dict) -> None:
    """OUT/metrics.json and OUT/metrics.md, each replaced atomically: a crash or a full disk
    leaves the previous report whole (atomic.WriteError says so)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # both texts are made before either file is touched: a record json refuses (allow_nan=False:
    # strict JSON or nothing) leaves both reports as they were
    texts = (("metrics.json", json.dumps(record, indent=2, allow_nan=False) + "\n"), ("metrics.md", markdown(record)))
    for name, text in texts:
        for stale in atomic.leftovers(out_dir / name):  # left by a killed eval
            stale.unlink(missing_ok=True)
        try:
            atomic.replace(out_dir / name, text.encode())
        except OSError as exc:
            raise atomic.WriteError(atomic.failure(out_dir / name, exc)) from exc
