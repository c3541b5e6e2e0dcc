"""The bugs test_ops_property found, each pinned by one focused case on every backend."""
import math

import pytest
import torch

from backend_cases import OPS, available_backends, backend_params, device_of, image_names, marks_for, outputs_and_grads, valid_arguments
from cuda_emulator import harness
from sample_tensors import make_weights
from taylor_fast import ops, reference

BACKENDS = backend_params()


def fp64_reference(op, args):
    """outputs_and_grads of the reference on args in float64 on the CPU, torch's native
    convolution (it multiplies the zero padding like the fused kernels: test_ops_nonfinite)."""
    exact = {k: v.double().cpu() if isinstance(v, torch.Tensor) else v for k, v in args.items() if k != "backend"}
    with torch.backends.mkldnn.flags(enabled=False):
        return outputs_and_grads(lambda a: getattr(reference, op)(**a), exact)


def fused(op, args):
    """outputs_and_grads of the public op, moved to the CPU to meet the reference's."""
    outs, grads = outputs_and_grads(lambda a: getattr(ops, op)(**a), args)
    return tuple(t.cpu() for t in outs), [t.cpu() for t in grads]


# Triton's taylor_expand is left out: it takes 1/k! as floats (triton/_tiling.inverse_factorial),
# and 32 interpreted orders take over 10 s
@pytest.mark.parametrize("op,backend", [pytest.param(op, b, marks=marks_for(b, device_of(b)))
                                        for op in OPS for b in available_backends()
                                        if (op, b) != ("taylor_expand", "triton")])
def test_the_largest_order_runs(op, backend):
    """k = 31 and order 32 are accepted, and (k+1)! passes int64 from k = 20 on: the reference and
    the fused step's backward divided by it as an int, which torch refuses ("int too big to convert")."""
    args = valid_arguments(op, n=1, h=4, w=5, backend=backend)
    args["k" if op == "taylor_step" else "order"] = 31 if op == "taylor_step" else 32
    got_outs, got_grads = fused(op, args)
    want_outs, want_grads = fp64_reference(op, args)
    for got, want in zip(got_outs + tuple(got_grads), want_outs + tuple(want_grads)):
        assert got.isfinite().all()
        scale = max(1.0, want.abs().max().item())
        assert (got.double() - want).abs().max().item() <= 1e-4 * scale


@pytest.mark.parametrize("hidden", [1, 2, 3, 5])
@pytest.mark.parametrize("backend", BACKENDS)
def test_an_infinite_pixel_with_few_hidden_channels(backend, hidden):
    """An infinite pixel gives the reference's ±inf, NaN and finite values around it. The CPU
    kernels pad hidden to their register block with zero weights, and took the padded channels'
    h = 0 * inf = NaN into conv2: NaN in the whole 5x5 neighbourhood."""
    args = valid_arguments("taylor_step", n=1, h=5, w=6, hidden=hidden, backend=backend)
    for value in (math.inf, -math.inf):
        args["g"] = args["g"].clone()
        args["g"][0, 1, 2, 3] = value
        got_outs, got_grads = fused("taylor_step", args)
        want_outs, want_grads = fp64_reference("taylor_step", args)
        for got, want in zip(got_outs, want_outs):
            assert torch.equal(got.isnan(), want.isnan()) and torch.equal(got.isinf(), want.isinf())
            assert torch.equal(got[got.isinf()].sign(), want[want.isinf()].sign().float())
        # the image gradients (the weights' may be NaN where torch's are not: test_ops_nonfinite)
        for got, want in zip(got_grads[:3], want_grads[:3]):
            assert torch.equal(got.isfinite(), want.isfinite())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", OPS)
def test_leaky_relu_with_slope_zero_is_relu(op, backend):
    """Every backend gives leaky_relu(slope 0) relu's answers, also where torch's own two differ
    (-inf: relu 0, leaky_relu 0 * -inf = NaN; the gradient at a NaN pre-activation)."""
    args = valid_arguments(op, n=1, h=4, w=5, backend=backend)
    first = image_names(op)[0]
    args[first][0, 0, 1, 1], args[first][0, 2, 2, 3] = math.inf, math.nan
    relu = fused(op, {**args, "activation": "relu"})
    leaky = fused(op, {**args, "activation": "leaky_relu", "negative_slope": 0.0})
    for a, b in zip(relu[0] + tuple(relu[1]), leaky[0] + tuple(leaky[1])):
        assert torch.equal(a.nan_to_num(7.0), b.nan_to_num(7.0))



@pytest.mark.skipif(harness.compiler() is None, reason="no C++ compiler to build the CUDA emulator")
@pytest.mark.parametrize("tensor_cores", [False, True], ids=["fp64", "bf16-mma"])
def test_cuda_kernels_an_infinite_pixel_with_few_hidden_channels(tensor_cores):
    """The same bug in the CUDA kernels (run by tests/cuda_emulator): hidden chunks padded with
    zero weights to 8 (32 on tensor cores) took h = 0 * inf = NaN of the padded lanes into conv2."""
    dtype = torch.bfloat16 if tensor_cores else torch.float64
    args = valid_arguments("taylor_expand", n=1, h=5, w=6)
    f, y = args["f"].double(), args["y"].double()
    f[0, 1, 2, 3] = math.inf
    weights = [t.double() for t in make_weights(3, 2, seed=4)]
    fwd = harness.run("expand_forward", images={"f": f.to(dtype), "y": y.to(dtype)},
                      weights=[t.to(dtype) for t in weights], order=1, slope=0.0, tensor_cores=tensor_cores)
    exact = [t.to(dtype).double() for t in (f, y, *weights)]
    with torch.backends.mkldnn.flags(enabled=False):
        want = reference.taylor_expand(*exact, 1)
    got = fwd["out"].double()
    assert torch.equal(got.isnan(), want.isnan()) and torch.equal(got.isinf(), want.isinf())
    if not tensor_cores:  # the backward kernel (CUDA cores only): the image gradients
        grad_out = torch.randn(f.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        bwd = harness.run("expand_backward", images={"grad_out": grad_out, "f": exact[0], "y": exact[1]},
                          raw={"gs": fwd["gs"]}, weights=exact[2:], order=1, slope=0.0)
        leaves = [t.clone().requires_grad_() for t in exact]
        with torch.backends.mkldnn.flags(enabled=False):
            want_grads = torch.autograd.grad(reference.taylor_expand(*leaves, 1), leaves[:2], grad_out)
        for got_grad, want_grad in zip((bwd["grad_f"], bwd["grad_y"]), want_grads):
            assert torch.equal(got_grad.isfinite(), want_grad.isfinite())
