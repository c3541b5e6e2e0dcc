"""Summarise the `-Xptxas=-v` lines of a verbose build (TAYLOR_FAST_PTXAS_VERBOSE=1): registers,
stack and spills per kernel, dtype and arch.

    python benchmarks/ptxas_report.py BUILD_LOG [--json OUT] [--max-spill BYTES]

Exits 1 when a kernel spills more than --max-spill bytes (stores + loads, default 64), or when
no ptxas lines are found (the .cu files were not recompiled: touch them or remove build/ first).
A few bytes of spill (nvcc 13.0 spills 4 in the bf16 tensor-core forward and in the fp64
backward: one stack slot) cost nothing measurable next to the kernel's global-memory traffic;
the threshold catches the register-pressure regressions that do, hundreds of bytes and up.
"""
from __future__ import annotations

import argparse
import json
import re
import sys

ENTRY = re.compile(r"Compiling entry function '(?P<name>[^']+)' for '(?P<arch>sm_\w+)'")
FRAME = re.compile(r"(?P<stack>\d+) bytes stack frame, (?P<stores>\d+) bytes spill stores, (?P<loads>\d+) bytes spill loads")
USED = re.compile(r"Used (?P<regs>\d+) registers")
KERNEL = re.compile(r"(step_forward_mma_kernel|step_forward_kernel|step_backward_kernel|reduce_weight_grads_kernel|probe_kernel)")
TYPE = re.compile(r"kernelI(\w+?)EEv")
TYPES = {"f": "float32", "d": "float64", "6__half": "float16", "13__nv_bfloat16": "bfloat16"}


def parse(lines):
    rows, current, frame = [], None, None
    for line in lines:
        if m := ENTRY.search(line):
            current, frame = m, None
        elif current and (m := FRAME.search(line)):
            frame = m
        elif current and (m := USED.search(line)):
            name = current["name"]
            kernel = KERNEL.search(name)
            dtype = TYPE.search(name)
            rows.append({
                "kernel": kernel.group(1) if kernel else name,
                "type": TYPES.get(dtype.group(1), dtype.group(1)) if dtype else "",
                "arch": current["arch"],
                "registers": int(m["regs"]),
                "stack_bytes": int(frame["stack"]) if frame else 0,
                "spill_store_bytes": int(frame["stores"]) if frame else 0,
                "spill_load_bytes": int(frame["loads"]) if frame else 0,
            })
            current = None
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log")
    ap.add_argument("--json", help="write the rows here as JSON")
    ap.add_argument("--max-spill", type=int, default=64, metavar="BYTES",
                    help="fail when a kernel spills more than this many bytes, stores + loads (default 64)")
    args = ap.parse_args(argv)
    with open(args.log, errors="replace") as fh:
        rows = parse(fh)
    for r in rows:
        print(f"{r['kernel']:28s} {r['type']:9s} {r['arch']:6s} {r['registers']:4d} regs  "
              f"stack {r['stack_bytes']:4d}  spills {r['spill_store_bytes']}/{r['spill_load_bytes']}")
    spilling = [r for r in rows if r["spill_store_bytes"] or r["spill_load_bytes"]]
    over = [r for r in spilling if r["spill_store_bytes"] + r["spill_load_bytes"] > args.max_spill]
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"kernels": rows, "spilling": spilling, "max_spill": args.max_spill, "over_threshold": over},
                      fh, indent=2)
    if not rows:
        print("no ptxas lines found: were the .cu files recompiled with TAYLOR_FAST_PTXAS_VERBOSE=1?", file=sys.stderr)
        return 1
    print(f"{len(rows)} kernel builds, {len(spilling)} with spills, {len(over)} above {args.max_spill} bytes")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
