"""The reference framework against independent oracles: closed forms and a hand-unrolled
expansion whose convolutions are written as explicit matrix products."""
import math

import pytest
import torch
import torch.nn.functional as F

from sample_tensors import make_images, make_weights
from taylor_fast import reference


def conv_by_matmul(x, w, b):
    """'same' zero-padded convolution written as unfold + matrix product (not F.conv2d)."""
    n, _, h, wd = x.shape
    k = w.shape[-1]
    cols = F.unfold(x, k, padding=k // 2)  # (N, Cin*k*k, H*W)
    out = torch.einsum("ok,nkp->nop", w.reshape(w.shape[0], -1), cols) + b[None, :, None]
    return out.reshape(n, w.shape[0], h, wd)


def g_by_hand(g, y, w1, b1, w2, b2, slope):
    h = conv_by_matmul(torch.cat([g, y], 1), w1, b1)
    h = torch.where(h > 0, h, slope * h)
    return conv_by_matmul(h, w2, b2)


def closed_form_coefficients(n):
    """With G(g, y) = c independent of g: g^k = a_k c, a_k = (k-1)! sum_{j<k} 1/j!."""
    return [math.factorial(k - 1) * sum(1 / math.factorial(j) for j in range(k)) for k in range(1, n + 1)]


@pytest.mark.parametrize("order", range(0, 7))
def test_constant_g_closed_form(order):
    """w1 = 0 and w2 = 0 make G the constant image b2: O = f + b2 * sum_k a_k / k!."""
    f, y = make_images()
    w1, b1, w2, b2 = make_weights()
    w1.zero_(), w2.zero_()
    coeff = sum(a / math.factorial(k) for k, a in enumerate(closed_form_coefficients(order), start=1))
    expected = f + coeff * b2[None, :, None, None]
    torch.testing.assert_close(reference.taylor_expand(f, y, w1, b1, w2, b2, order), expected)


def test_closed_form_coefficients_match_recurrence():
    assert [round(a) for a in closed_form_coefficients(6)] == [1, 2, 5, 16, 65, 326]


@pytest.mark.parametrize("activation,slope", [("relu", 0.0), ("leaky_relu", 0.2)])
def test_input_independent_g_closed_form(activation, slope):
    """w1 = 0 makes G(g, y) = conv(act(b1), w2) + b2 =: c, an image independent of g and y
    (not constant near the border, because of zero padding)."""
    f, y = make_images(h=6, w=5)
    w1, b1, w2, b2 = make_weights()
    w1.zero_()
    b1[0] = -abs(b1[0]) - 0.1  # exercise the negative side of the activation
    hidden = b1[None, :, None, None].expand(1, -1, 6, 5)
    c = conv_by_matmul(torch.where(hidden > 0, hidden, slope * hidden), w2, b2)
    a = closed_form_coefficients(4)
    expected = f + c * sum(a[k - 1] / math.factorial(k) for k in range(1, 5))
    out = reference.taylor_expand(f, y, w1, b1, w2, b2, 4, activation, slope)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("activation,slope", [("relu", 0.0), ("leaky_relu", 0.2), ("leaky_relu", 0.05)])
def test_hand_unrolled_order_2(activation, slope):
    f, y = make_images(channels=2, h=5, w=8)
    w = make_weights(channels=2, hidden=5)
    g1 = g_by_hand(f, y, *w, slope)                 # k = 0: no k*g term
    g2 = g_by_hand(g1, y, *w, slope) + 1 * g1       # k = 1
    expected = f + g1 + g2 / 2
    torch.testing.assert_close(reference.taylor_expand(f, y, *w, 2, activation, slope), expected)


def test_hand_unrolled_per_order_weights():
    f, y = make_images()
    w = make_weights(orders=3)
    g, out = f, f
    for k in range(3):
        g = g_by_hand(g, y, *(t[k] for t in w), 0.0) + k * g
        out = out + g / math.factorial(k + 1)
    torch.testing.assert_close(reference.taylor_expand(f, y, *w, 3), out)


def test_order_zero_is_f_itself():
    f, y = make_images()
    assert reference.taylor_expand(f, y, *make_weights(), 0) is f


def test_step_matches_definition():
    g, y = make_images()
    acc = torch.randn_like(g)
    w = make_weights()
    g_next, acc_next = reference.taylor_step(g, y, acc, *w, 3, "leaky_relu", 0.1)
    expected = g_by_hand(g, y, *w, 0.1) + 3 * g
    torch.testing.assert_close(g_next, expected)
    torch.testing.assert_close(acc_next, acc + expected / 24)


def test_unknown_activation_raises():
    f, y = make_images()
    with pytest.raises(ValueError, match="activation"):
        reference.taylor_expand(f, y, *make_weights(), 1, "gelu")
