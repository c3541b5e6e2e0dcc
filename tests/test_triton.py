"""What is particular to the Triton backend: that it runs here at all, its tile seams and the
programs that reduce several tiles, its capture by torch.compile, the autotuning configurations
of the compiled kernels, TF32 and real image sizes on a GPU, and inductor. What every backend
must do (values, gradients, layouts, sizes, opcheck, low precision) is in
test_backend_conformance.py.

Without a GPU the kernels run on CPU tensors through Triton's interpreter (conftest.py sets
TRITON_INTERPRET=1 before anything imports them), where tl.dot is an exact fp32 numpy product.
On a GPU the same tests run compiled (TF32 off, so fp32 stays fp32), plus those marked cuda.
"""
import json
import os
import subprocess
import sys

import pytest
import torch

import taylor_fast
from backend_cases import device_of, marks_for
from kernel_oracles import as64, assert_fp64_close, reference_grads, reference_terms
from sample_tensors import make_images, make_weights
from taylor_fast import ops, reference
from taylor_fast.triton import _tiling  # without triton this module fails: it must not skip

DEVICE = device_of("triton")
pytestmark = marks_for("triton", DEVICE)


def test_backend_is_available_here():
    # Deliberately not a skip: CI must run the kernels, through the interpreter if need be.
    available, reason = taylor_fast.backends()["triton"]
    assert available, reason


@pytest.fixture(autouse=True)
def seed():
    """The random upstream gradients are the same on every run (conftest keeps fp32 exact)."""
    torch.manual_seed(0)


def problem(shape, order, per_order, hidden=8, seed=0):
    """fp32 leaf tensors (f, y, w1, b1, w2, b2) on the backend's device."""
    n, c, h, w = shape
    f, y = make_images(n, c, h, w, dtype=torch.float32, seed=seed)
    weights = make_weights(c, hidden, orders=order if per_order else None, dtype=torch.float32, seed=seed + 1)
    return [t.to(DEVICE).requires_grad_() for t in (f, y, *weights)]


def test_tile_seams_multi_tile_programs_and_determinism():
    # 7 x 15 images span 2 x 2 interpreter tiles, and with two images the backward's few programs
    # each reduce the weight gradients of several tiles, across the image boundary.
    inputs = problem((2, 3, 7, 15), None, False, hidden=16)
    out = ops.taylor_expand(*inputs, 1, "leaky_relu", 0.2, backend="triton")
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, inputs, grad_out, retain_graph=True)
    f64, y64, *weights64 = (t.cpu() for t in as64(inputs))
    assert_fp64_close([out.cpu()], [reference_terms(f64, y64, weights64, 1, 0.2)[0]], rel=2e-5)
    assert_fp64_close([g.cpu() for g in grads], reference_grads(f64, y64, weights64, 1, 0.2, grad_out.double().cpu()),
                      rel=2e-5, names="f y w1 b1 w2 b2")
    again = torch.autograd.grad(out, inputs, grad_out)
    assert all(torch.equal(a, b) for a, b in zip(grads, again)), "the backward is not deterministic"


def test_torch_compile_traces_the_op_without_graph_breaks():
    # fullgraph=True fails on any graph break. Under the interpreter the ops are opaque custom ops
    # (see taylor_fast/triton/_registration.py), so this checks that dynamo and AOTAutograd capture
    # the public op with its fake kernels and registered backward; aot_eager then runs the captured
    # graph eagerly, which the interpreter can. That the triton_op decomposes into its kernels is
    # test_compiled_mode_availability_and_graph_capture's; inductor compiling them needs a GPU.
    inputs = problem((1, 3, 5, 7), 2, True)

    def loss(*t):
        return ops.taylor_expand(*t, 2, "leaky_relu", 0.1, backend="triton").square().sum()

    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
    got = torch.autograd.grad(compiled(*inputs), inputs)
    want = torch.autograd.grad(loss(*inputs), inputs)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


COMPILED_MODE = """
import json, torch, triton
import taylor_fast
available, reason = taylor_fast.backends()["triton"]
if not torch.cuda.is_available():
    # torch's analysis of what a kernel mutates generates its TTIR: that needs a target, not a device
    from triton.backends.compiler import GPUTarget

    class TargetOnly:
        def get_current_target(self):
            return GPUTarget("cuda", 90, 32)

    triton.runtime.driver.set_active(TargetOnly())
from taylor_fast.triton import _registration
from torch._functorch.aot_autograd import aot_export_joint_simple
from torch._higher_order_ops.triton_kernel_wrap import kernel_side_table
from torch._subclasses.fake_tensor import FakeTensorMode

def loss(f, y, w1, b1, w2, b2):
    return (torch.ops.taylor_fast.triton_expand_forward(f, y, w1, b1, w2, b2, 2, 0.1)[0].square().sum(),)

device = "cuda" if torch.cuda.is_available() else "cpu"
with FakeTensorMode():
    shapes = [(1, 3, 5, 7), (1, 3, 5, 7), (2, 8, 6, 3, 3), (2, 8), (2, 3, 8, 3, 3), (2, 3)]
    inputs = [torch.empty(s, device=device).requires_grad_() for s in shapes]


def trace():
    graph = aot_export_joint_simple(loss, inputs, trace_joint=True).graph
    kernels = [kernel_side_table.get_kernel(n.kwargs["kernel_idx"]) for n in graph.nodes
               if n.target is torch.ops.higher_order.triton_kernel_wrapper_functional]
    return graph, [k.fn.__name__ for k in kernels], [len(k.configs) for k in kernels]

graph, launched, configs = trace()
opaque = [str(n.target) for n in graph.nodes if "taylor_fast" in str(n.target)]
torch.use_deterministic_algorithms(True)
_, launched_deterministic, configs_deterministic = trace()
print(json.dumps({"available": available, "reason": reason, "traceable": _registration.TRACEABLE,
                  "launched": launched, "opaque": opaque, "configs": configs,
                  "launched_deterministic": launched_deterministic, "configs_deterministic": configs_deterministic}))
"""


def test_compiled_mode_availability_and_graph_capture():
    # Without the interpreter, Triton compiles the kernels. On this CPU-only machine the backend
    # must then say it is unavailable and how to enable it; and, since Triton's front end needs
    # only a target, the ops must still trace (forward and registered backward, AOTAutograd) into
    # graph nodes that launch the Triton kernels themselves, the form inductor compiles on a GPU,
    # with one pinned config per kernel when determinism is asked for.
    # autotuning on in the child whatever this process runs with (gpu_check.sh's Triton stage
    # sets TAYLOR_FAST_TRITON_AUTOTUNE=0): the configs counted below are the autotuner's
    env = {**os.environ, "TRITON_INTERPRET": "0", "TAYLOR_FAST_TRITON_AUTOTUNE": "1"}
    proc = subprocess.run([sys.executable, "-c", COMPILED_MODE], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["available"] == torch.cuda.is_available(), result["reason"]
    if not torch.cuda.is_available():
        assert "no CUDA GPU" in result["reason"] and "TRITON_INTERPRET=1" in result["reason"]
    assert result["traceable"]
    assert result["launched"] == ["_step_forward_kernel"] * 2 + ["_step_backward_kernel"] * 2
    assert result["opaque"] == [], "the triton_op was not decomposed into its kernels"
    # autotuned over every config, except under torch.use_deterministic_algorithms(True): one pinned
    assert result["configs"] == [len(_tiling.FORWARD_CONFIGS)] * 2 + [len(_tiling.BACKWARD_CONFIGS)] * 2
    assert result["launched_deterministic"] == result["launched"]
    assert result["configs_deterministic"] == [1, 1, 1, 1]


# ---- real sizes on a GPU: error against fp64, relative to the eager reference's in the same dtype ----


def relative_rms(got, exact):
    return ((got.double() - exact).square().mean().sqrt() / exact.square().mean().sqrt()).item()


def assert_within_eager_error(shape, hidden, per_order, dtype, factor, floor=0.0):
    """The Triton backend's error against the fp64 reference (output and every gradient, RMS
    relative to the reference's RMS) is at most `factor` times the eager reference's in `dtype`."""
    order = 3
    n, c, h, w = shape
    f, y = make_images(n, c, h, w, dtype=torch.float64)
    weights = make_weights(c, hidden, orders=order if per_order else None, dtype=torch.float64, scale=0.2)
    exact = [t.to(DEVICE).requires_grad_() for t in (f, y, *weights)]
    low = [t.detach().to(dtype).requires_grad_() for t in exact]
    grad_out = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2)).to(DEVICE)

    def run(expand, inputs):
        out = expand(*inputs, order, "relu")
        return [out, *torch.autograd.grad(out, inputs, grad_out.to(out.dtype))]

    reference_run = run(reference.taylor_expand, exact)
    eager = run(reference.taylor_expand, low)
    triton = run(lambda *a: ops.taylor_expand(*a, backend="triton"), low)
    for name, got, bound, want in zip(("out", "f", "y", "w1", "b1", "w2", "b2"), triton, eager, reference_run):
        got_error, eager_error = relative_rms(got, want), relative_rms(bound, want)
        assert got_error <= max(factor * eager_error, floor), (
            f"{name}: triton {dtype} error {got_error:.3g}, eager {dtype} error {eager_error:.3g}")


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16", "fp16"])
@pytest.mark.parametrize("per_order", [False, True], ids=["shared", "per_order"])
@pytest.mark.parametrize("shape", [(4, 3, 100, 100), (1, 3, 256, 384)], ids=lambda s: "x".join(map(str, s)))
def test_real_sizes_within_twice_the_eager_error(shape, per_order, precision):
    dtype = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    # tf32: both sides on TF32 tensor cores (torch's default for fp32 convolutions); the floor
    # (4 TF32 units of roundoff) covers cuDNN choosing a full-fp32 algorithm for the reference.
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    assert_within_eager_error(shape, 32, per_order, dtype, 2.0, floor=2e-3 if precision == "tf32" else 0.0)


@pytest.mark.cuda
def test_inductor_compiles_the_triton_op():
    # TF32 on both sides (torch's default): the compiled and the eager call run the same kernels,
    # and exact fp32's 3xTF32 kernels are the slowest to compile (tens of seconds each)
    torch.backends.cudnn.allow_tf32 = True
    inputs = problem((2, 3, 64, 80), 3, False, hidden=32)

    def loss(*t):
        return ops.taylor_expand(*t, 3, backend="triton").square().sum()

    got = torch.autograd.grad(torch.compile(loss, fullgraph=True)(*inputs), inputs)
    want = torch.autograd.grad(loss(*inputs), inputs)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
