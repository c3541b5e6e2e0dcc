import numpy as np
import pytest
import torch
from imaging import as_tensor_values, encode_png16, random_rgb, save
from PIL import Image

from taylor_fast.data import ImageReadError, read_image, write_image
from taylor_fast.data.image_io import image_size, list_images, to_uint8
from taylor_fast.data.png16 import is_png16, read_png16


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
