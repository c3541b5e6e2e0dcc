"""`taylor-fast demo`: the whole pipeline in a few minutes on a laptop CPU.

1. synthesises a rain set from the photographs bundled with scikit-image (`taylor-fast synth`),
   holding two photographs out for testing;
2. trains the tiny backbone at order 0 (the plain network) and at order 3 (TaylorNet, fused
   backend when built) with the same budget, seed and data (`taylor-fast train`);
3. evaluates both on the held-out photographs (Y-channel PSNR/SSIM, the deraining convention);
4. times the order-3 Taylor expansion (forward + backward) on the fused backend and on the
   pure-PyTorch reference, on this machine, now;
5. writes demo_out/demo.png: input | order 0 | order 3 | ground truth, one row per test image.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import torch

from . import _dispatch, cli, metrics, ops, taylor_loss
from ._validation import check_expand
from .data import BUNDLED_PHOTOS, TrainingPatches, open_dataset
from .engine import config as engine_config
from .engine import model
from .engine.evaluate import evaluate, restore
from .engine.train import CHECKPOINT, train

TEST_PHOTOS = ("astronaut", "coffee")


def add_arguments(parser):
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="folder for data, runs and demo.png")
    parser.add_argument("--iters", type=int, default=1000, help="training iterations per model (default 1000)")
    parser.add_argument("--time-budget", type=float, default=120.0,
                        help="seconds of training for both models together; fewer iterations are run (the "
                             "same for both) when a timing of the first steps says --iters would not fit (default 120)")
    parser.add_argument("--size", type=int, default=256, help="longer side of the photographs (default 256)")
    parser.add_argument("--patch", type=int, default=64, help="training patch side (default 64)")
    parser.add_argument("--preset", choices=("light", "heavy"), default="heavy", help="rain style (default heavy)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")


def _synthesise(out: Path, args) -> tuple[Path, Path]:
    """OUT/data/{train,test}/{input,target}: two rain draws of every bundled photo, the photos of
    TEST_PHOTOS held out for testing."""
    every = out / "data" / "all"
    draws = 2
    code = cli.main(["synth", "--kind", "rain", "--preset", args.preset, "--out", str(every), "--overwrite",
                     "--count", str(draws * len(BUNDLED_PHOTOS)), "--max-side", str(args.size),
                     "--seed", str(args.seed)])
    if code:
        raise SystemExit(f"demo: synthesising the rain set failed (exit code {code})")
    roots = {}
    for split in ("train", "test"):
        roots[split] = out / "data" / split
        shutil.rmtree(roots[split], ignore_errors=True)
    for side in ("input", "target"):
        for path in sorted((every / side).iterdir()):
            split = "test" if path.stem.split("_", 1)[1] in TEST_PHOTOS else "train"
            (roots[split] / side).mkdir(parents=True, exist_ok=True)
            os.replace(path, roots[split] / side / path.name)
    return roots["train"], roots["test"]


def _train(order: int, train_root: Path, out: Path, args) -> dict:
    run = out / "runs" / f"order{order}"
    shutil.rmtree(run, ignore_errors=True)  # the demo's own run folder: start afresh every time
    repeat, batch = 2, 4
    per_epoch = len(list((train_root / "input").iterdir())) * repeat // batch
    # the lr drops (x0.2) at 60% and 85% of the run, as the paper's 30/50/80 of 100 epochs do late in training
    milestones = sorted({max(1, round(args.iters * share / per_epoch)) for share in (0.6, 0.85)})
    config = engine_config.resolve(overrides={
        "name": f"demo-order{order}", "seed": args.seed, "model.backbone": "tiny", "model.order": order,
        "data.train.dataset": "paired", "data.train.root": str(train_root), "data.train.patch": args.patch,
        "data.train.repeat": repeat, "data.train.batch_size": batch, "train.iters": args.iters,
        "train.milestones": milestones, "train.checkpoint_every": args.iters, "log.images_every": max(1, args.iters // 4),
    })
    print(f"\n== training tiny at order {order} ({args.iters} iterations, patch {args.patch}, batch 4) ==")
    summary = train(config, run, device="auto", bar=not args.no_progress)
    return {**summary, "run": run}


def _affordable(args, train_root: Path) -> int:
    """--iters, or fewer when timed training steps of both models (and the reading of their
    batches) say it would overrun --time-budget (a slow or busy machine)."""
    patches = TrainingPatches(open_dataset("paired", train_root), patch=args.patch, seed=args.seed)
    per_iteration = 2 * _time(lambda: [patches[i % len(patches)] for i in range(4)], repeats=3, at_least=0.5)
    gen = torch.Generator().manual_seed(args.seed)
    y, x = (torch.rand(4, 3, args.patch, args.patch, generator=gen) for _ in range(2))
    for order in (0, 3):
        net = model.build({**engine_config.DEFAULTS["model"], "order": order})
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)

        def step():
            out, f = net.forward_terms(y)
            loss = taylor_loss(out, f, x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        per_iteration += _time(step, repeats=3, at_least=1.0)
    affordable = int(args.time_budget / per_iteration)
    if affordable >= args.iters:
        return args.iters
    iters = max(20, affordable)
    print(f"this machine runs {1 / per_iteration:.2f} iterations of both models per second now: training "
          f"{iters} iterations per model instead of {args.iters} to stay within --time-budget {args.time_budget:g} s")
    return iters


def _time(fn, repeats: int, at_least: float = 0.0) -> float:
    """Mean seconds per call over `repeats` calls, or more until `at_least` seconds have passed."""
    fn()  # warm-up
    start, calls = time.perf_counter(), 0
    while calls < repeats or time.perf_counter() - start < at_least:
        fn()
        calls += 1
    return (time.perf_counter() - start) / calls


def _speed(checkpoint: Path, size: int) -> dict:
    """Seconds per forward+backward of the trained order-3 expansion at (1, 3, size, size), on the
    backend 'auto' picks and on the reference."""
    net, _, _ = model.load(checkpoint)
    G = net.derivative
    weights = [w.detach().requires_grad_() for w in G.weights()]
    gen = torch.Generator().manual_seed(0)
    f, y = (torch.rand(1, 3, size, size, generator=gen).requires_grad_() for _ in range(2))
    call = check_expand(f, y, *weights, net.order, G.activation, G.negative_slope)
    chosen = _dispatch.select("auto", call, "demo").name

    def step(backend):
        out = ops.taylor_expand(f, y, *weights, net.order, G.activation, G.negative_slope, backend=backend)
        out.sum().backward()

    times = {name: _time(lambda name=name: step(name), repeats=3) for name in dict.fromkeys((chosen, "reference"))}
    why = _dispatch.rejection("cpu", call) if f.device.type == "cpu" else None
    return {"backend": chosen, "times": times, "why_not_fused": why, "size": size}


def _figure(rows: list[list[torch.Tensor]], labels: list[list[str]], path: Path) -> None:
    from PIL import Image, ImageDraw, ImageFont

    try:
        font = ImageFont.load_default(size=14)
    except TypeError:  # Pillow < 10.1 has one bitmap font size
        font = ImageFont.load_default()
    band = 22  # label strip above each image
    width = max(row[0].shape[2] for row in rows)
    heights = [row[0].shape[1] + band for row in rows]
    canvas = Image.new("RGB", (width * len(rows[0]), sum(heights)), "white")
    draw = ImageDraw.Draw(canvas)
    top = 0
    for images, texts, height in zip(rows, labels, heights):
        for c, (image, text) in enumerate(zip(images, texts)):
            pixels = (image.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
            canvas.paste(Image.fromarray(pixels), (c * width, top + band))
            draw.text((c * width + 4, top + 3), text, fill="black", font=font)
        top += height
    canvas.save(path)


def _table(rows: list[tuple]) -> str:
    header = f"{'':<26}{'PSNR-Y (dB)':>12}{'SSIM-Y':>9}{'train time':>13}{'it/s':>8}"
    lines = [header, "-" * len(header)]
    for name, psnr, ssim, seconds, rate in rows:
        timing = f"{seconds:>11.1f} s{rate:>8.2f}" if seconds is not None else ""
        lines.append(f"{name:<26}{psnr:>12.2f}{ssim:>9.4f}{timing}")
    return "\n".join(lines)


def main(args) -> int:
    started = time.perf_counter()
    out = args.out
    print(f"synthesising {args.preset} rain on the {len(BUNDLED_PHOTOS)} bundled photos "
          f"(longer side {args.size}); test photos: {', '.join(TEST_PHOTOS)}")
    train_root, test_root = _synthesise(out, args)
    args.iters = _affordable(args, train_root)
    runs = {order: _train(order, train_root, out, args) for order in (0, 3)}

    test = open_dataset("paired", test_root)
    nets = {order: model.load(run["run"] / CHECKPOINT)[0] for order, run in runs.items()}
    results = evaluate(nets, test, channel="y", bar=False)
    inputs = [test[i] for i in range(len(test))]
    rainy = [(metrics.psnr(it["input"], it["target"], channel="y").item(),
              metrics.ssim(it["input"], it["target"], channel="y").item()) for it in inputs]
    table = [("rainy input", sum(p for p, _ in rainy) / len(rainy), sum(s for _, s in rainy) / len(rainy), None, None)]
    for order, name in ((0, "order 0 (tiny alone)"), (3, "order 3 (tiny + Taylor G)")):
        run = runs[order]
        table.append((name, results[order]["psnr"], results[order]["ssim"], run["seconds"],
                      run["trained_iterations"] / run["seconds"]))
    speed = _speed(runs[3]["run"] / CHECKPOINT, args.size)

    figure = out / "demo.png"
    rows, labels = [], []
    shown = {}  # the first rain draw of each test photo
    for index, item in enumerate(inputs):
        shown.setdefault(item["name"].split("_", 1)[1], index)
    for index in shown.values():
        item = inputs[index]
        restored = [restore(nets[order], item["input"]) for order in (0, 3)]
        rows.append([item["input"], *restored, item["target"]])
        per = [results[order]["per_image"][index]["psnr"] for order in (0, 3)]
        labels.append([f"input {rainy[index][0]:.2f} dB", f"order 0  {per[0]:.2f} dB", f"order 3  {per[1]:.2f} dB",
                       "ground truth"])
    _figure(rows, labels, figure)

    print(f"\n== results on {len(test)} held-out rainy images ({', '.join(TEST_PHOTOS)}), "
          f"{args.iters} iterations each, same seed and data ==")
    print(_table(table))
    times = speed["times"]
    print(f"\norder-3 Taylor expansion, forward + backward, 1x3x{speed['size']}x{speed['size']}, this machine now:")
    for name, seconds in times.items():
        print(f"  {name:<10} {seconds * 1000:8.1f} ms")
    if speed["backend"] != "reference":
        print(f"  fused ({speed['backend']}) is {times['reference'] / times[speed['backend']]:.2f}x the reference")
    else:
        print(f"  the fused CPU kernels are not in this build ({speed['why_not_fused']}); both runs used the "
              "reference backend")
    print(f"\nwrote {figure} (input | order 0 | order 3 | ground truth, Y-PSNR in the labels); runs in {out / 'runs'} "
          f"(tensorboard --logdir {out / 'runs'}); total {time.perf_counter() - started:.0f} s")
    return 0
