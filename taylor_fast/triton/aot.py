"""Compiling the Triton kernels for a GPU architecture on a machine that has no GPU.

Triton's front end and ptxas need only a target, not a device: `triton.compile(ASTSource(...),
target=GPUTarget("cuda", 90, 32))` turns a kernel into PTX and a cubin for sm_90 (H100/H200)
anywhere. This module describes every launch the backend can make (kernel, C, hidden, dtype and
fp32 precision, the backward's use, tile config) with the argument types the host code passes,
compiles it, and reads back what decides whether it runs well: registers, spilled bytes, shared
memory, and how long the compile took (what a cold GPU run pays per config).

Used by benchmarks/triton_aot_report.py and the tests; never imported by the backend itself.
The kernels must have been decorated compiled (TRITON_INTERPRET unset when taylor_fast.triton
was first imported).
"""
from __future__ import annotations

import contextlib
import io
import re
import resource
import time
from dataclasses import dataclass

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from . import step
from ._tiling import BACKWARD_CONFIGS, FORWARD_CONFIGS, dot_shapes, fits_shared_memory

# fp32 runs on TF32 tensor cores unless exact fp32 is asked for (torch.backends.cudnn.allow_tf32)
PRECISIONS = {"tf32": "fp32", "ieee": "fp32", "bf16": "bf16", "fp16": "fp16"}
# How the backward kernel is launched: by the step op, and by the expansion's first (no
# incoming grad_y) and later orders. Each is a separate compile (HAS_EXTRA, ACCUMULATE_DY).
BACKWARD_USES = ("step", "expand_first", "expand_rest")
# The H100's opt-in shared memory per block (cudaDevAttrMaxSharedMemoryPerBlockOptin); H200 the same.
SM90_SHARED_MEMORY = 232_448


@dataclass(frozen=True)
class Launch:
    kernel: str  # "forward" | "backward"
    channels: int
    hidden: int
    precision: str  # a key of PRECISIONS
    config: triton.Config
    use: str = "step"  # backward only: a member of BACKWARD_USES

    @property
    def tile(self) -> str:
        return f"{self.config.kwargs['TH']}x{self.config.kwargs['TW']}/{self.config.num_warps}w"

    def describe(self) -> str:
        use = f" {self.use}" if self.kernel == "backward" else ""
        return f"{self.kernel}{use} C={self.channels} hidden={self.hidden} {self.precision} {self.tile}"


def configs_for(kernel: str, channels: int, hidden: int, precision: str, shared_memory: int) -> list:
    """The configs the autotuner may pick for these sizes on a GPU with `shared_memory` bytes per
    block (the same pruning the backend applies at launch)."""
    tuned = FORWARD_CONFIGS if kernel == "forward" else BACKWARD_CONFIGS
    return [c for c in tuned if fits_shared_memory(kernel, c, channels, hidden, operand_bytes(precision),
                                                   precision == "ieee", shared_memory)]


def operand_bytes(precision: str) -> int:
    return 2 if precision in ("bf16", "fp16") else 4


def launches(kernel: str, channels: int, hidden: int, precision: str, shared_memory: int = SM90_SHARED_MEMORY,
             prune: bool = True) -> list[Launch]:
    """Every launch of `kernel` the backend can make for these sizes: each pickable config, and for
    the backward each use. prune=False lists the unpruned configs too (to show what pruning saves)."""
    tuned = FORWARD_CONFIGS if kernel == "forward" else BACKWARD_CONFIGS
    chosen = configs_for(kernel, channels, hidden, precision, shared_memory) if prune else tuned
    uses = BACKWARD_USES if kernel == "backward" else ("step",)
    return [Launch(kernel, channels, hidden, precision, c, use) for c in chosen for use in uses]


def _signature(launch: Launch) -> tuple[object, dict, dict]:
    """(jit function, signature, constexprs) as the host code in step.py launches it."""
    dtype = PRECISIONS[launch.precision]
    shapes = {**dot_shapes(launch.channels, launch.hidden), "IEEE": launch.precision == "ieee",
              **launch.config.kwargs}
    if launch.kernel == "forward":
        jit = step._step_forward_kernel
        pointers = {name: dtype for name in jit.arg_names if name.endswith("_ptr")}
        scalars = {"H": "i32", "W": "i32", "k_coef": "fp32", "inv_fact": "fp32", "slope": "fp32"}
    else:
        jit = step._step_backward_kernel
        expand = launch.use != "step"
        # The expansion carries its adjoint a_k and grad_y in fp32 whatever the images' dtype;
        # the step op hands its own tensors through. Weight-gradient partials are always fp32.
        carried = "fp32" if expand else dtype
        pointers = {"dg_ptr": carried, "g_ptr": dtype, "y_ptr": dtype, "w1_ptr": dtype, "b1_ptr": dtype,
                    "w2_ptr": dtype, "extra_ptr": dtype,
                    "dy_in_ptr": "fp32" if launch.use == "expand_rest" else dtype,
                    "grad_g_ptr": carried, "dy_out_ptr": carried,
                    "pw1_ptr": "fp32", "pb1_ptr": "fp32", "pw2_ptr": "fp32", "pb2_ptr": "fp32"}
        scalars = {"N": "i32", "H": "i32", "W": "i32", "k_coef": "fp32", "extra_coef": "fp32", "slope": "fp32",
                   "programs": "i32"}
        shapes.update(HAS_EXTRA=expand, ACCUMULATE_DY=launch.use == "expand_rest")
    signature = {}
    for name in jit.arg_names:
        if name in pointers:
            signature[name] = "*" + pointers[name]
        elif name in scalars:
            signature[name] = scalars[name]
        else:
            signature[name] = "constexpr"
    return jit, signature, {name: shapes[name] for name in jit.arg_names if signature[name] == "constexpr"}


_PTXAS_USED = re.compile(r"Used (\d+) registers")
_PTXAS_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (ptxas runs as one): unlike wall time,
    it does not grow when other work shares the machine."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class Compiled:
    launch: Launch
    seconds: float
    cpu_seconds: float
    registers: int
    spill_store_bytes: int
    spill_load_bytes: int
    stack_bytes: int
    shared_bytes: int

    @property
    def spill_bytes(self) -> int:
        return self.spill_store_bytes + self.spill_load_bytes


def compile_launch(launch: Launch, arch: int = 90) -> Compiled:
    """Compile one launch for sm_<arch> (a cold compile when Triton's cache is empty) and read
    ptxas's report of it."""
    from triton import knobs

    jit, signature, constants = _signature(launch)
    knobs.nvidia.dump_ptxas_log = True  # ptxas runs with -v inside triton.compile; have it print
    log = io.StringIO()
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    with contextlib.redirect_stdout(log):
        kernel = triton.compile(ASTSource(jit, signature, constexprs=constants), target=GPUTarget("cuda", arch, 32),
                                options={"num_warps": launch.config.num_warps, "num_stages": launch.config.num_stages})
    seconds, cpu_seconds = time.perf_counter() - start, _cpu_seconds() - cpu_start
    text = log.getvalue()
    used, frame = _PTXAS_USED.search(text), _PTXAS_FRAME.search(text)
    if used is None or frame is None:
        raise RuntimeError(f"no ptxas report for {launch.describe()} (a cached compile? use an empty TRITON_CACHE_DIR)")
    return Compiled(launch, seconds, cpu_seconds, int(used[1]), int(frame[2]), int(frame[3]), int(frame[1]),
                    int(kernel.metadata.shared))
