"""pytest-benchmark suite of taylor_fast (see benchmarks/README.md).

The cases come from taylor_fast.bench.grid, the same grid `taylor-fast bench` runs, and are
generated for both devices: every backend that cannot run here is collected and skipped with
the reason (no GPU, kernels not built, dtype not implemented...). CUDA cases carry the `cuda`
marker (select them with -m cuda), Triton cases the `triton` marker.

Options:
  --taylor-grid full|quick|headline   the grid (default full; `taylor-fast bench --grid`'s)
  --taylor-size NxCxHxW      replace the grid's sizes (repeatable)
  --taylor-results DIR       write one results document per device there, as
                             DIR/<device>-<name>.json (the format of `taylor-fast bench --json`)

Only fixtures and hooks named for this suite are defined here (taylor_*), so other suites in
this folder (test_bench_backbones.py) are untouched. The derived figures (speed-ups against
the eager and compiled reference, GFLOP/s, GB/s, fractions of peak) are added to the
pytest-benchmark JSON's extra_info too, so --benchmark-json/--benchmark-save carry them.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from taylor_fast.bench import allocator, grid, results, runner, table, workloads

_RECORDS = pytest.StashKey[list]()
_DOCUMENTS = pytest.StashKey[dict]()
_LOAD_AT_START = pytest.StashKey[object]()
DERIVED_KEYS = ("vs_reference", "vs_compiled", "gflops", "gbps", "fraction_of_peak_flops", "fraction_of_peak_bandwidth")


def pytest_addoption(parser):
    group = parser.getgroup("taylor_fast", "taylor_fast benchmark grid")
    group.addoption("--taylor-grid", choices=grid.GRIDS, default="full",
                    help="benchmark grid: full (make bench), quick or headline (taylor-fast bench --grid)")
    group.addoption("--taylor-size", action="append", type=grid.parse_size, default=[], metavar="NxCxHxW",
                    help="replace the grid's image sizes (repeatable)")
    group.addoption("--taylor-results", type=Path, default=None, metavar="DIR",
                    help="write one results JSON per device into DIR")


def pytest_configure(config):
    allocator.keep_freed_memory()  # every CPU case in the same allocator state (see its docstring)
    config.stash[_RECORDS] = []
    config.stash[_LOAD_AT_START] = results.load_average()


def _param(spec):
    marks = [pytest.mark.cuda] if spec.device == "cuda" else []
    if spec.backend == "triton":
        marks.append(pytest.mark.triton)
    reason = workloads.static_skip_reason(spec)
    if reason is not None:
        marks.append(pytest.mark.skip(reason=reason))
    return pytest.param(spec, id=spec.id, marks=marks)


def pytest_generate_tests(metafunc):
    if "taylor_case" not in metafunc.fixturenames:
        return
    opt = metafunc.config.getoption
    sizes = tuple(opt("--taylor-size")) or None
    specs = [spec for device in grid.DEVICES
             for spec in grid.cases(device, opt("--taylor-grid"), sizes=sizes)]
    metafunc.parametrize("taylor_case", [_param(spec) for spec in specs])


@pytest.fixture
def taylor_budget(request) -> str:
    return grid.timing_budget(request.config.getoption("--taylor-grid"))


@pytest.fixture
def taylor_records(request) -> list:
    """The session's result records; the hooks below turn them into documents."""
    return request.config.stash[_RECORDS]


def _grid_name(config) -> str:
    sizes = config.getoption("--taylor-size")
    name = config.getoption("--taylor-grid")
    return name + (f" (sizes {', '.join('x'.join(map(str, s)) for s in sizes)})" if sizes else "")


def _documents(config) -> dict:
    """{device: results document}, computed once (measuring each device's peaks) and cached."""
    if _DOCUMENTS not in config.stash:
        by_device: dict[str, list] = {}
        for record in config.stash[_RECORDS]:
            by_device.setdefault(record["device"], []).append(record)
        config.stash[_DOCUMENTS] = {device: runner.finish(device, _grid_name(config), records,
                                                               config.stash[_LOAD_AT_START])
                                    for device, records in by_device.items()}
    return config.stash[_DOCUMENTS]


def pytest_benchmark_update_json(config, benchmarks, output_json):
    derived = {r["id"]: r for doc in _documents(config).values() for r in doc["cases"]}
    for bench in output_json.get("benchmarks", []):
        record = derived.get(bench.get("extra_info", {}).get("taylor_case"))
        if record is not None:
            bench["extra_info"].update({key: record.get(key) for key in DERIVED_KEYS})


def pytest_sessionfinish(session):
    config = session.config
    if not config.stash[_RECORDS]:
        return
    directory = config.getoption("--taylor-results")
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    for doc in _documents(config).values():
        path = directory / f"{results.slug(doc)}.json"
        path.write_text(json.dumps(doc, indent=1) + "\n")
        doc["written_to"] = str(path)


def pytest_terminal_summary(terminalreporter, config):
    if not config.stash[_RECORDS]:
        return
    for device, doc in _documents(config).items():
        terminalreporter.write_sep("-", f"taylor_fast benchmarks on {device}: {doc['device']['name']}")
        terminalreporter.write_line(table.text(doc["cases"]))
        note = results.busy_note(doc["environment"])
        if note:
            terminalreporter.write_line(note)
        if "written_to" in doc:
            terminalreporter.write_line(f"wrote {doc['written_to']}")
