"""Collects what benchmarks/gpu_check.sh left in OUTDIR into OUTDIR/gpu_check.json and prints
what passed and what failed.

    python benchmarks/gpu_check_summary.py OUTDIR

Exit status 0 only if every step passed (a step stopped by the time budget counts as failed).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def steps(outdir: Path) -> list[dict]:
    rows = []
    lines = (outdir / "steps.tsv").read_text().splitlines()[1:]
    for line in lines:
        name, rc, seconds = line.split("\t")
        status = "passed" if rc == "0" else rc if rc in ("skipped", "absent") else (
            "timed out" if rc in ("124", "137") else "failed")
        rows.append({"step": name, "status": status, "exit_code": int(rc) if rc.lstrip("-").isdigit() else None,
                     "seconds": int(seconds), "log": f"{name}.log"})
    return rows


def test_summary(xml_path: Path) -> dict | None:
    if not xml_path.exists():
        return None
    root = ET.parse(xml_path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    totals = {key: sum(int(s.get(key, 0)) for s in suites) for key in ("tests", "failures", "errors", "skipped")}
    totals["time_s"] = round(sum(float(s.get("time", 0)) for s in suites), 1)
    problems = []
    for case in root.iter("testcase"):
        for tag in ("failure", "error"):
            node = case.find(tag)
            if node is not None:
                message = (node.get("message") or node.text or "").strip().splitlines()
                problems.append({"test": f"{case.get('classname')}::{case.get('name')}", "kind": tag,
                                 "message": message[0][:300] if message else ""})
    totals["problems"] = problems
    return totals


def environment() -> dict:
    env = {}
    try:
        import torch

        env.update(torch=torch.__version__, cuda=torch.version.cuda, devices=[
            {"name": torch.cuda.get_device_name(i), "capability": ".".join(map(str, torch.cuda.get_device_capability(i))),
             "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1)}
            for i in range(torch.cuda.device_count())])
    except Exception as exc:  # the summary must be written even when torch is broken
        env["torch_error"] = repr(exc)
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,clocks.max.sm", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        env["nvidia_smi"] = smi.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        env["nvidia_smi"] = None
    return env


def commit() -> dict:
    def git(*args):
        try:
            proc = subprocess.run(["git", *args], capture_output=True, text=True, timeout=30)
            return proc.stdout.strip() if proc.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            return None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD") or os.environ.get("GPU_CHECK_COMMIT") or "unknown",
            "dirty": bool(status) if status is not None else None}


def main(argv=None) -> int:
    outdir = Path((argv or sys.argv[1:])[0])
    summary = {
        "environment": environment(),
        **commit(),
        "steps": steps(outdir),
        "tests": test_summary(outdir / "tests.xml"),
        "ptxas": read_json(outdir / "ptxas.json"),
        "kernel_timings": read_json(outdir / "cuda_kernel_timings.json"),
        "bench_cli": read_json(outdir / "bench_cuda.json"),
        "pytest_benchmark_json": "pytest_benchmark_cuda.json" if (outdir / "pytest_benchmark_cuda.json").exists() else None,
    }
    (outdir / "gpu_check.json").write_text(json.dumps(summary, indent=2))

    print("\n================ gpu_check summary ================")
    devices = summary["environment"].get("devices") or [{"name": "no GPU visible"}]
    print(f"device: {devices[0]['name']}  torch {summary['environment'].get('torch')}  "
          f"CUDA {summary['environment'].get('cuda')}  commit {summary['commit'][:12]}")
    for s in summary["steps"]:
        print(f"  {s['step']:18s} {s['status']:10s} {s['seconds']:5d} s")
    tests = summary["tests"]
    if tests:
        print(f"tests: {tests['tests']} run, {tests['failures']} failed, {tests['errors']} errors, "
              f"{tests['skipped']} skipped")
        for p in tests["problems"]:
            print(f"  FAILED {p['test']}: {p['message']}")
    if summary["ptxas"]:
        spills = summary["ptxas"]["spilling"]
        print(f"ptxas: {len(summary['ptxas']['kernels'])} kernel builds, {len(spills)} with register spills")
        for r in spills:
            print(f"  SPILL {r['kernel']} {r['type']} {r['arch']}: {r['spill_store_bytes']}/{r['spill_load_bytes']} bytes")
    for row in (summary["kernel_timings"] or {}).get("cases", []):
        line = (f"  {row['case']:>14s} {row['dtype']:8s} fwd x{row['speedup_forward_vs_eager']:.2f} vs eager, "
                f"fwd+bwd x{row['speedup_forward_backward_vs_eager']:.2f}, peak memory "
                f"{row['peak_memory_ratio_vs_eager']:.2f} of eager, {row['cuda']['forward_tflops']:.1f} TFLOP/s")
        if "speedup_forward_vs_compiled" in row:
            line += f", fwd x{row['speedup_forward_vs_compiled']:.2f} vs compiled"
        print(line)
    failed = [s["step"] for s in summary["steps"] if s["status"] not in ("passed", "absent")]
    print(f"written: {outdir / 'gpu_check.json'}")
    print("RESULT: all steps passed" if not failed else f"RESULT: FAILED steps: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
