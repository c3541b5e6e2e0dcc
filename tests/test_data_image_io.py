import numpy as np
import pytest
import torch
from imaging import as_tensor_values, encode_png16, random_rgb, save
from PIL import Image

from taylor_fast.data import ImageReadError, read_image, write_image
from taylor_fast.data.image_io import image_size, list_images, read_picture, to_uint8
from taylor_fast.data.png16 import is_png16, read_png16
from taylor_fast.resize import bicubic_upsample


def test_8bit_rgb_png_exact(tmp_path):
    array = random_rgb(6, 9, seed=0)
    image = read_image(save(tmp_path / "a.png", array))
    assert image.dtype == torch.float32 and image.shape == (3, 6, 9)
    np.testing.assert_array_equal(image.numpy(), as_tensor_values(array))


def test_grey_becomes_three_equal_channels(tmp_path):
    grey = random_rgb(5, 7, seed=1)[:, :, 0]
    image = read_image(save(tmp_path / "g.png", grey))
    assert image.shape == (3, 5, 7)
    for c in range(3):
        np.testing.assert_array_equal(image[c].numpy(), grey.astype(np.float32) / 255)


def test_rgba_and_palette_become_rgb(tmp_path):
    rgba = np.concatenate([random_rgb(4, 5, seed=2), np.full((4, 5, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(read_image(save(tmp_path / "a.png", rgba)).numpy(), as_tensor_values(rgba[:, :, :3]))
    palette = Image.fromarray(random_rgb(4, 5, seed=3)).convert("P")
    palette.save(tmp_path / "p.png")
    expected = np.asarray(palette.convert("RGB"))
    np.testing.assert_array_equal(read_image(tmp_path / "p.png").numpy(), as_tensor_values(expected))


def test_jpeg_reads_close_to_original(tmp_path):
    smooth = np.clip(np.add.outer(np.arange(32) * 4, np.arange(40) * 3), 0, 255).astype(np.uint8)
    array = np.stack([smooth, smooth[::-1], 255 - smooth], axis=2)
    Image.fromarray(array).save(tmp_path / "a.jpg", quality=95)
    image = read_image(tmp_path / "a.jpg")
    assert image.shape == (3, 32, 40)
    assert np.abs(image.numpy() - as_tensor_values(array)).mean() < 0.01


def test_16bit_grey_png_keeps_precision(tmp_path):
    values = np.random.default_rng(4).integers(0, 65536, (6, 11), dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")  # Pillow's own encoder and filter choice
    assert is_png16(tmp_path / "g16.png")
    np.testing.assert_array_equal(read_png16(tmp_path / "g16.png")[:, :, 0], np.asarray(Image.open(tmp_path / "g16.png")))
    image = read_image(tmp_path / "g16.png")
    np.testing.assert_array_equal(image[1].numpy(), values.astype(np.float32) / 65535)
    levels = image.double().numpy() * 255
    assert np.abs(levels - np.round(levels)).max() > 0.1  # finer than any 8-bit level


@pytest.mark.parametrize("channels", [3, 4, 2])
def test_16bit_colour_png_all_filters(tmp_path, channels):
    height = 10
    samples = np.random.default_rng(channels).integers(0, 65536, (height, 7, channels), dtype=np.uint16)
    samples[3] = samples[2] + 1  # smooth rows exercise the predictors' carries too
    path = tmp_path / "c16.png"
    path.write_bytes(encode_png16(samples, filters=[r % 5 for r in range(height)]))
    np.testing.assert_array_equal(read_png16(path), samples)
    image = read_image(path)
    colour = samples[:, :, :3] if channels >= 3 else np.repeat(samples[:, :, :1], 3, axis=2)
    np.testing.assert_array_equal(image.numpy(), np.transpose(colour.astype(np.float32) / 65535, (2, 0, 1)))


def test_8bit_png_is_not_png16(tmp_path):
    assert not is_png16(save(tmp_path / "a.png", random_rgb(3, 3, seed=5)))


def test_errors_name_the_file(tmp_path):
    with pytest.raises(ImageReadError, match="nowhere.png does not exist"):
        read_image(tmp_path / "nowhere.png")
    (tmp_path / "junk.png").write_bytes(b"this is not an image")
    with pytest.raises(ImageReadError, match="junk.png"):
        read_image(tmp_path / "junk.png")
    with pytest.raises(ImageReadError, match="junk.png"):
        image_size(tmp_path / "junk.png")
    whole = save(tmp_path / "whole.png", random_rgb(40, 40, seed=6)).read_bytes()
    (tmp_path / "cut.png").write_bytes(whole[: len(whole) // 2])
    assert image_size(tmp_path / "cut.png") == (40, 40)  # the header survives ...
    with pytest.raises(ImageReadError, match="cut.png"):  # ... the pixels do not
        read_image(tmp_path / "cut.png")


def test_write_image_round_trip_and_rounding(tmp_path):
    image = torch.tensor([0.0, 0.5 / 255, 1.5 / 255, 1.2, -0.1]).view(1, 1, 5).expand(3, 1, 5)
    np.testing.assert_array_equal(to_uint8(image)[0, :, 0], [0, 1, 2, 255, 0])  # half up, clamped
    write_image(tmp_path / "w.png", image)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "w.png"))[0, :, 0], [0, 1, 2, 255, 0])


def test_list_images_natural_order(tmp_path):
    for name in ("rain-10.png", "rain-2.png", "rain-1.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_images(tmp_path)] == ["rain-1.jpg", "rain-2.png", "rain-10.png"]


# ---- what a restored copy of a file keeps: orientation, colour profile, alpha, grey, quality ----

def _srgb_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _with_space(profile: bytes, space: bytes) -> bytes:
    """The profile with another colour-space signature in its header (Pillow stores the bytes as they are)."""
    return profile[:16] + space + profile[20:]


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pillow_does(tmp_path, orientation, suffix):
    from PIL import ImageOps

    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{suffix}"
    Image.fromarray(random_rgb(6, 9, seed=orientation)).save(path, exif=exif.tobytes())
    with Image.open(path) as stored:
        upright = np.asarray(ImageOps.exif_transpose(stored).convert("RGB"))
    np.testing.assert_array_equal(read_image(path).numpy(), as_tensor_values(upright))
    assert image_size(path) == upright.shape[:2]  # from the header: (9, 6) for orientations 5..8


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif"])
def test_icc_profile_is_read_and_written_back(tmp_path, suffix):
    profile = _srgb_profile()
    Image.fromarray(random_rgb(8, 8, seed=1)).save(tmp_path / f"in{suffix}", icc_profile=profile)
    picture = read_picture(tmp_path / f"in{suffix}")
    assert picture.icc_profile == profile
    write_image(tmp_path / f"out{suffix}", picture.pixels, icc_profile=picture.icc_profile)
    with Image.open(tmp_path / f"out{suffix}") as written:
        assert written.info.get("icc_profile") == profile


def test_icc_profile_only_where_its_colour_space_fits(tmp_path):
    rgb_profile = _srgb_profile()
    grey_profile, cmyk_profile = _with_space(rgb_profile, b"GRAY"), _with_space(rgb_profile, b"CMYK")
    image = torch.rand(3, 5, 6)
    for name, pixels, profile, kept in (("grey.png", image[:1], grey_profile, True),
                                        ("grey16.png", image[:1], grey_profile, True),
                                        ("rgb.png", image, grey_profile, False),
                                        ("cmyk.jpg", image, cmyk_profile, False),
                                        ("rgba16.png", torch.rand(4, 5, 6), rgb_profile, True)):
        write_image(tmp_path / name, pixels, bits=16 if "16" in name else 8, icc_profile=profile)
        with Image.open(tmp_path / name) as written:
            assert written.info.get("icc_profile") == (profile if kept else None), name
    assert read_picture(tmp_path / "rgba16.png").icc_profile == rgb_profile  # the iCCP chunk of the 16-bit writer


def test_picture_keeps_alpha_and_greyness(tmp_path):
    rgba = np.concatenate([random_rgb(4, 5, seed=2), random_rgb(4, 5, seed=3)[:, :, :1]], axis=2)
    picture = read_picture(save(tmp_path / "rgba.png", rgba))
    assert not picture.grey and picture.icc_profile is None
    np.testing.assert_array_equal(picture.pixels.numpy(), as_tensor_values(rgba[:, :, :3]))
    np.testing.assert_array_equal(picture.alpha[0].numpy(), rgba[:, :, 3].astype(np.float32) / 255)
    grey_alpha = np.stack([random_rgb(4, 5, seed=4)[:, :, 0], rgba[:, :, 3]], axis=2)
    picture = read_picture(save(tmp_path / "la.png", grey_alpha))
    assert picture.grey and picture.alpha is not None
    np.testing.assert_array_equal(picture.pixels[2].numpy(), grey_alpha[:, :, 0].astype(np.float32) / 255)
    palette = Image.fromarray(random_rgb(4, 5, seed=5)).convert("P")
    palette.save(tmp_path / "p.png", transparency=0)
    assert read_picture(tmp_path / "p.png").alpha is not None
    assert read_picture(save(tmp_path / "rgb.png", random_rgb(4, 5, seed=6))).alpha is None
    # a restored image gets the picture's channels back: luma as Pillow's convert("L"), then the alpha
    restored = torch.rand(3, 4, 5)
    kept = read_picture(tmp_path / "la.png").keep(restored)
    assert kept.shape == (2, 4, 5) and torch.equal(kept[1], read_picture(tmp_path / "la.png").alpha[0])
    pillow_luma = np.asarray(Image.fromarray(to_uint8(restored)).convert("L")).astype(int)
    assert np.abs(to_uint8(kept[:1])[:, :, 0].astype(int) - pillow_luma).max() <= 1


def test_picture_read_grey_for_a_one_channel_model(tmp_path):
    """channels=1: a colour file gives its luma rounded to its levels (Pillow's convert("L") to
    within one level), a grey file its own samples; alpha, greyness and EXIF orientation as for
    colour; keep() leaves a one-channel output grey and upscales the alpha of a larger output."""
    rgba = np.concatenate([random_rgb(4, 6, seed=7), random_rgb(4, 6, seed=8)[:, :, :1]], axis=2)
    picture = read_picture(save(tmp_path / "rgba.png", rgba), channels=1)
    assert picture.pixels.shape == (1, 4, 6) and not picture.grey
    levels = picture.pixels[0].numpy() * 255
    np.testing.assert_array_equal(levels, np.round(levels))  # on the file's 8-bit levels
    pillow_luma = np.asarray(Image.fromarray(rgba[:, :, :3]).convert("L")).astype(np.float32)
    assert np.abs(levels - pillow_luma).max() <= 1
    np.testing.assert_array_equal(picture.alpha[0].numpy(), rgba[:, :, 3].astype(np.float32) / 255)
    np.testing.assert_array_equal(picture.pixels.numpy(), read_image(tmp_path / "rgba.png", channels=1).numpy())
    grey = random_rgb(4, 6, seed=9)[:, :, 0]
    exif = Image.Exif()
    exif[0x0112] = 6  # turned a quarter: the pixels come upright, 6x4
    Image.fromarray(grey).save(tmp_path / "g.png", exif=exif.tobytes())
    upright = read_picture(tmp_path / "g.png", channels=1)
    assert upright.grey and upright.pixels.shape == (1, 6, 4)
    np.testing.assert_array_equal(upright.pixels[0].numpy(), np.rot90(grey, -1).astype(np.float32) / 255)

    one_channel = torch.rand(1, 8, 12)  # a grey x2 model's output for the RGBA picture
    kept = picture.keep(one_channel)
    assert kept.shape == (2, 8, 12) and torch.equal(kept[0], one_channel[0])
    expected_alpha = bicubic_upsample(picture.alpha, 2).clamp(0, 1)
    torch.testing.assert_close(kept[1:], expected_alpha, rtol=0, atol=0)
    assert read_picture(tmp_path / "g.png").keep(torch.rand(3, 12, 8)).shape == (1, 12, 8)  # colour model, grey file


@pytest.mark.parametrize("channels, mode", [(1, "L"), (2, "LA"), (3, "RGB"), (4, "RGBA")])
def test_write_image_channels_round_trip(tmp_path, channels, mode):
    image = torch.rand(channels, 6, 7)
    write_image(tmp_path / "w.png", image)
    with Image.open(tmp_path / "w.png") as written:
        assert written.mode == mode
        np.testing.assert_array_equal(np.asarray(written).reshape(6, 7, channels), to_uint8(image))
    write_image(tmp_path / "w16.png", image, bits=16)
    levels = torch.floor(image * 65535 + 0.5).permute(1, 2, 0).numpy().astype(np.uint16)
    np.testing.assert_array_equal(read_png16(tmp_path / "w16.png"), levels)


def test_formats_get_the_channels_they_hold(tmp_path):
    write_image(tmp_path / "a.jpg", torch.rand(4, 6, 7))  # JPEG holds no alpha
    write_image(tmp_path / "g.webp", torch.rand(1, 6, 7))  # WebP holds colour only
    with Image.open(tmp_path / "a.jpg") as jpeg, Image.open(tmp_path / "g.webp") as webp:
        assert jpeg.mode == "RGB" and webp.mode == "RGB"


def test_jpeg_and_webp_quality(tmp_path):
    from PIL import JpegImagePlugin

    image = torch.rand(3, 16, 24)
    for quality in (95, 50):
        write_image(tmp_path / f"q{quality}.jpg", image, quality=quality)
        Image.fromarray(to_uint8(image)).save(tmp_path / f"pillow{quality}.jpg", quality=quality, subsampling=0)
        assert (tmp_path / f"q{quality}.jpg").read_bytes() == (tmp_path / f"pillow{quality}.jpg").read_bytes()
    with Image.open(tmp_path / "q95.jpg") as written:
        assert JpegImagePlugin.get_sampling(written) == 0  # 4:4:4: colour at full resolution
    write_image(tmp_path / "w.webp", image)
    Image.fromarray(to_uint8(image)).save(tmp_path / "pillow.webp", quality=95)
    assert (tmp_path / "w.webp").read_bytes() == (tmp_path / "pillow.webp").read_bytes()
    with pytest.raises(ValueError, match="quality: expected an integer in 1..100, got 0"):
        write_image(tmp_path / "bad.jpg", image, quality=0)
