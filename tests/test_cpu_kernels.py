"""What is particular to the fused CPU kernels (csrc/cpu/): the hidden sizes of their register
blocks and float32 fast paths, every ISA code path (baseline, AVX2, AVX-512), inductor, tiling
across threads and bands, the C++ argument checks of the raw ops, and bfloat16/float16 computed
in float32. What every backend must do is in test_backend_conformance.py."""
import pytest
import torch

import taylor_fast
from sample_tensors import make_images, make_weights
from taylor_fast import backbones, ops, reference
from taylor_fast.backends import extension

pytestmark = pytest.mark.skipif(not taylor_fast.backends()["cpu"][0], reason="the CPU kernels are not built")

OPS = torch.ops.taylor_fast
ACTIVATIONS = [("relu", 0.2), ("leaky_relu", 0.1)]


def expand_and_grads(backend, f, y, weights, order, activation, slope, grad_out):
    """(out, grads of f, y, w1, b1, w2, b2) of one expansion on `backend`."""
    leaves = [t.detach().clone().requires_grad_() for t in (f, y, *weights)]
    out = ops.taylor_expand(*leaves, order, activation, slope, backend=backend)
    grads = torch.autograd.grad(out, leaves, grad_out, allow_unused=True)
    return out.detach(), [torch.zeros_like(t) if g is None else g for t, g in zip(leaves, grads)]


def assert_matches_reference(f, y, weights, order, activation="relu", slope=0.2, **tol):
    grad_out = torch.randn(f.shape, dtype=f.dtype, generator=torch.Generator().manual_seed(3))
    ref_out, ref_grads = expand_and_grads("reference", f, y, weights, order, activation, slope, grad_out)
    out, grads = expand_and_grads("cpu", f, y, weights, order, activation, slope, grad_out)
    torch.testing.assert_close(out, ref_out, **tol)
    for name, got, expected in zip(("f", "y", "w1", "b1", "w2", "b2"), grads, ref_grads):
        torch.testing.assert_close(got, expected, **tol, msg=lambda m: f"grad of {name}: {m}")


@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (1, 3, 1, 5), (3, 3, 16, 17), (1, 3, 2, 1), (1, 3, 5, 150)])
@pytest.mark.parametrize("hidden", [16, 32, 64, 5])
def test_shapes_and_hidden_sizes_match_reference(shape, hidden):
    f, y = make_images(*shape)
    assert_matches_reference(f, y, make_weights(3, hidden, scale=0.2), 3, "leaky_relu", 0.2)


@pytest.mark.parametrize("hidden", [16, 32, 64])
def test_float32_fast_paths_match_reference(hidden):
    f, y = make_images(1, 3, 19, 70, dtype=torch.float32)
    weights = make_weights(3, hidden, dtype=torch.float32, scale=0.1)
    assert_matches_reference(f, y, weights, 3, "relu", rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("isa", ["baseline", "avx2", "avx512"])
def test_every_isa_code_path_matches_reference(isa, monkeypatch):
    if isa != "baseline" and extension.cpu_isa() not in {"avx2": ("avx2", "avx512"),
                                                                            "avx512": ("avx512",)}[isa]:
        pytest.skip(f"this CPU has no {isa}")
    monkeypatch.setenv("TAYLOR_FAST_CPU_ISA", isa)
    f, y = make_images(2, 3, 9, 37)
    assert_matches_reference(f, y, make_weights(3, 8, orders=3), 3, "leaky_relu", 0.3)
    f32, y32 = f.float(), y.float()
    assert_matches_reference(f32, y32, make_weights(3, 32, dtype=torch.float32, scale=0.1), 2, rtol=1e-4, atol=1e-4)


def test_isa_override_is_checked(monkeypatch):
    f, y = make_images()
    monkeypatch.setenv("TAYLOR_FAST_CPU_ISA", "neon")
    with pytest.raises(RuntimeError, match="TAYLOR_FAST_CPU_ISA must be baseline, avx2 or avx512"):
        OPS.expand_forward(f, y, *make_weights(), 1, 0.0)


def test_compiled_taylornet_matches_eager():
    torch.manual_seed(0)
    net = taylor_fast.TaylorNet(backbones.create("tiny"), order=3, hidden=16, backend="cpu")
    y = torch.rand(2, 3, 12, 10)
    eager_out = net(y)
    eager_out.sum().backward()
    eager_grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    torch._dynamo.reset()
    compiled = torch.compile(net, fullgraph=True)
    out = compiled(y)
    out.sum().backward()
    torch.testing.assert_close(out, eager_out)
    for p, expected in zip(net.parameters(), eager_grads):
        torch.testing.assert_close(p.grad, expected)


def test_backward_is_bitwise_deterministic_over_many_tiles_and_threads():
    f, y = make_images(2, 3, 40, 50, dtype=torch.float32)
    weights = make_weights(3, 32, dtype=torch.float32, scale=0.1)
    grad_out = torch.randn_like(f)
    first = expand_and_grads("cpu", f, y, weights, 3, "relu", 0.2, grad_out)
    for _ in range(2):
        again = expand_and_grads("cpu", f, y, weights, 3, "relu", 0.2, grad_out)
        assert torch.equal(again[0], first[0])
        assert all(torch.equal(a, b) for a, b in zip(again[1], first[1]))


@pytest.mark.parametrize("order,activation", [(2, "relu"), (3, "leaky_relu")])
def test_a_backward_made_band_by_band_matches_the_reference(order, activation):
    """With shared weights the expansion's backward runs its orders in one pipelined pass, whose
    padded planes are made one band of tile rows at a time where the image has >= 4 tiles per
    thread: on one thread 600x1100 is 3 x 3 tiles, so three bands, with pipeline halos crossing
    the band edges."""
    f, y = make_images(1, 3, 600, 1100)
    weights = make_weights(3, 4)
    grad_out = torch.randn_like(f)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        out, grads = expand_and_grads("cpu", f, y, weights, order, activation, 0.2, grad_out)
    finally:
        torch.set_num_threads(threads)
    want_out, want_grads = expand_and_grads("reference", f, y, weights, order, activation, 0.2, grad_out)
    torch.testing.assert_close(out, want_out)
    for got, want in zip(grads, want_grads):
        torch.testing.assert_close(got, want)


def test_thread_count_changes_only_the_weight_gradient_rounding():
    """Outputs and input gradients are computed per pixel in a fixed order, whatever the tiling;
    only the weight gradients' summation follows the (thread-dependent) tiles."""
    f, y = make_images(1, 3, 30, 200, dtype=torch.float32)
    weights = make_weights(3, 16, dtype=torch.float32, scale=0.1)
    grad_out = torch.randn_like(f)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = expand_and_grads("cpu", f, y, weights, 2, "relu", 0.2, grad_out)
        torch.set_num_threads(4)
        four = expand_and_grads("cpu", f, y, weights, 2, "relu", 0.2, grad_out)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one[0], four[0])
    assert torch.equal(one[1][0], four[1][0]) and torch.equal(one[1][1], four[1][1])
    for a, b in zip(one[1][2:], four[1][2:]):  # float32 sums over 6000 pixels in another order
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


def bad_op_calls():
    f, y = make_images(1, 3, 5, 5)
    w1, b1, w2, b2 = make_weights(3, 4)
    gs = torch.rand(2, *f.shape, dtype=f.dtype)
    return [
        (OPS.expand_forward, (f, y[:, :2], w1, b1, w2, b2, 2, 0.0), "y has shape"),
        (OPS.expand_forward, (f, y.float(), w1, b1, w2, b2, 2, 0.0), "y has dtype"),
        (OPS.expand_forward, (f, y, make_weights(3, 4, kernel=5)[0], b1, w2, b2, 2, 0.0), "w1 must have shape"),
        (OPS.expand_forward, (f, y, w1, b1[:3], w2, b2, 2, 0.0), "b1 must have shape"),
        (OPS.expand_forward, (f, y, w1, b1, w2, b2, -1, 0.0), "order must be >= 0"),
        (OPS.expand_forward, (f, y, *make_weights(3, 4, orders=3), 2, 0.0), "w1 must have shape"),
        (OPS.expand_forward, (f[0], y, w1, b1, w2, b2, 2, 0.0), "f must be 4-D"),
        (OPS.expand_forward, (f.long(), y.long(), w1, b1, w2, b2, 2, 0.0), "f must be a floating-point"),
        (OPS.expand_backward, (f, f, y, gs[:1], w1, b1, w2, b2, 2, 0.0), "gs must have shape"),
        (OPS.expand_backward, (f[:, :1], f, y, gs, w1, b1, w2, b2, 2, 0.0), "grad_out has shape"),
        (OPS.step_forward, (f, y, f[..., :4], w1, b1, w2, b2, 0, 0.0), "acc has shape"),
        (OPS.step_forward, (f, y, f, w1, b1, w2, b2, -2, 0.0), "k must be >= 0"),
        (OPS.step_backward, (f[..., :3], f, y, w1, b1, w2, b2, 0, 0.0), "grad_g_next has shape"),
        (OPS.step_backward, (f, f, y, w1, b1, w2[:2], b2, 0, 0.0), "w2 must have shape"),
    ]


@pytest.mark.parametrize("index", range(len(bad_op_calls())))
def test_malformed_op_arguments_raise_before_any_kernel(index):
    op, args, match = bad_op_calls()[index]
    with pytest.raises(RuntimeError, match=match):
        op(*args)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_computes_in_float32(dtype):
    """Stricter than the contract's twice the eager error: float32 inside, rounded once."""
    f64, y64 = make_images(2, 3, 9, 12)
    weights64 = make_weights(3, 16, orders=2, scale=0.2)
    f, y, *weights = (t.to(dtype) for t in (f64, y64, *weights64))
    exact_inputs = [t.double() for t in (f, y, *weights)]  # the rounded inputs, in float64
    grad_out = torch.randn(f.shape, generator=torch.Generator().manual_seed(5)).to(dtype)
    out, grads = expand_and_grads("cpu", f, y, weights, 2, "leaky_relu", 0.2, grad_out)
    exact_out, exact_grads = expand_and_grads("reference", *exact_inputs[:2], exact_inputs[2:], 2, "leaky_relu",
                                              0.2, grad_out.double())
    ref_out, ref_grads = expand_and_grads("reference", f, y, weights, 2, "leaky_relu", 0.2, grad_out)
    assert out.dtype == dtype and all(g.dtype == dtype for g in grads)
    # float32 inside: only the final rounding to `dtype` separates the output from float64
    torch.testing.assert_close(out.double(), exact_out, rtol=8e-3, atol=8e-3)

    def error(got, expected):
        return ((got.double() - expected).norm() / expected.norm()).item()

    # the backward recomputes from g^k saved in `dtype`, so a few activations may flip near 0:
    # judged as a whole, and against the reference computed in `dtype` itself
    assert error(out, exact_out) <= error(ref_out, exact_out)
    for name, got, ref, expected in zip(("f", "y", "w1", "b1", "w2", "b2"), grads, ref_grads, exact_grads):
        assert error(got, expected) < 2e-2, name
        assert error(got, expected) <= error(ref, expected), name


def test_half_precision_outputs_follow_the_layout_contract():
    f, y = (t.bfloat16().to(memory_format=torch.channels_last) for t in make_images(1, 3, 5, 6))
    weights = make_weights(3, 4, dtype=torch.bfloat16)
    out, gs = OPS.expand_forward(f, y, *weights, 2, 0.0)
    assert out.dtype == torch.bfloat16 and out.is_contiguous(memory_format=torch.channels_last)
    assert gs.dtype == torch.bfloat16 and gs.is_contiguous()
    torch.library.opcheck(OPS.expand_forward.default, (f, y, *weights, 2, 0.0))
    torch.library.opcheck(OPS.step_backward.default, (f, f, y, *weights, 1, 0.1))
