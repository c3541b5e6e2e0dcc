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

On CUDA, fp32 comes in two precisions: "float32" is exact fp32 (TF32 off, as with
torch.backends.cudnn.allow_tf32 = False) and "tf32" is fp32 tensors multiplied on TF32 tensor
cores (torch's default for convolutions, which the Triton kernels follow too). The headline
runs both; the sweeps run "tf32", what an unconfigured PyTorch program gets.

Named grids (`taylor-fast bench --grid NAME`):
- full: the above (`make bench`);
- quick: the headline at the two smaller sizes, with the training step only at the paper's
  training batch 4x3x100x100 (plus bf16 at 512x512 on CUDA), and no sweeps;
- headline: forward and forward+backward at order 3, hidden 32, at 4x3x512x512 and
  1x3x1080x1920, in every precision of the device (CUDA: tf32, float32, bfloat16), eager and
  fused, the compiled reference in the default precision only: the figures a first GPU run
  must bring back, in a few minutes.
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
GRIDS = ("full", "quick", "headline")
SIZES = ((4, 3, 100, 100), (1, 3, 512, 512), (1, 3, 1080, 1920))
HEADLINE_SIZES = ((4, 3, 512, 512), (1, 3, 1080, 1920))
SWEEP_SIZE = (1, 3, 512, 512)
HEADLINE_ORDER, HEADLINE_HIDDEN = 3, 32
ORDERS = (1, 2, 3, 4, 5, 6)
HIDDENS = (16, 32, 64)
LOW_PRECISION = ("bfloat16", "float16")
# precision name -> (tensor dtype, TF32 tensor cores allowed)
PRECISIONS = {"float32": ("float32", False), "tf32": ("float32", True), "bfloat16": ("bfloat16", False),
              "float16": ("float16", False), "float64": ("float64", False)}

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
    dtype: str  # a precision name, a key of PRECISIONS ("tf32": float32 tensors on TF32 tensor cores)
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


def timing_budget(name: str) -> str:
    """The timing budget (taylor_fast/bench/timing.py) of grid `name`: the full grid's for it, the
    short one for the grids meant to finish in minutes."""
    return "full" if name == "full" else "quick"


def tensor_dtype(precision: str) -> str:
    """The torch dtype name of a precision ("tf32" -> "float32")."""
    return PRECISIONS[precision][0]


def allows_tf32(precision: str) -> bool:
    return PRECISIONS[precision][1]


def fp32_precisions(device: str) -> tuple[str, ...]:
    """fp32 as a device runs it: TF32 tensor cores and exact fp32 on CUDA, plain fp32 on a CPU."""
    return ("tf32", "float32") if device == "cuda" else ("float32",)


def _default_fp32(device: str) -> str:
    return fp32_precisions(device)[0]


def _headline_points(device: str, sizes: tuple[Shape, ...] | None):
    o, h = HEADLINE_ORDER, HEADLINE_HIDDEN
    precisions = fp32_precisions(device) + (LOW_PRECISION[:1] if device == "cuda" else ())
    for shape in sizes or HEADLINE_SIZES:
        for precision in precisions:
            for kind in EXPANSION_KINDS:
                yield "headline", kind, o, h, shape, precision


def _points(device: str, name: str, sizes: tuple[Shape, ...] | None):
    """(group, kind, order, hidden, shape, precision) tuples, before fanning out over backends."""
    if name == "headline":
        yield from _headline_points(device, sizes)
        return
    quick = name == "quick"
    headline_sizes = sizes or (SIZES[:2] if quick else SIZES)
    sweep_size = sizes[0] if sizes else SWEEP_SIZE
    o, h = HEADLINE_ORDER, HEADLINE_HIDDEN
    for shape in headline_sizes:
        for kind in KINDS:
            if quick and kind == "train_step" and not sizes and shape != SIZES[0]:
                continue
            for precision in fp32_precisions(device):
                yield "headline", kind, o, h, shape, precision
    if device == "cuda":
        for dtype in LOW_PRECISION[:1] if quick else LOW_PRECISION:
            for shape in (sweep_size,) if quick else headline_sizes:
                for kind in EXPANSION_KINDS:
                    yield "dtype-sweep", kind, o, h, shape, dtype
    if quick:
        return
    fp32 = _default_fp32(device)
    for kind in EXPANSION_KINDS:
        for order in ORDERS:
            if order != o:
                yield "order-sweep", kind, order, h, sweep_size, fp32
        for hidden in HIDDENS:
            if hidden != h:
                yield "hidden-sweep", kind, o, hidden, sweep_size, fp32


def cases(device: str, name: str = "full", sizes: tuple[Shape, ...] | None = None,
          backends: tuple[str, ...] | None = None) -> list[CaseSpec]:
    """The grid `name` (one of GRIDS) for one device; `sizes` replaces the grid's sizes, `backends`
    restricts them. The headline grid times the compiled reference in the default precision only."""
    if device not in BACKENDS:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if name not in GRIDS:
        raise ValueError(f"grid must be one of {GRIDS}, got {name!r}")
    chosen = BACKENDS[device] if backends is None else tuple(b for b in BACKENDS[device] if b in backends)
    return [CaseSpec(kind, backend, device, order, hidden, shape, precision, group)
            for group, kind, order, hidden, shape, precision in _points(device, name, sizes)
            for backend in chosen
            if not (name == "headline" and backend == "reference_compiled" and precision != _default_fp32(device))]
