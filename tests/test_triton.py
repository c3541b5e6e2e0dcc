"""The Triton backend against the reference: forward and every gradient.

Without a GPU the kernels run on CPU tensors through Triton's interpreter (conftest.py sets
TRITON_INTERPRET=1 before anything imports them), where tl.dot is an exact fp32 numpy product.
On a GPU the same tests run compiled (TF32 off, so fp32 stays fp32), plus those marked cuda:
real sizes in fp32, TF32, bf16 and fp16, and inductor.
"""
import itertools
import json
import os
import subprocess
import sys

import pytest
import torch

import taylor_fast
from backend_cases import device_of, marks_for
from sample_tensors import make_images, make_weights
from taylor_fast import backends, ops, reference
from taylor_fast.triton import INTERPRETED  # without triton this module fails: it must not skip
from taylor_fast.triton import _tiling

DEVICE = device_of("triton")
pytestmark = marks_for("triton", DEVICE)
ops_ = torch.ops.taylor_fast

SHAPES = [(1, 3, 5, 7), (2, 3, 4, 6), (1, 1, 3, 9)]
SLOPES = {"relu": 0.0, "leaky_relu": 0.1}


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


def reference_grads(fn, inputs, grad_out):
    """fp64 reference output and gradients for the same (fp32-valued) inputs."""
    inputs64 = [t.detach().double().requires_grad_() for t in inputs]
    out = fn(*inputs64)
    outs = out if isinstance(out, tuple) else (out,)
    grads = torch.autograd.grad(outs, inputs64, [g.double() for g in grad_out], allow_unused=True)
    return outs, [torch.zeros_like(t) if g is None else g for t, g in zip(inputs64, grads)]


def assert_matches(got, expected, what, tol=2e-5):
    """Max error relative to the largest reference value (at least 1): fp32 results of sums of a
    few hundred products, against fp64; the errors seen are around 5e-7."""
    assert got.shape == expected.shape, f"{what}: shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
    if expected.numel() == 0:
        return
    scale = max(1.0, expected.abs().max().item())
    error = (got.double() - expected).abs().max().item()
    assert error <= tol * scale, f"{what}: max error {error:.3g} (reference magnitude {scale:.3g})"


def expand_cases():
    """Every (order 0..4, shared/per-order, activation) combination, each on one of the shapes in
    turn: the shape handling does not depend on the rest, and the interpreter is slow enough that
    the full cross product would cost three times as long for no extra coverage."""
    combos = itertools.product(range(5), (False, True), ("relu", "leaky_relu"))
    for i, (order, per_order, activation) in enumerate(combos):
        shape = SHAPES[i % len(SHAPES)]
        case_id = f"{'x'.join(map(str, shape))}-order{order}-{'per_order' if per_order else 'shared'}-{activation}"
        yield pytest.param(shape, order, per_order, activation, id=case_id)


@pytest.mark.parametrize("shape,order,per_order,activation", list(expand_cases()))
def test_expand_and_its_gradients_match_reference(shape, order, per_order, activation):
    inputs = problem(shape, order, per_order)
    slope = SLOPES[activation]
    out, gs = ops_.triton_expand_forward(*inputs, order, slope)
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, inputs, grad_out)

    (expected,), expected_grads = reference_grads(
        lambda *t: reference.taylor_expand(*t, order, activation, slope), inputs, [grad_out])
    assert_matches(out, expected, "out")
    _, terms = reference.taylor_terms(*[t.detach().double() for t in inputs], order, activation, slope)
    assert gs.shape == (order, *shape)
    for k, term in enumerate(terms):
        assert_matches(gs[k], term, f"g^{k + 1}")
    for name, got, want in zip(("f", "y", "w1", "b1", "w2", "b2"), grads, expected_grads):
        assert_matches(got, want, f"grad_{name}")


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
@pytest.mark.parametrize("k", [0, 3])
def test_step_and_its_gradients_match_reference(k, activation):
    g, y, *weights = problem((2, 3, 4, 6), None, False, seed=k)
    acc = torch.rand_like(g).requires_grad_()
    inputs = [g, y, acc, *weights]
    slope = SLOPES[activation]
    outs = ops.taylor_step(*inputs, k, activation, slope, backend="triton")
    grad_outs = [torch.randn_like(o) for o in outs]
    grads = torch.autograd.grad(outs, inputs, grad_outs)

    expected, expected_grads = reference_grads(
        lambda *t: reference.taylor_step(*t, k, activation, slope), inputs, grad_outs)
    for name, got, want in zip(("g_next", "acc_next"), outs, expected):
        assert_matches(got, want, name)
    for name, got, want in zip(("g", "y", "acc", "w1", "b1", "w2", "b2"), grads, expected_grads):
        assert_matches(got, want, f"grad_{name}")


def test_tile_seams_multi_tile_programs_and_determinism():
    # 7 x 15 images span 2 x 2 interpreter tiles, and with two images the backward's few programs
    # each reduce the weight gradients of several tiles, across the image boundary.
    inputs = problem((2, 3, 7, 15), None, False, hidden=16)
    out = ops.taylor_expand(*inputs, 1, "leaky_relu", 0.2, backend="triton")
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, inputs, grad_out, retain_graph=True)
    (expected,), expected_grads = reference_grads(
        lambda *t: reference.taylor_expand(*t, 1, "leaky_relu", 0.2), inputs, [grad_out])
    assert_matches(out, expected, "out")
    for name, got, want in zip(("f", "y", "w1", "b1", "w2", "b2"), grads, expected_grads):
        assert_matches(got, want, f"grad_{name}")
    again = torch.autograd.grad(out, inputs, grad_out)
    assert all(torch.equal(a, b) for a, b in zip(grads, again)), "the backward is not deterministic"


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # numpy, in the interpreter
def test_relu_keeps_torch_semantics_for_nan_and_minus_inf():
    f, y, w1, b1, w2, b2 = (t.detach() for t in problem((1, 3, 5, 7), None, False))
    w1 = w1.abs()  # a -inf input then gives a -inf pre-activation (relu: 0), never inf - inf
    y[0, 0, 1, 1] = -float("inf")
    y[0, 1, 3, 5] = float("nan")
    out = ops.taylor_expand(f, y, w1, b1, w2, b2, 1, backend="triton")
    expected = reference.taylor_expand(f.double(), y.double(), w1.double(), b1.double(), w2.double(),
                                       b2.double(), 1)
    assert torch.equal(out.isnan(), expected.isnan())
    finite = ~expected.isnan()
    assert_matches(out[finite], expected[finite], "finite part")


def test_outputs_follow_the_inputs_memory_format():
    f, y, *weights = (t.detach() for t in problem((1, 3, 5, 7), None, False))
    f_cl, y_cl = (t.contiguous(memory_format=torch.channels_last) for t in (f, y))
    out, gs = ops_.triton_expand_forward(f_cl, y_cl, *weights, 2, 0.0)
    assert out.stride() == torch.empty_like(f_cl).stride() and gs.is_contiguous()
    assert torch.equal(out, ops_.triton_expand_forward(f, y, *weights, 2, 0.0)[0])


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


def _call(**changes):
    base = dict(device=torch.device(DEVICE), dtype=torch.float32, channels=3, hidden=32, kernel_size=3,
                per_order=False, activation="relu", negative_slope=0.2)
    return backends.Call(**{**base, **changes})


@pytest.mark.parametrize("changes,reason", [
    (dict(dtype=torch.float64), "float64 is not implemented"),
    (dict(kernel_size=5), "5x5"),
    (dict(hidden=128), "take at most 64"),
    (dict(channels=8), "take at most 4"),
    (dict(device=torch.device("meta")), "the tensors are on meta"),
])
def test_cannot_serve_names_the_reason(changes, reason):
    assert reason in backends.rejection("triton", _call(**changes))


def test_serves_fp32_bf16_fp16():
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        assert backends.rejection("triton", _call(dtype=dtype, channels=4, hidden=64)) is None


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
    env = {**os.environ, "TRITON_INTERPRET": "0"}
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


# ---- low precision: error against fp64, relative to the eager reference's in the same dtype ----


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


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_within_twice_the_eager_error(dtype):
    # Triton 3.8's interpreter converts fp32 to bf16 by truncation where a GPU rounds to nearest,
    # which alone doubles the bf16 error of our fp32-accumulated values; hence 4x there.
    factor = 4.0 if dtype == torch.bfloat16 and INTERPRETED else 2.0
    assert_within_eager_error((1, 3, 6, 9), 8, False, dtype, factor)


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
