"""Denoising (grey, end to end) and x2 super-resolution through the CLI: synth, train, eval and
restore on small folders in the benchmark layouts, scored again independently with
scikit-image; and the bad inputs of these tasks, each one line on stderr with nothing written."""
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

SET12 = ["01.png", "02.png", "03.png"]
SET5 = ["baby.png", "bird.png", "butterfly.png"]


def _cli(*argv) -> int:
    return cli.main([str(a) for a in argv])


def _one_line_error(capsys, code, argv, fragment):
    assert _cli(*argv) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0] and fragment in err[0], err


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


@pytest.mark.parametrize("argv, message", [
    (["--kind", "noise", "--sigma", "-5"], "--sigma: expected a noise standard deviation >= 0"),
    (["--kind", "noise", "--sigma", "0"], "sigma and poisson are both 0"),
    (["--kind", "noise", "--scale", "2"], "--scale applies to --kind sr only"),
    (["--kind", "sr"], "--kind sr needs --scale 2, 3 or 4"),
    (["--kind", "rain", "--sigma", "5"], "--sigma and --poisson apply to --kind noise only"),
])
def test_synth_refuses_bad_task_options(tmp_path, capsys, argv, message):
    assert _cli("synth", "--out", tmp_path / "x", *argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


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


def test_task_errors_are_one_line_and_write_nothing(grey_run, sr_run, folders, tmp_path, capsys):
    grey, sr = grey_run / "last.ckpt", sr_run / "last.ckpt"
    out = tmp_path / "out"
    _one_line_error(capsys, 2, ["eval", "--task", "sr", "--checkpoint", grey, "--dataset", "set12", "--root",
                                folders / "set12", "--option", "sigma=25", "--out", out],
                    "--task sr: the checkpoint was trained for task 'denoise'")
    _one_line_error(capsys, 2, ["restore", folders / "set12", "-o", out, "--checkpoint", sr, "--task", "denoise"],
                    "the checkpoint was trained for task 'sr' (x2)")
    _one_line_error(capsys, 2, ["eval", "--checkpoint", grey, "--dataset", "set12", "--root", folders / "set12",
                                "--option", "sigma=-5", "--out", out], "sigma: expected a noise standard deviation >= 0")
    _one_line_error(capsys, 2, ["eval", "--checkpoint", sr, "--dataset", "set5", "--root", folders / "set5",
                                "--option", "scale=3", "--out", out], "scale=3 differs from the model's scale 2")
    _one_line_error(capsys, 1, ["eval", "--checkpoint", sr, "--dataset", "set5", "--root", folders / "set5" / "GTmod12",
                                "--out", out], "expected folder")
    _one_line_error(capsys, 2, ["eval", "--checkpoint", sr, "--dataset", "set12", "--root", folders / "set12",
                                "--option", "sigma=5", "--out", out], "set12 is a grey test set")
    _one_line_error(capsys, 2, ["train", "--task", "sr", "--scale", 5, "--backbone", "edsr_baseline", "--dataset",
                                "hr-folder", "--root", folders / "hr", "--out", out], "edsr_baseline upscales by 2, 3, 4, got 5")
    _one_line_error(capsys, 2, ["train", "--task", "sr", "--scale", 2, "--backbone", "rdn", "--dataset", "hr-folder",
                                "--root", folders / "hr", "--out", out], "rdn keeps the input's size")
    _one_line_error(capsys, 2, ["train", "--task", "sr", "--scale", 3, "--backbone", "edsr_baseline", "--patch", 32,
                                "--dataset", "hr-folder", "--root", folders / "hr", "--out", out],
                    "data.train.patch: 32 is not a multiple of model.scale (3)")
    _one_line_error(capsys, 2, ["train", "--task", "denoise", "--dataset", "clean-folder", "--root", folders / "hr",
                                "--out", out], "clean-folder: give sigma=")
    assert not out.exists()


def test_a_missing_low_resolution_half_is_named_through_the_cli(sr_run, folders, tmp_path, capsys):
    half = tmp_path / "set5"
    for name in SET5:
        (half / "GTmod12").mkdir(parents=True, exist_ok=True)
        (half / "GTmod12" / name).write_bytes((folders / "set5" / "GTmod12" / name).read_bytes())
    _one_line_error(capsys, 1, ["eval", "--checkpoint", sr_run / "last.ckpt", "--dataset", "set5", "--root", half,
                                "--out", tmp_path / "out"], f"has no input {half}/LRbicx2/baby.png (and 2 more problems)")
    assert not (tmp_path / "out").exists()
