"""Evaluating one trained model at several orders: the semantics of shared and per-order G,
checked against the reference expansion; the --orders syntax; metrics.json as standard JSON
when an image is restored exactly or an output is NaN."""
import json

import numpy as np
import pytest
import torch
from imaging import random_rgb, save
from skimage.metrics import peak_signal_noise_ratio

from taylor_fast import cli, metrics, reference
from taylor_fast.data import read_image
from taylor_fast.engine import checkpoint, model
from taylor_fast.engine.config import DEFAULTS, ConfigError, resolve
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


def _identity_checkpoint(path, nan=False):
    """A checkpoint whose model returns its input exactly: F's last convolution and G's second one
    are zero, so f = y and every g^k = 0 (nan: F's last bias holds a NaN, so the output does)."""
    config = resolve(overrides={"model.hidden": 4, "model.backbone_options": {"width": 4}, "train.iters": 1})
    net = model.build(config["model"])
    with torch.no_grad():
        for name in ("mapping.body.4.weight", "mapping.body.4.bias", "derivative.w2", "derivative.b2"):
            net.get_parameter(name).zero_()
        if nan:
            net.get_parameter("mapping.body.4.bias")[0] = float("nan")
    checkpoint.save(path, {"config": config, "model": net.state_dict(), "progress": {"iteration": 1}})
    return path


def _strict_json(text: str):
    def refuse(constant):
        raise AssertionError(f"metrics.json holds {constant}, which standard JSON does not allow")

    return json.loads(text, parse_constant=refuse)


def test_an_exact_restoration_and_nan_outputs_keep_metrics_json_standard(tmp_path):
    images = {"a": random_rgb(16, 16, seed=1), "b": random_rgb(16, 16, seed=2), "c": random_rgb(16, 16, seed=3)}
    for name, pixels in images.items():
        save(tmp_path / "set" / "input" / f"{name}.png", pixels)
        target = pixels if name == "b" else random_rgb(16, 16, seed=ord(name))
        save(tmp_path / "set" / "target" / f"{name}.png", target)
    eval_args = ["--dataset", "paired", "--root", str(tmp_path / "set"), "--channel", "rgb", "--no-progress"]
    assert cli.main(["eval", "--checkpoint", str(_identity_checkpoint(tmp_path / "id.ckpt")), "--out",
                     str(tmp_path / "exact"), *eval_args]) == 0
    record = _strict_json((tmp_path / "exact" / "metrics.json").read_text())
    rows = {row["name"]: row for row in record["per_image"]}
    assert record["count"] == 3 and record["perfect"] == 1 and record["undefined"] == 0
    assert rows["b"]["psnr"] is None and rows["b"]["ssim"] == pytest.approx(1.0)  # b's input is its target
    expected = {}
    for name in ("a", "c"):  # the identity model's output is its input: scored by scikit-image
        restored, target = (read_image(tmp_path / "set" / side / f"{name}.png") for side in ("input", "target"))
        expected[name] = peak_signal_noise_ratio(target.numpy().astype(np.float64),
                                                 restored.numpy().astype(np.float64), data_range=1.0)
        assert rows[name]["psnr"] == pytest.approx(expected[name], abs=1e-6)
        assert rows[name]["ssim"] == pytest.approx(metrics.ssim(restored, target).item())
    assert record["psnr"] == pytest.approx((expected["a"] + expected["c"]) / 2, abs=1e-6)  # over the finite values
    assert record["ssim"] == pytest.approx(sum(row["ssim"] for row in rows.values()) / 3)
    assert "finite" in record["averaging"] and "perfect" in record["averaging"]
    conventions = json.dumps(record["conventions"])
    assert "unclamped" not in conventions and "clamped to [0, 1]" in record["conventions"]["output"]
    table = (tmp_path / "exact" / "metrics.md").read_text()
    assert "1 restored exactly (PSNR infinite, left out of the PSNR mean)" in table and "| b | inf (exact) |" in table

    assert cli.main(["eval", "--checkpoint", str(_identity_checkpoint(tmp_path / "nan.ckpt", nan=True)), "--out",
                     str(tmp_path / "nan"), *eval_args, "--orders", "0,3"]) == 0
    record = _strict_json((tmp_path / "nan" / "metrics.json").read_text())
    assert record["undefined"] == 3 and record["psnr"] is None and record["ssim"] is None
    assert all(row["psnr"] is None and row["ssim"] is None for row in record["per_image"])
    assert record["orders"]["0"]["undefined"] == record["orders"]["3"]["undefined"] == 3
    assert "3 with NaN outputs (left out of both means)" in (tmp_path / "nan" / "metrics.md").read_text()
