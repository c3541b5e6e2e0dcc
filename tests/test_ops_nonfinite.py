"""NaN and ±inf propagate as in the reference, on every fused backend.

The oracle is the reference evaluated with torch's native convolution (oneDNN off). That path
multiplies the zero padding like any other input, so 0 * inf = NaN on the image border, as the
fused kernels do; torch's oneDNN convolution (CPU float32, batch > 1) skips the padding instead,
so with an infinite weight the default reference itself disagrees with its own batch-1 result
(RELIABILITY.md).

Forward: every output entry is NaN, +inf, -inf or finite exactly where the oracle's is, and the
finite ones agree. Backward with a non-finite image: every gradient is finite exactly where the
oracle's is and agrees there; the image gradients match NaN/±inf exactly (Triton's weight
gradients may show NaN for ±inf: its GEMM reduction multiplies masked zeros). Backward with a
non-finite weight: the fused backward multiplies out-of-image zeros by that weight where torch's
skips them, so an entry may be NaN where torch's is finite, never the other way round.
"""
import pytest
import torch

from backend_cases import OPS, available_backends, backend_params, classes, device_of, image_names, marks_for, valid_arguments
from cuda_emulator import harness
from taylor_fast import ops, reference

FUSED = [name for name in available_backends() if name != "reference"]
COMBOS = [(value, activation) for activation in ("relu", "leaky_relu")
          for value in (float("nan"), float("inf"), -float("inf"))]
# Where the value goes: (argument, index); "image" is f or g. The strict spots are interior
# pixels (a 3x3 neighbourhood inside the image); "edge" puts values on the border of f/g and y.
SPOTS = {"image": [("image", (0, 1, 2, 3))], "y": [("y", (1, 0, 3, 5))], "acc": [("acc", (0, 2, 0, 4))],
         "edge": [("image", (1, 2, 5, 0)), ("y", (0, 0, 3, 8))],
         "w1": [("w1", (3, 1, 0, 2))], "b1": [("b1", (5,))], "w2": [("w2", (1, 7, 2, 0))], "b2": [("b2", (2,))]}
WEIGHTS = ("w1", "b1", "w2", "b2")
STRICT = ("image", "y", "acc")


def assert_close_where_finite(got, want, what):
    both = got.isfinite() & want.isfinite()
    if both.any():
        scale = max(1.0, want[both].abs().max().item())
        error = (got[both].double() - want[both].double()).abs().max().item()
        assert error <= 1e-4 * scale, f"{what}: finite entries differ by {error:.3g} (scale {scale:.3g})"


def spoilt_arguments(op, spot, value, activation, backend, dtype=torch.float32):
    """2 x 3 x 6 x 9 images (one tile row of the Triton interpreter: it runs ~0.1 s per tile),
    order 2 (1 on Triton) or k = 2."""
    args = valid_arguments(op, h=6, dtype=dtype)
    args["activation"], args["negative_slope"] = activation, 0.1
    if op == "taylor_expand" and backend == "triton":
        args["order"] = 1
    for name, index in SPOTS[spot]:
        args[image_names(op)[0] if name == "image" else name][index] = value
    return args


def run(op, args, backend, grad_seed=0):
    """(outputs, gradients of every tensor argument) for sum(outputs * fixed random weights)."""
    leaves = {k: v.detach().clone().requires_grad_() if isinstance(v, torch.Tensor) else v for k, v in args.items()}
    leaves["backend"] = backend
    outs = getattr(ops, op)(**leaves)
    outs = outs if isinstance(outs, tuple) else (outs,)
    gen = torch.Generator().manual_seed(grad_seed)
    grad_outs = [torch.randn(o.shape, generator=gen, dtype=o.dtype).to(o.device) for o in outs]
    tensors = [k for k, v in leaves.items() if isinstance(v, torch.Tensor)]
    grads = torch.autograd.grad(outs, [leaves[k] for k in tensors], grad_outs, allow_unused=True)
    return [o.detach().cpu() for o in outs], {k: g.cpu() for k, g in zip(tensors, grads) if g is not None}


def oracle(op, args):
    """The reference on the CPU with torch's native convolution, whichever device args are on."""
    on_cpu = {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in args.items()}
    with torch.backends.mkldnn.flags(enabled=False):
        return run(op, on_cpu, "reference")


# The cpu backend in float32 and float64, and through its portable code path (the vector ISAs
# implement the activation separately); the CUDA kernels in float32 and float64 (CUDA cores:
# the tensor-core path is bf16/fp16 only); Triton in float32.
VARIANTS = {"cpu": [("", torch.float32), ("", torch.float64), ("baseline", torch.float32)],
            "cuda": [("", torch.float32), ("", torch.float64)],
            "triton": [("", torch.float32)]}


def cases():
    """Every (value, activation) at every spot on the cpu and cuda backends; on Triton (interpreted: slow)
    one combination per spot, in turn, so that each op still meets all six."""
    for op in OPS:
        spots = [s for s in SPOTS if s != "acc" or op == "taylor_step"]
        for i, spot in enumerate(spots):
            for backend in FUSED:
                combos = COMBOS if backend in ("cpu", "cuda") else [COMBOS[i % len(COMBOS)]]
                for isa, dtype in VARIANTS[backend]:
                    variant = "-".join(filter(None, [backend, isa, str(dtype)[6:]]))
                    yield pytest.param(backend, isa, dtype, op, spot, combos, id=f"{variant}-{op}-{spot}",
                                       marks=marks_for(backend, device_of(backend)))


@pytest.mark.parametrize("backend,isa,dtype,op,spot,combos", list(cases()))
def test_nan_and_inf_propagate_as_in_the_reference(backend, isa, dtype, op, spot, combos, monkeypatch):
    if isa:
        monkeypatch.setenv("TAYLOR_FAST_CPU_ISA", isa)
    for value, activation in combos:
        args = spoilt_arguments(op, spot, value, activation, backend, dtype)
        outs, grads = run(op, args, backend)
        want_outs, want_grads = oracle(op, args)
        where = f"{value} in {spot}, {activation}"
        for i, (got, want) in enumerate(zip(outs, want_outs)):
            assert torch.equal(classes(got), classes(want)), f"{where}: output {i} NaN/inf positions differ"
            assert_close_where_finite(got, want, f"{where}: output {i}")
            assert want.isfinite().any() or spot in WEIGHTS, "the case should leave some finite outputs"
        assert grads.keys() == want_grads.keys()
        for name, got in grads.items():
            want, what = want_grads[name], f"{where}: grad of {name}"
            if spot in STRICT:
                assert torch.equal(got.isfinite(), want.isfinite()), f"{what}: finite in other places"
                if name not in WEIGHTS or backend == "cpu":
                    assert torch.equal(classes(got), classes(want)), f"{what}: NaN/inf positions differ"
            else:
                assert not (got.isfinite() & ~want.isfinite()).any(), f"{what}: finite where the reference is not"
            assert_close_where_finite(got, want, what)


@pytest.mark.parametrize("backend", backend_params(FUSED))
def test_a_nan_stays_in_its_image(backend):
    """Batch entries never mix: a NaN in image 0 leaves image 1 bitwise what it is alone."""
    args = valid_arguments("taylor_expand", backend=backend)
    args["f"][0, 1, 3, 4] = float("nan")
    out = ops.taylor_expand(**args)
    alone = ops.taylor_expand(**{**args, "f": args["f"][1:], "y": args["y"][1:]})
    assert out[0].isnan().any() and torch.equal(out[1:], alone)


@pytest.mark.skipif(harness.compiler() is None, reason="no C++ compiler to build the CUDA emulator")
@pytest.mark.parametrize("spot,combo", [("image", 0), ("y", 4), ("edge", 2), ("w2", 3)], ids=str)
def test_cuda_kernels_propagate_nan_and_inf_as_the_reference(spot, combo):
    """The CUDA kernels' code, run by the emulator (tests/cuda_emulator), meets the same bar."""
    value, activation = COMBOS[combo]
    args = spoilt_arguments("taylor_expand", spot, value, activation, "cuda")
    f, y = args["f"].double(), args["y"].double()
    weights = [args[name].double() for name in WEIGHTS]
    slope = 0.0 if activation == "relu" else 0.1
    fwd = harness.run("expand_forward", images={"f": f, "y": y}, weights=weights, order=2, slope=slope)
    grad_out = torch.randn(f.shape, generator=torch.Generator().manual_seed(0), dtype=f.dtype)
    bwd = harness.run("expand_backward", images={"grad_out": grad_out, "f": f, "y": y}, raw={"gs": fwd["gs"]},
                      weights=weights, order=2, slope=slope, blocks=2)
    leaves = [t.clone().requires_grad_() for t in (f, y, *weights)]
    out = reference.taylor_expand(*leaves, 2, activation, slope)
    want = torch.autograd.grad(out, leaves, grad_out)
    assert torch.equal(classes(fwd["out"]), classes(out.detach()))
    assert_close_where_finite(fwd["out"], out.detach(), "out")
    for name, got, expected in zip(("f", "y", *WEIGHTS), [bwd["grad_f"], bwd["grad_y"], *bwd["wgrad"]], want):
        if spot in STRICT:
            assert torch.equal(got.isfinite(), expected.isfinite()), f"grad of {name}: finite in other places"
        else:
            assert not (got.isfinite() & ~expected.isfinite()).any(), f"grad of {name}: finite where torch's is not"
        assert_close_where_finite(got, expected, f"grad of {name}")
