"""PSNR/SSIM against scikit-image (the independent oracle), and the conventions they document."""
import json

import numpy as np
import pytest
import torch
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from taylor_fast import metrics


def _images(n=3, h=37, w=45, seed=0, clamp=True):
    rng = np.random.default_rng(seed)
    target = rng.random((n, 3, h, w))
    pred = target + 0.08 * rng.standard_normal(target.shape)
    return (np.clip(pred, 0, 1) if clamp else pred), target


def _oracle(pred, target, channel, crop_border, quantize):
    """scikit-image on each (H, W, 3) image, converted by hand as the conventions say."""
    psnrs, ssims = [], []
    for p, t in zip(pred, target):
        p, t = p.transpose(1, 2, 0), t.transpose(1, 2, 0)
        if crop_border:
            p, t = p[crop_border:-crop_border, crop_border:-crop_border], t[crop_border:-crop_border, crop_border:-crop_border]
        if quantize:
            p, t = (np.floor(np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8) for x in (p, t))
        if channel == "y":
            p, t = (rgb2ycbcr(x)[..., 0] for x in (p, t))  # MATLAB's formula; uint8 input is scaled by 1/255
            if quantize is True:  # "rgb": Y of the rounded RGB, not rounded itself (BasicSR)
                p, t = np.floor(p + 0.5), np.floor(t + 0.5)
            data_range, axis = 255, None
        else:
            p, t = p.astype(np.float64), t.astype(np.float64)
            data_range, axis = (255 if quantize else 1), -1
        psnrs.append(peak_signal_noise_ratio(t, p, data_range=data_range))
        ssims.append(structural_similarity(t, p, data_range=data_range, channel_axis=axis, gaussian_weights=True,
                                           sigma=1.5, use_sample_covariance=False))
    return np.array(psnrs), np.array(ssims)


@pytest.mark.parametrize("channel", ["rgb", "y"])
@pytest.mark.parametrize("quantize", [False, True, "rgb"])
@pytest.mark.parametrize("crop_border", [0, 4])
def test_against_scikit_image(channel, quantize, crop_border):
    pred, target = _images(seed=crop_border + 2 * bool(quantize))
    got_psnr = metrics.psnr(torch.from_numpy(pred), torch.from_numpy(target), channel, crop_border, quantize)
    got_ssim = metrics.ssim(torch.from_numpy(pred), torch.from_numpy(target), channel, crop_border, quantize)
    want_psnr, want_ssim = _oracle(pred, target, channel, crop_border, quantize)
    assert got_psnr.shape == (3,) and got_ssim.shape == (3,)
    np.testing.assert_allclose(got_psnr.numpy(), want_psnr, rtol=1e-3)
    np.testing.assert_allclose(got_ssim.numpy(), want_ssim, rtol=0, atol=2e-4)


def test_unquantized_values_outside_range_are_not_clamped():
    pred, target = _images(seed=9, clamp=False)
    assert pred.min() < 0 and pred.max() > 1
    want_psnr, want_ssim = _oracle(pred, target, "rgb", 0, False)
    np.testing.assert_allclose(metrics.psnr(torch.from_numpy(pred), torch.from_numpy(target)).numpy(), want_psnr, rtol=1e-3)
    np.testing.assert_allclose(metrics.ssim(torch.from_numpy(pred), torch.from_numpy(target)).numpy(), want_ssim, atol=2e-4)


@pytest.mark.parametrize("channel", ["rgb", "y"])
def test_data_range_255_matches_unit_range(channel):
    pred, target = (torch.from_numpy(x) for x in _images(seed=4))
    for fn in (metrics.psnr, metrics.ssim):
        torch.testing.assert_close(fn(pred * 255, target * 255, channel, data_range=255), fn(pred, target, channel),
                                   rtol=1e-9, atol=1e-9)


def test_float32_single_image_and_identity():
    pred, target = (torch.from_numpy(x).float() for x in _images(n=1, seed=5))
    want_psnr, want_ssim = _oracle(pred.double().numpy(), target.double().numpy(), "rgb", 0, False)
    assert metrics.psnr(pred[0], target[0]).dtype == torch.float64
    np.testing.assert_allclose(metrics.psnr(pred[0], target[0]).numpy(), want_psnr, rtol=1e-3)
    np.testing.assert_allclose(metrics.ssim(pred[0], target[0]).numpy(), want_ssim, atol=2e-4)
    assert metrics.psnr(target, target).item() == float("inf")
    assert metrics.ssim(target, target).item() == pytest.approx(1.0, abs=1e-12)


def test_y_and_rgb_conventions_differ_on_a_real_photo():
    from taylor_fast.data import add_rain, bundled_photo

    clean = torch.nn.functional.interpolate(bundled_photo("coffee")[None], scale_factor=0.5, mode="area")
    rainy = add_rain(clean[0], "light", seed=0)[None]
    print("\nlight synthetic rain on skimage 'coffee' (200x300): PSNR dB / SSIM")
    results = {}
    for channel in ("rgb", "y"):
        for quantize in (False, True):
            results[channel, quantize] = metrics.psnr(rainy, clean, channel, quantize=quantize).item()
            print(f"  channel={channel:<3} quantize={quantize!s:<5}  PSNR {results[channel, quantize]:6.2f}")
        results[channel, "ssim"] = metrics.ssim(rainy, clean, channel).item()
        print(f"  channel={channel:<3}                 SSIM {results[channel, 'ssim']:.4f}")
    gap = results["y", False] - results["rgb", False]
    print(f"  Y minus RGB: {gap:+.2f} dB")
    assert abs(gap) > 0.1  # material: larger than many gains papers report between methods
    assert abs(results["y", "ssim"] - results["rgb", "ssim"]) > 1e-3


def test_errors_name_the_argument():
    a = torch.rand(2, 3, 16, 16)
    with pytest.raises(ValueError, match="pred and target: shapes differ"):
        metrics.psnr(a, a[:, :, :15])
    with pytest.raises(ValueError, match="channel: expected 'rgb' or 'y', got 'lab'"):
        metrics.psnr(a, a, channel="lab")
    with pytest.raises(ValueError, match="channel='y' needs 3 RGB channels, got 1"):
        metrics.ssim(a[:, :1], a[:, :1], channel="y")
    with pytest.raises(ValueError, match="crop_border: expected 0 <= crop_border < half the image side, got 8 for a 16x16 image"):
        metrics.psnr(a, a, crop_border=8)
    with pytest.raises(ValueError, match="ssim needs images of at least 11x11 after cropping, got 10x10"):
        metrics.ssim(a, a, crop_border=3)
    with pytest.raises(ValueError, match="data_range: expected a positive number"):
        metrics.psnr(a, a, data_range=0)
    with pytest.raises(TypeError, match="pred: expected a torch.Tensor, got ndarray"):
        metrics.psnr(a.numpy(), a)
    with pytest.raises(ValueError, match="quantize: expected True, False or 'rgb', got 'y'"):
        metrics.psnr(a, a, quantize="y")


def test_a_grey_image_is_compared_on_its_one_channel():
    pred, target = (torch.from_numpy(x[:, :1]) for x in _images(seed=8))
    want = [peak_signal_noise_ratio(t[0], p[0], data_range=1) for p, t in zip(pred.numpy(), target.numpy())]
    np.testing.assert_allclose(metrics.psnr(pred, target).numpy(), want, rtol=1e-9)
    assert "grey" in metrics.conventions("rgb")["colour_transform"]


def test_conventions_record():
    record = metrics.conventions("y", crop_border=2, quantize=True)
    assert json.loads(json.dumps(record)) == record
    assert record["channel"] == "y" and record["crop_border"] == 2 and record["quantize"] is True
    assert "65.481" in record["colour_transform"] and record["ssim"]["sigma"] == 1.5
    assert metrics.conventions()["ssim"]["channels"] == "per channel, averaged"


@pytest.mark.cuda
def test_cuda_matches_cpu():
    pred, target = (torch.from_numpy(x) for x in _images(seed=6))
    for fn in (metrics.psnr, metrics.ssim):
        for channel in ("rgb", "y"):
            torch.testing.assert_close(fn(pred.cuda(), target.cuda(), channel).cpu(), fn(pred, target, channel))
