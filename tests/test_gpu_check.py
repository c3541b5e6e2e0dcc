"""benchmarks/gpu_check.sh, the one command for a lent GPU machine, rehearsed here with --dry-run:
the same stages, each GPU stage replaced by its CPU equivalent at tiny sizes (CUDA kernels in
the host emulator, Triton in its interpreter, the bench on the CPU)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["env", "build", "cuda", "triton", "headline", "rest"]


def gpu_check(out: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run", "--out", str(out)],
                          capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHON": sys.executable, **env})


def summary(out: Path) -> dict:
    return json.loads((out / "gpu_check.json").read_text())


@pytest.mark.slow
def test_dry_run_passes_every_stage_and_brings_back_at_most_eight_files(tmp_path):
    proc = gpu_check(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = summary(tmp_path)
    assert [s["stage"] for s in result["stages"]] == STAGES
    assert all(s["status"] == "passed" for s in result["stages"]), result["stages"]
    assert result["environment"]["dry_run"] and result["environment"]["source_sha256"]
    for name in ("cuda", "triton", "property"):
        assert result["tests"][name]["tests"] > 0 and not result["tests"][name]["problems"]
    for name in ("headline", "rest"):
        assert result["bench"][name]["fused"] and result["bench"][name]["partial"] is None
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == sorted(["gpu_check.json", "gpu_check.log", "tests_cuda.xml", "tests_triton.xml",
                            "tests_property.xml", "bench_headline.json", "details.tar.gz"])
    assert len(files) <= 8  # what the GPU machine sends back at most


def test_a_stage_past_its_cap_is_stopped_and_the_later_stages_still_run(tmp_path):
    proc = gpu_check(tmp_path, GPU_CHECK_STAGES="cuda headline", GPU_CHECK_CAPS="cuda=2")
    stages = {s["stage"]: s for s in summary(tmp_path)["stages"]}
    assert stages["cuda"]["status"] == "timed out" and stages["cuda"]["seconds"] <= 20
    assert stages["headline"]["status"] == "passed"
    assert proc.returncode == 1 and "RESULT: not passed: cuda" in proc.stdout
    assert set(stages) == {"cuda", "headline"}


def ptxas_log(spills: dict) -> str:
    """ptxas -v lines as nvcc prints them, one kernel per (mangled name, spill bytes)."""
    lines = []
    for name, spill in spills.items():
        lines += [f"ptxas info    : Compiling entry function '{name}' for 'sm_90'",
                  f"ptxas info    : Function properties for {name}",
                  f"    8 bytes stack frame, {spill} bytes spill stores, {spill} bytes spill loads",
                  "ptxas info    : Used 128 registers, used 1 barriers, 400 bytes cmem[0]"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("spill,max_spill,code", [(2, 64, 0), (40, 64, 1), (40, 100, 0), (0, 0, 0)])
def test_ptxas_report_fails_only_above_its_threshold(tmp_path, spill, max_spill, code):
    log = tmp_path / "build.log"
    log.write_text(ptxas_log({"_ZN11taylor_fast19step_forward_kernelIfEEvv": 0,
                              "_ZN11taylor_fast20step_backward_kernelIdEEvv": spill}))
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ptxas_report.py"), str(log), "--json",
                           str(tmp_path / "ptxas.json"), "--max-spill", str(max_spill)], capture_output=True, text=True)
    assert proc.returncode == code, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "ptxas.json").read_text())
    assert len(report["kernels"]) == 2 and report["max_spill"] == max_spill
    assert [r["type"] for r in report["kernels"]] == ["float32", "float64"]
    assert len(report["over_threshold"]) == code
