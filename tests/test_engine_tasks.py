"""Denoising (grey, end to end) and x2 super-resolution through the CLI: synth, train, eval and
restore on small folders in the benchmark layouts, scored again independently with
scikit-image. The bad inputs of these tasks are in the command-line mistakes battery
(test_cli_mistakes.py)."""
import json

import numpy as np
import pytest
import torch
from engine_helpers import smooth_image
from PIL import Image
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio

from taylor_fast import cli
from taylor_fast.data import Bicubic, DatasetWarning, Noise, read_image, write_image
from taylor_fast.engine import model
from taylor_fast.resize import bicubic_upsample

SET12 = ["01.png", "02.png", "03.png"]
SET5 = ["baby.png", "bird.png", "butterfly.png"]


def _cli(*argv) -> int:
    return cli.main([str(a) for a in argv])


def _grey_image(h, w, seed):
    return torch.floor(smooth_image(h, w, seed)[:1] * 255 + 0.5) / 255


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("tasks")
    for folder in ("grey_train", "set12", "hr"):
        (root / folder).mkdir()
    for i in range(4):  # clean grey training images, and a Set12-style test folder
        write_image(root / "grey_train" / f"{i}.png", _grey_image(40, 44, i))
    for i, name in enumerate(SET12):
        write_image(root / "set12" / name, _grey_image(24, 28, 10 + i))
    for i in range(4):
        write_image(root / "hr" / f"{i}.png", torch.floor(smooth_image(41, 45, 20 + i) * 255 + 0.5) / 255)
    for side in ("GTmod12", "LRbicx2"):
        (root / "set5" / side).mkdir(parents=True)
    for i, name in enumerate(SET5):  # BasicSR's layout: HR cropped to a multiple of 12, LR by MATLAB bicubic
        hr = torch.floor(smooth_image(24, 36, 30 + i) * 255 + 0.5) / 255
        write_image(root / "set5" / "GTmod12" / name, hr)
        write_image(root / "set5" / "LRbicx2" / name, Bicubic(2)(hr))
    return root


@pytest.fixture(scope="module")
def grey_run(folders, tmp_path_factory):
    run = tmp_path_factory.mktemp("grey") / "run"
    assert _cli("train", "--task", "denoise", "--channels", 1, "--dataset", "clean-folder", "--root",
                folders / "grey_train", "--set", "data.train.options.sigma=25", "--set", "model.hidden=4",
                "--patch", 16, "--batch-size", 2, "--iters", 4, "--out", run, "--no-progress") == 0
    return run


@pytest.fixture(scope="module")
def sr_run(folders, tmp_path_factory):
    run = tmp_path_factory.mktemp("sr") / "run"
    assert _cli("train", "--task", "sr", "--scale", 2, "--backbone", "edsr_baseline", "--set",
                "model.backbone_options={blocks: 1, width: 8}", "--set", "model.hidden=4", "--dataset", "hr-folder",
                "--root", folders / "hr", "--patch", 16, "--batch-size", 2, "--iters", 4, "--out", run,
                "--no-progress") == 0
    return run


def test_synth_noise_grey_and_sr(tmp_path, folders):
    out = tmp_path / "noise"
    assert _cli("synth", "--kind", "noise", "--sigma", 15, "--grey", "--clean", folders / "hr", "--out", out,
                "--count", 2, "--seed", 4) == 0
    for name in ("0000_0", "0001_1"):
        clean = read_image(out / "target" / f"{name}.png", channels=1)
        assert Image.open(out / "input" / f"{name}.png").mode == "L" and clean.shape == (1, 41, 45)
        noisy = Noise(15, seed=4).for_image(clean, name)
        expected = torch.floor(noisy.clamp(0, 1) * 255 + 0.5) / 255  # 8-bit files: clipped and rounded
        torch.testing.assert_close(read_image(out / "input" / f"{name}.png", channels=1), expected, rtol=0, atol=1e-6)
    assert json.loads((out / "synth.json").read_text())["noise"]["sigma_255"] == 15
    out = tmp_path / "sr"
    assert _cli("synth", "--kind", "sr", "--scale", 3, "--clean", folders / "hr", "--out", out, "--count", 1) == 0
    target = read_image(out / "target" / "0000_0.png")
    assert target.shape == (3, 39, 45)  # 41x45 cropped to a multiple of 3
    torch.testing.assert_close(read_image(out / "input" / "0000_0.png"), Bicubic(3)(target), rtol=0, atol=1e-6)


def test_grey_denoising_end_to_end(grey_run, folders, tmp_path):
    out = tmp_path / "eval"
    with pytest.warns(DatasetWarning, match="3 images under .*, the published set has 12"):
        assert _cli("eval", "--task", "denoise", "--checkpoint", grey_run / "last.ckpt", "--dataset", "set12", "--root",
                    folders / "set12", "--option", "sigma=25", "--orders", "0,3", "--out", out, "--no-progress") == 0
    record = json.loads((out / "metrics.json").read_text())
    assert record["task"] == "denoise" and record["channels"] == 1 and record["count"] == 3
    assert record["conventions"]["channel"] == "rgb" and record["conventions"]["quantize"] is True
    assert record["conventions"]["crop_border"] == 0
    assert record["degradation"]["sigma_255"] == 25 and "CRC-32" in record["degradation"]["test_noise"]
    assert "the grey channel" in (out / "metrics.md").read_text()
    # again by hand: the noise of file 02, the model's output rounded to 8 bits, scikit-image's PSNR
    net, _, _ = model.load(grey_run / "last.ckpt")
    clean = read_image(folders / "set12" / "02.png", channels=1)
    with torch.no_grad():
        restored = net(Noise(25).for_image(clean, "02")[None])[0].clamp(0, 1)
    levels = np.floor(restored[0].numpy() * 255 + 0.5)
    expected = peak_signal_noise_ratio(clean[0].numpy() * 255, levels, data_range=255)
    assert record["per_image"][1]["name"] == "02"
    assert record["per_image"][1]["psnr"] == pytest.approx(expected, abs=1e-6)

    restored_dir = tmp_path / "restored"
    assert _cli("restore", folders / "set12", "-o", restored_dir, "--checkpoint", grey_run / "last.ckpt", "--task",
                "denoise", "--no-progress") == 0
    with Image.open(restored_dir / "02.png") as image:
        assert image.mode == "L" and image.size == (28, 24)


def test_super_resolution_end_to_end(sr_run, folders, tmp_path):
    out = tmp_path / "eval"
    with pytest.warns(DatasetWarning, match="the published set has 5"):
        assert _cli("eval", "--task", "sr", "--checkpoint", sr_run / "last.ckpt", "--dataset", "set5", "--root",
                    folders / "set5", "--out", out, "--orders", "0,3", "--no-progress") == 0
    record = json.loads((out / "metrics.json").read_text())
    c = record["conventions"]
    assert record["scale"] == 2 and (c["channel"], c["crop_border"], c["quantize"]) == ("y", 2, "rgb")
    # again by hand: RGB rounded to 8 bits, Y by scikit-image (MATLAB's formula) not rounded, 2 pixels cropped
    net, _, _ = model.load(sr_run / "last.ckpt")
    low, high = read_image(folders / "set5" / "LRbicx2" / "bird.png"), read_image(folders / "set5" / "GTmod12" / "bird.png")
    with torch.no_grad():
        restored = net(low[None])[0].clamp(0, 1)
    assert restored.shape == high.shape == (3, 24, 36)
    ours = rgb2ycbcr(np.floor(restored.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))[2:-2, 2:-2, 0]
    truth = rgb2ycbcr(np.floor(high.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))[2:-2, 2:-2, 0]
    assert record["per_image"][1]["psnr"] == pytest.approx(peak_signal_noise_ratio(truth, ours, data_range=255), abs=1e-6)
    assert set(record["orders"]) == {"0", "3"}

    upscaled = tmp_path / "up.png"
    assert _cli("restore", folders / "set5" / "LRbicx2" / "bird.png", "-o", upscaled, "--checkpoint",
                sr_run / "last.ckpt", "--tile", 8, "--overlap", 4, "--no-progress") == 0
    assert read_image(upscaled).shape == (3, 24, 36)  # tiled SR equals the whole image: test_tasks_model.py
    whole = tmp_path / "whole.png"
    assert _cli("restore", folders / "set5" / "LRbicx2" / "bird.png", "-o", whole, "--checkpoint", sr_run / "last.ckpt",
                "--tile", 0) == 0
    assert (read_image(whole) - restored).abs().max() <= 0.51 / 255


def test_restore_keeps_what_the_input_had_for_grey_and_super_resolution_checkpoints(grey_run, sr_run, tmp_path):
    """restore's writer (alpha, ICC profile, --quality, temporaries) with the tasks' models: a grey
    checkpoint reads a colour RGBA file as its luma and writes grey + alpha (--channels rgb: RGB);
    an x2 checkpoint writes the upscaled image, its alpha bicubic-upscaled with it."""
    rgba = torch.cat([smooth_image(12, 18, 60), smooth_image(12, 18, 61)[:1]])
    rgba = torch.floor(rgba * 255 + 0.5) / 255
    source = tmp_path / "in" / "photo.png"
    source.parent.mkdir()
    write_image(source, rgba)
    grey_net, _, _ = model.load(grey_run / "last.ckpt")
    luma = read_image(source, channels=1)
    with torch.no_grad():
        expected = grey_net(luma[None])[0].clamp(0, 1)
    assert _cli("restore", source, "-o", tmp_path / "grey.png", "--checkpoint", grey_run / "last.ckpt") == 0
    with Image.open(tmp_path / "grey.png") as image:
        assert image.mode == "LA" and image.size == (18, 12)
        written = torch.from_numpy(np.asarray(image).astype(np.float32) / 255).permute(2, 0, 1)
    assert (written[:1] - expected).abs().max() <= 0.51 / 255
    torch.testing.assert_close(written[1:], rgba[3:], rtol=0, atol=1e-6)  # the alpha, unchanged
    assert _cli("restore", source, "-o", tmp_path / "rgb.png", "--checkpoint", grey_run / "last.ckpt", "--channels",
                "rgb") == 0
    with Image.open(tmp_path / "rgb.png") as image:
        assert image.mode == "RGB"

    sr_net, _, _ = model.load(sr_run / "last.ckpt")
    with torch.no_grad():
        upscaled = sr_net(rgba[None, :3])[0].clamp(0, 1)
    assert _cli("restore", source.parent, "-o", tmp_path / "x2", "--checkpoint", sr_run / "last.ckpt", "--tile", 0,
                "--no-progress") == 0
    with Image.open(tmp_path / "x2" / "photo.png") as image:
        assert image.mode == "RGBA" and image.size == (36, 24)
        written = torch.from_numpy(np.asarray(image).astype(np.float32) / 255).permute(2, 0, 1)
    assert (written[:3] - upscaled).abs().max() <= 0.51 / 255
    assert (written[3:] - bicubic_upsample(rgba[3:], 2).clamp(0, 1)).abs().max() <= 0.51 / 255
    assert list((tmp_path / "x2").iterdir()) == [tmp_path / "x2" / "photo.png"]  # no temporary left
