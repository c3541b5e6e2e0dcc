"""TaylorNet for super-resolution (F upscales, G works on cat[g, up(y)]) and for grey images, the
super-resolution backbones against their original architectures, and tiled SR restoration."""
import pytest
import torch
from torch import nn

import taylor_fast
from taylor_fast import TaylorNet, backbones, reference, taylor_loss
from taylor_fast.engine.tiling import tiled
from taylor_fast.resize import bicubic_upsample


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _image(*shape, seed=0, dtype=torch.float32):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


def _small_sr(name, scale, channels=3):
    torch.manual_seed(0)
    options = {"blocks": 1, "width": 8} if name.startswith("edsr") else {"blocks": 2, "layers": 2, "width": 8,
                                                                           "growth": 4}
    return backbones.create(name, scale=scale, channels=channels, **options)


def _conv(cin, cout, k=3):
    return cin * cout * k * k + cout


def _edsr_parameters(scale, width, blocks):
    """Head, `blocks` residual blocks of two convs, the body's last conv, the sub-pixel
    upsampler (conv to 4x the features per x2 step, 9x for x3), the tail (Lim et al. 2017)."""
    steps = [9] if scale == 3 else [4] * {2: 1, 4: 2}[scale]
    return (_conv(3, width) + blocks * 2 * _conv(width, width) + _conv(width, width)
            + sum(_conv(width, width * s) for s in steps) + _conv(width, 3))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_sr_backbone_parameter_counts_match_the_originals(scale):
    with torch.device("meta"):  # the full EDSR and RDN without allocating them
        counted = {name: sum(p.numel() for p in backbones.create(name, scale=scale).parameters())
                   for name in ("edsr_baseline", "edsr", "rdn_sr")}
        restoration_rdn = sum(p.numel() for p in backbones.create("rdn").parameters())
    assert counted["edsr_baseline"] == _edsr_parameters(scale, 64, 16)
    assert counted["edsr"] == _edsr_parameters(scale, 256, 32)
    # RDN's UPNet: conv G0 -> G*s^2 (x4: two x2 steps) and a final conv G -> 3, which replaces the
    # restoration variant's conv G0 -> 3 (the same size with G0 = G = 64)
    upnet = {2: _conv(64, 256), 3: _conv(64, 576), 4: 2 * _conv(64, 256)}[scale]
    assert counted["rdn_sr"] == restoration_rdn + upnet
    published = {2: (1_369_859, 40_729_603, 22_123_395), 3: (1_554_499, 43_680_003, 22_308_035),
                 4: (1_517_571, 43_089_923, 22_271_107)}[scale]
    assert (counted["edsr_baseline"], counted["edsr"], counted["rdn_sr"]) == published


@pytest.mark.parametrize("name", ["edsr_baseline", "rdn_sr"])
@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("channels", [1, 3])
def test_sr_backbones_upscale_any_size(name, scale, channels):
    model = _small_sr(name, scale, channels)
    y = _image(2, channels, 5, 7)
    with torch.no_grad():
        assert model(y).shape == (2, channels, 5 * scale, 7 * scale)


def test_unsupported_scales_are_refused():
    assert backbones.scales("rdn_sr") == (2, 3, 4) and backbones.scales("rdn") == ()
    for name in ("edsr_baseline", "rdn_sr"):
        with pytest.raises(ValueError, match="scale: expected one of 2, 3, 4, got 5"):
            backbones.create(name, scale=5)


@pytest.mark.parametrize("order", [0, 1, 3])
def test_sr_taylornet_expands_on_the_bicubic_upsampled_input(order):
    torch.manual_seed(1)
    net = TaylorNet(_small_sr("edsr_baseline", 2), order=order, hidden=6, scale=2, backend="reference").double()
    y = _image(2, 3, 6, 5, dtype=torch.float64)
    out, f = net.forward_terms(y)
    assert out.shape == f.shape == (2, 3, 12, 10)
    torch.testing.assert_close(f, net.mapping(y))
    G = net.derivative
    expected = reference.taylor_expand(f, bicubic_upsample(y, 2), *G.weights(), order, G.activation, G.negative_slope)
    torch.testing.assert_close(out, expected)
    if order == 0:
        assert torch.equal(out, f)


def test_sr_taylornet_fused_equals_reference_with_gradients():
    torch.manual_seed(0)
    nets = {b: TaylorNet(_small_sr("edsr_baseline", 3), order=3, hidden=8, scale=3, backend=b)
            for b in ("auto", "reference")}
    nets["reference"].load_state_dict(nets["auto"].state_dict())
    y, x = _image(2, 3, 5, 6), _image(2, 3, 15, 18, seed=1)
    grads = {}
    for backend, net in nets.items():
        out, f = net.forward_terms(y)
        taylor_loss(out, f, x).backward()
        grads[backend] = {n: p.grad for n, p in net.named_parameters()} | {"out": out.detach()}
    for key, expected in grads["reference"].items():
        torch.testing.assert_close(grads["auto"][key], expected, rtol=1e-4, atol=1e-5, msg=lambda m: f"{key}: {m}")


def test_a_mapping_of_the_wrong_size_is_named():
    with pytest.raises(ValueError, match=r"returned shape \(1, 3, 8, 8\) for an input of shape \(1, 3, 4, 4\); "
                                         r"TaylorNet\(scale=1\) needs \(1, 3, 4, 4\) \(a super-resolution mapping"):
        TaylorNet(nn.Upsample(scale_factor=2), order=1)(torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match="TaylorNet\\(scale=3\\) needs \\(1, 3, 12, 12\\)"):
        TaylorNet(nn.Upsample(scale_factor=2), order=1, scale=3)(torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match="scale must be a positive int"):
        TaylorNet(nn.Identity(), scale=0)


def test_one_channel_runs_the_fused_cpu_kernels():
    """Grey images (C = 1) go through the fused CPU kernels, not the reference fallback."""
    if not taylor_fast.backends()["cpu"][0]:
        pytest.skip("the fused CPU kernels are not built here")
    torch.manual_seed(0)
    fused = TaylorNet(backbones.create("dncnn", channels=1, depth=4), channels=1, order=3, hidden=8)
    plain = TaylorNet(backbones.create("dncnn", channels=1, depth=4), channels=1, order=3, hidden=8,
                      backend="reference")
    plain.load_state_dict(fused.state_dict())
    y, x = _image(2, 1, 9, 14), _image(2, 1, 9, 14, seed=1)
    G = fused.derivative
    assert taylor_fast.explain(y, y, *G.weights(), 3, G.activation, G.negative_slope).backend == "cpu"
    results = []
    for net in (fused, plain):
        out, f = net.forward_terms(y)
        taylor_loss(out, f, x).backward()
        results.append((out.detach(), net.derivative.w1.grad))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-4, atol=1e-6)


def test_tiled_super_resolution_equals_the_whole_image():
    """A model that sees at most 3 low-resolution pixels around each output pixel (conv3x3 +
    pixel shuffle for F; bicubic upsampling, 2 pixels, and G's two convs at high resolution, half
    a pixel each) is restored tile by tile as a whole when the overlap's quarter covers that (up to
    the float32 accumulation of the tiles), and visibly not when it does not."""
    torch.manual_seed(0)
    mapping = nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.PixelShuffle(2))
    net = TaylorNet(mapping, order=1, hidden=4, scale=2).double().eval()
    image = _image(1, 3, 37, 29, dtype=torch.float64)
    with torch.no_grad():
        whole = net(image)
        pieces = tiled(net, image, tile=16, overlap=12)
        too_little = tiled(net, image, tile=16, overlap=4)
    assert pieces.shape == whole.shape == (1, 3, 74, 58)
    torch.testing.assert_close(pieces, whole, rtol=0, atol=1e-6)
    assert (too_little - whole).abs().max() > 1e-3
