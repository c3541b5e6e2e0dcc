"""The CUDA kernels' code run on the CPU: the block bodies of csrc/cuda/step_kernels.cuh and
step_kernels_mma.cuh and the launch plans of csrc/cuda/step_plan.cpp, executed thread by thread
by tests/cuda_emulator (built with AddressSanitizer/UBSan), against the reference. This checks
indexing, tiling at image edges, hidden-channel chunking, strides, barriers (results must not
depend on the order the threads of a block run in), the tensor-core fragment mapping (against
the PTX ISA's layout, restated in the emulator) and the backward's adjoint recursion and
weight-gradient reduction without a GPU. What it cannot check (the CUDA intrinsics themselves,
launch configuration, streams, graphs, fp16) is in test_cuda_kernels.py, which needs a GPU."""
import pytest
import torch

from cuda_emulator import harness
from kernel_oracles import (as64, assert_fp64_close, assert_within_low_precision_bound, reference_grads,
                            reference_step, reference_step_grads, reference_terms)
from sample_tensors import make_images, make_weights

pytestmark = pytest.mark.skipif(harness.compiler() is None, reason="no C++ compiler to build the emulator")


def images(n, c, h, w, dtype, channels_last=False, seed=1):
    f, y = make_images(n=n, channels=c, h=h, w=w, dtype=torch.float64, seed=seed)
    f, y = (t.to(dtype) for t in (f, y))
    if channels_last:
        f, y = (t.contiguous(memory_format=torch.channels_last) for t in (f, y))
    return f, y


def grad_like(t, seed=7):
    """A random tensor in t's dtype and memory format (as empty_like keeps it)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.empty_like(t).copy_(torch.randn(t.shape, generator=gen, dtype=torch.float64))


# fp64 tiles are 6 x 30 and fp32 tiles 14 x 30: these sizes cut partial tiles on both axes
CASES = [
    # (dtype, N, C, H, W, hidden, order, slope, channels_last, per_order)
    (torch.float64, 2, 3, 17, 33, 12, 3, 0.2, False, False),
    (torch.float64, 1, 1, 7, 31, 8, 2, 0.0, True, True),
    (torch.float32, 1, 4, 15, 29, 5, 2, 0.1, False, True),
    (torch.float32, 1, 3, 20, 35, 16, 1, 0.0, True, False),
]


@pytest.mark.parametrize("dtype,n,c,h,w,hidden,order,slope,channels_last,per_order", CASES)
def test_expand_forward_and_backward_match_the_reference(dtype, n, c, h, w, hidden, order, slope, channels_last,
                                                         per_order):
    f, y = images(n, c, h, w, dtype, channels_last)
    weights = [t.to(dtype) for t in make_weights(channels=c, hidden=hidden, orders=order if per_order else None)]
    fwd = harness.run("expand_forward", images={"f": f, "y": y}, weights=weights, order=order, slope=slope)
    out64, gs64 = reference_terms(*as64((f, y)), as64(weights), order, slope)
    assert fwd["out"].stride() == f.stride()
    rel = 1e-10 if dtype == torch.float64 else 2e-5
    assert_fp64_close([fwd["out"], fwd["gs"]], [out64, gs64], rel)

    d_out = grad_like(f)
    bwd = harness.run("expand_backward", images={"grad_out": d_out, "f": f, "y": y}, raw={"gs": fwd["gs"]},
                      weights=weights, order=order, slope=slope, blocks=3)
    got = [bwd["grad_f"], bwd["grad_y"], *bwd["wgrad"]]
    assert got[0].stride() == f.stride() and got[1].stride() == y.stride()
    assert_fp64_close(got, reference_grads(*as64((f, y)), as64(weights), order, slope, d_out.double()), rel)


def test_step_forward_and_backward_match_the_reference():
    g, y = images(2, 3, 9, 32, torch.float64, channels_last=True)
    acc = grad_like(g, seed=3)
    weights = make_weights(channels=3, hidden=8)
    for k in (0, 2):
        fwd = harness.run("step_forward", images={"g": g, "y": y, "acc": acc}, weights=weights, k=k, slope=0.2)
        assert_fp64_close([fwd["g_next"], fwd["acc_next"]], reference_step(g, y, acc, weights, k, 0.2))
        d = grad_like(g, seed=k)
        bwd = harness.run("step_backward", images={"grad_g_next": d, "g": g, "y": y}, weights=weights, k=k,
                          slope=0.2, blocks=2)
        assert_fp64_close([bwd["grad_g"], bwd["grad_y"], *bwd["wgrad"]],
                          reference_step_grads(g, y, weights, k, 0.2, d))


def test_atomic_weight_gradients_match_the_deterministic_ones():
    f, y = images(1, 3, 20, 40, torch.float64)
    weights = make_weights(channels=3, hidden=8)
    gs = reference_terms(f, y, weights, 2, 0.0)[1]
    args = dict(images={"grad_out": grad_like(f), "f": f, "y": y}, raw={"gs": gs}, weights=weights, order=2)
    fixed = harness.run("expand_backward", blocks=2, **args)
    atomic = harness.run("expand_backward", blocks=2, atomic=True, **args)
    for a, b in zip(atomic["wgrad"], fixed["wgrad"]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert torch.equal(atomic["grad_f"], fixed["grad_f"]) and torch.equal(atomic["grad_y"], fixed["grad_y"])


@pytest.mark.parametrize("schedule", ["reverse", "shuffle"])
def test_results_do_not_depend_on_the_order_threads_run_in(schedule):
    """A missing __syncthreads() makes some thread read shared memory before (or after) another
    writes it; running the threads of each barrier phase in another order then changes results."""
    f, y = images(1, 3, 16, 33, torch.float32)
    weights = make_weights(channels=3, hidden=12, dtype=torch.float32)
    gs = reference_terms(f, y, weights, 2, 0.2)[1]
    runs = []
    for order_of_threads in ("forward", schedule):
        fwd = harness.run("expand_forward", images={"f": f, "y": y}, weights=weights, order=2, slope=0.2,
                          schedule=order_of_threads, seed=5)
        bwd = harness.run("expand_backward", images={"grad_out": grad_like(f), "f": f, "y": y}, raw={"gs": gs},
                          weights=weights, order=2, slope=0.2, blocks=2, schedule=order_of_threads, seed=5)
        runs.append([fwd["out"], fwd["gs"], bwd["grad_f"], bwd["grad_y"], *bwd["wgrad"]])
    for a, b in zip(*runs):
        assert torch.equal(a, b)


def test_bfloat16_is_within_twice_the_eager_bfloat16_error():
    f, y = images(1, 3, 15, 31, torch.bfloat16)
    weights = make_weights(channels=3, hidden=16, dtype=torch.bfloat16)
    order, slope = 3, 0.2
    fwd = harness.run("expand_forward", images={"f": f, "y": y}, weights=weights, order=order, slope=slope)
    exact = reference_terms(*as64((f, y)), as64(weights), order, slope)
    eager = reference_terms(f, y, weights, order, slope)
    assert_within_low_precision_bound([fwd["out"], fwd["gs"]], eager, exact, "out gs")

    d_out = grad_like(f)
    bwd = harness.run("expand_backward", images={"grad_out": d_out, "f": f, "y": y}, raw={"gs": fwd["gs"]},
                      weights=weights, order=order, slope=slope, blocks=2)
    got = [bwd["grad_f"], bwd["grad_y"], *(g.to(torch.bfloat16) for g in bwd["wgrad"])]
    exact_grads = reference_grads(*as64((f, y)), as64(weights), order, slope, d_out.double())
    eager_grads = reference_grads(f, y, weights, order, slope, d_out)
    assert_within_low_precision_bound(got, eager_grads, exact_grads, "f y w1 b1 w2 b2")


@pytest.mark.parametrize("c,h,w,hidden,order", [(3, 13, 29, 40, 2), (1, 14, 30, 8, 1), (4, 9, 20, 8, 1)])
def test_tensor_core_forward_within_twice_the_eager_bfloat16_error(c, h, w, hidden, order):
    """The mma.sync kernel, with every instruction executed from the PTX ISA's fragment layout
    (one tile: emulating tensor cores lane by lane is slow). Hidden 40 takes two chunks, one
    padded; C = 1, 3, 4 give K = 18, 54, 72 padded to 32, 64, 80."""
    f, y = images(1, c, h, w, torch.bfloat16)
    weights = make_weights(channels=c, hidden=hidden, dtype=torch.bfloat16)
    runs = [harness.run("expand_forward", images={"f": f, "y": y}, weights=weights, order=order, slope=0.2,
                        tensor_cores=True, schedule=schedule, seed=3) for schedule in ("forward", "shuffle")]
    assert torch.equal(runs[0]["out"], runs[1]["out"]) and torch.equal(runs[0]["gs"], runs[1]["gs"])
    exact = reference_terms(*as64((f, y)), as64(weights), order, 0.2)
    eager = reference_terms(f, y, weights, order, 0.2)
    assert_within_low_precision_bound([runs[0]["out"], runs[0]["gs"]], eager, exact, "out gs")


def test_zero_hidden_channels_make_g_the_bias():
    """hidden = 0 runs no hidden chunk at all: G is b2. The reference needs hidden >= 1, and
    with w2 = 0 it computes the same G."""
    f, y = images(1, 3, 9, 20, torch.float64)
    w1, b1, w2, b2 = make_weights(channels=3, hidden=1)
    w2.zero_()
    empty = [w1[:0], b1[:0], w2[:, :0], b2]
    fwd = harness.run("expand_forward", images={"f": f, "y": y}, weights=empty, order=3)
    assert_fp64_close([fwd["out"], fwd["gs"]], reference_terms(f, y, [w1, b1, w2, b2], 3, 0.0))
    bf = [t.to(torch.bfloat16) for t in (f, y)]
    tc = harness.run("expand_forward", images={"f": bf[0], "y": bf[1]}, weights=[t.to(torch.bfloat16) for t in empty],
                     order=2, tensor_cores=True)
    simt = harness.run("expand_forward", images={"f": bf[0], "y": bf[1]}, weights=[t.to(torch.bfloat16) for t in empty],
                       order=2)
    assert torch.equal(tc["out"], simt["out"]) and torch.equal(tc["gs"], simt["gs"])
    d_out = grad_like(f)
    bwd = harness.run("expand_backward", images={"grad_out": d_out, "f": f, "y": y}, raw={"gs": fwd["gs"]},
                      weights=empty, order=3, blocks=2)
    expected = reference_grads(f, y, [w1, b1, w2, b2], 3, 0.0, d_out)
    assert_fp64_close([bwd["grad_f"], bwd["grad_y"], bwd["wgrad"][3]], [expected[0], expected[1], expected[5]])
