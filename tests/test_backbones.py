"""The paper's backbones and DnCNN, and TaylorNet around them (the super-resolution backbones:
test_sr_backbones.py).

Inputs are tiny (the big networks have 11-22 M parameters) and their sides are odd and not
multiples of 8, so the padding and cropping are exercised everywhere.
"""
import functools
import io
import math

import numpy as np
import pytest
import torch
from skimage.transform import pyramid_gaussian

from taylor_fast import TaylorNet, backbones, backends, explain, taylor_loss, taylornet
from taylor_fast.backbones._padding import mirror_pad, pad_to_multiple
from taylor_fast.backbones.ddn import guided_filter
from taylor_fast.backbones.msresnet import gaussian_pyramid

# docs/backbones.md; DualGCN's original figure is "about 2.73 M": ours counts every convolution's bias
PARAMETERS = {
    "ddn": 57_369, "prenet": 168_963, "prn": 95_107, "prenet_r": 94_979, "prn_r": 21_123,
    "dualgcn": 2_731_071, "mprnet_derain": 3_637_249, "mprnet_deblur": 20_127_073,
    "msresnet": 11_721_321, "rdn": 21_975_683,
    "dncnn": 558_400,  # colour, as created by default; grey: test_dncnn_grey
}
SUPER_RESOLUTION = ["edsr", "edsr_baseline", "rdn_sr"]
NAMES = sorted([*PARAMETERS, "tiny"])
SIZE = (1, 3, 7, 9)
# forward_all(y) of the multi-output backbones: (number of outputs, index of forward's image)
MULTI_OUTPUT = {"prenet": (6, -1), "prn": (6, -1), "prenet_r": (6, -1), "prn_r": (6, -1),
                "mprnet_derain": (3, 0), "mprnet_deblur": (3, 0), "msresnet": (3, 0)}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These images are too small to gain from threads, and on a busy machine two OpenMP
    threads spinning for each other made this module 10x slower (155 s against 16 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def backbone(name):
    """One instance per backbone for the whole module (building the big ones takes a while)."""
    torch.manual_seed(0)
    return backbones.create(name)


def image(*shape, seed=0, dtype=torch.float32):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


def test_registry_has_the_design_names():
    assert backbones.names() == sorted(NAMES + SUPER_RESOLUTION)
    assert [name for name in backbones.names() if backbones.scales(name)] == SUPER_RESOLUTION
    with pytest.raises(ValueError, match="unknown backbone 'prenet2'.*prenet_r"):
        backbones.create("prenet2")


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_parameter_count_matches_the_spec(name):
    assert sum(p.numel() for p in backbone(name).parameters()) == PARAMETERS[name]


def test_dncnn_grey():
    """The authors' PyTorch port: first conv with bias (1->64), 15 x (conv 64->64 without bias +
    BatchNorm), last conv without bias (64->1)."""
    layers = (1 * 64 * 9 + 64) + 15 * (64 * 64 * 9 + 2 * 64) + 64 * 1 * 9
    model = backbones.create("dncnn", channels=1)
    assert sum(p.numel() for p in model.parameters()) == layers == 556_096
    y = image(2, 1, 7, 9)
    with torch.no_grad():
        assert model.eval()(y).shape == y.shape


@pytest.mark.parametrize("name", NAMES)
def test_no_weights_are_shared_by_accident(name):
    """Guards against `[unit] * n`: only MPRNet's single PReLU is registered in several places."""
    model = backbone(name)
    every = [p for _, p in model.named_parameters(remove_duplicate=False)]
    distinct = {id(p) for p in every}
    shared = len(every) - len(distinct)
    if name.startswith("mprnet"):
        (prelu,) = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.PReLU)}
        assert shared == sum(id(p) == prelu for p in every) - 1
    else:
        assert shared == 0


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [SIZE, (2, 3, 6, 1)])
def test_output_has_the_input_shape(name, shape):
    model = backbone(name)
    y = image(*shape)
    with torch.no_grad():
        out = model(y)
    assert out.shape == y.shape and out.dtype == y.dtype
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(MULTI_OUTPUT))
def test_forward_all_gives_every_output(name):
    count, final = MULTI_OUTPUT[name]
    model = backbone(name).eval()
    y = image(*SIZE)
    with torch.no_grad():
        outputs = model.forward_all(y)
        assert len(outputs) == count
        assert torch.equal(outputs[final], model(y))
    h, w = SIZE[2:]
    for s, out in enumerate(outputs):  # MSResNet's pyramid halves per level, the rest are full size
        scale = 2 ** s if name == "msresnet" else 1
        assert out.shape == (1, 3, math.ceil(h / scale), math.ceil(w / scale))


@pytest.mark.parametrize("name", backbones.names())
def test_every_backbone_passes_the_dry_run_that_checks_a_training_config(name):
    """train refuses options a network cannot run by running it once on the meta device; every
    registered backbone must run there at its defaults (a super-resolution one at its first scale,
    its output that many times larger), or training it would be refused."""
    from taylor_fast.engine import model
    from taylor_fast.engine.config import DEFAULTS

    model.check({**DEFAULTS["model"], "backbone": name, "scale": (backbones.scales(name) or (1,))[0]})


@pytest.mark.parametrize("name", NAMES)
def test_order_zero_taylornet_is_the_backbone_exactly(name):
    model = backbone(name).eval()
    y = image(*SIZE)
    with torch.no_grad():
        assert torch.equal(TaylorNet(model, order=0)(y), model(y))


def test_order_zero_with_per_order_weights_is_the_backbone_exactly():
    model = backbone("prn_r").eval()
    net = TaylorNet(model, order=0, shared=False)
    assert net.derivative.w1.shape[0] == 0
    y = image(*SIZE)
    with torch.no_grad():
        assert torch.equal(net(y), model(y))


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name):
    model = backbone(name).train()
    net = TaylorNet(model, order=3)
    y = image(*SIZE)
    out, f = net.forward_terms(y)
    taylor_loss(out, f, image(*SIZE, seed=1)).backward()
    try:
        for pname, p in net.named_parameters():
            assert p.grad is not None, f"{pname} got no gradient"
            assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname
    finally:
        model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip(name):
    torch.manual_seed(1)
    source = TaylorNet(backbone(name), order=2, shared=False).eval()
    target = TaylorNet(backbones.create(name), order=2, shared=False).eval()
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)
    buffer.seek(0)
    assert not torch.equal(target.derivative.w1, source.derivative.w1)
    target.load_state_dict(torch.load(buffer, weights_only=True))
    loaded = target.state_dict()
    for key, value in source.state_dict().items():
        assert torch.equal(loaded[key], value), key
    y = image(*SIZE)
    with torch.no_grad():
        assert torch.equal(target(y), source(y))


@pytest.mark.parametrize("shared", [True, False])
def test_taylornet_expands_through_the_public_op(monkeypatch, shared):
    """The standard G always goes through ops.taylor_expand (which picks the fused kernels),
    with the TaylorNet's backend and its shared or per-order weights."""
    calls = []
    real = taylornet.ops.taylor_expand

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(taylornet.ops, "taylor_expand", spy)
    net = TaylorNet(backbone("prn_r"), order=3, shared=shared)
    y = image(*SIZE)
    net(y)
    ((args, kwargs),) = calls
    assert kwargs == {"backend": "auto"} and args[6] == 3
    assert all(a is b for a, b in zip(args[2:6], net.derivative.weights()))
    assert args[2].dim() == (4 if shared else 5)


def auto_backend(net, y):
    """The backend that backend="auto" picks for this TaylorNet's expansion of y."""
    G = net.derivative
    return explain(y, y, *G.weights(), net.order, G.activation, G.negative_slope).backend


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-9), (torch.float32, 1e-4)])
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("name", ["tiny", "ddn", "prn_r"])
def test_fused_and_reference_taylornet_agree(name, shared, dtype, tol):
    """backend="auto" (the fused CPU kernels wherever they are built) against the reference,
    outputs and every parameter's gradient, with the same weights."""
    torch.manual_seed(0)
    nets = {backend: TaylorNet(backbones.create(name), order=3, shared=shared, backend=backend).to(dtype)
            for backend in ("auto", "reference")}
    nets["reference"].load_state_dict(nets["auto"].state_dict())
    y, x = image(2, 3, 9, 14, dtype=dtype), image(2, 3, 9, 14, seed=1, dtype=dtype)
    if backends()["cpu"][0]:
        assert auto_backend(nets["auto"], y) == "cpu"
    grads = {}
    for backend, net in nets.items():
        out, f = net.forward_terms(y)
        taylor_loss(out, f, x).backward()
        grads[backend] = {n: p.grad for n, p in net.named_parameters()}
        grads[backend]["output"] = out.detach()
    # one absolute scale for all: some gradients are zero up to rounding (a bias before a BatchNorm)
    scale = max(g.abs().max().item() for g in grads["reference"].values())
    for key, expected in grads["reference"].items():
        torch.testing.assert_close(grads["auto"][key], expected, rtol=tol, atol=tol * scale,
                                   msg=lambda m: f"{key}: {m}")


def test_torch_compile_of_a_wrapped_backbone():
    torch.manual_seed(0)
    net = TaylorNet(backbones.create("prn_r", stages=2, blocks=2), order=3)
    compiled = torch.compile(net, fullgraph=True)
    y, x = image(1, 3, 10, 12), image(1, 3, 10, 12, seed=1)
    results = []
    for model in (net, compiled):
        out, f = model.forward_terms(y)
        loss = taylor_loss(out, f, x)
        results.append((out.detach(), torch.autograd.grad(loss, list(net.parameters()))))
    (eager_out, eager_grads), (compiled_out, compiled_grads) = results
    torch.testing.assert_close(compiled_out, eager_out, rtol=1e-4, atol=1e-5)
    for got, expected in zip(compiled_grads, eager_grads):
        torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("mode", ["reflect", "symmetric"])
@pytest.mark.parametrize("h,w", [(1, 1), (1, 4), (3, 5), (4, 2)])
def test_mirror_pad_matches_numpy_for_any_amount(mode, h, w):
    x = image(1, 2, h, w, dtype=torch.float64)
    for left, right, top, bottom in [(0, 0, 0, 0), (1, 2, 0, 3), (5, 0, 7, 1), (0, 13, 0, 11)]:
        expected = np.pad(x.numpy(), ((0, 0), (0, 0), (top, bottom), (left, right)), mode=mode)
        np.testing.assert_array_equal(mirror_pad(x, left, right, top, bottom, mode).numpy(), expected)


@pytest.mark.parametrize("h,w", [(1, 1), (7, 8), (8, 8), (9, 17)])
def test_pad_to_multiple_keeps_the_image_top_left(h, w):
    x = image(1, 3, h, w)
    padded = pad_to_multiple(x, 8)
    assert padded.shape[-2:] == (8 * math.ceil(h / 8), 8 * math.ceil(w / 8))
    assert torch.equal(padded[..., :h, :w], x)


def test_msresnet_pyramid_matches_scikit_image():
    """The original's data loader builds its pyramid with skimage's pyramid_gaussian."""
    x = image(2, 3, 12, 20, dtype=torch.float64)
    ours = gaussian_pyramid(x, 3)
    for n in range(2):
        theirs = pyramid_gaussian(x[n].permute(1, 2, 0).numpy(), 2, channel_axis=-1)
        for level, expected in zip(ours, theirs):
            np.testing.assert_allclose(level[n].permute(1, 2, 0).numpy(), expected, rtol=0, atol=1e-12)


def _guided_filter_by_windows(p, radius, eps):
    """He et al.'s self-guided filter on one 2-D channel, window by window."""
    h, w = p.shape

    def mean(a):
        return np.array([[a[max(i - radius, 0):i + radius + 1, max(j - radius, 0):j + radius + 1].mean()
                          for j in range(w)] for i in range(h)])

    mean_p = mean(p)
    a = (mean(p * p) - mean_p**2) / (mean(p * p) - mean_p**2 + eps)
    b = mean_p - a * mean_p
    return mean(a) * p + mean(b)


def test_ddn_guided_filter_matches_the_windowed_definition():
    y = image(1, 2, 9, 12, dtype=torch.float64)
    got = guided_filter(y, y, radius=3, eps=0.01)
    for c in range(2):
        expected = _guided_filter_by_windows(y[0, c].numpy(), 3, 0.01)
        np.testing.assert_allclose(got[0, c].numpy(), expected, rtol=0, atol=1e-12)
