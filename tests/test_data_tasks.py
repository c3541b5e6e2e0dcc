"""The denoising and super-resolution layouts on small folders the tests write themselves, in the
real file names; the degradations made on the fly; grey reading; training patches at a scale;
and partners that are missing named as the exact file expected, for the older layouts too."""
import zlib

import numpy as np
import pytest
import torch
from imaging import random_rgb, save, snapshot
from PIL import Image

from taylor_fast.data import (Bicubic, DatasetError, DatasetWarning, Noise, TrainingPatches, bicubic_downsample,
                              open_dataset, read_image)

GREY_SETS = {"bsd68": [f"test{n:03d}.png" for n in (1, 2, 68)], "set12": ["01.png", "02.png", "12.png"]}
COLOUR_SETS = {"cbsd68": ["101085.png", "101087.png", "102061.png"], "kodak24": ["kodim01.png", "kodim24.png"],
               "mcmaster": ["1.tif", "2.tif", "18.tif"]}
SR_SETS = {"set5": ["baby.png", "bird.png", "butterfly.png", "head.png", "woman.png"],
           "set14": ["baboon.png", "barbara.png"], "bsd100": ["3096.png", "8023.png"],
           "urban100": ["img_001.png", "img_100.png"], "manga109": ["AisazuNihaIrarenai.png", "YouchienBoueigumi.png"]}
PUBLISHED = {"bsd68": 68, "set12": 12, "cbsd68": 68, "kodak24": 24, "mcmaster": 18, "set5": 5, "set14": 14,
             "bsd100": 100, "urban100": 100, "manga109": 109}


def test_the_fixed_names_are_registered_with_their_options():
    from taylor_fast.data.registry import spec

    for name in ("set5", "set14", "bsd100", "urban100", "manga109", "div2k", "hr-folder"):
        assert spec(name).options() == ["scale"]
    for name in ("bsd68", "cbsd68", "set12", "kodak24", "mcmaster", "clean-folder"):
        assert spec(name).options() == ["sigma", "poisson", "seed"]
    assert spec("sidd").options() == [] and spec("paired").options()[-1] == "scale"


def _grey(h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def _open(name, root, **options):
    """open_dataset, with the warning about a set smaller than the published one checked."""
    if name in PUBLISHED:
        with pytest.warns(DatasetWarning, match=f"the published set has {PUBLISHED[name]}"):
            return open_dataset(name, root, **options)
    return open_dataset(name, root, **options)


# ---- denoising -------------------------------------------------------------------------------

def test_noise_is_reproducible_per_name_and_has_the_asked_statistics():
    clean = torch.full((3, 64, 64), 0.05)
    noise = Noise(sigma=25, seed=3)
    a = noise.for_image(clean, "kodim01")
    assert torch.equal(a, Noise(sigma=25, seed=3).for_image(clean, "kodim01"))
    assert not torch.equal(a, noise.for_image(clean, "kodim02"))
    assert not torch.equal(a, Noise(sigma=25, seed=4).for_image(clean, "kodim01"))
    expected = np.random.default_rng([3, zlib.crc32(b"kodim01")]).standard_normal((3, 64, 64)) * 25 / 255
    np.testing.assert_allclose((a - clean).double().numpy(), expected, rtol=0, atol=1e-6)
    assert a.min() < 0  # neither clipped nor rounded to 8-bit levels
    assert not torch.equal(a, torch.round(a * 255) / 255)


def test_poisson_gaussian_variance_is_a_x_plus_sigma_squared():
    clean = torch.cat([torch.full((1, 200, 200), 0.2), torch.full((1, 200, 200), 0.8)])
    gain, sigma = 0.01, 10.0
    noisy = Noise(sigma=sigma, poisson=gain).for_image(clean.double(), "x")
    for channel, x in ((0, 0.2), (1, 0.8)):
        values = noisy[channel]
        assert values.mean().item() == pytest.approx(x, abs=3e-3)
        assert values.var().item() == pytest.approx(gain * x + (sigma / 255) ** 2, rel=0.05)


@pytest.mark.parametrize("kwargs, message", [
    ({"sigma": -5}, "sigma: expected a noise standard deviation >= 0 on the 0..255 scale .*got -5"),
    ({"sigma": float("nan")}, "sigma: expected"), ({"sigma": 0}, "both 0: that adds no noise"),
    ({"sigma": 5, "poisson": -1}, "poisson: expected"), ({"sigma": 5, "seed": -1}, "seed: expected"),
])
def test_bad_noise_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Noise(**kwargs)


@pytest.mark.parametrize("name", sorted(GREY_SETS))
def test_grey_test_sets_stay_one_channel(tmp_path, name):
    arrays = {f: _grey(9, 11, i) for i, f in enumerate(GREY_SETS[name])}
    for file, array in arrays.items():
        save(tmp_path / file, array)
    ds = _open(name, tmp_path, sigma=25)
    assert ds.channels == 1 and [item["name"] for item in ds] == [f.split(".")[0] for f in GREY_SETS[name]]
    for index, (item, array) in enumerate(zip(ds, arrays.values())):
        assert item["target"].shape == (1, 9, 11)
        np.testing.assert_array_equal(item["target"][0].numpy(), array.astype(np.float32) / 255)
        torch.testing.assert_close(item["input"], Noise(25).for_image(item["target"], item["name"]))
        assert torch.equal(item["input"], ds[index]["input"])  # read again: the same noise
    with pytest.raises(ValueError, match=f"channels: {name} is a grey test set; open it with channels=1"):
        open_dataset(name, tmp_path, sigma=25, channels=3)
    with pytest.raises(ValueError, match=f"{name}: give sigma="):
        open_dataset(name, tmp_path)


@pytest.mark.parametrize("name", sorted(COLOUR_SETS) + ["clean-folder"])
def test_colour_test_sets_and_their_grey_reading(tmp_path, name):
    files = COLOUR_SETS.get(name, ["a.png", "b.jpg"])
    for i, file in enumerate(files):
        save(tmp_path / file, random_rgb(8, 10, i))
    ds = _open(name, tmp_path, sigma=15, seed=2)
    first = ds[0]
    assert first["target"].shape == (3, 8, 10) and first["name"] == files[0].split(".")[0]
    torch.testing.assert_close(first["input"], Noise(15, seed=2).for_image(first["target"], first["name"]))
    grey = _open(name, tmp_path, sigma=15, channels=1)[0]
    expected = np.asarray(Image.open(tmp_path / files[0]).convert("L"), np.float32) / 255  # BT.601 luma
    assert grey["target"].shape == (1, 8, 10)
    np.testing.assert_allclose(grey["target"][0].numpy(), expected, rtol=0, atol=1.01 / 255)


def test_noise_does_not_depend_on_order_or_subset(tmp_path):
    for i, file in enumerate(COLOUR_SETS["kodak24"]):
        save(tmp_path / "all" / file, random_rgb(8, 8, i))
    save(tmp_path / "one" / "kodim24.png", random_rgb(8, 8, 1))
    every = _open("kodak24", tmp_path / "all", sigma=50)
    alone = _open("kodak24", tmp_path / "one", sigma=50)
    assert torch.equal(every[1]["input"], alone[0]["input"])


def _write_sidd(root, scenes=("0001_001_S6_00100_00060_3200_L", "0002_001_S6_00100_00020_3200_N")):
    data = root / "SIDD_Medium_Srgb" / "Data"
    for s, scene in enumerate(scenes):
        prefix = scene[:4]
        for take in ("010", "011"):
            save(data / scene / f"{prefix}_GT_SRGB_{take}.PNG", random_rgb(6, 7, s))
            save(data / scene / f"{prefix}_NOISY_SRGB_{take}.PNG", random_rgb(6, 7, s + 10))
    return data


def test_sidd_pairs_and_a_missing_ground_truth_names_the_file(tmp_path):
    data = _write_sidd(tmp_path)
    ds = open_dataset("sidd", tmp_path)
    assert [item["name"] for item in ds] == ["0001_001_S6_00100_00060_3200_L/0001_010",
                                             "0001_001_S6_00100_00060_3200_L/0001_011",
                                             "0002_001_S6_00100_00020_3200_N/0002_010",
                                             "0002_001_S6_00100_00020_3200_N/0002_011"]
    np.testing.assert_array_equal(ds[2]["input"].numpy(), np.transpose(random_rgb(6, 7, 11), (2, 0, 1)) / np.float32(255))
    assert len(open_dataset("sidd", tmp_path / "SIDD_Medium_Srgb")) == 4  # ROOT may be the folder itself
    gone = data / "0002_001_S6_00100_00020_3200_N" / "0002_GT_SRGB_011.PNG"
    gone.unlink()
    with pytest.raises(DatasetError, match=r"input \S*/0002_NOISY_SRGB_011.PNG has no target "
                                           r"\S*/0002_001_S6_00100_00020_3200_N/0002_GT_SRGB_011.PNG;"):
        open_dataset("sidd", tmp_path)
    with pytest.raises(DatasetError, match=r"expected folder \S*/SIDD_Medium_Srgb/Data"):
        open_dataset("sidd", data.parent.parent / "SIDD_Medium_Srgb" / "Data")


# ---- super-resolution ------------------------------------------------------------------------

def _write_benchmark(root, files, scale, size=(12, 24)):
    """GTmod12/NAME (HR) and LRbicx{scale}/NAME (its MATLAB-style bicubic downsampling)."""
    hr = {}
    for i, file in enumerate(files):
        hr[file] = random_rgb(*size, i)
        save(root / "GTmod12" / file, hr[file])
        low = Bicubic(scale)(torch.from_numpy(hr[file]).permute(2, 0, 1).float() / 255)
        save(root / f"LRbicx{scale}" / file, (low * 255).round().byte().permute(1, 2, 0).numpy())
    return hr


@pytest.mark.parametrize("name", sorted(SR_SETS))
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_basicsr_test_sets(tmp_path, name, scale):
    hr = _write_benchmark(tmp_path, SR_SETS[name], scale)
    ds = open_dataset(name, tmp_path, scale=scale) if name == "set5" else _open(name, tmp_path, scale=scale)
    assert ds.scale == scale and len(ds) == len(SR_SETS[name])
    item = ds[0]
    assert item["name"] == SR_SETS[name][0][:-4]
    assert item["target"].shape == (3, 12, 24) and item["input"].shape == (3, 12 // scale, 24 // scale)
    np.testing.assert_array_equal(item["target"].numpy(), np.transpose(hr[SR_SETS[name][0]], (2, 0, 1)) / np.float32(255))


def test_sr_set_missing_its_low_resolution_half_names_the_files(tmp_path):
    _write_benchmark(tmp_path, SR_SETS["set5"], 2)
    with pytest.raises(DatasetError, match=r"set5: missing partner: target \S*/GTmod12/baby.png has no input "
                                           r"\S*/LRbicx3/baby.png \(and 4 more problems\)"):
        open_dataset("set5", tmp_path, scale=3)  # there is no LRbicx3 folder at all
    (tmp_path / "GTmod12" / "bird.png").unlink()
    with pytest.raises(DatasetError, match=r"input \S*/LRbicx2/bird.png has no target \S*/GTmod12/bird.png"):
        open_dataset("set5", tmp_path, scale=2)
    with pytest.warns(DatasetWarning):
        assert len(open_dataset("set5", tmp_path, scale=2, skip_bad=True)) == 4
    with pytest.raises(DatasetError, match=r"set14: expected folder \S*/GTmod12"):
        open_dataset("set14", tmp_path / "LRbicx2", scale=2)


def test_sr_sizes_that_do_not_match_the_scale_are_named(tmp_path):
    _write_benchmark(tmp_path, ["baby.png"], 2)
    save(tmp_path / "LRbicx2" / "baby.png", random_rgb(6, 11, 0))
    with pytest.raises(DatasetError, match=r"size mismatch: input \S*/LRbicx2/baby.png is 6x11 \(HxW\), target "
                                           r"\S*/GTmod12/baby.png is 12x24; at scale 2 the target should be 12x22"):
        open_dataset("set5", tmp_path, scale=2)


def test_two_files_with_one_name_are_refused_in_the_task_layouts(tmp_path):
    """baby.png and baby.jpg: which one is meant cannot be guessed (and on-the-fly noise is seeded
    by the name), so neither is used, as in the older layouts."""
    _write_benchmark(tmp_path / "set5", ["baby.png", "bird.png"], 2)
    save(tmp_path / "set5" / "LRbicx2" / "baby.jpg", random_rgb(6, 12, 1))
    with pytest.raises(DatasetError, match=r"ambiguous name: \S*/LRbicx2/baby.jpg and \S*/LRbicx2/baby.png are both "
                                           r"item 'baby'; keep one of them"):
        open_dataset("set5", tmp_path / "set5", scale=2)
    with pytest.warns(DatasetWarning) as caught:  # the skipped file, then the count against Set5's five
        assert [item["name"] for item in open_dataset("set5", tmp_path / "set5", scale=2, skip_bad=True)] == ["bird"]
    assert "ambiguous name" in str(caught[0].message) and "the published set has 5" in str(caught[1].message)
    for suffix in (".png", ".bmp"):
        save(tmp_path / "clean" / f"01{suffix}", random_rgb(12, 12, 2))
    save(tmp_path / "clean" / "02.png", random_rgb(12, 12, 3))
    for name, options in (("clean-folder", {"sigma": 25}), ("hr-folder", {"scale": 2})):
        with pytest.raises(DatasetError, match=r"ambiguous name: \S*/01.bmp and \S*/01.png are both item '01'"):
            open_dataset(name, tmp_path / "clean", **options)


@pytest.mark.parametrize("scale, message", [(None, "set5: give scale= one of 2, 3, 4"),
                                            (5, "scale: set5 holds x2, x3, x4 inputs, got 5"),
                                            (True, "scale: set5 holds")])
def test_bad_scales(tmp_path, scale, message):
    _write_benchmark(tmp_path, ["baby.png"], 2)
    with pytest.raises(ValueError, match=message):
        open_dataset("set5", tmp_path, **({} if scale is None else {"scale": scale}))


def test_div2k_layout_and_a_missing_low_resolution_file(tmp_path):
    for split, numbers in (("train", (1, 2)), ("valid", (801,))):
        for n in numbers:
            save(tmp_path / f"DIV2K_{split}_HR" / f"{n:04d}.png", random_rgb(12, 18, n))
            for scale in (2, 3):
                save(tmp_path / f"DIV2K_{split}_LR_bicubic" / f"X{scale}" / f"{n:04d}x{scale}.png",
                     random_rgb(12 // scale, 18 // scale, n))
    train = open_dataset("div2k", tmp_path, scale=3)  # the default split: train
    assert [item["name"] for item in train] == ["0001", "0002"] and train[1]["input"].shape == (3, 4, 6)
    assert [item["name"] for item in open_dataset("div2k", tmp_path, "valid", scale=2)] == ["0801"]
    (tmp_path / "DIV2K_train_LR_bicubic" / "X3" / "0002x3.png").unlink()
    with pytest.raises(DatasetError, match=r"target \S*/DIV2K_train_HR/0002.png has no input "
                                           r"\S*/DIV2K_train_LR_bicubic/X3/0002x3.png"):
        open_dataset("div2k", tmp_path, scale=3)
    (tmp_path / "DIV2K_valid_HR" / "0801.png").unlink()
    with pytest.raises(DatasetError, match=r"input \S*/X2/0801x2.png has no target \S*/DIV2K_valid_HR/0801.png"):
        open_dataset("div2k", tmp_path, "valid", scale=2)
    with pytest.raises(ValueError, match="div2k has the splits 'train' and 'valid', got 'test'"):
        open_dataset("div2k", tmp_path, "test", scale=2)


def test_hr_folder_makes_the_low_resolution_input_from_the_cropped_image(tmp_path):
    save(tmp_path / "photo.png", random_rgb(14, 17, 3))
    ds = open_dataset("hr-folder", tmp_path, scale=4)
    item = ds[0]
    whole = read_image(tmp_path / "photo.png")
    assert item["target"].shape == (3, 12, 16) and torch.equal(item["target"], whole[:, :12, :16])
    torch.testing.assert_close(item["input"], bicubic_downsample(whole[:, :12, :16], 4, levels=255))
    assert item["input"].shape == (3, 3, 4)


def test_paired_at_a_scale(tmp_path):
    save(tmp_path / "input" / "a.png", random_rgb(5, 6, 1))
    save(tmp_path / "target" / "a.png", random_rgb(10, 12, 2))
    assert open_dataset("paired", tmp_path, scale=2)[0]["target"].shape == (3, 10, 12)
    with pytest.raises(DatasetError, match="at scale 3 the target should be 15x18"):
        open_dataset("paired", tmp_path, scale=3)
    with pytest.raises(ValueError, match="scale: expected a positive integer, got 0"):
        open_dataset("paired", tmp_path, scale=0)


# ---- a missing half names the exact file, in the older layouts too ----------------------------

def test_rain100h_without_ground_truth_names_norain_001(tmp_path):
    for n in (1, 2):
        save(tmp_path / "rainy" / f"rain-{n:03d}.png", random_rgb(6, 8, n))
    with pytest.raises(DatasetError, match=r"rain100h: missing partner: input \S*/rainy/rain-001.png has no target "
                                           rf"{tmp_path}/norain-001.png \(and 1 more problems\)"):
        open_dataset("rain100h", tmp_path)
    save(tmp_path / "norain-003.png", random_rgb(6, 8, 3))
    save(tmp_path / "norain-001.png", random_rgb(6, 8, 1))
    with pytest.warns(DatasetWarning, match=r"(?s)rain-002.png has no target \S*/norain-002.png.*"
                                            r"target \S*/norain-003.png has no input \S*/rainy/rain-003.png"):
        assert [item["name"] for item in open_dataset("rain100h", tmp_path, skip_bad=True)] == ["rain-001"]


def test_input_target_folder_missing_its_targets_names_each(tmp_path):
    save(tmp_path / "input" / "x.png", random_rgb(6, 8, 1))
    with pytest.raises(DatasetError, match=rf"input \S*/input/x.png has no target {tmp_path}/target/x.png"):
        open_dataset("rain13k", tmp_path)
    with pytest.raises(DatasetError, match=r"paired: expected folders \S*/in and \S*/out, which do not exist"):
        open_dataset("paired", input=tmp_path / "in", target=tmp_path / "out")


def test_hide_missing_its_ground_truth_folder_names_the_file(tmp_path):
    save(tmp_path / "test" / "test-close-ups" / "a.png", random_rgb(6, 8, 1))
    with pytest.raises(DatasetError, match=rf"input \S*/test-close-ups/a.png has no target {tmp_path}/GT/a.png"):
        open_dataset("hide", tmp_path)


# ---- training patches and reading ------------------------------------------------------------

def test_sr_training_patches_are_aligned(tmp_path):
    """HR = the LR image with each pixel repeated 2x2, so an aligned HR patch is the LR patch
    with each pixel repeated."""
    for i in range(3):
        low = random_rgb(10, 12, i)
        save(tmp_path / "input" / f"{i}.png", low)
        save(tmp_path / "target" / f"{i}.png", low.repeat(2, axis=0).repeat(2, axis=1))
    view = TrainingPatches(open_dataset("paired", tmp_path, scale=2), patch=8, seed=1)
    for index in range(len(view)):
        patch = view[index]
        assert patch["input"].shape == (3, 4, 4) and patch["target"].shape == (3, 8, 8)
        torch.testing.assert_close(patch["target"], patch["input"].repeat_interleave(2, 1).repeat_interleave(2, 2))
    with pytest.raises(ValueError, match="patch: 9 is not a multiple of the dataset's scale 2"):
        TrainingPatches(open_dataset("paired", tmp_path, scale=2), patch=9)


def test_on_the_fly_training_inputs_are_made_from_each_patch(tmp_path):
    save(tmp_path / "hr" / "a.png", random_rgb(30, 33, 1))
    # flips commute with the downsampling; a quarter turn swaps its two passes, whose 8-bit
    # rounding in between then differs by a level here and there
    for rotations, tolerance in ((False, 1e-6), (True, 1.01 / 255)):
        view = TrainingPatches(open_dataset("hr-folder", tmp_path / "hr", scale=3), patch=12, seed=0,
                               rotations=rotations)
        for index in range(4):
            view.set_epoch(index)
            patch = view[0]
            torch.testing.assert_close(patch["input"], Bicubic(3)(patch["target"]), rtol=0, atol=tolerance)
    save(tmp_path / "clean" / "a.png", random_rgb(30, 33, 1))
    noisy = TrainingPatches(open_dataset("clean-folder", tmp_path / "clean", sigma=25), patch=16, seed=0)
    first = noisy[0]
    assert 20 / 255 < (first["input"] - first["target"]).std() < 30 / 255
    assert torch.equal(first["input"], noisy[0]["input"])  # the same epoch and index: the same noise
    noisy.set_epoch(1)
    assert not torch.equal(first["input"] - first["target"], noisy[0]["input"] - noisy[0]["target"])


def test_reading_grey(tmp_path):
    grey = _grey(5, 7, 1)
    save(tmp_path / "g.png", grey)
    np.testing.assert_array_equal(read_image(tmp_path / "g.png", channels=1)[0].numpy(), grey / np.float32(255))
    assert read_image(tmp_path / "g.png").shape == (3, 5, 7)
    with pytest.raises(ValueError, match="channels: expected 1 \\(grey\\) or 3 \\(colour\\), got 2"):
        read_image(tmp_path / "g.png", channels=2)


def test_nothing_is_written_into_the_new_dataset_folders(tmp_path):
    _write_benchmark(tmp_path / "set5", SR_SETS["set5"], 2)
    _write_sidd(tmp_path / "sidd")
    for i, file in enumerate(GREY_SETS["set12"]):
        save(tmp_path / "set12" / file, _grey(20, 20, i))
    before = snapshot(tmp_path)
    with pytest.warns(DatasetWarning):
        datasets = [open_dataset("set5", tmp_path / "set5", scale=2, verify="full"),
                    open_dataset("sidd", tmp_path / "sidd"), open_dataset("set12", tmp_path / "set12", sigma=25),
                    open_dataset("hr-folder", tmp_path / "set5" / "GTmod12", scale=3)]
    for ds in datasets:
        for index in range(len(ds)):
            ds[index]
        TrainingPatches(ds, patch=6, seed=0)[0]
    assert snapshot(tmp_path) == before
