"""MATLAB-style bicubic resizing against an independent oracle: a plain NumPy loop over output
pixels written from the definition of MATLAB's imresize (Keys' cubic a = -0.5, kernel widened
by 1/scale when shrinking, symmetric borders, height pass first), and values derived by hand."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from taylor_fast.data import bicubic_downsample
from taylor_fast.resize import bicubic_upsample, imresize


def _keys_cubic(t: float) -> float:
    t = abs(t)
    if t <= 1:
        return 1.5 * t**3 - 2.5 * t**2 + 1
    if t <= 2:
        return -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2
    return 0.0


def _reflect(j: int, n: int) -> int:
    """1-based index j mirrored into 1..n, the edge pixel repeated (MATLAB's symmetric padding)."""
    while j < 1 or j > n:
        j = 1 - j if j < 1 else 2 * n + 1 - j
    return j


def _resize_rows(image: np.ndarray, scale: float, uint8=False) -> np.ndarray:
    """Resize axis 0 of `image` pixel by pixel; uint8: the values are 0..255 levels, and each
    result is rounded (half away from zero) and saturated, as MATLAB's uint8 arithmetic does."""
    n = image.shape[0]
    out_n = math.ceil(scale * n)
    shrink = scale < 1
    width = 4.0 / scale if shrink else 4.0
    out = np.zeros((out_n,) + image.shape[1:])
    for i in range(1, out_n + 1):
        centre = i / scale + 0.5 * (1 - 1 / scale)
        first = math.floor(centre - width / 2)
        weights = {}
        for j in range(first, first + math.ceil(width) + 2):
            w = scale * _keys_cubic(scale * (centre - j)) if shrink else _keys_cubic(centre - j)
            weights[j] = w
        total = sum(weights.values())
        for j, w in weights.items():
            out[i - 1] += (w / total) * image[_reflect(j, n) - 1]
        if uint8:
            out[i - 1] = np.clip(np.floor(out[i - 1] + 0.5), 0, 255)
    return out


def oracle(image: np.ndarray, scale: float, uint8=False) -> np.ndarray:
    """imresize of an (H, W) array: rows (height) first, then columns, as MATLAB orders equal scales."""
    rows = _resize_rows(image, scale, uint8)
    return _resize_rows(rows.T, scale, uint8).T


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("height, width", [(12, 12), (13, 7), (5, 9)])
def test_downsample_matches_the_loop_oracle(scale, height, width):
    rng = np.random.default_rng(scale * 100 + height)
    image = rng.random((2, height, width))
    got = bicubic_downsample(torch.from_numpy(image), scale)
    assert got.shape == (2, math.ceil(height / scale), math.ceil(width / scale))
    for c in range(2):
        np.testing.assert_allclose(got[c].numpy(), oracle(image[c], 1 / scale), rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_upsample_matches_the_loop_oracle(scale):
    image = np.random.default_rng(scale).random((6, 5))
    got = bicubic_upsample(torch.from_numpy(image)[None, None], scale)[0, 0]
    assert got.shape == (6 * scale, 5 * scale)
    np.testing.assert_allclose(got.numpy(), oracle(image, scale), rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_uint8_images_match_the_oracle_on_integer_levels(scale):
    """MATLAB on a uint8 image: each pass on the 0..255 levels, rounded; exact halves (the x2 and
    x4 weights are binary fractions) round up."""
    levels = np.random.default_rng(7).integers(0, 256, (3, 23, 26)).astype(np.float64)
    got = bicubic_downsample(torch.from_numpy(levels / 255).float(), scale, levels=255).double().numpy() * 255
    for c in range(3):
        np.testing.assert_array_equal(np.round(got[c]), oracle(levels[c], 1 / scale, uint8=True))
    np.testing.assert_allclose(got, np.round(got), rtol=0, atol=1e-4)  # 8-bit levels (float32 result)


def test_the_x2_kernel_by_hand():
    """Shrinking by 2, output pixel i sits at 2i - 0.5 on the input axis, half-way between input
    pixels 2i - 1 and 2i (1-based); the kernel h(t) = cubic(t/2)/2 at t = 0.5, 1.5, 2.5, 3.5 gives
    (0.8671875, 0.2265625, -0.0703125, -0.0234375) / 2 per side (they sum to 1)."""
    impulse = torch.zeros(1, 1, 16, dtype=torch.float64)
    side = [-0.0234375, -0.0703125, 0.2265625, 0.8671875]
    for k in range(8):
        impulse.zero_()
        impulse[0, 0, 3 + k] = 1.0  # inputs 4..11 (1-based) feed output pixel 4 (at 7.5)
        out = imresize(impulse, 0.5)[0, 0]
        assert out[3].item() == pytest.approx((side + side[::-1])[k] / 2, abs=1e-15)


def test_constants_survive_and_torch_bicubic_is_not_matlab():
    constant = torch.full((3, 10, 14), 0.37, dtype=torch.float64)
    torch.testing.assert_close(bicubic_downsample(constant, 3), torch.full((3, 4, 5), 0.37, dtype=torch.float64))
    image = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    theirs = F.interpolate(image, scale_factor=0.5, mode="bicubic", antialias=True, align_corners=False)
    assert (bicubic_downsample(image, 2) - theirs).abs().max() > 1e-3  # another kernel (a = -0.75)


def test_gradient_flows_through_the_upsampling():
    y = torch.rand(1, 1, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: bicubic_upsample(t, 2), (y,))


@pytest.mark.parametrize("call, message", [
    (lambda x: bicubic_downsample(x, 0), "scale: expected a positive integer, got 0"),
    (lambda x: bicubic_downsample(x, True), "scale: expected a positive integer, got True"),
    (lambda x: bicubic_downsample(x, 2.5), "scale: expected a positive integer, got 2.5"),
    (lambda x: bicubic_downsample(x[0, 0], 2), r"x: expected a \(C, H, W\) or \(N, C, H, W\) tensor, got \(8, 8\)"),
    (lambda x: bicubic_downsample(x.numpy(), 2), "x: expected a .*ndarray"),
    (lambda x: imresize(x, -1.0), "scale: expected a positive finite number"),
])
def test_bad_arguments_name_themselves(call, message):
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match=message):
        call(x)
    with pytest.raises(TypeError, match="x: expected a floating-point tensor, got torch.uint8"):
        bicubic_downsample(torch.zeros(3, 8, 8, dtype=torch.uint8), 2)
