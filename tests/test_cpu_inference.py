"""Calls that need no gradient: the CPU backend serves them with taylor_fast::expand_inference,
which keeps no g^k for a backward. Its output must be the forward's, bit for bit (the same
kernels), and the reference's within rounding."""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import taylor_fast
from sample_tensors import make_images, make_weights
from taylor_fast import backbones, ops, reference
from taylor_fast.backends import extension
from taylor_fast.bench import memory

pytestmark = pytest.mark.skipif(not taylor_fast.backends()["cpu"][0], reason="the CPU kernels are not built")

OPS = torch.ops.taylor_fast


def isas():
    available = {"avx512": ["baseline", "avx2", "avx512"], "avx2": ["baseline", "avx2"]}
    return available.get(extension.cpu_isa(), ["baseline"])


def layouts(t):
    """The same values, contiguous, channels_last and as a strided slice of a wider tensor."""
    wide = torch.zeros(*t.shape[:3], 2 * t.shape[3] + 1, dtype=t.dtype)
    wide[..., 1::2] = t
    return {"contiguous": t, "channels_last": t.contiguous(memory_format=torch.channels_last),
            "strided": wide[..., 1::2]}


@pytest.mark.parametrize("order", range(8))  # orders above 3 run in several pipelined passes
@pytest.mark.parametrize("shared", [True, False])
def test_inference_equals_the_forward_bitwise_and_the_reference(order, shared):
    f, y = make_images(2, 3, 11, 13)
    weights = make_weights(3, 8, orders=None if shared else order)
    slope = 0.1 if order % 2 else 0.0
    out = OPS.expand_inference(f, y, *weights, order, slope)
    assert torch.equal(out, OPS.expand_forward(f, y, *weights, order, slope)[0])
    want = reference.taylor_expand(f, y, *weights, order, "leaky_relu" if slope else "relu", slope)
    torch.testing.assert_close(out, want)


@pytest.mark.parametrize("isa", isas())
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_every_code_path_and_low_precision_equal_the_forward(isa, dtype, monkeypatch):
    monkeypatch.setenv("TAYLOR_FAST_CPU_ISA", isa)
    f, y = (t.to(dtype) for t in make_images(1, 3, 19, 40))
    weights = [w.to(dtype) for w in make_weights(3, 32, scale=0.1)]
    for order in (3, 5):
        got = OPS.expand_inference(f, y, *weights, order, 0.0)
        assert got.dtype == dtype
        assert torch.equal(got, OPS.expand_forward(f, y, *weights, order, 0.0)[0])


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
def test_input_layouts(layout):
    f, y = make_images(2, 3, 6, 17)
    weights = make_weights(3, 8)
    got = OPS.expand_inference(layouts(f)[layout], layouts(y)[layout], *weights, 4, 0.0)
    torch.testing.assert_close(got, reference.taylor_expand(f, y, *weights, 4))


@pytest.mark.parametrize("case", ["negative order", "y of another shape"])
def test_bad_arguments_are_checked_like_the_forward(case):
    f, y = make_images()
    args = {"negative order": (f, y, *make_weights(), -1, 0.0),
            "y of another shape": (f, y[:, :2], *make_weights(), 2, 0.0)}[case]
    with pytest.raises(RuntimeError) as forward:
        OPS.expand_forward(*args)
    with pytest.raises(RuntimeError) as inference:
        OPS.expand_inference(*args)
    assert str(inference.value).splitlines()[0] == str(forward.value).splitlines()[0]
    assert ("order must be >= 0" if case == "negative order" else "y has shape") in str(inference.value)


def test_opcheck():
    f, y = make_images(2, 3, 5, 7)
    for weights, order in ((make_weights(3, 4), 2), (make_weights(3, 4, orders=4), 4)):
        torch.library.opcheck(OPS.expand_inference.default, (f, y, *weights, order, 0.2))


class OpLog(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(str(func))
        return func(*args, **(kwargs or {}))


def expansion_ops(context, requires_grad):
    f, y = make_images()
    weights = [w.requires_grad_(requires_grad) for w in make_weights()]
    with context(), OpLog() as log:
        ops.taylor_expand(f, y, *weights, 3, backend="cpu")
    return {name for name in log.names if name.startswith("taylor_fast.")}


@pytest.mark.parametrize("context,requires_grad,expected", [
    (torch.enable_grad, True, "taylor_fast.expand_forward.default"),
    (torch.enable_grad, False, "taylor_fast.expand_inference.default"),
    (torch.no_grad, True, "taylor_fast.expand_inference.default"),
    (torch.inference_mode, True, "taylor_fast.expand_inference.default"),
])
def test_only_calls_that_need_a_gradient_keep_the_gs(context, requires_grad, expected):
    assert expansion_ops(context, requires_grad) == {expected}


def test_compiled_taylornet_without_grad_uses_the_inference_op():
    torch.manual_seed(0)
    net = taylor_fast.TaylorNet(backbones.create("tiny"), order=3, hidden=16, backend="cpu").eval()
    y = torch.rand(2, 3, 12, 10)
    graphs = []

    def capture(gm, example_inputs):
        graphs.append(gm.code)
        return gm.forward

    torch._dynamo.reset()
    with torch.no_grad():
        eager = net(y)
        compiled = torch.compile(net, fullgraph=True, backend=capture)(y)
    assert torch.equal(compiled, eager)
    assert any("taylor_fast.expand_inference" in code for code in graphs)


@pytest.mark.skipif(memory.cpu_unavailable_reason() is not None, reason="cannot reset the peak RSS here")
def test_inference_does_not_allocate_the_gs():
    """expand_forward allocates out, g^1..g^3 and two padded input planes; expand_inference
    only out and the planes, so its peak is at least 2 of the 3 images of gs lower."""
    f, y = (t.float() for t in make_images(1, 3, 512, 512))
    weights = [w.float() for w in make_weights(3, 32, scale=0.1)]
    image = f.numel() * f.element_size()
    peaks = {}
    for name in ("expand_forward", "expand_inference"):
        op = getattr(OPS, name)
        op(f, y, *weights, 3, 0.0)  # steady state first, as the benchmarks do
        peaks[name] = memory.cpu_peak_bytes(lambda: op(f, y, *weights, 3, 0.0))
    assert peaks["expand_inference"] <= peaks["expand_forward"] - 2 * image
