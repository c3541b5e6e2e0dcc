"""train -> resume -> eval -> restore end to end through the CLI on a small rain set, and the
commands' error paths (one line on stderr, no traceback)."""
import json

import numpy as np
import pytest
import torch
from engine_helpers import make_rain_set, smooth_image
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

from taylor_fast import cli
from taylor_fast.data import read_image, write_image
from taylor_fast.data.image_io import bit_depth, to_uint8
from taylor_fast.engine import checkpoint, model
from taylor_fast.engine.lock import LOCK_NAME


def _cli(*argv) -> int:
    return cli.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def rain_set(tmp_path_factory):
    return make_rain_set(tmp_path_factory.mktemp("cli") / "data")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, rain_set):
    """A run trained 4 iterations from a YAML file plus flags, then resumed to 8."""
    folder = tmp_path_factory.mktemp("run")
    recipe = folder / "recipe.yaml"
    recipe.write_text("model: {hidden: 8, order: 3}\ndata: {train: {dataset: paired, patch: 100}}\n"
                      "log: {every: 2, images_every: 2}\ntrain: {milestones: [1]}\n")
    run = folder / "run"
    assert _cli("train", "--config", recipe, "--root", rain_set, "--patch", 24, "--batch-size", 2, "--iters", 4,
                "--checkpoint-every", 2, "--out", run, "--no-progress") == 0
    first = checkpoint.load(run / "last.ckpt")
    # the same command line (config file and flags) with --resume continues the run
    assert _cli("train", "--config", recipe, "--root", rain_set, "--patch", 24, "--batch-size", 2, "--iters", 8,
                "--checkpoint-every", 2, "--out", run, "--no-progress", "--resume") == 0
    return run, first


def test_train_writes_checkpoint_config_log_and_tensorboard(trained):
    run, first = trained
    state = checkpoint.load(run / "last.ckpt")
    config = state["config"]
    assert config["data"]["train"]["patch"] == 24 and config["model"]["hidden"] == 8  # flags over the YAML file
    assert config["train"]["iters"] == 8 and config["train"]["epochs"] is None
    assert first["progress"]["iteration"] == 4 and state["progress"]["iteration"] == 8
    # 8 images / batch 2 = 4 iterations per epoch; milestone epoch 1 = iteration 4: lr x0.2 from then on
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3 * 0.2)
    assert not torch.equal(state["model"]["derivative.w1"], first["model"]["derivative.w1"])
    import yaml

    assert yaml.safe_load((run / "config.yaml").read_text()) == config
    lines = (run / "train.log").read_text().splitlines()
    assert [line.split()[1] for line in lines if line.startswith("iter ")] == ["2", "4", "6", "8"]
    assert any(line.startswith("resuming at iteration 4 of 8") for line in lines)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tb")).Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [2, 4, 6, 8]
    assert {"train/lr", "train/l1_O", "train/l1_f", "train/it_per_s"} <= set(events.Tags()["scalars"])
    assert len(events.Images("train/input|f|O|target")) == 4


def test_train_refuses_to_overwrite_a_run(trained, rain_set, capsys):
    run, _ = trained
    assert _cli("train", "--root", rain_set, "--out", run, "--iters", 1, "--no-progress") == 1
    assert "already holds a checkpoint" in capsys.readouterr().err


def test_eval_metrics_at_several_orders(trained, rain_set, tmp_path):
    run, _ = trained
    out = tmp_path / "eval"
    assert _cli("eval", "--checkpoint", run / "last.ckpt", "--dataset", "paired", "--root", rain_set, "--out", out,
                "--orders", "0,3,5", "--channel", "rgb", "--save-images", "--no-progress") == 0
    record = json.loads((out / "metrics.json").read_text())
    assert record["count"] == 8 and len(record["per_image"]) == 8 and record["order"] == 3
    assert set(record["orders"]) == {"0", "3", "5"}
    assert record["conventions"]["channel"] == "rgb" and record["conventions"]["crop_border"] == 0
    assert record["psnr"] == pytest.approx(np.mean([r["psnr"] for r in record["per_image"]]))
    # independent check of one image: the model's own output, scored by scikit-image
    net, _, _ = model.load(run / "last.ckpt")
    with torch.no_grad():
        restored = net(read_image(rain_set / "input" / "03.png")[None])[0].clamp(0, 1)
    target = read_image(rain_set / "target" / "03.png")
    expected = peak_signal_noise_ratio(target.permute(1, 2, 0).numpy().astype(np.float64),
                                       restored.permute(1, 2, 0).numpy().astype(np.float64), data_range=1.0)
    assert record["per_image"][3]["name"] == "03"
    assert record["per_image"][3]["psnr"] == pytest.approx(expected, abs=1e-4)
    assert len(list((out / "images" / "order0").glob("*.png"))) == 8
    table = (out / "metrics.md").read_text()
    assert "| 3 (trained) |" in table and "| 03 |" in table


def test_eval_defaults_to_the_configs_convention(trained, rain_set, tmp_path):
    run, _ = trained
    assert _cli("eval", "--checkpoint", run / "last.ckpt", "--dataset", "paired", "--root", rain_set,
                "--out", tmp_path, "--no-progress") == 0
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["conventions"]["channel"] == "y" and "orders" not in record  # derain default, one order


def test_restore_folder_odd_sizes_bit_depths_and_formats(trained, tmp_path):
    run, _ = trained
    ckpt = run / "last.ckpt"
    images = tmp_path / "in"
    images.mkdir()
    odd = smooth_image(37, 53, seed=5)
    write_image(images / "odd.png", odd)
    write_image(images / "deep.png", smooth_image(29, 31, seed=6), bits=16)
    Image.fromarray((smooth_image(30, 41, seed=7).permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(
        images / "photo.jpg", quality=95)
    before = {p.name: p.read_bytes() for p in images.iterdir()}

    assert _cli("restore", images, "-o", tmp_path / "out", "--checkpoint", ckpt, "--tile", 24, "--overlap", 20,
                "--no-progress") == 0
    outputs = {p.name: p for p in (tmp_path / "out").iterdir()}
    assert set(outputs) == {"odd.png", "deep.png", "photo.jpg"}
    assert read_image(outputs["odd.png"]).shape == (3, 37, 53)
    assert bit_depth(outputs["deep.png"]) == 16 and bit_depth(outputs["odd.png"]) == 8
    assert Image.open(outputs["photo.jpg"]).format == "JPEG"
    assert {p.name: p.read_bytes() for p in images.iterdir()} == before  # inputs untouched

    # tiles (reach of tiny = 5 pixels = a quarter of the overlap) give the whole-image result
    assert _cli("restore", images / "odd.png", "-o", tmp_path / "whole.png", "--checkpoint", ckpt, "--tile", 0) == 0
    assert torch.allclose(read_image(outputs["odd.png"]), read_image(tmp_path / "whole.png"), atol=1.01 / 255)


def test_restore_keeps_orientation_profile_alpha_and_grey(trained, tmp_path):
    from PIL import ImageCms, ImageOps

    run, _ = trained
    ckpt = run / "last.ckpt"

    def restore(source, target, *more):
        assert _cli("restore", tmp_path / source, "-o", tmp_path / target, "--checkpoint", ckpt, "--no-progress",
                    *more) == 0
        return Image.open(tmp_path / target)

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    pixels = to_uint8(smooth_image(30, 41, seed=8))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 30x41 (HxW), shown turned a quarter clockwise
    Image.fromarray(pixels).save(tmp_path / "turned.jpg", exif=exif.tobytes(), quality=95, icc_profile=profile)
    with Image.open(tmp_path / "turned.jpg") as stored:
        ImageOps.exif_transpose(stored).save(tmp_path / "upright.png")  # what a viewer shows, losslessly
    with restore("turned.jpg", "turned.png") as turned, restore("upright.png", "upright_out.png") as upright:
        assert turned.size == (30, 41) and turned.getexif().get(0x0112) in (None, 1)
        np.testing.assert_array_equal(np.asarray(turned), np.asarray(upright))
        assert turned.info["icc_profile"] == profile
    with restore("turned.jpg", "turned_out.jpg") as jpeg:
        assert jpeg.info["icc_profile"] == profile

    alpha = to_uint8(smooth_image(30, 41, seed=9)[:1])
    Image.fromarray(np.concatenate([pixels, alpha], axis=2)).save(tmp_path / "rgba.png")
    with restore("rgba.png", "rgba_out.png") as kept, restore("rgba.png", "rgb_out.png", "--channels", "rgb") as rgb:
        assert kept.mode == "RGBA" and rgb.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(kept)[:, :, 3], alpha[:, :, 0])  # alpha passes through unchanged
        np.testing.assert_array_equal(np.asarray(kept)[:, :, :3], np.asarray(rgb))

    Image.fromarray(pixels[:, :, 1]).save(tmp_path / "grey.png")
    with restore("grey.png", "grey_out.png") as grey, restore("grey.png", "grey_rgb.png", "--channels", "rgb") as rgb:
        assert grey.mode == "L" and rgb.mode == "RGB"
        luma = np.asarray(rgb.convert("L")).astype(int)  # Pillow's luma of the RGB output, from 8-bit values
        assert np.abs(np.asarray(grey).astype(int) - luma).max() <= 1


def test_restore_writes_jpeg_at_quality_95_without_chroma_subsampling(trained, tmp_path):
    from PIL import JpegImagePlugin

    from taylor_fast.data import bundled_photo

    run, _ = trained
    write_image(tmp_path / "photo.png", bundled_photo("astronaut")[:, 100:196, 150:278])  # detail JPEG must keep
    for target, more in (("out.png", []), ("out.jpg", []), ("out75.jpg", ["--quality", 75])):
        assert _cli("restore", tmp_path / "photo.png", "-o", tmp_path / target, "--checkpoint", run / "last.ckpt",
                    "--no-progress", *more) == 0
    lossless = np.asarray(Image.open(tmp_path / "out.png"))
    Image.fromarray(lossless).save(tmp_path / "pillow_defaults.jpg")  # quality 75, 4:2:0

    def db(name):
        return peak_signal_noise_ratio(lossless, np.asarray(Image.open(tmp_path / name)))

    with Image.open(tmp_path / "out.jpg") as jpeg:
        assert JpegImagePlugin.get_sampling(jpeg) == 0
    # measured: 38.9 dB at the default, 32.2 dB at --quality 75, 29.3 dB with Pillow's defaults
    assert db("out.jpg") > db("out75.jpg") + 3 and db("out.jpg") > db("pillow_defaults.jpg") + 6


def test_restore_never_overwrites(trained, tmp_path, capsys):
    run, _ = trained
    image = tmp_path / "a.png"
    write_image(image, smooth_image(20, 20, seed=1))
    original = image.read_bytes()
    for argv in (["-o", image], ["-o", tmp_path, "--overwrite"], ["-o", tmp_path / "b.jpg", "--bits", "16"]):
        assert _cli("restore", image, "--checkpoint", run / "last.ckpt", *argv) == 1
    err = capsys.readouterr().err
    assert err.count("never overwrites its inputs") == 2 and "only PNG holds 16 bits" in err
    assert image.read_bytes() == original
    assert _cli("restore", image, "-o", tmp_path / "b.png", "--checkpoint", run / "last.ckpt") == 0
    assert _cli("restore", image, "-o", tmp_path / "b.png", "--checkpoint", run / "last.ckpt") == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err


def _one_line_error(capsys, code, argv, fragment):
    assert _cli(*argv) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0] and fragment in err[0], err


def test_error_paths_are_one_line(trained, rain_set, tmp_path, capsys):
    run, _ = trained
    ckpt = run / "last.ckpt"
    missing = tmp_path / "missing"
    _one_line_error(capsys, 1, ["eval", "--checkpoint", missing / "x.ckpt", "--dataset", "paired", "--root", rain_set,
                                "--out", tmp_path / "e"], "does not exist")
    _one_line_error(capsys, 1, ["eval", "--checkpoint", ckpt, "--dataset", "paired", "--root", missing,
                                "--out", tmp_path / "e"], f"root folder {missing} does not exist")
    _one_line_error(capsys, 2, ["eval", "--checkpoint", ckpt, "--out", tmp_path / "e"], "give --dataset and --root")
    _one_line_error(capsys, 2, ["eval", "--checkpoint", ckpt, "--dataset", "paired", "--root", rain_set,
                                "--out", tmp_path / "e", "--orders", "3-x"], "--orders")
    _one_line_error(capsys, 1, ["restore", rain_set / "input", "-o", tmp_path / "r", "--checkpoint", missing / "c"],
                    "does not exist")
    _one_line_error(capsys, 1, ["restore", missing, "-o", tmp_path / "r", "--checkpoint", ckpt], "does not exist")
    _one_line_error(capsys, 1, ["train", "--root", missing, "--out", tmp_path / "t1", "--no-progress"],
                    "does not exist")
    _one_line_error(capsys, 2, ["train", "--root", rain_set, "--backbone", "nope", "--out", tmp_path / "t2"],
                    "unknown backbone 'nope'")
    _one_line_error(capsys, 2, ["train", "--root", rain_set, "--set", "train.lr=-1", "--out", tmp_path / "t3"],
                    "train.lr: expected a positive value")
    _one_line_error(capsys, 2, ["train", "--out", run, "--resume", "--order", "2"], "model.order: 3 -> 2")
    recipe = tmp_path / "escape.yaml"
    recipe.write_text("paths: {log: ../../outside.log}\n")
    _one_line_error(capsys, 2, ["train", "--config", recipe, "--root", rain_set, "--out", tmp_path / "t4"],
                    "would leave the run folder")
    other = tmp_path / "other.yaml"
    other.write_text("model: {hidden: 8, order: 2}\n")
    _one_line_error(capsys, 2, ["train", "--config", other, "--out", run, "--resume"], "model.order: 3 -> 2")
    _one_line_error(capsys, 2, ["train", "--root", rain_set, "--patch", 41, "--out", tmp_path / "t6"],
                    "data.train.patch: 41 is larger than")
    _one_line_error(capsys, 2, ["train", "--root", rain_set, "--patch", 16, "--batch-size", 16, "--out", tmp_path / "t5"],
                    "data.train.batch_size: 16 is more than the 8 patches")
    assert not (tmp_path.parent / "outside.log").exists()


def test_per_order_g_cannot_be_unrolled_beyond_its_orders(rain_set, tmp_path, capsys):
    run = tmp_path / "run"
    assert _cli("train", "--root", rain_set, "--out", run, "--order", 2, "--set", "model.shared=false",
                "--set", "model.hidden=4", "--patch", 16, "--iters", 1, "--no-progress") == 0
    base = ["eval", "--checkpoint", run / "last.ckpt", "--dataset", "paired", "--root", rain_set, "--out", tmp_path / "e",
            "--no-progress"]
    assert _cli(*base, "--orders", "0-2") == 0
    capsys.readouterr()
    _one_line_error(capsys, 2, [*base, "--orders", "0-3"], "order 3 has no trained weights")


def test_bf16_autocast_training_runs(rain_set, tmp_path):
    run = tmp_path / "run"
    assert _cli("train", "--root", rain_set, "--out", run, "--amp", "bf16", "--set", "model.hidden=4", "--patch", 16,
                "--iters", 2, "--no-progress") == 0
    state = checkpoint.load(run / "last.ckpt")
    assert state["model"]["mapping.body.0.weight"].dtype == torch.float32  # autocast keeps float32 weights
    assert "bf16 autocast" in (run / "train.log").read_text()


def test_reserved_and_clashing_paths_are_refused_before_anything_is_written(trained, rain_set, tmp_path, capsys):
    run, _ = trained
    def snapshot():  # the lock's record (who held the folder last) aside
        return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != LOCK_NAME}

    before = snapshot()
    for setting, fragment in [("paths.log=last.ckpt", "would write over the run's last.ckpt"),
                              ("paths.tensorboard=last.ckpt", "would write over the run's last.ckpt"),
                              ("paths.log=config.yaml", "would write over the run's config.yaml"),
                              ("paths.log=.", "is the run folder itself"),
                              ("paths.tensorboard=train.log", "would overlap")]:
        # a resumed run (whose checkpoint the first would have appended to) and a new one
        _one_line_error(capsys, 2, ["train", "--out", run, "--resume", "--set", setting], fragment)
        _one_line_error(capsys, 2, ["train", "--root", rain_set, "--out", tmp_path / "new", "--set", setting], fragment)
    assert snapshot() == before
    assert not (tmp_path / "new").exists()
    # what the folder holds already: a folder where the log file would go
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "logs").mkdir()
    _one_line_error(capsys, 2, ["train", "--root", rain_set, "--out", tmp_path / "old", "--set", "paths.log=logs"],
                    "is a folder, but a file is needed there")
    assert not (tmp_path / "old" / "config.yaml").exists()


def test_restore_refuses_two_inputs_for_one_output(trained, tmp_path, capsys):
    run, _ = trained
    images = tmp_path / "in"
    images.mkdir()
    write_image(images / "photo.png", smooth_image(20, 24, seed=1))
    Image.fromarray((smooth_image(20, 24, seed=2).permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(
        images / "photo.jpg")
    write_image(images / "other.png", smooth_image(20, 24, seed=3))
    _one_line_error(capsys, 1, ["restore", images, "-o", tmp_path / "out", "--format", "png", "--checkpoint",
                                run / "last.ckpt"],
                    f"inputs photo.jpg and photo.png would both be written to {tmp_path / 'out' / 'photo.png'}")
    assert not (tmp_path / "out").exists()  # refused before any work
    # names differing only in case are one file on macOS and Windows file systems
    (images / "photo.jpg").unlink()
    write_image(images / "Photo.png", smooth_image(20, 24, seed=4))
    _one_line_error(capsys, 1, ["restore", images, "-o", tmp_path / "out", "--checkpoint", run / "last.ckpt"],
                    "inputs Photo.png and photo.png would both be written to")
    assert not (tmp_path / "out").exists()
    assert _cli("restore", images, "-o", tmp_path / "out", "--format", "jpg", "--checkpoint", run / "last.ckpt",
                "--no-progress") == 1  # still two photo.jpg


def test_restore_skip_bad_and_resume_after_an_unreadable_input(trained, tmp_path, capsys):
    run, _ = trained
    images, out = tmp_path / "in", tmp_path / "out"
    images.mkdir()
    for name, seed in (("a.png", 1), ("b.png", 2), ("c.png", 3)):
        write_image(images / name, smooth_image(24, 28, seed=seed))
    blob = (images / "b.png").read_bytes()
    (images / "b.png").write_bytes(blob[: len(blob) // 2])  # header intact, pixels cut: fails when read
    (images / "._a.png").write_bytes(b"\x00\x05\x16\x07" + bytes(80))  # a macOS AppleDouble file
    restore = ["restore", images, "-o", out, "--checkpoint", run / "last.ckpt", "--no-progress"]
    assert _cli(*restore) == 1  # an unreadable header: refused before any work
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot read image {images / '._a.png'}" in err[0]
    assert err[0].endswith("pass --skip-bad to skip unreadable inputs")
    assert not out.exists()
    (images / "._a.png").unlink()
    _one_line_error(capsys, 1, restore, f"cannot read image {images / 'b.png'}")
    assert sorted(p.name for p in out.iterdir()) == ["a.png"]  # written before b.png stopped the run
    (images / "._c.png").write_bytes(b"\x00\x05\x16\x07" + bytes(80))
    assert _cli(*restore, "--resume", "--skip-bad") == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if "skipped" in line]
    assert len(warnings) == 2 and any("._c.png" in w for w in warnings) and any("b.png" in w for w in warnings)
    assert captured.out.strip() == f"restored 1 image -> {out} (1 already there kept, 2 unreadable skipped)"
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]
