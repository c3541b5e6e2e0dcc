"""How many distinct Triton compiles a test run needs: the figure that decides how long the
GPU machine's Triton test stage takes, counted here without a GPU.

    python -m pytest -p benchmarks.triton_compile_census -m triton [pytest args] \\
        --census-json PATH [--census-aot REPORT.json]

Loaded as a pytest plugin, it records every launch of the Triton kernels the selected tests
make (through the interpreter here) under the key Triton compiles by on a GPU: the kernel, its
constexprs (C, hidden, exact fp32, the backward's flags, the tile config: the pinned one, as
gpu_check.sh runs the tests with TAYLOR_FAST_TRITON_AUTOTUNE=0), each pointer's dtype and
whether it is 16-byte aligned (Triton specialises on that; the kernels opt out of specialising
on image sizes). With --census-aot, a benchmarks/triton_aot_report.py JSON of the same Triton
version, it prices each compile at that report's cold compile time for the nearest case and
prints the serial total: the GPU stage spreads it over xdist workers.
"""
from __future__ import annotations

import collections
import json
import statistics
from pathlib import Path

import torch

KERNELS = {"_step_forward_kernel": "forward", "_step_backward_kernel": "backward"}


def pytest_addoption(parser):
    parser.addoption("--census-json", type=Path, help="write the census here")
    parser.addoption("--census-aot", type=Path, help="a triton_aot_report.py JSON to price the compiles with")


class Census:
    def __init__(self):
        self.keys = collections.defaultdict(set)  # kernel kind -> compile keys
        self.tests = collections.defaultdict(set)  # compile key -> test files that needed it
        self.current = "?"

    def record(self, kernel_name: str, args: tuple, kwargs: dict, config) -> None:
        names = KERNELS[kernel_name]
        pointers = tuple((str(a.dtype).removeprefix("torch."), a.data_ptr() % 16 == 0)
                         for a in args if isinstance(a, torch.Tensor))
        constants = tuple(sorted((k, v) for k, v in kwargs.items()))
        key = (names, pointers, constants, tuple(sorted(config.kwargs.items())), config.num_warps)
        self.keys[names].add(key)
        self.tests[key].add(self.current)


CENSUS = Census()


def pytest_configure(config):
    if not config.getoption("--census-json"):
        return
    from taylor_fast.triton import _tiling

    original = _tiling.Tunable.for_this_call

    def recording(self):
        chosen = original(self)
        return _Recorder(chosen, self.kind)

    _tiling.Tunable.for_this_call = recording


class _Recorder:
    """Stands in for the autotuner a launch goes through: notes the launch, then makes it."""

    def __init__(self, autotuner, kind):
        self.autotuner, self.kind = autotuner, kind

    def __getitem__(self, grid):
        launch = self.autotuner[grid]

        def run(*args, **kwargs):
            CENSUS.record(self.autotuner.base_fn.__name__, args, kwargs, self.autotuner.configs[0])
            return launch(*args, **kwargs)
        return run


def pytest_runtest_setup(item):
    CENSUS.current = item.nodeid.split("::")[0]


def _price(kind: str, key, aot_rows: list[dict]) -> float | None:
    """The cold compile time of the AOT report's nearest configs (same kernel and precision): their
    median, in CPU seconds where the report has them (wall time grows with the machine's load)."""
    constants = dict(key[2])
    dtypes = {d for d, _ in key[1]}
    precision = "bf16" if "bfloat16" in dtypes else "fp16" if "float16" in dtypes else (
        "ieee" if constants.get("IEEE") else "tf32")
    times = [r.get("compile_cpu_seconds", r["compile_seconds"]) for r in aot_rows
             if r["kernel"] == kind and r["precision"] == precision]
    return statistics.median(times) if times else None


def pytest_sessionfinish(session):
    path = session.config.getoption("--census-json")
    if not path:
        return
    aot_path = session.config.getoption("--census-aot")
    aot_rows = json.loads(aot_path.read_text())["configs"] if aot_path else []
    report = {"compiles": {kind: len(keys) for kind, keys in CENSUS.keys.items()}, "by_test_file": {}}
    serial = 0.0
    for kind, keys in CENSUS.keys.items():
        for key in keys:
            for test in CENSUS.tests[key]:
                report["by_test_file"].setdefault(test, collections.Counter())[kind] += 1
            serial += _price(kind, key, aot_rows) or 0.0
    if aot_rows:
        report["serial_compile_seconds"] = round(serial, 1)
    path.write_text(json.dumps(report, indent=1))
    print(f"\ntriton compile census: {report['compiles']}" +
          (f", about {serial:.0f} s of cold compiles in series" if aot_rows else ""))
