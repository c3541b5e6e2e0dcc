"""The taylor-fast command (also `python -m taylor_fast`). Each subcommand lives in its own
module, which provides add_arguments(parser) and main(args) -> exit code; only the module of
the subcommand being run is imported."""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "info": ("taylor_fast.info", "what was built and which backends can run here"),
    "demo": ("taylor_fast.demo", "train order 0 and order 3 on synthetic rain, compare them, time the kernels"),
    "synth": ("taylor_fast.synth", "write a paired dataset of synthetic rain, motion blur, noise or low resolution"),
    "bench": ("taylor_fast.bench", "time the expansion and a training step per backend on this machine"),
    "train": ("taylor_fast.engine.commands.train", "train a TaylorNet from a YAML recipe and flags (resumable, DDP)"),
    "eval": ("taylor_fast.engine.commands.evaluate", "PSNR/SSIM of a checkpoint on a dataset, at one or more orders"),
    "restore": ("taylor_fast.engine.commands.restore", "restore image files of any size with a checkpoint"),
}


class OneLineParser(argparse.ArgumentParser):
    """argparse's parser, except that a usage mistake is one line on stderr, like the commands'
    own errors (argparse prints the whole usage first), pointing to --help; exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def _top_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="taylor-fast",
        description="Deep Taylor's Approximations for image restoration, with fused kernels.",
        epilog="commands:\n" + "\n".join(f"  {name:<9} {text}" for name, (_, text) in COMMANDS.items())
        + "\n\nrun 'taylor-fast COMMAND --help' for a command's options",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND")
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0 if argv else 2
    command = top.parse_args(argv[:1]).command
    module_name, text = COMMANDS[command]
    module = importlib.import_module(module_name)
    parser = OneLineParser(prog=f"taylor-fast {command}", description=text)
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    try:
        return module.main(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
