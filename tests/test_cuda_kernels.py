"""The fused CUDA kernels (csrc/cuda/) on a GPU, against the reference: values in every dtype,
gradients of every input, bitwise determinism, layouts and odd shapes, orders 0..6, shared and
per-order weights, CUDA graphs, a non-default device and torch.library.opcheck.

Skipped without a GPU (tests/conftest.py); test_cuda_emulated.py runs the same kernel code on
the CPU. Run on a GPU machine with benchmarks/gpu_check.sh.
"""
import contextlib

import pytest
import torch

import taylor_fast
from sample_tensors import make_images, make_weights
from kernel_oracles import (as64, assert_fp64_close, assert_within_low_precision_bound, reference_grads,
                            reference_step, reference_terms)
from taylor_fast import ops

pytestmark = pytest.mark.cuda


def inputs(n=2, c=3, h=19, w=37, hidden=12, order=3, per_order=False, dtype=torch.float64, channels_last=False,
           device="cuda", seed=0):
    f, y = make_images(n=n, channels=c, h=h, w=w, seed=seed + 1)
    weights = make_weights(channels=c, hidden=hidden, orders=order if per_order else None, seed=seed)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    f, y = (t.to(device=device, dtype=dtype).contiguous(memory_format=fmt) for t in (f, y))
    return f, y, [t.to(device=device, dtype=dtype) for t in weights]


def random_like(t, seed=7):
    gen = torch.Generator().manual_seed(seed)
    return torch.empty_like(t).copy_(torch.randn(t.shape, generator=gen, dtype=torch.float64))


def fused_with_grads(f, y, weights, order, slope, grad_out):
    """(out, grads of f, y, w1, b1, w2, b2) through ops.taylor_expand on the cuda backend."""
    leaves = [t.detach().clone().requires_grad_() for t in (f, y, *weights)]
    out = ops.taylor_expand(*leaves, order, "leaky_relu" if slope else "relu", slope, backend="cuda")
    grads = torch.autograd.grad(out, leaves, grad_out, allow_unused=True)
    return out.detach(), [g if g is not None else torch.zeros_like(t) for g, t in zip(grads, leaves)]


@contextlib.contextmanager
def deterministic(flag=True):
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(flag)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def test_cuda_backend_is_available():
    available, reason = taylor_fast.backends()["cuda"]
    assert available, reason


@pytest.mark.parametrize("order", range(7))
@pytest.mark.parametrize("per_order", [False, True])
def test_fp64_values_and_gradients_match_the_reference(order, per_order):
    f, y, w = inputs(order=order, per_order=per_order)
    d_out = random_like(f)
    out, grads = fused_with_grads(f, y, w, order, 0.2, d_out)
    assert_fp64_close([out], [reference_terms(f, y, w, order, 0.2)[0]])
    assert_fp64_close(grads, reference_grads(f, y, w, order, 0.2, d_out))


@pytest.mark.parametrize("shape", [(1, 3, 1, 1), (1, 3, 14, 30), (3, 3, 15, 31), (1, 1, 40, 7), (2, 4, 29, 61)])
@pytest.mark.parametrize("hidden", [1, 8, 13])
def test_odd_shapes_channels_and_hidden_sizes(shape, hidden):
    n, c, h, w_ = shape
    f, y, w = inputs(n=n, c=c, h=h, w=w_, hidden=hidden, order=2)
    d_out = random_like(f)
    out, grads = fused_with_grads(f, y, w, 2, 0.0, d_out)
    assert_fp64_close([out], [reference_terms(f, y, w, 2, 0.0)[0]])
    assert_fp64_close(grads, reference_grads(f, y, w, 2, 0.0, d_out))


@pytest.mark.parametrize("per_order", [False, True])
def test_channels_last_and_strided_inputs_keep_their_layout(per_order):
    f, y, w = inputs(dtype=torch.float32, channels_last=True, order=3, per_order=per_order)
    d_out = random_like(f)
    out, grads = fused_with_grads(f, y, w, 3, 0.2, d_out)
    assert out.stride() == f.stride() and grads[0].stride() == f.stride() and grads[1].stride() == y.stride()
    assert_fp64_close([out], [reference_terms(*as64((f, y)), as64(w), 3, 0.2)[0]], rel=2e-5)
    assert_fp64_close(grads, reference_grads(*as64((f, y)), as64(w), 3, 0.2, d_out.double()), rel=2e-5)
    # a strided view (every other column of a wider image) is read through its strides
    wide = torch.rand(2, 3, 19, 74, device="cuda", dtype=torch.float64)
    fs, ys = wide[..., ::2], wide.flip(0)[..., 1::2]
    w64 = as64(w)
    assert_fp64_close([ops.taylor_expand(fs, ys, *w64, 3, backend="cuda")],
                      [reference_terms(fs, ys, w64, 3, 0.0)[0]])


def test_expanded_gradient_of_a_sum():
    """out.sum().backward() hands the backward a stride-0 gradient; it is read through its strides."""
    f, y, w = inputs(order=2)
    leaves = [t.clone().requires_grad_() for t in (f, y, *w)]
    ops.taylor_expand(*leaves, 2, backend="cuda").sum().backward()
    assert_fp64_close([t.grad for t in leaves], reference_grads(f, y, w, 2, 0.0, torch.ones_like(f)))


def test_fp32_is_tight_against_fp64():
    f, y, w = inputs(n=2, h=33, w=65, hidden=32, dtype=torch.float32)
    d_out = random_like(f)
    out, grads = fused_with_grads(f, y, w, 3, 0.0, d_out)
    assert_fp64_close([out], [reference_terms(*as64((f, y)), as64(w), 3, 0.0)[0]], rel=2e-5)
    assert_fp64_close(grads, reference_grads(*as64((f, y)), as64(w), 3, 0.0, d_out.double()), rel=2e-5)


@pytest.mark.parametrize("tensor_cores", ["1", "0"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("per_order", [False, True])
def test_low_precision_within_twice_the_eager_error(dtype, per_order, tensor_cores, monkeypatch):
    """Both forward kernels of bf16/fp16: mma.sync (the default) and SIMT."""
    monkeypatch.setenv("TAYLOR_FAST_CUDA_TENSOR_CORES", tensor_cores)
    f, y, w = inputs(n=2, h=33, w=65, hidden=40, dtype=dtype, per_order=per_order)
    d_out = random_like(f)
    out, grads = fused_with_grads(f, y, w, 3, 0.2, d_out)
    exact_out = reference_terms(*as64((f, y)), as64(w), 3, 0.2)[0]
    eager_out = reference_terms(f, y, w, 3, 0.2)[0]
    assert_within_low_precision_bound([out], [eager_out], [exact_out], "out")
    exact = reference_grads(*as64((f, y)), as64(w), 3, 0.2, d_out.double())
    eager = reference_grads(f, y, w, 3, 0.2, d_out)
    assert_within_low_precision_bound(grads, eager, exact, "f y w1 b1 w2 b2")


@pytest.mark.parametrize("k", [0, 1, 4])
def test_step_op_values_and_gradients(k):
    g, y, w = inputs(order=1)
    acc = random_like(g, seed=3)
    leaves = [t.clone().requires_grad_() for t in (g, y, acc, *w)]
    g_next, acc_next = ops.taylor_step(*leaves[:3], *leaves[3:], k, "leaky_relu", 0.2, backend="cuda")
    ref_leaves = [t.clone().requires_grad_() for t in (g, y, acc, *w)]
    ref = reference_step(ref_leaves[0], ref_leaves[1], ref_leaves[2], ref_leaves[3:], k, 0.2)
    assert_fp64_close([g_next, acc_next], ref)
    d_g, d_acc = random_like(g, 1), random_like(g, 2)
    got = torch.autograd.grad((g_next, acc_next), leaves, (d_g, d_acc))
    expected = torch.autograd.grad(ref, ref_leaves, (d_g, d_acc))
    assert_fp64_close(got, expected)


def test_backward_is_bitwise_deterministic_when_requested():
    f, y, w = inputs(n=2, h=70, w=130, hidden=32, dtype=torch.float32)
    d_out = random_like(f)
    with deterministic():
        first = fused_with_grads(f, y, w, 3, 0.0, d_out)[1]
        for _ in range(3):
            again = fused_with_grads(f, y, w, 3, 0.0, d_out)[1]
            assert all(torch.equal(a, b) for a, b in zip(first, again))
    with deterministic(False):  # the atomic path: same sums, in another order
        fast = fused_with_grads(f, y, w, 3, 0.0, d_out)[1]
    for a, b in zip(fast, first):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * b.abs().max().item())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_forward_is_bitwise_deterministic(dtype):
    f, y, w = inputs(n=2, h=70, w=130, hidden=32, dtype=dtype)
    first = ops.taylor_expand(f, y, *w, 3, backend="cuda")
    assert all(torch.equal(first, ops.taylor_expand(f, y, *w, 3, backend="cuda")) for _ in range(3))


def test_tensor_core_and_simt_forwards_agree(monkeypatch):
    """Same tiles, same math, different instructions: they differ by bf16 rounding of h only."""
    f, y, w = inputs(n=1, h=64, w=96, hidden=32, dtype=torch.bfloat16, order=2, per_order=True)
    outs = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("TAYLOR_FAST_CUDA_TENSOR_CORES", flag)
        outs[flag] = ops.taylor_expand(f, y, *w, 2, backend="cuda").float()
    scale = outs["0"].abs().max().item()
    assert (outs["1"] - outs["0"]).abs().max().item() <= 0.05 * scale


def test_raw_ops_at_order_zero_and_empty_batch():
    f, y, w = inputs(order=1)
    out, gs = torch.ops.taylor_fast.expand_forward(f, y, *w, 0, 0.0)
    assert torch.equal(out, f) and out.data_ptr() != f.data_ptr() and gs.shape == (0, *f.shape)
    d = random_like(f)
    grads = torch.ops.taylor_fast.expand_backward(d, f, y, gs, *w, 0, 0.0)
    assert torch.equal(grads[0], d) and all(not g.any() for g in grads[1:])
    f0, y0 = f[:0], y[:0]
    out0, gs0 = torch.ops.taylor_fast.expand_forward(f0, y0, *w, 2, 0.0)
    assert out0.shape == f0.shape and gs0.shape == (2, *f0.shape)
    grads0 = torch.ops.taylor_fast.expand_backward(out0, f0, y0, gs0, *w, 2, 0.0)
    assert all(not g.any() for g in grads0[2:])


def test_more_than_four_channels_is_refused_with_a_reason_and_auto_falls_back():
    f, y, w = inputs(c=5, order=2)
    with pytest.raises(RuntimeError, match="at most 4"):
        ops.taylor_expand(f, y, *w, 2, backend="cuda")
    with pytest.raises(RuntimeError, match="at most 4"):
        torch.ops.taylor_fast.expand_forward(f, y, *w, 2, 0.0)
    torch.testing.assert_close(ops.taylor_expand(f, y, *w, 2), reference_terms(f, y, w, 2, 0.0)[0])


def test_hidden_activation_never_reaches_device_memory():
    """Forward + backward allocate 3-channel images and small weight buffers only: the peak is
    below the size of a single hidden activation tensor (N, hidden, H, W)."""
    f, y, w = inputs(n=1, h=512, w=512, hidden=64, dtype=torch.float32)
    leaves = [t.clone().requires_grad_() for t in (f, y, *w)]
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = torch.cuda.memory_allocated()
    out = ops.taylor_expand(*leaves, 3, backend="cuda")
    out.backward(torch.ones_like(out))
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - start
    one_hidden = f.shape[0] * 64 * f.shape[2] * f.shape[3] * f.element_size()
    assert peak < one_hidden, f"peak {peak / 2**20:.1f} MiB vs one hidden tensor {one_hidden / 2**20:.1f} MiB"


def expansion_loss(f, y, w1, b1, w2, b2):
    return ops.taylor_expand(f, y, w1, b1, w2, b2, 3, "leaky_relu", 0.2, backend="cuda")


def test_torch_compile_with_cuda_graphs_matches_eager():
    f, y, w = inputs(n=2, h=40, w=70, hidden=16, dtype=torch.float32)
    d_out = random_like(f)
    with deterministic():
        eager_out, eager_grads = fused_with_grads(f, y, w, 3, 0.2, d_out)
        compiled = torch.compile(expansion_loss, mode="reduce-overhead", fullgraph=True)
        for _ in range(4):  # warm-up, then recorded and replayed as a CUDA graph
            leaves = [t.detach().clone().requires_grad_() for t in (f, y, *w)]
            out = compiled(*leaves)
            grads = torch.autograd.grad(out, leaves, d_out)
            out, grads = out.detach().clone(), [g.clone() for g in grads]
            assert torch.equal(out, eager_out)
            assert all(torch.equal(a, b) for a, b in zip(grads, eager_grads))


def test_raw_ops_capture_in_a_cuda_graph():
    """No host synchronisation and no allocation outside the caching allocator: the forward and
    backward ops capture and replay, and the replay equals eager."""
    f, y, w = inputs(n=2, h=40, w=70, hidden=16, dtype=torch.float32)
    d_out = random_like(f)
    with deterministic():
        out, gs = torch.ops.taylor_fast.expand_forward(f, y, *w, 3, 0.2)
        grads = torch.ops.taylor_fast.expand_backward(d_out, f, y, gs, *w, 3, 0.2)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm up on a side stream, as torch.cuda.graphs advises
            torch.ops.taylor_fast.expand_forward(f, y, *w, 3, 0.2)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            g_out, g_gs = torch.ops.taylor_fast.expand_forward(f, y, *w, 3, 0.2)
            g_grads = torch.ops.taylor_fast.expand_backward(d_out, f, y, g_gs, *w, 3, 0.2)
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(g_out, out) and torch.equal(g_gs, gs)
        assert all(torch.equal(a, b) for a, b in zip(g_grads, grads))


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_runs_on_a_non_default_device():
    f, y, w = inputs(device="cuda:1", dtype=torch.float32)
    d_out = random_like(f)
    with torch.cuda.device(0):
        out, grads = fused_with_grads(f, y, w, 3, 0.2, d_out)
    assert out.device == f.device and all(g.device == f.device for g in grads)
    assert_fp64_close([out], [reference_terms(*as64((f, y)), as64(w), 3, 0.2)[0]], rel=2e-5)
    assert_fp64_close(grads, reference_grads(*as64((f, y)), as64(w), 3, 0.2, d_out.double()), rel=2e-5)


@pytest.mark.parametrize("per_order", [False, True])
def test_opcheck(per_order):
    f, y, w = inputs(n=1, h=9, w=33, hidden=8, order=2, per_order=per_order, dtype=torch.float32)
    with deterministic():
        run_opchecks(f, y, w, per_order)


def run_opchecks(f, y, w, per_order):
    grad_leaves = [t.clone().requires_grad_() for t in (f, y, *w)]
    torch.library.opcheck(torch.ops.taylor_fast.expand_forward.default, (*grad_leaves, 2, 0.2))
    _, gs = torch.ops.taylor_fast.expand_forward(f, y, *w, 2, 0.2)
    torch.library.opcheck(torch.ops.taylor_fast.expand_backward.default, (random_like(f), f, y, gs, *w, 2, 0.2))
    if not per_order:
        acc = random_like(f, 3)
        step_leaves = [t.clone().requires_grad_() for t in (f, y, acc, *w)]
        torch.library.opcheck(torch.ops.taylor_fast.step_forward.default, (*step_leaves, 1, 0.2))
        torch.library.opcheck(torch.ops.taylor_fast.step_backward.default, (random_like(f), f, y, *w, 1, 0.2))


def test_errors_name_the_argument():
    f, y, w = inputs(order=1)
    with pytest.raises(RuntimeError, match="y is on"):
        torch.ops.taylor_fast.expand_forward(f, y.cpu(), *w, 1, 0.0)
    with pytest.raises(RuntimeError, match="grad_g_next"):
        torch.ops.taylor_fast.step_backward(f[:, :, :-1], f, y, *w, 0, 0.0)
