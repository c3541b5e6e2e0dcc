"""Every benchmark layout of docs/datasets.md, on small folders the tests write themselves."""
import numpy as np
import pytest
import torch
from imaging import as_tensor_values, random_rgb, save, snapshot

from taylor_fast.data import DatasetError, DatasetWarning, names, open_dataset


def _pair(seed, h=6, w=8):
    return random_rgb(h, w, seed), random_rgb(h, w, seed + 1000)


def _assert_item(item, rainy, clean, name):
    assert item["name"] == name
    assert item["input"].dtype == torch.float32 and item["input"].shape == (3,) + rainy.shape[:2]
    np.testing.assert_array_equal(item["input"].numpy(), as_tensor_values(rainy))
    np.testing.assert_array_equal(item["target"].numpy(), as_tensor_values(clean))


def _write_rain100_test(root, numbers=(1, 2, 10)):
    arrays = {}
    for n in numbers:
        rainy, clean = _pair(n)
        save(root / "rainy" / f"rain-{n:03d}.png", rainy)
        save(root / f"norain-{n:03d}.png", clean)
        arrays[n] = (rainy, clean)
    return arrays


def test_registry_has_every_documented_name():
    assert set(names()) >= {"rain100h", "rain100l", "rain100h-train", "rain100l-train", "rain800", "rain13k",
                            "gopro", "hide", "realblur-j", "realblur-r", "paired"}


@pytest.mark.parametrize("name", ["rain100h", "rain100l"])
def test_rain100_test_layout(tmp_path, name):
    arrays = _write_rain100_test(tmp_path)
    ds = open_dataset(name, tmp_path)
    assert len(ds) == 3
    for item, n in zip(ds, (1, 2, 10)):
        _assert_item(item, *arrays[n], f"rain-{n:03d}")
    assert len(open_dataset(name, tmp_path, split="test")) == 3
    with pytest.raises(ValueError, match=r"has the split 'test', got 'train'"):
        open_dataset(name, tmp_path, split="train")


@pytest.mark.parametrize("name", ["rain100h-train", "rain100l-train"])
def test_rain100_train_layout_and_exclusion(tmp_path, name):
    arrays = {}
    for n in range(1, 6):
        arrays[n] = _pair(n)
        save(tmp_path / "data" / f"rain-{n}.png", arrays[n][0])
        save(tmp_path / "data" / f"norain-{n}.png", arrays[n][1])
    root = tmp_path / "data"
    ds = open_dataset(name, root)  # the default split of a training set is "train"
    assert [item["name"] for item in ds] == [f"rain-{n}" for n in range(1, 6)]
    _assert_item(ds[3], *arrays[4], "rain-4")
    listing = tmp_path / "excluded.txt"
    listing.write_text("# backgrounds shared with the test set\nrain-2.png\nnorain-4.png\n\n5  # bare number\n")
    assert [item["name"] for item in open_dataset(name, root, exclude=listing)] == ["rain-1", "rain-3"]
    assert len(open_dataset(name, root, exclude=["rain-1.png", 3])) == 3
    with pytest.warns(DatasetWarning, match="1 excluded numbers match no image"):
        open_dataset(name, root, exclude=["rain-99"])
    with pytest.raises(DatasetError, match="exclusion list .*missing.txt does not exist"):
        open_dataset(name, root, exclude=tmp_path / "missing.txt")
    listing.write_text("rain-two.png\n")
    with pytest.raises(DatasetError, match="line 1 of .*excluded.txt"):
        open_dataset(name, root, exclude=listing)


def test_rain800_side_by_side(tmp_path):
    for split, folder in (("train", "training"), ("test", "test_syn")):
        clean, rainy = _pair(7, w=9)
        odd = np.concatenate([clean, np.zeros((6, 1, 3), np.uint8), rainy], axis=1)  # width 19
        dark_clean, bright_rain = np.full((16, 16, 3), 30, np.uint8), np.full((16, 16, 3), 220, np.uint8)
        save(tmp_path / folder / "1.jpg", np.concatenate([dark_clean, bright_rain], axis=1))
        save(tmp_path / folder / "2.png", odd)
        ds = open_dataset("rain800", tmp_path, split=split)
        assert [item["name"] for item in ds] == ["1", "2"]
        _assert_item(ds[1], rainy, clean, "2")  # left = clean target, right = rainy input, middle column dropped
        assert ds[0]["input"].shape == (3, 16, 16) and ds[0]["target"].shape == (3, 16, 16)
        assert abs(ds[0]["input"].mean() - 220 / 255) < 0.02 and abs(ds[0]["target"].mean() - 30 / 255) < 0.02
    assert len(open_dataset("rain800", tmp_path)) == 2  # default split: test


@pytest.mark.parametrize("name", ["rain13k", "paired"])
def test_input_target_layout(tmp_path, name):
    arrays = {stem: _pair(i) for i, stem in enumerate(["1", "2", "10"])}
    for stem, (rainy, clean) in arrays.items():
        save(tmp_path / "input" / f"{stem}.png", rainy)
        save(tmp_path / "target" / f"{stem}.png", clean)
    ds = open_dataset(name, tmp_path, split="train")  # ROOT is the split: any name is accepted
    for item, stem in zip(ds, ["1", "2", "10"]):
        _assert_item(item, *arrays[stem], stem)


def test_input_target_pairs_by_sorted_order_when_names_differ(tmp_path):
    for n in (1, 2, 10):
        rainy, clean = _pair(n)
        save(tmp_path / "input" / f"rain-{n}.png", rainy)
        save(tmp_path / "target" / f"norain-{n}.png", clean)
    ds = open_dataset("rain13k", tmp_path)
    _assert_item(ds[2], *_pair(10), "rain-10")


def test_input_target_reports_a_stray_file_instead_of_shifting(tmp_path):
    for stem in ("a", "b"):
        save(tmp_path / "input" / f"{stem}.png", random_rgb(6, 8, 1))
    for stem in ("a", "c"):
        save(tmp_path / "target" / f"{stem}.png", random_rgb(6, 8, 2))
    with pytest.raises(DatasetError, match=r"input .*input/b.png has no target .*\(and 1 more problems\)"):
        open_dataset("paired", tmp_path)
    with pytest.warns(DatasetWarning, match=r"(?s)input/b.png.*target/c.png has no input"):
        assert [item["name"] for item in open_dataset("paired", tmp_path, skip_bad=True)] == ["a"]


def test_paired_with_explicit_folders(tmp_path):
    rainy, clean = _pair(3)
    save(tmp_path / "noisy" / "a.png", rainy)
    save(tmp_path / "gt" / "a.png", clean)
    ds = open_dataset("paired", input=tmp_path / "noisy", target=tmp_path / "gt")
    _assert_item(ds[0], rainy, clean, "a")
    with pytest.raises(DatasetError, match="give both input= and target="):
        open_dataset("paired", input=tmp_path / "noisy")
    with pytest.raises(DatasetError, match="give a root"):
        open_dataset("paired")


def _write_gopro(root):
    for split in ("train", "test"):
        for seq in ("GOPR0372_07_00", "GOPR0384_11_01"):
            for frame in ("000001", "000002"):
                seed = hash((split, seq, frame)) % 1000
                blur, sharp = _pair(seed)
                save(root / split / seq / "blur" / f"{frame}.png", blur)
                save(root / split / seq / "blur_gamma" / f"{frame}.png", 255 - blur)
                save(root / split / seq / "sharp" / f"{frame}.png", sharp)


def test_gopro_layout_blur_or_blur_gamma(tmp_path):
    _write_gopro(tmp_path)
    test = open_dataset("gopro", tmp_path)
    assert len(test) == 4 and test[0]["name"] == "GOPR0372_07_00/000001"
    gamma = open_dataset("gopro", tmp_path, blur="blur_gamma")
    for a, b in zip(test, gamma):
        torch.testing.assert_close(a["input"], 1 - b["input"], rtol=0, atol=1e-6)
        assert torch.equal(a["target"], b["target"])
    assert len(open_dataset("gopro", tmp_path, split="train")) == 4
    with pytest.raises(ValueError, match="blur: expected 'blur' or 'blur_gamma', got 'gamma'"):
        open_dataset("gopro", tmp_path, blur="gamma")


def test_hide_layouts(tmp_path):
    arrays = {}
    for subset in ("test-close-ups", "test-long-shot"):
        for name in (f"{subset[5:]}-a", f"{subset[5:]}-b"):
            arrays[f"{subset}/{name}"] = blurry, sharp = _pair(len(arrays))
            save(tmp_path / "official" / "test" / subset / f"{name}.png", blurry)
            save(tmp_path / "official" / "GT" / f"{name}.png", sharp)
    save(tmp_path / "official" / "GT" / "training-only.png", random_rgb(6, 8, 99))  # GT/ holds train GT too
    ds = open_dataset("hide", tmp_path / "official")
    assert [item["name"] for item in ds] == sorted(arrays)
    for item in ds:
        _assert_item(item, *arrays[item["name"]], item["name"])
    save(tmp_path / "mprnet" / "input" / "x.png", arrays["test-close-ups/close-ups-a"][0])
    save(tmp_path / "mprnet" / "target" / "x.png", arrays["test-close-ups/close-ups-a"][1])
    _assert_item(open_dataset("hide", tmp_path / "mprnet")[0], *arrays["test-close-ups/close-ups-a"], "x")


@pytest.mark.parametrize("camera", ["J", "R"])
def test_realblur_list_files(tmp_path, camera):
    base = f"RealBlur-{camera}_ECC_IMCORR_centroid_itensity_ref"
    arrays = {}
    for split in ("train", "test"):
        lines = []
        for scene in ("scene001", "scene230"):
            blurry, sharp = arrays[(split, scene)] = _pair(len(arrays))
            save(tmp_path / base / split / scene / "gt" / "gt_1.png", sharp)
            save(tmp_path / base / split / scene / "blur" / "blur_1.png", blurry)
            lines.append(f"{base}/{split}/{scene}/gt/gt_1.png {base}/{split}/{scene}/blur/blur_1.png")
        (tmp_path / f"RealBlur_{camera}_{split}_list.txt").write_text("\n".join(lines) + "\n\n")
    name = f"realblur-{camera.lower()}"
    ds = open_dataset(name, tmp_path)
    _assert_item(ds[1], *arrays[("test", "scene230")], f"{base}/test/scene230/blur/blur_1")
    assert len(open_dataset(name, tmp_path, split="train")) == 2
    (tmp_path / "custom.txt").write_text(f"{base}/test/scene001/gt/gt_1.png {base}/test/scene001/blur/blur_1.png\n")
    assert len(open_dataset(name, tmp_path, list_file="custom.txt")) == 1
    (tmp_path / "bad.txt").write_text("only-one-path.png\n")
    with pytest.raises(DatasetError, match=r"line 1 of .*bad.txt: expected '<gt path> <blur path>'"):
        open_dataset(name, tmp_path, list_file="bad.txt")
    with pytest.raises(DatasetError, match="list file .*nothere.txt does not exist"):
        open_dataset(name, tmp_path, list_file="nothere.txt")


# ---- errors and skipping -------------------------------------------------------------------

def test_missing_partner_is_named(tmp_path):
    _write_rain100_test(tmp_path)
    (tmp_path / "norain-002.png").unlink()
    save(tmp_path / "norain-050.png", random_rgb(6, 8, 5))
    with pytest.raises(DatasetError, match=r"rain100h: missing partner: input .*rainy/rain-002.png has no target.*"
                                           r"\(and 1 more problems\); pass skip_bad=True"):
        open_dataset("rain100h", tmp_path)
    with pytest.warns(DatasetWarning) as caught:
        ds = open_dataset("rain100h", tmp_path, skip_bad=True)
    message = str(caught[0].message)
    assert "skipped 2 problem(s)" in message and "rain-002.png" in message and "norain-050.png" in message
    assert [item["name"] for item in ds] == ["rain-001", "rain-010"]


def test_unreadable_and_mismatched_files_are_named(tmp_path):
    for stem, (h, w) in (("a", (6, 8)), ("b", (6, 8)), ("c", (6, 8))):
        save(tmp_path / "input" / f"{stem}.png", random_rgb(h, w, 1))
    save(tmp_path / "target" / "a.png", random_rgb(6, 8, 2))
    save(tmp_path / "target" / "b.png", random_rgb(7, 8, 3))
    (tmp_path / "target" / "c.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"size mismatch: input .*input/b.png is 6x8 \(HxW\), target .*target/b.png is 7x8"):
        open_dataset("paired", tmp_path)
    with pytest.warns(DatasetWarning, match=r"(?s)size mismatch.*b\.png.*cannot read image .*target/c.png"):
        ds = open_dataset("paired", tmp_path, skip_bad=True)
    assert [item["name"] for item in ds] == ["a"]


def test_two_files_with_one_name_are_refused_not_narrowed_to_one(tmp_path):
    for stem, seed in (("a", 1), ("b", 2)):
        save(tmp_path / "input" / f"{stem}.png", random_rgb(6, 8, seed))
        save(tmp_path / "target" / f"{stem}.png", random_rgb(6, 8, seed + 10))
    save(tmp_path / "input" / "a.jpg", random_rgb(6, 8, 3))
    with pytest.raises(DatasetError, match=r"ambiguous name: .*input/a.jpg and .*input/a.png are both item 'a'; "
                                           r"keep one of them.*; pass --skip-bad to skip"):
        open_dataset("paired", tmp_path, skip_hint="--skip-bad")
    with pytest.warns(DatasetWarning, match="ambiguous name"):
        assert [item["name"] for item in open_dataset("paired", tmp_path, skip_bad=True)] == ["b"]
    _write_rain100_test(tmp_path / "r100")
    save(tmp_path / "r100" / "norain-002.jpg", random_rgb(6, 8, 4))
    with pytest.raises(DatasetError, match=r"ambiguous name: .*norain-002.jpg and .*norain-002.png"):
        open_dataset("rain100h", tmp_path / "r100")


def test_truncated_file_caught_by_full_verify_or_on_read(tmp_path):
    for stem in ("a", "b"):
        save(tmp_path / "input" / f"{stem}.png", random_rgb(30, 30, 1))
        save(tmp_path / "target" / f"{stem}.png", random_rgb(30, 30, 2))
    whole = (tmp_path / "target" / "b.png").read_bytes()
    (tmp_path / "target" / "b.png").write_bytes(whole[: len(whole) // 2])
    ds = open_dataset("paired", tmp_path)  # headers are fine
    with pytest.raises(OSError, match="target/b.png"):
        ds[1]
    with pytest.raises(DatasetError, match="cannot read image .*target/b.png"):
        open_dataset("paired", tmp_path, verify="full")
    with pytest.warns(DatasetWarning, match="target/b.png"):
        assert len(open_dataset("paired", tmp_path, verify="full", skip_bad=True)) == 1


def test_structural_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset name 'rain1400'; known: .*rain100h"):
        open_dataset("rain1400", tmp_path)
    with pytest.raises(DatasetError, match="root folder .*absent does not exist"):
        open_dataset("rain100h", tmp_path / "absent")
    with pytest.raises(DatasetError, match="root is required"):
        open_dataset("gopro")
    with pytest.raises(DatasetError, match="expected folder .*rainy, which does not exist"):
        open_dataset("rain100h", tmp_path)
    with pytest.raises(DatasetError, match="expected folder .*test_syn"):
        open_dataset("rain800", tmp_path)
    with pytest.raises(TypeError, match="rain800 does not take blur; it takes no options"):
        open_dataset("rain800", tmp_path, blur="blur")
    (tmp_path / "rainy").mkdir()
    with pytest.raises(DatasetError, match=r"no image pairs found under .*; expected ROOT/rainy/rain-001.png"):
        open_dataset("rain100l", tmp_path)
    with pytest.raises(ValueError, match="verify: expected 'header' or 'full'"):
        _write_rain100_test(tmp_path)
        open_dataset("rain100l", tmp_path, verify="deep")


def test_gopro_missing_sharp_folder(tmp_path):
    _write_gopro(tmp_path)
    for frame in ("000001", "000002"):
        (tmp_path / "test" / "GOPR0372_07_00" / "sharp" / f"{frame}.png").unlink()
    (tmp_path / "test" / "GOPR0372_07_00" / "sharp").rmdir()
    with pytest.raises(DatasetError, match=r"input .*GOPR0372_07_00/blur/000001.png has no target "
                                           r"\S*/test/GOPR0372_07_00/sharp/000001.png \(and 1 more"):
        open_dataset("gopro", tmp_path)
    with pytest.warns(DatasetWarning):
        assert len(open_dataset("gopro", tmp_path, skip_bad=True)) == 2


def test_nothing_is_written_into_dataset_folders(tmp_path):
    from torch.utils.data import DataLoader

    from taylor_fast.data import TrainingPatches

    _write_rain100_test(tmp_path / "r100")
    _write_gopro(tmp_path / "gopro")
    save(tmp_path / "r800" / "test_syn" / "1.png", random_rgb(6, 16, 1))
    save(tmp_path / "bad" / "input" / "a.png", random_rgb(6, 8, 1))
    save(tmp_path / "bad" / "input" / "b.png", random_rgb(6, 8, 1))
    save(tmp_path / "bad" / "target" / "a.png", random_rgb(6, 8, 1))
    before = snapshot(tmp_path)
    datasets = [open_dataset("rain100h", tmp_path / "r100", verify="full"), open_dataset("gopro", tmp_path / "gopro"),
                open_dataset("rain800", tmp_path / "r800")]
    with pytest.warns(DatasetWarning):
        datasets.append(open_dataset("paired", tmp_path / "bad", skip_bad=True))
    for ds in datasets:
        for item in ds:
            assert item["input"].shape == item["target"].shape
        for batch in DataLoader(TrainingPatches(ds, patch=4, seed=1), batch_size=2):
            assert batch["input"].shape[1:] == (3, 4, 4)
    assert snapshot(tmp_path) == before
