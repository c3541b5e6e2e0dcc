"""A small denoising run and a small x2 super-resolution run on the photographs bundled with
scikit-image, order 0 (the plain network) against order 3 (TaylorNet), written up as
benchmarks/tasks/README.md (table and the exact commands), results.json and tasks.png.

    python benchmarks/tasks/run.py                     # about 10-15 minutes on one busy CPU core
    python benchmarks/tasks/run.py --iters 100 --work /tmp/quick --out /tmp/quick   # a smoke run

Six photographs train, two (astronaut, coffee: the demo's) test, all shrunk to a longer side of
192 pixels. Denoising: colour Gaussian noise of sigma 25 made on the fly (clean-folder), a
shrunk DnCNN. Super-resolution: x2 inputs made on the fly by MATLAB-style bicubic downsampling
(hr-folder), a shrunk EDSR-baseline. Both orders of a task start from the same seed, so the same
initial F, the same patches and the same noise; they differ only in G. The learning rate follows
the paper's schedule (Adam 1e-3, x0.2 at 30%, 50% and 80% of the run).

One torch thread by default: on a machine shared with other work, two OpenMP threads waiting
for each other made these small steps 7x slower (0.94 s against 0.14 s per denoising step).
"""
from __future__ import annotations

import argparse
import json
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from taylor_fast import cli, metrics
from taylor_fast.data import BUNDLED_PHOTOS, bundled_photo, open_dataset, write_image
from taylor_fast.engine import model
from taylor_fast.engine.evaluate import restore
from taylor_fast.figures import labelled_grid
from taylor_fast.resize import bicubic_upsample

HERE = Path(__file__).resolve().parent
TEST_PHOTOS = ("astronaut", "coffee")
SIDE = 192

# task -> (what it shows, training flags, test dataset and options)
TASKS = {
    "denoise": ("colour Gaussian denoising, sigma 25 (0..255), dncnn depth 5, width 16",
                ["--task", "denoise", "--backbone", "dncnn", "--set", "model.backbone_options={depth: 5, width: 16}",
                 "--dataset", "clean-folder", "--set", "data.train.options.sigma=25", "--patch", "40"],
                ("clean-folder", ["--option", "sigma=25"])),
    "sr": ("x2 super-resolution, edsr_baseline with 2 blocks of width 16",
           ["--task", "sr", "--scale", "2", "--backbone", "edsr_baseline",
            "--set", "model.backbone_options={blocks: 2, width: 16}", "--dataset", "hr-folder", "--patch", "48"],
           ("hr-folder", [])),
}


def _photos(work: Path) -> tuple[Path, Path]:
    """WORK/photos/{train,test}/NAME.png: the bundled photographs, longer side SIDE, 8-bit."""
    roots = {split: work / "photos" / split for split in ("train", "test")}
    for name in BUNDLED_PHOTOS:
        photo = bundled_photo(name)
        scale = SIDE / max(photo.shape[1:])
        size = (round(photo.shape[1] * scale), round(photo.shape[2] * scale))
        photo = F.interpolate(photo[None], size=size, mode="area")[0]
        folder = roots["test" if name in TEST_PHOTOS else "train"]
        folder.mkdir(parents=True, exist_ok=True)
        write_image(folder / f"{name}.png", torch.floor(photo.clamp(0, 1) * 255 + 0.5) / 255)
    return roots["train"], roots["test"]


def _milestones(iters: int, batch: int, images: int, repeat: int) -> str:
    """The paper's lr drops (epochs 30/50/80 of 100) at the same fractions of this run, in epochs."""
    epochs = iters * batch / (images * repeat)
    return str(sorted({max(1, round(epochs * share)) for share in (0.3, 0.5, 0.8)}))


def _run(argv: list[str], commands: list[str]) -> None:
    commands.append("taylor-fast " + shlex.join(argv))
    print(f"\n$ {commands[-1]}", flush=True)
    code = cli.main(argv)
    if code:
        raise SystemExit(f"{argv[0]} failed with exit code {code}")


def _train_seconds(run: Path) -> float:
    """Wall time of a run's training, from its log (iterations per second of every logged window),
    so that a run resumed or already finished reports the time it took."""
    total, previous = 0.0, 0
    for line in (run / "train.log").read_text().splitlines():
        fields = line.split()
        if fields[:1] == ["iter"]:
            iteration, rate = int(fields[1]), float(fields[fields.index("it_per_s") + 1])
            total, previous = total + (iteration - previous) / rate, iteration
    return total


def _parameters(run: Path) -> dict:
    net, _, _ = model.load(run / "last.ckpt")
    return {"F": sum(p.numel() for p in net.mapping.parameters()),
            "G": sum(p.numel() for p in net.derivative.parameters()) if net.order else 0}


def _baseline(task: str, test: Path) -> dict:
    """The input's own scores under the task's conventions: the noisy image, or bicubic x2."""
    name, options = TASKS[task][2]
    ds = open_dataset(name, test, **({"sigma": 25} if task == "denoise" else {"scale": 2}))
    conventions = {"denoise": dict(channel="rgb", quantize=True), "sr": dict(channel="y", crop_border=2,
                                                                            quantize="rgb")}[task]
    rows = []
    for item in ds:
        guess = item["input"].clamp(0, 1) if task == "denoise" else bicubic_upsample(item["input"], 2).clamp(0, 1)
        rows.append({"name": item["name"], "psnr": metrics.psnr(guess, item["target"], **conventions).item(),
                     "ssim": metrics.ssim(guess, item["target"], **conventions).item()})
    return {"psnr": sum(r["psnr"] for r in rows) / len(rows), "ssim": sum(r["ssim"] for r in rows) / len(rows),
            "per_image": rows}


def _figure(work: Path, test: Path, results: dict, out: Path) -> None:
    """One row per task on the first test photo: input | order 0 | order 3 | ground truth."""
    rows, labels = [], []
    for task in TASKS:
        name, _ = TASKS[task][2]
        item = open_dataset(name, test, **({"sigma": 25} if task == "denoise" else {"scale": 2}))[0]
        shown = item["input"] if task == "denoise" else bicubic_upsample(item["input"], 2)
        row, text = [shown.clamp(0, 1)], [f"{'noisy' if task == 'denoise' else 'bicubic x2'} "
                                          f"{results[task]['input']['per_image'][0]['psnr']:.2f} dB"]
        for order in (0, 3):
            net, _, _ = model.load(work / "runs" / f"{task}_o{order}" / "last.ckpt")
            row.append(restore(net, item["input"]))
            text.append(f"order {order}  {results[task][f'order{order}']['per_image'][0]['psnr']:.2f} dB")
        rows.append(row + [item["target"]])
        labels.append(text + ["ground truth"])
    labelled_grid(rows, labels, out)


def _cpu() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown CPU"


def _write_up(results: dict, commands: list[str], args, out: Path) -> None:
    lines = ["# Denoising and super-resolution on the bundled photographs: order 0 against order 3", "",
             "Written by `benchmarks/tasks/run.py` (run it again to reproduce; docs/tasks.md explains the tasks).",
             f"Six scikit-image photographs train, two ({', '.join(TEST_PHOTOS)}) test, longer side {SIDE} px; "
             f"{args.iters} iterations of batch {args.batch} per run; the two orders of a task share the seed, so "
             "the initial F, the patches and the noise; they differ only in G (order 3: 32 hidden channels, shared).",
             f"Machine: {results['machine']['cpu']} (2 cores), {results['machine']['threads']} torch thread(s), shared "
             "with other work while it ran (times are wall clock). Learning rate: Adam 1e-3, x0.2 at 30/50/80% of "
             "the run (the paper's schedule, scaled to the run).", "",
             "| task | metric convention | input | order 0 | order 3 | order 3 - order 0 | parameters o0 / o3 "
             "| train time o0 / o3 |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for task, (what, _, _) in TASKS.items():
        r = results[task]
        convention = "PSNR/SSIM on RGB, 8-bit outputs" if task == "denoise" else "PSNR/SSIM on Y, 2 px border cropped"
        cells = [f"{r[k]['psnr']:.2f} dB / {r[k]['ssim']:.4f}" for k in ("input", "order0", "order3")]
        gain = r["order3"]["psnr"] - r["order0"]["psnr"]
        params = [sum(r[f"order{o}"]["parameters"].values()) for o in (0, 3)]
        lines.append(f"| {what} | {convention} | {' | '.join(cells)} | {gain:+.2f} dB | "
                     f"{params[0]:,} / {params[1]:,} | {r['order0']['seconds']:.0f} s / {r['order3']['seconds']:.0f} s |")
    lines += ["", "\"input\" is the noisy image for denoising and MATLAB-style bicubic upsampling for "
              "super-resolution, scored the same way. Order 3 adds G's parameters (two 3x3 convolutions, 32 hidden "
              "channels) to F's. Per-image numbers: results.json.", "",
              "Two test photographs, 1000 iterations and networks of a few thousand parameters: this shows both "
              "tasks running end to end through the CLI and the size of the effect at this scale, not what the "
              "recipes of configs/denoise and configs/sr would give on the benchmark sets.", "",
              "![input | order 0 | order 3 | ground truth](tasks.png)", "", "## Commands", "",
              f"`python benchmarks/tasks/run.py --iters {args.iters} --batch {args.batch} --threads {args.threads}` "
              "ran, after writing the "
              "photographs to WORK/photos/{train,test}:", "", "```bash"]
    lines += [c.replace(str(args.work), "WORK") for c in commands] + ["```", ""]
    (out / "README.md").write_text("\n".join(lines))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("tasks_out"), help="scratch folder (photos, runs, evals)")
    parser.add_argument("--out", type=Path, default=HERE, help="where README.md, results.json, tasks.png go")
    parser.add_argument("--iters", type=int, default=1000, help="training iterations per run (default 1000)")
    parser.add_argument("--batch", type=int, default=8, help="patches per step (default 8)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    train, test = _photos(args.work)
    repeat = 8
    milestones = _milestones(args.iters, args.batch, len(list(train.iterdir())), repeat)
    commands: list[str] = []
    results: dict = {"machine": {"cpu": _cpu(), "threads": torch.get_num_threads()}, "iters": args.iters,
                     "batch": args.batch}
    for task, (what, flags, (dataset, options)) in TASKS.items():
        results[task] = {"what": what, "input": _baseline(task, test)}
        for order in (0, 3):
            run = args.work / "runs" / f"{task}_o{order}"
            _run(["train", *flags, "--root", str(train), "--order", str(order), "--iters", str(args.iters),
                  "--batch-size", str(args.batch), "--set", f"data.train.repeat={repeat}",
                  "--set", f"train.milestones={milestones}", "--out", str(run), "--resume", "--no-progress"], commands)
            evaluation = args.work / "eval" / f"{task}_o{order}"
            _run(["eval", "--checkpoint", str(run / "last.ckpt"), "--dataset", dataset, "--root", str(test), *options,
                  "--out", str(evaluation), "--no-progress"], commands)
            record = json.loads((evaluation / "metrics.json").read_text())
            results[task][f"order{order}"] = {**{k: record[k] for k in ("psnr", "ssim", "per_image", "conventions")},
                                              "seconds": _train_seconds(run), "parameters": _parameters(run)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    _figure(args.work, test, results, args.out / "tasks.png")
    _write_up(results, commands, args, args.out)
    print(f"\nwrote {args.out / 'README.md'}, results.json and tasks.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
