"""`taylor-fast demo`: train the tiny backbone at order 0 and at order 3 on a noisy copy of a
bundled photograph (same budget, same seed), then compare PSNR and write a side-by-side PNG."""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from . import TaylorNet, backbones, taylor_loss


def _photo(size: int) -> torch.Tensor:
    """A (3, size, size) colour photograph in [0, 1] from scikit-image's bundled data."""
    try:
        from skimage import data
    except ImportError as exc:
        raise SystemExit("the demo needs scikit-image for its bundled photographs: pip install scikit-image") from exc
    img = torch.from_numpy(np.ascontiguousarray(data.astronaut())).permute(2, 0, 1).float() / 255
    return torch.nn.functional.interpolate(img[None], size=(size, size), mode="area")[0]


def _psnr(a, b):
    return 10 * math.log10(1.0 / torch.mean((a.clamp(0, 1) - b) ** 2).item())


def _train(order, clean, noisy, iters, patch, seed):
    torch.manual_seed(seed)
    net = TaylorNet(backbones.create("tiny"), order=order)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    _, h, w = clean.shape
    start = time.perf_counter()
    for _ in range(iters):
        ij = torch.randint(0, h - patch + 1, (4, 2), generator=gen)
        y = torch.stack([noisy[:, i:i + patch, j:j + patch] for i, j in ij.tolist()])
        x = torch.stack([clean[:, i:i + patch, j:j + patch] for i, j in ij.tolist()])
        out, f = net.forward_terms(y)
        loss = taylor_loss(out, f, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        restored = net(noisy[None])[0]
    return restored, seconds


def add_arguments(parser):
    parser.add_argument("--iters", type=int, default=300, help="training iterations per model (default 300)")
    parser.add_argument("--size", type=int, default=256, help="photo side in pixels (default 256)")
    parser.add_argument("--sigma", type=float, default=25.0, help="Gaussian noise level on the 0..255 scale")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="folder for the figure")


def main(args) -> int:
    clean = _photo(args.size)
    gen = torch.Generator().manual_seed(args.seed)
    noisy = (clean + args.sigma / 255 * torch.randn(clean.shape, generator=gen)).clamp(0, 1)
    print(f"denoising a {args.size}x{args.size} photo (sigma {args.sigma:g}), {args.iters} iterations per model")
    results = {}
    for order in (0, 3):
        restored, seconds = _train(order, clean, noisy, args.iters, 64, args.seed)
        results[order] = restored
        print(f"  order {order}: PSNR {_psnr(restored, clean):6.2f} dB   ({seconds:5.1f} s training)")
    print(f"  noisy input: PSNR {_psnr(noisy, clean):6.2f} dB")
    args.out.mkdir(parents=True, exist_ok=True)
    panels = torch.cat([noisy, results[0].clamp(0, 1), results[3].clamp(0, 1), clean], dim=2)
    from PIL import Image

    path = args.out / "demo.png"
    Image.fromarray((panels.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(path)
    print(f"wrote {path}  (input | order 0 | order 3 | ground truth)")
    return 0
