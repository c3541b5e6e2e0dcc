"""The fused CPU kernels (csrc/cpu/) against the reference: forward, hand-written backward,
custom-op plumbing, input layouts and argument checks."""
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


@pytest.mark.parametrize("order", range(7))
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("activation,slope", ACTIVATIONS)
def test_orders_weights_and_activations_match_reference(order, shared, activation, slope):
    f, y = make_images(2, 3, 7, 9)
    assert_matches_reference(f, y, make_weights(3, 8, orders=None if shared else order), order, activation, slope)


@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (1, 3, 1, 5), (3, 3, 16, 17), (1, 3, 2, 1), (1, 3, 5, 150)])
@pytest.mark.parametrize("hidden", [16, 32, 64, 5])
def test_shapes_and_hidden_sizes_match_reference(shape, hidden):
    f, y = make_images(*shape)
    assert_matches_reference(f, y, make_weights(3, hidden, scale=0.2), 3, "leaky_relu", 0.2)


@pytest.mark.parametrize("channels,hidden", [(1, 8), (4, 6), (2, 3)])
def test_any_channel_count_matches_reference(channels, hidden):
    f, y = make_images(2, channels, 6, 11)
    assert_matches_reference(f, y, make_weights(channels, hidden, orders=2), 2, "relu")


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


def test_step_matches_reference_with_gradients():
    g, y = make_images(2, 3, 6, 13)
    acc = torch.rand_like(g)
    weights = make_weights(3, 8)
    for activation, slope in ACTIVATIONS:
        leaves_ref = [t.clone().requires_grad_() for t in (g, y, acc, *weights)]
        leaves_cpu = [t.clone().requires_grad_() for t in (g, y, acc, *weights)]
        ref = reference.taylor_step(*leaves_ref[:3], *leaves_ref[3:], 2, activation, slope)
        got = ops.taylor_step(*leaves_cpu[:3], *leaves_cpu[3:], 2, activation, slope, backend="cpu")
        for a, b in zip(got, ref):
            torch.testing.assert_close(a, b)
        seeds = [torch.randn_like(g), torch.randn_like(g)]
        for a, b in zip(torch.autograd.grad(got, leaves_cpu, seeds), torch.autograd.grad(ref, leaves_ref, seeds)):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("shared", [True, False])
def test_expand_gradcheck(shared):
    f, y = make_images(1, 3, 5, 6)
    weights = make_weights(3, 4, orders=None if shared else 2)
    inputs = [t.clone().requires_grad_() for t in (f, y, *weights)]

    def fn(*args):
        return ops.taylor_expand(*args, 2, "leaky_relu", 0.3, backend="cpu")

    assert torch.autograd.gradcheck(fn, inputs)


def test_step_gradcheck():
    g, y = make_images(1, 3, 4, 7)
    inputs = [t.clone().requires_grad_() for t in (g, y, torch.rand_like(g), *make_weights(3, 4))]

    def fn(g, y, acc, w1, b1, w2, b2):
        return ops.taylor_step(g, y, acc, w1, b1, w2, b2, 1, "leaky_relu", 0.3, backend="cpu")

    assert torch.autograd.gradcheck(fn, inputs)


def test_double_backward_raises_a_clear_error():
    f, y = make_images(1, 3, 4, 4)
    weights = [w.requires_grad_() for w in make_weights(3, 4)]
    out = ops.taylor_expand(f.requires_grad_(), y, *weights, 2, backend="cpu")
    with pytest.raises(RuntimeError, match="not itself differentiable"):
        torch.autograd.grad(out.sum(), f, create_graph=True)


def op_samples():
    f, y = make_images(2, 3, 5, 7)
    shared, per_order = make_weights(3, 4), make_weights(3, 4, orders=2)
    gs = torch.rand(2, *f.shape, dtype=f.dtype)
    grad = torch.rand_like(f)
    return {
        "expand_forward": [(f, y, *shared, 2, 0.0), (f, y, *per_order, 2, 0.2)],
        "expand_backward": [(grad, f, y, gs, *shared, 2, 0.0), (grad, f, y, gs, *per_order, 2, 0.2)],
        "step_forward": [(f, y, torch.rand_like(f), *shared, 1, 0.2)],
        "step_backward": [(grad, f, y, *shared, 3, 0.0)],
    }


@pytest.mark.parametrize("name", ["expand_forward", "expand_backward", "step_forward", "step_backward"])
def test_opcheck(name):
    for args in op_samples()[name]:
        if name.endswith("forward"):
            args = tuple(a.clone().requires_grad_() if isinstance(a, torch.Tensor) else a for a in args)
        torch.library.opcheck(getattr(OPS, name).default, args)


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


def test_backward_is_bitwise_deterministic():
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


def test_channels_last_and_strided_inputs_keep_their_layout():
    f, y = make_images(2, 3, 8, 10)
    weights = make_weights(3, 8)
    expected = reference.taylor_expand(f, y, *weights, 2)
    f_cl, y_cl = f.to(memory_format=torch.channels_last), y.to(memory_format=torch.channels_last)
    out, gs = OPS.expand_forward(f_cl, y_cl, *weights, 2, 0.0)
    assert out.is_contiguous(memory_format=torch.channels_last) and gs.is_contiguous()
    torch.testing.assert_close(out, expected)
    grads = OPS.expand_backward(torch.ones_like(f_cl), f_cl, y_cl, gs, *weights, 2, 0.0)
    assert grads[0].is_contiguous(memory_format=torch.channels_last)
    assert grads[1].is_contiguous(memory_format=torch.channels_last)

    wide_f, wide_y = make_images(2, 3, 8, 20)
    f_strided, y_strided = wide_f[..., ::2], wide_y[..., 1::2]  # non-contiguous views
    torch.testing.assert_close(ops.taylor_expand(f_strided, y_strided, *weights, 2, backend="cpu"),
                               reference.taylor_expand(f_strided.contiguous(), y_strided.contiguous(), *weights, 2))
    g_next, acc_next = OPS.step_forward(f_cl, y, f_strided, *weights, 1, 0.0)
    assert g_next.is_contiguous(memory_format=torch.channels_last)
    ref_g, ref_acc = reference.taylor_step(f, y, f_strided, *weights, 1)
    torch.testing.assert_close(g_next, ref_g)
    torch.testing.assert_close(acc_next, ref_acc)


def test_strided_weights_and_expanded_gradients():
    f, y = make_images(1, 3, 6, 6)
    w1, b1, w2, b2 = make_weights(3, 8)
    w1_t = w1.transpose(2, 3).contiguous().transpose(2, 3)  # same values, other strides
    assert not w1_t.is_contiguous()
    out, gs = OPS.expand_forward(f, y, w1_t, b1, w2, b2, 2, 0.0)
    torch.testing.assert_close(out, reference.taylor_expand(f, y, w1, b1, w2, b2, 2))
    grad_out = torch.ones(1, 1, 1, 1, dtype=f.dtype).expand_as(f)  # zero strides, as from .sum()
    grads = OPS.expand_backward(grad_out, f, y, gs, w1_t, b1, w2, b2, 2, 0.0)
    assert grads[2].stride() == torch.empty_like(w1_t).stride()
    expected = OPS.expand_backward(torch.ones_like(f), f, y, gs, w1, b1, w2, b2, 2, 0.0)
    for a, b in zip(grads, expected):
        torch.testing.assert_close(a, b)


def test_batch_zero():
    f, y = make_images(0, 3, 5, 5)
    weights = [w.requires_grad_() for w in make_weights(3, 8)]
    out = ops.taylor_expand(f.requires_grad_(), y, *weights, 3, backend="cpu")
    assert out.shape == f.shape
    out.sum().backward()
    assert f.grad.shape == f.shape and all(torch.equal(w.grad, torch.zeros_like(w)) for w in weights)
    g_next, acc = OPS.step_forward(f, y, f, *weights, 0, 0.0)
    assert g_next.shape == f.shape and acc.shape == f.shape


def test_order_zero_ops():
    f, y = make_images(1, 3, 3, 3)
    weights = make_weights(3, 4)
    out, gs = OPS.expand_forward(f, y, *weights, 0, 0.0)
    assert torch.equal(out, f) and gs.shape == (0, *f.shape)
    grad = torch.rand_like(f)
    grad_f, grad_y, *wgrads = OPS.expand_backward(grad, f, y, gs, *weights, 0, 0.0)
    assert torch.equal(grad_f, grad) and torch.equal(grad_y, torch.zeros_like(y))
    assert all(torch.equal(g, torch.zeros_like(w)) for g, w in zip(wgrads, weights))


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
