"""`taylor-fast bench`: time the Taylor expansion and a TaylorNet training step on this machine.

Prints a table (time, speed-up over the eager and the compiled reference, GFLOP/s and GB/s
against the device's peaks, peak memory) and writes it as JSON with --json. The grid is
documented in taylor_fast/bench/grid.py; methods in timing.py, memory.py, peaks.py and cost.py.
The pytest-benchmark suite in benchmarks/ runs the same cases.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from . import grid, results, runner, table


def _size(text: str):
    """grid.parse_size for argparse, whose message is shown only for an ArgumentTypeError."""
    try:
        return grid.parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser):
    parser.add_argument("--device", choices=grid.DEVICES, default=None,
                        help="device to benchmark (default: cuda when a GPU is visible, else cpu)")
    parser.add_argument("--grid", choices=grid.GRIDS, default="full",
                        help="which cases (taylor_fast/bench/grid.py): full (default), quick, or headline (order 3, "
                             "hidden 32 at 4x3x512x512 and 1x3x1080x1920 in every precision)")
    parser.add_argument("--quick", action="store_const", dest="grid", const="quick", help="same as --grid quick")
    parser.add_argument("--json", metavar="PATH", type=Path,
                        help="also write the results document here (rewritten after every case, so a run cut "
                             "off part-way leaves what it measured, marked partial)")
    parser.add_argument("--size", metavar="NxCxHxW", action="append", type=_size,
                        help="replace the grid's image sizes (repeatable), e.g. --size 1x3x64x64")
    parser.add_argument("--backends", metavar="LIST", type=lambda s: tuple(b.strip() for b in s.split(",") if b.strip()),
                        help="comma-separated subset of: reference, reference_compiled, cpu, cuda, triton")


def _json_problem(path: Path) -> str | None:
    """Why the results could not be written to --json PATH (checked before hours of timing)."""
    if path.is_dir():
        return f"--json {path}: is a folder; name a file"
    nearest = next((parent for parent in path.parents if parent.exists()), None)
    if nearest is not None and not nearest.is_dir():
        return f"--json {path}: {nearest} is a file, not a folder"
    return None


def main(args) -> int:
    problem = _json_problem(args.json) if args.json else None
    if problem:
        print(f"taylor-fast bench: {problem}", file=sys.stderr)
        return 2
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        print("taylor-fast bench: --device cuda was requested but torch sees no CUDA GPU", file=sys.stderr)
        return 2
    known = set(grid.BACKENDS[device])
    unknown = [b for b in args.backends or () if b not in known]
    if unknown:
        print(f"taylor-fast bench: --backends: {', '.join(unknown)} not among {', '.join(grid.BACKENDS[device])} "
              f"(the backends of device {device})", file=sys.stderr)
        return 2
    budget = grid.timing_budget(args.grid)
    sizes = tuple(args.size) if args.size else None
    specs = grid.cases(device, args.grid, sizes=sizes, backends=args.backends)
    grid_name = args.grid + (f" (sizes {', '.join('x'.join(map(str, s)) for s in sizes)})" if sizes else "")
    partial = None
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)

        def partial(records):
            _write_json(args.json, results.partial_document(device, grid_name, records, len(specs)))
    doc = runner.run_grid(specs, device, budget, grid_name, partial=partial)
    print(table.text(doc["cases"]))
    note = results.busy_note(doc["environment"])
    if note:
        print(note)
    if args.json:
        _write_json(args.json, doc)
        print(f"wrote {args.json}")
    return 0


def _write_json(path: Path, doc: dict) -> None:
    """Replace `path` whole: a reader (or a run killed mid-write) never sees half a document."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(path)
