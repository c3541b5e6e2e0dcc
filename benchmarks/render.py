"""Regenerate the figures of benchmarks/README.md from the committed results.

    python benchmarks/render.py            (make bench runs it after the suite)

Reads benchmarks/results/*.json (the documents of `taylor-fast bench --json` or
`pytest benchmarks --taylor-results`), draws results/time_vs_resolution.png (headline cases:
order 3, hidden 32; one panel per device and kind, one line per backend and dtype) and
rewrites the part of README.md between the results markers: per device, its environment,
peaks and table.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from taylor_fast.bench import results, table  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PLOT = RESULTS / "time_vs_resolution.png"
README = HERE / "README.md"
BEGIN, END = "<!-- results:begin (written by render.py) -->", "<!-- results:end -->"
DTYPE_STYLE = {"float32": "-", "bfloat16": "--", "float16": ":"}


def load() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]


def _headline(doc: dict) -> list[dict]:
    return [r for r in doc["cases"] if r["status"] == "ok" and r["group"] in ("headline", "dtype-sweep")]


def plot(docs: list[dict], path: Path) -> None:
    kinds = table.KIND_ORDER
    fig, axes = plt.subplots(len(docs), len(kinds), figsize=(5 * len(kinds), 3.8 * len(docs)), squeeze=False)
    for row, doc in zip(axes, docs):
        for ax, kind in zip(row, kinds):
            series: dict[tuple[str, str], list[tuple[float, float]]] = {}
            for r in _headline(doc):
                if r["kind"] == kind:
                    n, _, h, w = r["shape"]
                    series.setdefault((r["backend"], r["dtype"]), []).append((n * h * w / 1e6, r["time"]["median_ms"]))
            for (backend, dtype), points in sorted(series.items()):
                xs, ys = zip(*sorted(points))
                ax.plot(xs, ys, DTYPE_STYLE.get(dtype, "-"), marker="o", label=f"{backend} {dtype}")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{doc['device']['name']} ({doc['device']['type']}): {kind}", fontsize=9)
            ax.set_xlabel("megapixels per call (N*H*W)")
            ax.set_ylabel("median time per call (ms)")
            ax.grid(True, which="both", alpha=0.3)
            if series:
                ax.legend(fontsize=7)
    fig.suptitle("order 3, hidden 32: time against resolution per backend", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _peaks_text(doc: dict) -> list[str]:
    peaks = doc["peaks"]
    measured = peaks["measured"]
    mm = ", ".join(f"{dtype} {value:.1f} GFLOP/s" for dtype, value in measured["matmul_gflops"].items())
    lines = [f"- measured peaks: matmul {mm}; copy {measured['copy_gbps']:.1f} GB/s ({measured['method']})"]
    if measured.get("fma_float32_gflops"):
        lines.append(f"- measured fp32 FMA peak: {measured['fma_float32_gflops']:.1f} GFLOP/s "
                     f"({measured['fma_method']}); \"% peak\" of the fp32 rows is over this one")
    elif "fma_method" in measured:
        lines.append(f"- fp32 FMA peak not measured ({measured['fma_method']}); \"% peak\" is over the matmul peak")
    if "theoretical" in peaks:
        theo = peaks["theoretical"]
        value = f"{theo['float32_gflops']:.1f} GFLOP/s" if theo["float32_gflops"] else "unknown"
        lines.append(f"- theoretical fp32 peak: {value} = {theo['derivation']}")
    if peaks.get("datasheet"):
        sheet = peaks["datasheet"]
        lines.append(f"- datasheet ({sheet['board']}): " + ", ".join(f"{k} {v} TFLOP/s" for k, v in sheet["tflops_dense"].items())
                     + f", {sheet['bandwidth_gbps']:.0f} GB/s")
    return lines


def section(doc: dict) -> str:
    env = doc["environment"]
    commit = (env.get("commit") or "unknown")[:10] + (" (uncommitted changes)" if env.get("dirty") else "")
    load = env.get("load_average_at_start"), env.get("load_average_at_end")
    note = results.busy_note(env)
    lines = [
        f"### {doc['device']['type']}: {doc['device']['name']}",
        "",
        *([f"**{note}.**", ""] if note else []),
        f"- recorded {doc['created']}, grid `{doc['grid']}`, commit {commit}, torch {env['torch']}"
        + (f", CUDA {env['cuda']}" if doc["device"]["type"] == "cuda" else f", {env['torch_threads']} threads")
        + (f", 1-min load average {load[0][0]:.2f} at start, {load[1][0]:.2f} at end" if all(load) else ""),
        *_peaks_text(doc),
        f"- peak memory: {doc['memory_method']}",
        *([f"- CPU allocator: {env['cpu_allocator']}"] if "cpu_allocator" in env else []),
        "",
        table.markdown(doc["cases"]),
    ]
    return "\n".join(lines)


def update_readme(docs: list[dict]) -> None:
    text = README.read_text()
    if BEGIN not in text or END not in text:
        sys.exit(f"{README} lacks the markers {BEGIN!r} ... {END!r}")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    body = "\n\n".join(section(doc) for doc in docs) if docs else "(no results recorded yet)"
    README.write_text(f"{head}{BEGIN}\n{body}\n{END}{tail}")


def main() -> int:
    docs = load()
    if docs:
        plot(docs, PLOT)
    update_readme(docs)
    print(f"rendered {len(docs)} result file(s) into {README.name}" + (f" and {PLOT.relative_to(HERE)}" if docs else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
