"""`taylor-fast train`: train a TaylorNet from a YAML recipe and/or flags into a run folder.

    taylor-fast train --config configs/derain/dualgcn_rain100h_o3.yaml --out runs/dcm_h_o3
    taylor-fast train --backbone tiny --order 3 --dataset paired --root DATA --iters 2000 --out runs/t
    taylor-fast train --out runs/dcm_h_o3 --resume              # continue a stopped run exactly
    taylor-fast train --task sr --scale 2 --backbone edsr_baseline --dataset div2k --root DIV2K --out runs/sr
    taylor-fast train --task denoise --channels 1 --dataset clean-folder --root BSD400 \
        --set data.train.options.sigma=25 --out runs/grey25
    torchrun --nproc_per_node 4 -m taylor_fast train --config ... --out RUN     # DDP, per-GPU batch

Exit status: 0 when the run is complete, 1 on an error (another process already training in
--out included), 2 on a bad setting, 130 / 143 after SIGINT / SIGTERM stopped it with a checkpoint.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .. import checkpoint
from ..config import TASKS, ConfigError, complete, parse_assignment, resolve, resume_conflicts
from ..lock import FolderBusy
from ..train import CHECKPOINT, TrainingError, train
from . import CommandError, check_folder, device, reports_errors

# flag -> config key (the flag's value overrides the key)
_FLAG_KEYS = {
    "task": "task", "scale": "model.scale", "channels": "model.channels",
    "backbone": "model.backbone", "order": "model.order", "backend": "model.backend",
    "dataset": "data.train.dataset", "root": "data.train.root", "batch_size": "data.train.batch_size",
    "patch": "data.train.patch", "workers": "data.train.workers", "iters": "train.iters",
    "epochs": "train.epochs", "seed": "seed", "amp": "train.amp", "checkpoint_every": "train.checkpoint_every",
}


def add_arguments(parser):
    parser.add_argument("--config", type=Path, help="YAML recipe (see configs/); flags override its values")
    parser.add_argument("--out", type=Path, required=True, help="run folder: last.ckpt, config.yaml, train.log, tb/")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last.ckpt (starts afresh if it has none yet)")
    parser.add_argument("--task", choices=TASKS,
                        help="the task: its field's metric conventions (and SR patch size) where not set")
    parser.add_argument("--scale", type=int, help="super-resolution factor 2, 3 or 4 (task sr; F upscales by it)")
    parser.add_argument("--channels", type=int, choices=(1, 3), help="3: colour (default); 1: grey, end to end")
    parser.add_argument("--backbone", help="mapping network F (taylor_fast.backbones.names())")
    parser.add_argument("--order", type=int, help="Taylor order n (0 = the plain backbone)")
    parser.add_argument("--backend", help="Taylor op backend: auto (default), reference, cpu, cuda, triton")
    parser.add_argument("--dataset", help="training set name (taylor_fast.data.names())")
    parser.add_argument("--root", help="training set folder")
    parser.add_argument("--batch-size", type=int, help="patches per process per step (paper: 4)")
    parser.add_argument("--patch", type=int, help="patch side in pixels (paper: 100)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--iters", type=int, help="run length in iterations")
    length.add_argument("--epochs", type=int, help="run length in epochs (paper: 100)")
    parser.add_argument("--seed", type=int, help="seed of the weights, the data order and the patches")
    parser.add_argument("--workers", type=int, help="DataLoader worker processes")
    parser.add_argument("--amp", choices=("auto", "bf16", "off"), help="bf16 autocast of F (auto: on CUDA only)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--checkpoint-every", type=int, help="iterations between checkpoints")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key, e.g. --set train.lr=5e-4 (repeatable)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (the log file still fills)")


def overrides(args) -> dict:
    """{config key: value} from the flags given, in order: named flags, then --set."""
    out = {key: getattr(args, flag) for flag, key in _FLAG_KEYS.items() if getattr(args, flag) is not None}
    if args.compile:
        out["train.compile"] = True
    out.update(parse_assignment(text) for text in args.set)
    return out


def _config_and_state(args, announce: bool = True) -> tuple[dict, dict | None]:
    """(config, checkpoint state or None) for `args`; `announce` says on stderr that a --resume
    starts afresh (train() calls this once to check and once to train, so it announces once)."""
    ckpt = args.out / CHECKPOINT
    if args.resume and ckpt.exists():
        state = checkpoint.load(ckpt)
        saved = complete(state["config"])
        # the saved config, or the one --config describes (so the same command line restarts a run)
        config = resolve(args.config, overrides(args), base=None if args.config else saved)
        conflicts = resume_conflicts(saved, config)
        if conflicts:
            raise ConfigError("a resumed run cannot change " + "; ".join(conflicts)
                              + " (start a new run with another --out instead)")
        return config, state
    if ckpt.exists():
        raise CommandError(f"{args.out} already holds a checkpoint ({ckpt}); pass --resume to continue that run, "
                           "or choose another --out")
    config = resolve(args.config, overrides(args))
    if args.resume and announce:
        print(f"train: {args.out} has no checkpoint yet; starting from the beginning", file=sys.stderr)
    return config, None


@reports_errors("train", TrainingError, FolderBusy)
def main(args) -> int:
    check_folder(args.out, "--out")
    where = device(args.device)
    summary = train(args.out, lambda final: _config_and_state(args, announce=final), device=where,
                    bar=not args.no_progress)
    stopped = 128 + summary["stopped_by"] if summary["stopped_by"] else 0
    if not summary["main"]:
        return stopped
    rate = summary["trained_iterations"] / max(summary["seconds"], 1e-9)
    print(f"{'stopped at' if stopped else 'trained to'} iteration {summary['iterations']} "
          f"({summary['trained_iterations']} in this session, {rate:.2f} it/s); checkpoint {summary['checkpoint']}")
    return stopped
