"""Compile every Triton kernel config the backend can pick for sm_90 (H100/H200) on this machine,
with no GPU, and report registers, spills, shared memory and compile time per config.

    python benchmarks/triton_aot_report.py [--quick] [--arch 90] [--json PATH]
                                           [--max-headline-spill BYTES]

Cases: the headline (C=3, hidden 16/32/64) and the limits (C=4, hidden 64), each in fp32 with
TF32 (torch's default), exact fp32 (3xTF32), bf16 and fp16; the forward kernel and the
backward in each of its uses. --quick: C=3, hidden 32, TF32 and bf16 only.

Exits 1 when a config the autotuner can pick on the target needs more shared memory than it
has, when the backend's shared-memory estimate (which prunes configs at launch) falls short of
what ptxas reports, or when a headline config (C=3, hidden 32, TF32 or bf16) spills more than
--max-headline-spill bytes (default 0). The compile times are cold (an empty Triton cache):
what a GPU machine pays the first time it meets each config. CPU seconds are reported beside the
wall time: they do not grow when other work shares the machine, and a compile is one thread.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

# compiled kernels, not the interpreter, and a fresh cache so that every compile is cold
os.environ.pop("TRITON_INTERPRET", None)
os.environ["TRITON_CACHE_DIR"] = tempfile.mkdtemp(prefix="triton-aot-")

import triton  # noqa: E402

from taylor_fast.triton import aot  # noqa: E402
from taylor_fast.triton._tiling import shared_memory_bytes  # noqa: E402

FULL = [(3, 16), (3, 32), (3, 64), (4, 64)]
PRECISIONS = ("tf32", "ieee", "bf16", "fp16")
HEADLINE = {"channels": 3, "hidden": 32, "precisions": ("tf32", "bf16")}


def cases(quick: bool):
    sizes = [(HEADLINE["channels"], HEADLINE["hidden"])] if quick else FULL
    precisions = HEADLINE["precisions"] if quick else PRECISIONS
    for kernel in ("forward", "backward"):
        for channels, hidden in sizes:
            for precision in precisions:
                yield kernel, channels, hidden, precision


def is_headline(launch) -> bool:
    return (launch.channels, launch.hidden) == (HEADLINE["channels"], HEADLINE["hidden"]) \
        and launch.precision in HEADLINE["precisions"]


def row(compiled: aot.Compiled, limit: int) -> dict:
    launch = compiled.launch
    estimate = shared_memory_bytes(launch.kernel, launch.config, launch.channels, launch.hidden,
                                   aot.operand_bytes(launch.precision), launch.precision == "ieee")
    return {
        "kernel": launch.kernel, "use": launch.use if launch.kernel == "backward" else "",
        "channels": launch.channels, "hidden": launch.hidden, "precision": launch.precision, "tile": launch.tile,
        "registers": compiled.registers, "spill_store_bytes": compiled.spill_store_bytes,
        "spill_load_bytes": compiled.spill_load_bytes, "stack_bytes": compiled.stack_bytes,
        "shared_bytes": compiled.shared_bytes, "shared_estimate_bytes": estimate,
        "fits": compiled.shared_bytes <= limit, "estimate_holds": estimate >= compiled.shared_bytes,
        "headline": is_headline(launch), "compile_seconds": round(compiled.seconds, 2),
        "compile_cpu_seconds": round(compiled.cpu_seconds, 2),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the headline case only")
    parser.add_argument("--arch", type=int, default=90, help="compute capability x10 (default 90)")
    parser.add_argument("--shared-memory", type=int, default=aot.SM90_SHARED_MEMORY,
                        help=f"shared memory per block of the target (default {aot.SM90_SHARED_MEMORY}, the H100's)")
    parser.add_argument("--max-headline-spill", type=int, default=0,
                        help="fail when a headline config spills more bytes than this (default 0)")
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)

    rows, start = [], time.perf_counter()
    print(f"Triton {triton.__version__}, sm_{args.arch}, shared memory {args.shared_memory} B per block")
    print(f"{'kernel':9} {'use':13} {'C':>2} {'hid':>3} {'prec':5} {'tile':9} {'regs':>4} {'spill B':>8} "
          f"{'shared B':>9} {'estimate':>9} {'compile s':>9} {'cpu s':>6}")
    for kernel, channels, hidden, precision in cases(args.quick):
        for launch in aot.launches(kernel, channels, hidden, precision, args.shared_memory):
            r = row(aot.compile_launch(launch, args.arch), args.shared_memory)
            rows.append(r)
            flags = ("" if r["fits"] else "  OVER SHARED MEMORY") + ("" if r["estimate_holds"] else "  ESTIMATE LOW")
            print(f"{r['kernel']:9} {r['use']:13} {channels:2} {hidden:3} {precision:5} {r['tile']:9} "
                  f"{r['registers']:4} {r['spill_store_bytes'] + r['spill_load_bytes']:8} {r['shared_bytes']:9} "
                  f"{r['shared_estimate_bytes']:9} {r['compile_seconds']:9.1f} {r['compile_cpu_seconds']:6.1f}{flags}",
                  flush=True)

    problems = [f"{r['kernel']} {r['use']} C={r['channels']} hidden={r['hidden']} {r['precision']} {r['tile']}: {why}"
                for r in rows for why in (
                    [] if r["fits"] else [f"needs {r['shared_bytes']} B of shared memory"]) + (
                    [] if r["estimate_holds"] else [f"estimate {r['shared_estimate_bytes']} B < {r['shared_bytes']} B"]) + (
                    [f"spills {r['spill_store_bytes'] + r['spill_load_bytes']} B"]
                    if r["headline"] and r["spill_store_bytes"] + r["spill_load_bytes"] > args.max_headline_spill else [])]
    summary = {
        "triton": triton.__version__, "arch": args.arch, "shared_memory": args.shared_memory,
        "configs": len(rows), "seconds": round(time.perf_counter() - start, 1),
        "max_compile_seconds": {k: max((r["compile_seconds"] for r in rows if r["kernel"] == k), default=0)
                                for k in ("forward", "backward")},
        "max_compile_cpu_seconds": {k: max((r["compile_cpu_seconds"] for r in rows if r["kernel"] == k), default=0)
                                    for k in ("forward", "backward")},
        "headline_spill_bytes": max((r["spill_store_bytes"] + r["spill_load_bytes"] for r in rows if r["headline"]),
                                    default=0),
        "spilling_configs": sum(1 for r in rows if r["spill_store_bytes"] + r["spill_load_bytes"]),
        "problems": problems,
    }
    print(f"\n{summary['configs']} configs compiled in {summary['seconds']} s; slowest compile: forward "
          f"{summary['max_compile_seconds']['forward']} s, backward {summary['max_compile_seconds']['backward']} s; "
          f"{summary['spilling_configs']} spill; headline spill {summary['headline_spill_bytes']} B")
    for problem in problems:
        print(f"PROBLEM: {problem}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "configs": rows}, indent=1))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
