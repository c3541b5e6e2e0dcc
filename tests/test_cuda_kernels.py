"""What is particular to the fused CUDA kernels (csrc/cuda/) on a GPU: odd shapes against their
tiles and hidden-channel chunks, float32 tiles, the SIMT and tensor-core forwards, the atomic and
the deterministic backward, the hidden activation kept on chip, CUDA graphs, a non-default device
and the C++ checks. What every backend must do is in test_backend_conformance.py.

Skipped without a GPU (tests/conftest.py); test_cuda_emulated.py runs the same kernel code on
the CPU. Run on a GPU machine with benchmarks/gpu_check.sh.
"""
import contextlib

import pytest
import torch

import taylor_fast
from kernel_oracles import as64, assert_fp64_close, assert_within_low_precision_bound, reference_grads, reference_terms
from sample_tensors import make_images, make_weights
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


@pytest.mark.parametrize("shape", [(1, 3, 1, 1), (1, 3, 14, 30), (3, 3, 15, 31), (1, 1, 40, 7), (2, 4, 29, 61)])
@pytest.mark.parametrize("hidden", [1, 8, 13])
def test_odd_shapes_channels_and_hidden_sizes(shape, hidden):
    n, c, h, w_ = shape
    f, y, w = inputs(n=n, c=c, h=h, w=w_, hidden=hidden, order=2)
    d_out = random_like(f)
    out, grads = fused_with_grads(f, y, w, 2, 0.0, d_out)
    assert_fp64_close([out], [reference_terms(f, y, w, 2, 0.0)[0]])
    assert_fp64_close(grads, reference_grads(f, y, w, 2, 0.0, d_out))


def test_fp32_is_tight_against_fp64():
    f, y, w = inputs(n=2, h=33, w=65, hidden=32, dtype=torch.float32)
    d_out = random_like(f)
    out, grads = fused_with_grads(f, y, w, 3, 0.0, d_out)
    assert_fp64_close([out], [reference_terms(*as64((f, y)), as64(w), 3, 0.0)[0]], rel=2e-5)
    assert_fp64_close(grads, reference_grads(*as64((f, y)), as64(w), 3, 0.0, d_out.double()), rel=2e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("per_order", [False, True])
def test_simt_low_precision_within_twice_the_eager_error(dtype, per_order, monkeypatch):
    """The SIMT forward of bf16/fp16 (the conformance suite checks the default, mma.sync)."""
    monkeypatch.setenv("TAYLOR_FAST_CUDA_TENSOR_CORES", "0")
    f, y, w = inputs(n=2, h=33, w=65, hidden=40, dtype=dtype, per_order=per_order)
    d_out = random_like(f)
    out, grads = fused_with_grads(f, y, w, 3, 0.2, d_out)
    exact_out = reference_terms(*as64((f, y)), as64(w), 3, 0.2)[0]
    eager_out = reference_terms(f, y, w, 3, 0.2)[0]
    assert_within_low_precision_bound([out], [eager_out], [exact_out], "out")
    exact = reference_grads(*as64((f, y)), as64(w), 3, 0.2, d_out.double())
    eager = reference_grads(f, y, w, 3, 0.2, d_out)
    assert_within_low_precision_bound(grads, eager, exact, "f y w1 b1 w2 b2")


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


def test_tensor_core_forward_is_bitwise_deterministic():
    f, y, w = inputs(n=2, h=70, w=130, hidden=32, dtype=torch.bfloat16)
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


def test_errors_name_the_argument():
    f, y, w = inputs(order=1)
    with pytest.raises(RuntimeError, match="y is on"):
        torch.ops.taylor_fast.expand_forward(f, y.cpu(), *w, 1, 0.0)
    with pytest.raises(RuntimeError, match="grad_g_next"):
        torch.ops.taylor_fast.step_backward(f[:, :, :-1], f, y, *w, 0, 0.0)
