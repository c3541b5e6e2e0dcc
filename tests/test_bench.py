"""taylor_fast.bench: the grid, the cost model, the derived figures, the CPU memory measure, and
one quick smoke pass of `taylor-fast bench` (its JSON structure; no timing is asserted)."""
import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from taylor_fast import backbones, cli
from taylor_fast.bench import cost, grid, memory, peaks, results, runner, table, timing, workloads

FULL_CPU = grid.cases("cpu")


def test_full_grid_has_headline_at_every_size_and_kind_and_one_axis_sweeps():
    headline = {(s.kind, s.shape) for s in FULL_CPU if s.group == "headline"}
    assert headline == {(k, shape) for k in grid.KINDS for shape in grid.SIZES}
    orders = {s.order for s in FULL_CPU if s.group == "order-sweep"}
    hiddens = {s.hidden for s in FULL_CPU if s.group == "hidden-sweep"}
    assert orders | {grid.HEADLINE_ORDER} == set(range(1, 7)) and hiddens | {32} == {16, 32, 64}
    for s in FULL_CPU:
        if s.group != "headline":  # a sweep moves one axis away from the headline point
            moved = [s.order != grid.HEADLINE_ORDER, s.hidden != grid.HEADLINE_HIDDEN, s.dtype != "float32"]
            assert sum(moved) == 1 and s.shape == grid.SWEEP_SIZE and s.kind in grid.EXPANSION_KINDS
    assert {s.dtype for s in FULL_CPU} == {"float32"}
    assert len({s.id for s in FULL_CPU}) == len(FULL_CPU)


def test_cuda_grid_adds_low_precision_tf32_and_cuda_backends():
    specs = grid.cases("cuda")
    assert {s.dtype for s in specs} == {"tf32", "float32", "bfloat16", "float16"}
    assert {s.backend for s in specs} == {"reference", "reference_compiled", "cuda", "triton"}
    assert {s.dtype for s in specs if s.kind == "train_step"} == {"tf32", "float32"}
    # fp32 twice at every headline point (TF32 tensor cores and exact), the sweeps in TF32
    headline = [s for s in specs if s.group == "headline"]
    assert {s.dtype for s in headline} == {"tf32", "float32"}
    assert {s.dtype for s in specs if s.group in ("order-sweep", "hidden-sweep")} == {"tf32"}


def test_headline_grid():
    """The first GPU run's figures: forward and forward+backward at order 3, hidden 32, at
    4x3x512x512 and 1x3x1080x1920, in TF32, exact fp32 and bf16; the compiled reference only in
    torch's default precision (TF32)."""
    specs = grid.cases("cuda", "headline")
    points = {(s.kind, s.shape, s.dtype) for s in specs}
    assert points == {(k, shape, p) for k in grid.EXPANSION_KINDS for shape in grid.HEADLINE_SIZES
                      for p in ("tf32", "float32", "bfloat16")}
    assert {s.dtype for s in specs if s.backend == "reference_compiled"} == {"tf32"}
    assert {s.backend for s in specs if s.dtype == "float32"} == {"reference", "cuda", "triton"}
    assert {(s.order, s.hidden) for s in specs} == {(3, 32)}
    assert {s.dtype for s in grid.cases("cpu", "headline")} == {"float32"}
    with pytest.raises(ValueError, match="grid must be one of"):
        grid.cases("cpu", "nope")


def test_tf32_is_a_cuda_precision():
    spec = grid.CaseSpec("forward", "reference", "cpu", 3, 32, (1, 3, 8, 8), "tf32", "headline")
    assert "TF32" in workloads.static_skip_reason(spec)
    assert grid.tensor_dtype("tf32") == "float32" and grid.allows_tf32("tf32") and not grid.allows_tf32("float32")


def test_a_run_reports_each_case_as_it_ends(one_thread):
    """run_grid hands the records so far to `partial` after every case (the CLI rewrites its JSON
    then), so a run cut off part-way keeps what it measured."""
    specs = grid.cases("cpu", "quick", sizes=((1, 3, 8, 8),), backends=("reference", "cpu"))[:3]
    seen = []
    runner.run_grid(specs, "cpu", "quick", "test", progress=None, partial=lambda records: seen.append(len(records)))
    assert seen == [1, 2, 3]
    doc = results.partial_document("cpu", "test", [results.case_record(specs[0], skipped="x")], len(specs))
    assert doc["partial"].startswith("1 of 3 cases") and len(doc["cases"]) == 1


def test_quick_grid_and_overrides():
    quick = grid.cases("cpu", "quick")
    assert {s.group for s in quick} == {"headline"}
    assert {s.shape for s in quick if s.kind == "train_step"} == {grid.SIZES[0]}
    small = grid.cases("cpu", "quick", sizes=((1, 3, 8, 8),), backends=("reference",))
    assert {s.shape for s in small} == {(1, 3, 8, 8)} and {s.backend for s in small} == {"reference"}
    assert grid.parse_size(" 2x3x5x7 ") == (2, 3, 5, 7)
    for bad in ("2x3x5", "0x3x5x5", "axbxcxd"):
        with pytest.raises(ValueError, match="NxCxHxW"):
            grid.parse_size(bad)


def test_cost_model():
    assert cost.flops_per_pixel_per_order(3, 32) == 5184  # 2 * 9 * (2C * hidden + hidden * C), C=3, hidden 32
    shape = (2, 3, 10, 20)
    fwd, fwd_bytes = cost.case_cost("forward", shape, 3, 32, 4)
    assert fwd == 5184 * 3 * 400 and fwd_bytes == 5 * 3 * 3 * 400 * 4
    assert cost.case_cost("forward_backward", shape, 3, 32, 4) == (3 * fwd, 2 * fwd_bytes)
    # tiny built with 3 hidden layers: 3->16, 3 x 16->16, 16->3 convolutions, 3x3
    tiny_per_pixel = 2 * 9 * (3 * 16 + 3 * 16 * 16 + 16 * 3)
    tiny = backbones.create("tiny", width=16, depth=3)
    flops, nbytes = cost.case_cost("train_step", shape, 3, 32, 4, tiny, torch.rand(shape))
    assert flops == 3 * (fwd + tiny_per_pixel * 400) and nbytes is None


def _record(backend, ms, kind="forward"):
    spec = grid.CaseSpec(kind, backend, "cpu", 3, 32, (1, 3, 10, 10), "float32", "headline")
    measured = timing.Timing.from_samples([ms / 1e3], "fixed")
    return results.case_record(spec, timing=measured, memory=2 ** 20, workload=SimpleNamespace(flops=1e9, bytes=1e8))


def test_derive_ratios_and_rates():
    peaks = {"measured": {"matmul_gflops": {"float32": 100.0}, "copy_gbps": 10.0},
             "theoretical": {"float32_gflops": 200.0}}
    recs = [_record("reference", 40.0), _record("reference_compiled", 20.0), _record("cpu", 10.0),
            _record("cpu", 5.0, kind="forward_backward")]
    results.derive(recs, peaks)
    ref, comp, fused, lonely = recs
    assert ref["vs_reference"] == 1.0 and ref["vs_compiled"] == 0.5
    assert fused["vs_reference"] == 4.0 and fused["vs_compiled"] == 2.0
    assert lonely["vs_reference"] is None and lonely["vs_compiled"] is None
    assert fused["gflops"] == pytest.approx(100.0) and fused["gbps"] == pytest.approx(10.0)
    assert fused["fraction_of_peak_flops"] == pytest.approx({"measured_matmul": 1.0, "theoretical": 0.5})
    assert fused["fraction_of_peak_bandwidth"] == pytest.approx({"measured_copy": 1.0})
    text = table.text(recs)
    assert "reference_compiled" in text and "4.00" in text


def test_percent_of_peak_prefers_the_measured_fma_peak():
    peaks = {"measured": {"matmul_gflops": {"float32": 100.0}, "copy_gbps": 10.0, "fma_float32_gflops": 400.0},
             "theoretical": {"float32_gflops": 200.0}}
    recs = results.derive([_record("cpu", 10.0)], peaks)  # 100 GFLOP/s
    assert recs[0]["fraction_of_peak_flops"]["measured_fma"] == pytest.approx(0.25)
    assert table.rows(recs)[0][table.HEADER.index("% peak")] == "25.0"


def test_fma_peak_runs_at_the_widest_vector_width():
    flags = peaks.cpu_theoretical()["derivation"]
    gflops, method = peaks.measured_fma_gflops(threads=1, iterations=2_000_000)
    if gflops is None:  # only where the box has no C compiler or no x86 FMA: say so
        pytest.skip(method)
    assert gflops > 0
    assert ("512-bit" in method) == ("avx512f" in flags)


def test_fma_peak_without_a_compiler_says_why(monkeypatch):
    monkeypatch.setattr(peaks.shutil, "which", lambda name: None)
    assert peaks.measured_fma_gflops(threads=1) == (None, "no C compiler (cc, gcc or clang) on PATH")


@pytest.mark.skipif(memory.cpu_unavailable_reason() is not None, reason="cannot reset the peak RSS here")
def test_cpu_peak_memory_sees_a_known_allocation():
    mib = 64

    def allocate():
        buffer = torch.ones(mib * 2 ** 20 // 4)  # touched, so resident
        del buffer

    measured = memory.cpu_peak_bytes(allocate) / 2 ** 20
    assert mib * 0.95 <= measured <= mib * 1.25


@pytest.fixture
def one_thread():
    """Tiny ops on a busy 2-core box spend most of their time in OpenMP barriers; one thread avoids them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_bench_command_quick_smoke(tmp_path, capsys, monkeypatch, one_thread):
    monkeypatch.setitem(peaks.MATMUL_N, "cpu", 256)  # the peaks' values are not under test here
    monkeypatch.setitem(peaks.COPY_BYTES, "cpu", 8 << 20)
    monkeypatch.setattr(peaks, "FMA_ITERATIONS", 1_000_000)
    out = tmp_path / "bench.json"
    code = cli.main(["bench", "--device", "cpu", "--quick", "--size", "1x3x12x12",
                     "--backends", "reference,cpu", "--json", str(out)])
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["schema"] == results.SCHEMA and doc["device"]["type"] == "cpu"
    assert {"torch", "commit", "backends", "torch_threads", "cpu_allocator"} <= set(doc["environment"])
    assert doc["peaks"]["measured"]["matmul_gflops"]["float32"] > 0
    assert "derivation" in doc["peaks"]["theoretical"]
    cases = doc["cases"]
    assert {(c["kind"], c["backend"]) for c in cases} == {(k, b) for k in grid.KINDS for b in ("reference", "cpu")}
    for case in cases:
        if case["status"] == "skipped":
            assert case["backend"] == "cpu" and case["reason"]
            continue
        assert case["time"]["rounds"] >= 2 and case["time"]["median_ms"] > 0
        assert case["gflops"] > 0 and case["flops"] > 0
        assert case["peak_memory_bytes"] is None or case["peak_memory_bytes"] >= 0
        if case["backend"] == "reference":
            assert case["vs_reference"] == 1.0 and case["vs_compiled"] is None
    assert "median ms" in capsys.readouterr().out


def test_bench_command_rejects_a_backend_of_another_device(capsys):
    assert cli.main(["bench", "--device", "cpu", "--backends", "cuda"]) == 2
    assert "--backends" in capsys.readouterr().err


def test_busy_note_flags_a_shared_machine():
    quiet = {"cpu_count": 2, "load_average_at_start": [0.4, 0.5, 0.5], "load_average_at_end": [0.9, 0.5, 0.5]}
    assert results.busy_note(quiet) is None
    busy = {**quiet, "load_average_at_end": [6.4, 5.0, 4.0]}
    assert "6.4 on 2 CPUs" in results.busy_note(busy)


def test_the_benchmarks_allocator_state_keeps_freed_memory_and_the_memory_measure_still_works():
    """In a child process (mallopt is process-wide): after keep_freed_memory a freed 256 MiB tensor
    stays resident, and the peak measure still reads a 64 MiB allocation as 64 MiB."""
    script = (
        "import torch, re\n"
        "from taylor_fast.bench import allocator, memory\n"
        "rss = lambda: int(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) >> 10\n"
        "state = allocator.keep_freed_memory()\n"
        "x = torch.ones(256 << 18); before = rss(); del x\n"
        "kept = before - rss()\n"
        "def allocate():\n"
        "    buffer = torch.ones(64 << 18)\n"
        "    del buffer\n"
        "print(state.startswith('glibc'), kept, memory.cpu_peak_bytes(allocate) >> 20)\n"
    )
    glibc, kept_mib, measured_mib = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                                   check=True).stdout.split()
    if glibc != "True":
        pytest.skip("not glibc: the benchmarks leave the allocator alone")
    assert int(kept_mib) < 16  # nothing of the 256 MiB handed back
    if memory.cpu_unavailable_reason() is None:
        assert 60 <= int(measured_mib) <= 80
