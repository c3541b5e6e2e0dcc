"""The benchmark grid: which cases run, shared by `taylor-fast bench` and benchmarks/.

The full Cartesian product (3 kinds x 6 orders x 3 sizes x 3 hidden widths x 3 dtypes x 5
backends) would take hours on a small CPU, mostly in torch.compile and in 1080p backward
passes, and most of its points answer no question. So the grid is a headline plus sweeps
along one axis at a time, each sweep through the headline point:

- headline: order 3 (the paper's choice), hidden 32, fp32, every size, every kind;
- order sweep: orders 1..6 at 1x3x512x512, hidden 32, fp32, forward and forward+backward;
- hidden sweep: hidden 16 and 64 at 1x3x512x512, order 3, fp32, forward and forward+backward;
- dtype sweep (CUDA only): bf16 and fp16 at every size, order 3, hidden 32, forward and
  forward+backward (training stays fp32: mixed precision is autocast's job, not the op's).

--quick keeps the headline at the two smaller sizes, with the training step only at the
paper's training batch 4x3x100x100 (plus bf16 at 512x512 on CUDA), and no sweeps.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

KINDS = ("forward", "forward_backward", "train_step")
EXPANSION_KINDS = ("forward", "forward_backward")
BACKENDS = {
    "cpu": ("reference", "reference_compiled", "cpu", "triton"),
    "cuda": ("reference", "reference_compiled", "cuda", "triton"),
}
DEVICES = tuple(BACKENDS)
SIZES = ((4, 3, 100, 100), (1, 3, 512, 512), (1, 3, 1080, 1920))
SWEEP_SIZE = (1, 3, 512, 512)
HEADLINE_ORDER, HEADLINE_HIDDEN = 3, 32
ORDERS = (1, 2, 3, 4, 5, 6)
HIDDENS = (16, 32, 64)
LOW_PRECISION = ("bfloat16", "float16")

Shape = tuple[int, int, int, int]


@dataclass(frozen=True)
class CaseSpec:
    """One benchmark case: what runs (kind), on what (backend, device) and at which point."""

    kind: str
    backend: str
    device: str
    order: int
    hidden: int
    shape: Shape
    dtype: str
    group: str

    @property
    def shape_text(self) -> str:
        return "x".join(map(str, self.shape))

    @property
    def id(self) -> str:
        return (f"{self.device}-{self.kind}-{self.backend}-o{self.order}-h{self.hidden}-"
                f"{self.shape_text}-{self.dtype}")

    @property
    def point(self) -> tuple:
        """Everything but the backend: cases with the same point are compared with each other."""
        return self.device, self.kind, self.order, self.hidden, self.shape, self.dtype

    @property
    def pixels(self) -> int:
        n, _, h, w = self.shape
        return n * h * w


def parse_size(text: str) -> Shape:
    """'NxCxHxW' -> (N, C, H, W)."""
    if not re.fullmatch(r"\d+x\d+x\d+x\d+", text.strip()):
        raise ValueError(f"a size must be NxCxHxW with positive integers, e.g. 1x3x512x512; got {text!r}")
    shape = tuple(int(v) for v in text.strip().split("x"))
    if min(shape) < 1:
        raise ValueError(f"a size must be NxCxHxW with positive integers, e.g. 1x3x512x512; got {text!r}")
    return shape


def _points(device: str, quick: bool, sizes: tuple[Shape, ...] | None):
    """(group, kind, order, hidden, shape, dtype) tuples, before fanning out over backends."""
    headline_sizes = sizes or (SIZES[:2] if quick else SIZES)
    sweep_size = sizes[0] if sizes else SWEEP_SIZE
    o, h = HEADLINE_ORDER, HEADLINE_HIDDEN
    for shape in headline_sizes:
        for kind in KINDS:
            if quick and kind == "train_step" and not sizes and shape != SIZES[0]:
                continue
            yield "headline", kind, o, h, shape, "float32"
    if device == "cuda":
        for dtype in LOW_PRECISION[:1] if quick else LOW_PRECISION:
            for shape in (sweep_size,) if quick else headline_sizes:
                for kind in EXPANSION_KINDS:
                    yield "dtype-sweep", kind, o, h, shape, dtype
    if quick:
        return
    for kind in EXPANSION_KINDS:
        for order in ORDERS:
            if order != o:
                yield "order-sweep", kind, order, h, sweep_size, "float32"
        for hidden in HIDDENS:
            if hidden != h:
                yield "hidden-sweep", kind, o, hidden, sweep_size, "float32"


def cases(device: str, quick: bool = False, sizes: tuple[Shape, ...] | None = None,
          backends: tuple[str, ...] | None = None) -> list[CaseSpec]:
    """The grid for one device; `sizes` replaces the grid's sizes, `backends` restricts them."""
    if device not in BACKENDS:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    chosen = BACKENDS[device] if backends is None else tuple(b for b in BACKENDS[device] if b in backends)
    return [CaseSpec(kind, backend, device, order, hidden, shape, dtype, group)
            for group, kind, order, hidden, shape, dtype in _points(device, quick, sizes)
            for backend in chosen]
