"""The results as a table: plain text for the terminal, Markdown for benchmarks/README.md."""
from __future__ import annotations

HEADER = ("group", "kind", "backend", "order", "hidden", "shape", "dtype", "median ms", "IQR ms",
          "x eager", "x compiled", "GFLOP/s", "% peak", "GB/s", "peak MiB")
GROUP_ORDER = ("headline", "dtype-sweep", "order-sweep", "hidden-sweep")
KIND_ORDER = ("forward", "forward_backward", "train_step")
BACKEND_ORDER = ("reference", "reference_compiled", "cpu", "cuda", "triton")
FIRST_NUMERIC = HEADER.index("median ms")


def _num(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _sort_key(r: dict):
    def index(seq, value):
        return seq.index(value) if value in seq else len(seq)

    n, _, h, w = r["shape"]
    return (index(GROUP_ORDER, r["group"]), index(KIND_ORDER, r["kind"]), r["dtype"], n * h * w,
            r["order"], r["hidden"], index(BACKEND_ORDER, r["backend"]))


def rows(records: list[dict]) -> list[tuple[str, ...]]:
    out = []
    for r in sorted((r for r in records if r["status"] == "ok"), key=_sort_key):
        t = r["time"]
        mem = r.get("peak_memory_bytes")
        fractions = r.get("fraction_of_peak_flops", {})
        pct = fractions.get("measured_fma", fractions.get("measured_matmul"))
        out.append((
            r["group"], r["kind"], r["backend"], str(r["order"]), str(r["hidden"]), "x".join(map(str, r["shape"])),
            r["dtype"], _num(t["median_ms"], ".3f"), _num(t["iqr_ms"], ".3f"),
            _num(r.get("vs_reference"), ".2f"), _num(r.get("vs_compiled"), ".2f"), _num(r.get("gflops"), ".1f"),
            _num(pct * 100 if pct is not None else None, ".1f"), _num(r.get("gbps"), ".2f"),
            _num(mem / 2 ** 20 if mem is not None else None, ".1f"),
        ))
    return out


def skipped(records: list[dict]) -> list[str]:
    """One line per distinct (backend, reason) among the skipped cases, with a count."""
    counts: dict[tuple[str, str], int] = {}
    for r in records:
        if r["status"] == "skipped":
            counts[(r["backend"], r["reason"])] = counts.get((r["backend"], r["reason"]), 0) + 1
    return [f"{backend}: {reason} ({n} case{'s' * (n != 1)})" for (backend, reason), n in counts.items()]


def text(records: list[dict]) -> str:
    body = rows(records)
    widths = [max(len(row[i]) for row in (HEADER, *body)) for i in range(len(HEADER))]
    lines = ["  ".join(cell.rjust(w) if i >= FIRST_NUMERIC else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in (HEADER, *body)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if not body:
        lines.append("(no case ran)")
    return "\n".join(lines + [f"skipped {line}" for line in skipped(records)])


def markdown(records: list[dict]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" if i < FIRST_NUMERIC else "--:" for i in range(len(HEADER))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows(records)]
    lines += [""] + [f"- skipped {line}" for line in skipped(records)]
    return "\n".join(lines)
