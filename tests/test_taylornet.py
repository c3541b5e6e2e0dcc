"""TaylorNet, DerivativeG, taylor_loss and wrap against the reference and closed forms."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import taylor_fast
from taylor_fast import DerivativeG, TaylorNet, backbones, reference, taylor_loss, wrap


def tiny_net(order=3, **kw):
    torch.manual_seed(0)
    return TaylorNet(backbones.create("tiny"), order=order, **kw)


def test_order_zero_equals_backbone_exactly():
    net = tiny_net(order=0)
    y = torch.rand(2, 3, 11, 13)
    assert torch.equal(net(y), net.mapping(y))


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
@pytest.mark.parametrize("order", [1, 3, 8])
def test_forward_matches_reference(shared, activation, order):
    net = tiny_net(order=order, shared=shared, activation=activation, hidden=8, backend="reference").double()
    y = torch.rand(1, 3, 9, 10, dtype=torch.float64)
    out, f = net.forward_terms(y)
    torch.testing.assert_close(f, net.mapping(y))
    G = net.derivative
    expected = reference.taylor_expand(f, y, *G.weights(), order, activation, G.negative_slope)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("channels", [1, 4])
def test_any_channel_count(channels):
    mapping = nn.Conv2d(channels, channels, 3, padding=1)
    net = TaylorNet(mapping, order=2, channels=channels, hidden=6)
    assert net(torch.rand(2, channels, 8, 8)).shape == (2, channels, 8, 8)


@pytest.mark.parametrize("shared", [True, False])
def test_gradients_reach_mapping_and_derivative(shared):
    net = tiny_net(order=3, shared=shared)
    y = torch.rand(2, 3, 12, 12)
    out, f = net.forward_terms(y)
    taylor_loss(out, f, torch.rand_like(y)).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    if not shared:  # every order's own weight set receives a gradient
        for k in range(3):
            assert net.derivative.w1.grad[k].abs().sum() > 0


def test_per_order_weights_are_used_per_order():
    net = tiny_net(order=3, shared=False, hidden=4, backend="reference")
    y = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        base = net(y)
        for k in range(3):
            net.derivative.w2[k] += 0.5  # change only the weights of order k
            changed = net(y)
            net.derivative.w2[k] -= 0.5
            assert not torch.allclose(changed, base), k
        # and the expansion equals a loop that uses set k at order k
        G = net.derivative
        f = net.mapping(y)
        g, out = f, f
        for k in range(3):
            g = reference.derivative_g(g, y, G.w1[k], G.b1[k], G.w2[k], G.b2[k]) + k * g
            out = out + g / math.factorial(k + 1)
        torch.testing.assert_close(base, out)


def test_shared_and_per_order_parameter_shapes():
    shared = DerivativeG(3, 16)
    per = DerivativeG(3, 16, orders=5)
    assert shared.w1.shape == (16, 6, 3, 3) and shared.b2.shape == (3,)
    assert per.w1.shape == (5, 16, 6, 3, 3) and per.w2.shape == (5, 3, 16, 3, 3)
    assert sum(p.numel() for p in per.parameters()) == 5 * sum(p.numel() for p in shared.parameters())


def test_custom_derivative_module_runs_the_reference_loop():
    class ScaledG(nn.Module):
        def forward(self, g, y, k):
            return 0.5 * g + 0.1 * y

    net = TaylorNet(nn.Identity(), order=2, derivative=ScaledG())
    assert not net.fused
    y = torch.rand(1, 3, 4, 4)
    g1 = 0.5 * y + 0.1 * y
    g2 = 0.5 * g1 + 0.1 * y + g1
    torch.testing.assert_close(net(y), y + g1 + g2 / 2)


def test_taylor_loss_is_l1_plus_weighted_l1():
    out, f, x = torch.rand(3, 2, 3, 4, 4)
    expected = (out - x).abs().mean() + 0.3 * (f - x).abs().mean()
    torch.testing.assert_close(taylor_loss(out, f, x, lam=0.3), expected)
    torch.testing.assert_close(taylor_loss(out, f, x, lam=0.0), F.l1_loss(out, x))


def test_wrap_selects_output_of_multi_output_models():
    class TwoOutputs(nn.Module):
        def forward(self, y):
            return [y * 2, y * 3]

    y = torch.rand(1, 3, 5, 5)
    for selector, scale in ((0, 2), (1, 3), (lambda outs: outs[1], 3)):
        net = wrap(TwoOutputs(), order=0, output=selector)
        torch.testing.assert_close(net(y), y * scale)
    with pytest.raises(TypeError, match="output="):
        wrap(TwoOutputs(), order=1)(y)
    model = TwoOutputs()
    model.taylor_output_index = 1
    torch.testing.assert_close(wrap(model, order=0)(y), y * 3)


def test_state_dict_round_trip():
    a = tiny_net(order=3, shared=False)
    b = TaylorNet(backbones.create("tiny"), order=3, shared=False)
    b.load_state_dict(a.state_dict())
    y = torch.rand(1, 3, 8, 8)
    assert torch.equal(a(y), b(y))


@pytest.mark.parametrize("bad,match", [
    (dict(order=-1), "order"), (dict(order=1.5), "order"), (dict(activation="gelu"), "activation"),
    (dict(backend="opencl"), "backend"), (dict(hidden=0), "hidden"),
])
def test_bad_constructor_arguments(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        TaylorNet(nn.Identity(), **{"order": 2, **bad})


def test_public_names_exist():
    for name in ("TaylorNet", "DerivativeG", "taylor_loss", "wrap", "backends"):
        assert callable(getattr(taylor_fast, name))
    assert callable(taylor_fast.ops.taylor_expand) and callable(taylor_fast.ops.taylor_step)
    assert "tiny" in taylor_fast.backbones.names()
