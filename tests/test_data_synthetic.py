"""Synthetic rain and motion blur, and the `taylor-fast synth` command end to end."""
import json

import pytest
import torch
import torch.nn.functional as F
from imaging import random_rgb, save, snapshot

from taylor_fast import cli, metrics
from taylor_fast.data import (BUNDLED_PHOTOS, BlurStyle, add_motion_blur, add_rain, bundled_photo, motion_kernel,
                              open_dataset, read_image)
from taylor_fast.data.blur import blur_with
from taylor_fast.data.rain import line_kernel


@pytest.fixture(scope="module")
def photo():
    return F.interpolate(bundled_photo("chelsea")[None], scale_factor=0.5, mode="area")[0]  # 150 x 225 cat


def test_bundled_photos_load_offline():
    # scikit-image ships these files; a missing one would make it try the network and fail here
    for name in BUNDLED_PHOTOS:
        image = bundled_photo(name)
        assert image.dim() == 3 and image.shape[0] == 3 and min(image.shape[1:]) >= 256
        assert 0 <= image.min() and image.max() <= 1 and image.std() > 0.05


def test_rain_reproducible_and_degrading(photo):
    light = [add_rain(photo, "light", seed=s) for s in (0, 1)]
    assert torch.equal(light[0], add_rain(photo, "light", seed=0))
    assert not torch.equal(light[0], light[1])
    for preset, bound in (("light", 35.0), ("heavy", 22.0)):
        for seed in range(3):
            rainy = add_rain(photo, preset, seed=seed)
            assert rainy.shape == photo.shape and 0 <= rainy.min() and rainy.max() <= 1
            assert (rainy >= photo - 1e-6).all()  # screen blending only brightens
            assert metrics.psnr(rainy, photo, channel="y").item() < bound
    heavy = metrics.psnr(add_rain(photo, "heavy", seed=0), photo).item()
    assert heavy < metrics.psnr(light[0], photo).item() - 5


def test_line_kernel_orientation():
    vertical = line_kernel(length=15, width=1.0, angle=0)
    centre = vertical.shape[0] // 2
    assert vertical.max() == pytest.approx(1.0)
    assert vertical[:, centre].sum() > 0.85 * vertical.sum()  # a vertical line: all in the middle column
    tilted = line_kernel(length=15, width=1.0, angle=45)
    assert torch.allclose(tilted, tilted.T.flip(0).flip(1), atol=1e-12)  # symmetric about the 45-degree axis
    assert tilted[:, centre].sum() < 0.3 * tilted.sum()


def test_motion_kernels_are_normalised_random_and_reproducible():
    kernels = [motion_kernel(BlurStyle(), seed=s) for s in range(8)]
    assert torch.equal(kernels[0], motion_kernel(BlurStyle(), seed=0))
    for k in kernels:
        assert k.shape == (31, 31) and (k >= 0).all()
        assert k.sum().item() == pytest.approx(1.0, abs=1e-12)
        assert (k > 1e-3).sum() >= 5  # a path, not a point
    assert len({tuple(k.flatten().tolist()) for k in kernels}) == 8
    with pytest.raises(ValueError, match="size: expected an odd kernel side"):
        BlurStyle(size=30)


def test_blur_matches_direct_convolution():
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(3, 24, 30, generator=gen, dtype=torch.float64)
    kernel = motion_kernel(BlurStyle(size=9, length=(6, 10)), seed=3)
    padded = F.pad(image[None], (4, 4, 4, 4), mode="replicate")
    direct = F.conv2d(padded.transpose(0, 1), kernel.flip(0, 1)[None, None]).transpose(0, 1)[0]  # true convolution
    torch.testing.assert_close(blur_with(image, kernel), direct, rtol=0, atol=1e-12)


def test_motion_blur_reproducible_degrading_and_noise(photo):
    blurred, kernel = add_motion_blur(photo, seed=4)
    again, kernel_again = add_motion_blur(photo, seed=4)
    assert torch.equal(blurred, again) and torch.equal(kernel, kernel_again)
    assert metrics.psnr(blurred, photo).item() < 30
    noisy, _ = add_motion_blur(photo, BlurStyle(noise=(0.05, 0.05)), seed=4)
    assert 0.04 < (noisy - blurred).std().item() < 0.06


def test_synth_cli_writes_a_paired_set(tmp_path, capsys):
    clean_dir = tmp_path / "clean"
    clean = {name: random_rgb(40, 48, i) for i, name in enumerate(["b", "a"])}
    for name, array in clean.items():
        save(clean_dir / f"{name}.png", array)
    before = snapshot(clean_dir)
    out = tmp_path / "set"
    assert cli.main(["synth", "--kind", "rain", "--clean", str(clean_dir), "--out", str(out), "--count", "3",
                     "--seed", "7", "--preset", "heavy"]) == 0
    assert snapshot(clean_dir) == before
    ds = open_dataset("paired", out)
    assert [item["name"] for item in ds] == ["0000_a", "0001_b", "0002_a"]
    for item, source in zip(ds, ["a", "b", "a"]):
        assert torch.equal(item["target"], read_image(clean_dir / f"{source}.png"))
        assert metrics.psnr(item["input"], item["target"]).item() < 25
    assert not torch.equal(ds[0]["input"], ds[2]["input"])  # same photo, a new degradation
    assert json.loads((out / "synth.json").read_text())["pairs"] == ["0000_a", "0001_b", "0002_a"]

    written = snapshot(out)
    assert cli.main(["synth", "--kind", "blur", "--clean", str(clean_dir), "--out", str(out)]) == 1
    assert "pass --overwrite" in capsys.readouterr().err
    assert snapshot(out) == written
    assert cli.main(["synth", "--kind", "rain", "--clean", str(clean_dir), "--out", str(out), "--count", "3",
                     "--seed", "7", "--preset", "heavy", "--overwrite"]) == 0
    for item, again in zip(ds, open_dataset("paired", out)):  # the same seed gives the same set
        assert torch.equal(item["input"], again["input"])


def test_synth_cli_bundled_photos_blur(tmp_path):
    out = tmp_path / "blur"
    assert cli.main(["synth", "--kind", "blur", "--out", str(out), "--count", "2", "--max-side", "64",
                     "--noise", "2"]) == 0
    ds = open_dataset("paired", out)
    assert [item["name"] for item in ds] == ["0000_astronaut", "0001_chelsea"]
    assert ds[0]["input"].shape == (3, 64, 64) and ds[1]["input"].shape == (3, 43, 64)
    expected = F.interpolate(bundled_photo("astronaut")[None], size=(64, 64), mode="area")[0]
    assert (ds[0]["target"] - expected).abs().max() <= 0.5 / 255 + 1e-6  # the photo, rounded to 8 bits


@pytest.mark.parametrize("argv, message", [
    (["--kind", "blur", "--preset", "heavy"], "--preset applies to --kind rain only"),
    (["--kind", "rain", "--noise", "3"], "--noise applies to --kind blur only"),
    (["--kind", "rain", "--count", "0"], "--count: expected a positive number"),
])
def test_synth_cli_rejects_bad_options(tmp_path, capsys, argv, message):
    assert cli.main(["synth", "--out", str(tmp_path / "x"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_synth_cli_defaults(tmp_path):
    for i in range(2):
        save(tmp_path / "c" / f"x{i}.png", random_rgb(20, 20, i))
    assert cli.main(["synth", "--kind", "rain", "--clean", str(tmp_path / "c"), "--out", str(tmp_path / "o")]) == 0
    settings = json.loads((tmp_path / "o" / "synth.json").read_text())
    assert (settings["count"], settings["preset"], settings["seed"]) == (2, "light", 0)
    assert len(open_dataset("paired", tmp_path / "o")) == 2
