"""Evaluating one trained model at several orders: the semantics of shared and per-order G,
checked against the reference expansion; the --orders syntax."""
import pytest
import torch

from taylor_fast import reference
from taylor_fast.engine import model
from taylor_fast.engine.config import DEFAULTS, ConfigError
from taylor_fast.engine.evaluate import parse_orders


def _net(order, shared):
    torch.manual_seed(0)
    return model.build({**DEFAULTS["model"], "order": order, "shared": shared, "hidden": 4,
                        "backbone_options": {"width": 4, "depth": 1}}).double().eval()


def test_shared_g_is_unrolled_to_any_order():
    net = _net(3, shared=True)
    y = torch.rand(1, 3, 9, 11, dtype=torch.float64)
    with torch.no_grad():
        f = net.mapping(y)
        for order in (0, 1, 3, 6):
            expected = reference.taylor_expand(f, y, *net.derivative.weights(), order)
            assert torch.allclose(model.at_order(net, order)(y), expected, atol=1e-12)
    assert model.at_order(net, 5).derivative is net.derivative  # the same trained G, not a copy


def test_per_order_g_uses_its_first_sets_and_stops_at_the_trained_order():
    net = _net(3, shared=False)
    y = torch.rand(1, 3, 9, 11, dtype=torch.float64)
    w1, b1, w2, b2 = net.derivative.weights()
    with torch.no_grad():
        f = net.mapping(y)
        for order in (0, 2, 3):
            expected = reference.taylor_expand(f, y, w1[:order], b1[:order], w2[:order], b2[:order], order)
            assert torch.allclose(model.at_order(net, order)(y), expected, atol=1e-12)
    with pytest.raises(ValueError, match="order 4 has no trained weights"):
        model.at_order(net, 4)


@pytest.mark.parametrize("text, orders", [("3", [3]), ("0-6", list(range(7))), ("0,3,6", [0, 3, 6]),
                                          ("5, 1-2", [1, 2, 5])])
def test_parse_orders(text, orders):
    assert parse_orders(text) == orders


@pytest.mark.parametrize("text", ["", "a", "3-", "-1", "0-40"])
def test_parse_orders_rejects(text):
    with pytest.raises(ConfigError, match="--orders"):
        parse_orders(text)
