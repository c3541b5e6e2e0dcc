"""The bookkeeping half of benchmarks/gpu_check.sh.

    python benchmarks/gpu_check_summary.py --environment PATH   environment report and tool check
    python benchmarks/gpu_check_summary.py OUTDIR WORKDIR [--print]

The first form prints and writes (as JSON) the machine's GPU, driver, torch, CUDA, Triton and
the tools the later stages need, and exits 1 naming any that is missing, before the build
starts. The second collects what the stages have left so far (WORKDIR/stages.tsv, the JUnit
reports and the headline bench document in OUTDIR, ptxas.json and the rest's bench document in
WORKDIR) into OUTDIR/gpu_check.json; gpu_check.sh
runs it after every stage, so the file is always current. --print also prints a summary and
exits 0 only if every stage passed.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DRY_RUN = os.environ.get("GPU_CHECK_DRY_RUN") == "1"
# Python modules the stages import, and commands they run: (name, needed by, required)
MODULES = [("torch", "everything", True), ("triton", "the triton stage", True), ("pytest", "the test stages", True),
           ("scikit_build_core", "the build", True), ("pybind11", "the build", True),
           ("xdist", "parallel Triton compiles in the triton stage", False),
           ("hypothesis", "the property tests", True), ("skimage", "the metric tests", True)]
COMMANDS = [("cmake", "the build"), ("ninja", "the build")]


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _run(*argv) -> str | None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def nvcc() -> str | None:
    """The nvcc the build would use (CMake looks at CUDACXX, then the toolkit, then PATH)."""
    for candidate in (os.environ.get("CUDACXX"), "/usr/local/cuda/bin/nvcc", shutil.which("nvcc")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def source_fingerprint() -> str:
    """SHA-256 over the package, kernel, test and benchmark sources: which code ran, also where the
    copy that ran has no git history (match it with `git stash`-free checkouts of candidate commits)."""
    digest = hashlib.sha256()
    for folder in ("csrc", "taylor_fast", "tests", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix in (".py", ".cpp", ".h", ".cu", ".cuh", ".sh", ".txt", ".in"):
                digest.update(str(path.relative_to(ROOT)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def environment() -> tuple[dict, list[str]]:
    """(the report, what is missing)."""
    env = {"python": platform.python_version(), "cpus": os.cpu_count(), "dry_run": DRY_RUN,
           "commit": _run("git", "-C", str(ROOT), "rev-parse", "HEAD"), "source_sha256": source_fingerprint()}
    missing = []
    for module, purpose, required in MODULES:
        found = importlib.util.find_spec(module) is not None
        env.setdefault("modules", {})[module] = found
        if not found and required:
            missing.append(f"Python module {module} (for {purpose})")
    for command, purpose in COMMANDS:
        env.setdefault("commands", {})[command] = shutil.which(command)
        if shutil.which(command) is None and importlib.util.find_spec(command) is None:
            missing.append(f"{command} (for {purpose})")
    compiler = nvcc()
    version = _run(compiler, "--version") if compiler else None
    env["nvcc"] = {"path": compiler, "version": version.splitlines()[-1] if version else None}
    if compiler is None and not DRY_RUN:
        missing.append("nvcc (for the build: set CUDACXX)")
    try:
        import torch

        env.update(torch=torch.__version__, cuda=torch.version.cuda, devices=[
            {"name": torch.cuda.get_device_name(i), "capability": ".".join(map(str, torch.cuda.get_device_capability(i))),
             "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1),
             "multiprocessors": torch.cuda.get_device_properties(i).multi_processor_count}
            for i in range(torch.cuda.device_count())])
        if not env["devices"] and not DRY_RUN:
            missing.append("a CUDA GPU visible to torch")
    except Exception as exc:  # the report must be written even when torch is broken
        env["torch_error"] = repr(exc)
    try:
        import triton

        env["triton"] = triton.__version__
    except Exception as exc:
        env["triton_error"] = repr(exc)
    env["nvidia_smi"] = _run("nvidia-smi", "--query-gpu=name,driver_version,clocks.max.sm,memory.total",
                             "--format=csv,noheader")
    return env, missing


def stages(work: Path) -> list[dict]:
    path = work / "stages.tsv"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines()[1:]:
        name, status, rc, seconds = line.split("\t")
        rows.append({"stage": name, "status": status, "exit_code": int(rc) if rc.lstrip("-").isdigit() else None,
                     "seconds": int(seconds)})
    return rows


def test_summary(xml_path: Path) -> dict | None:
    """Counts and the failures of a JUnit report (None when the stage wrote none)."""
    try:
        root = ET.parse(xml_path).getroot()
    except (OSError, ET.ParseError):
        return None
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


def bench_summary(doc: dict | None) -> dict | None:
    """The ratios of a bench document, one line per fused case (partial documents have no ratios yet)."""
    if doc is None:
        return None
    rows = []
    for case in doc.get("cases", []):
        if case.get("status") == "ok" and case["backend"] not in ("reference", "reference_compiled"):
            rows.append({key: case.get(key) for key in ("kind", "backend", "dtype", "shape", "vs_reference",
                                                        "vs_compiled", "gflops", "gbps", "peak_memory_bytes")}
                        | {"median_ms": case["time"]["median_ms"]})
    return {"partial": doc.get("partial"), "grid": doc.get("grid"), "cases": len(doc.get("cases", [])),
            "fused": rows}


def collect(outdir: Path, work: Path) -> dict:
    summary = {
        "environment": read_json(work / "environment.json"),
        "stages": stages(work),
        "tests": {name: test_summary(outdir / f"tests_{name}.xml") for name in ("cuda", "triton", "property")},
        "ptxas": read_json(work / "ptxas.json"),
        "bench": {"headline": bench_summary(read_json(outdir / "bench_headline.json")),
                  "rest": bench_summary(read_json(work / "bench_rest.json"))},
    }
    tmp = outdir / "gpu_check.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1))
    tmp.replace(outdir / "gpu_check.json")
    return summary


def print_summary(summary: dict, outdir: Path) -> int:
    print("\n================ gpu_check summary ================")
    env = summary["environment"] or {}
    devices = env.get("devices") or [{"name": "no GPU visible"}]
    print(f"device: {devices[0]['name']}  torch {env.get('torch')}  CUDA {env.get('cuda')}  Triton {env.get('triton')}")
    for s in summary["stages"]:
        print(f"  {s['stage']:10s} {s['status']:10s} {s['seconds']:5d} s")
    for name, tests in summary["tests"].items():
        if tests:
            print(f"tests ({name}): {tests['tests']} run, {tests['failures']} failed, {tests['errors']} errors, "
                  f"{tests['skipped']} skipped")
            for p in tests["problems"]:
                print(f"  FAILED {p['test']}: {p['message']}")
    if summary["ptxas"]:
        over = summary["ptxas"].get("over_threshold", [])
        print(f"ptxas: {len(summary['ptxas']['kernels'])} kernel builds, {len(summary['ptxas']['spilling'])} spill, "
              f"{len(over)} above {summary['ptxas'].get('max_spill')} bytes")
    for name, bench in summary["bench"].items():
        if not bench:
            continue
        print(f"bench ({name}): {bench['cases']} cases" + (f", PARTIAL: {bench['partial']}" if bench["partial"] else ""))
        for r in bench["fused"]:
            ratio = f"x{r['vs_reference']:.2f} vs eager" if r.get("vs_reference") else "no eager baseline"
            compiled = f", x{r['vs_compiled']:.2f} vs compiled" if r.get("vs_compiled") else ""
            print(f"  {r['kind']:16s} {r['backend']:6s} {r['dtype']:8s} {'x'.join(map(str, r['shape'])):>14s} "
                  f"{r['median_ms']:9.3f} ms  {ratio}{compiled}")
    failed = [s["stage"] for s in summary["stages"] if s["status"] != "passed"]
    print(f"written: {outdir / 'gpu_check.json'}")
    print("RESULT: every stage passed" if not failed else f"RESULT: not passed: {', '.join(failed)}")
    return 1 if failed else 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--environment"]:
        env, missing = environment()
        Path(argv[1]).write_text(json.dumps(env, indent=1))
        print(json.dumps(env, indent=1))
        for item in missing:
            print(f"MISSING: {item}")
        return 1 if missing else 0
    outdir, work = Path(argv[0]), Path(argv[1])
    summary = collect(outdir, work)
    return print_summary(summary, outdir) if "--print" in argv else 0


if __name__ == "__main__":
    sys.exit(main())
