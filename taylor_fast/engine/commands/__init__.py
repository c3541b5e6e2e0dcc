"""The engine's subcommands for taylor_fast.cli: train, eval and restore. Expected failures (a
missing file, a bad setting, an unreadable checkpoint) end in one line on stderr, not a traceback."""
from __future__ import annotations

import functools
import sys
from pathlib import Path

import torch

from ...data import DatasetError, ImageReadError
from ..atomic import WriteError
from ..checkpoint import CheckpointError
from ..chunks import OutOfMemory
from ..config import ConfigError
from ..paths import UnsafePathError
from ..tiling import check


class CommandError(RuntimeError):
    """A command cannot do what was asked (e.g. it would overwrite a file); the message says why."""


USAGE_ERRORS = (ConfigError, UnsafePathError)
RUNTIME_ERRORS = (CheckpointError, CommandError, DatasetError, ImageReadError, OutOfMemory, WriteError)


def reports_errors(command: str, *more: type[Exception]):
    """Decorator for a command's main(args): expected errors become one stderr line and exit 2
    (bad settings) or 1 (anything else), and tqdm bars do not swallow the message."""

    def decorate(main):
        @functools.wraps(main)
        def wrapper(args):
            try:
                return main(args)
            except USAGE_ERRORS as exc:
                print(f"taylor-fast {command}: {exc}", file=sys.stderr)
                return 2
            except RUNTIME_ERRORS + more as exc:
                print(f"taylor-fast {command}: {exc}", file=sys.stderr)
                return 1

        return wrapper

    return decorate


def check_task(args, config: dict) -> None:
    """--task, where given, must be the task the checkpoint was trained for."""
    if args.task is not None and args.task != config["task"]:
        raise ConfigError(f"--task {args.task}: the checkpoint was trained for task {config['task']!r}"
                          + (f" (x{config['model']['scale']})" if config["model"]["scale"] > 1 else ""))


# the end of a "backend cannot run here" error for the commands that run a trained model
BACKEND_FIX = ("the checkpoint's config sets model.backend; run where that backend is available (`taylor-fast info` "
               "lists them)")


def device(choice: str) -> str:
    """--device auto|cpu|cuda as the device to use; cuda without a usable GPU is a usage error
    here, before anything is loaded or written."""
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: torch sees no CUDA device on this machine; use --device cpu (or auto)")
    return choice


def check_folder(path: Path, option: str) -> None:
    """An output folder option must not name an existing file (refused before any work)."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path}: expected a folder, but it is an existing file; choose another {option}")


def check_tiles(args) -> None:
    """--tile / --overlap as a usage error (tile 0 means no tiling)."""
    if args.tile:
        try:
            check(args.tile, args.overlap)
        except ValueError as exc:
            raise ConfigError(f"--{exc}") from None
