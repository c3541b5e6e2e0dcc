"""16-bit PNG writing (restore keeps 16-bit inputs 16-bit), checked by independent decoders."""
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from taylor_fast.data import read_image, write_image
from taylor_fast.data.image_io import bit_depth
from taylor_fast.data.png16 import write_png16


def test_grey_16bit_png_reads_back_exactly_with_pillow(tmp_path):
    samples = np.random.default_rng(0).integers(0, 65536, (13, 17, 1), dtype=np.uint16)
    write_png16(tmp_path / "g.png", samples)
    with Image.open(tmp_path / "g.png") as img:  # Pillow keeps 16-bit grey exactly (mode I;16)
        assert np.array_equal(np.asarray(img).astype(np.uint16), samples[:, :, 0])


def test_rgb_16bit_png_bytes_by_hand(tmp_path):
    samples = np.random.default_rng(1).integers(0, 65536, (9, 11, 3), dtype=np.uint16)
    write_png16(tmp_path / "c.png", samples)
    blob = (tmp_path / "c.png").read_bytes()
    width, height, depth, colour = struct.unpack(">IIBB", blob[16:26])
    assert (width, height, depth, colour) == (11, 9, 16, 2)
    start = blob.index(b"IDAT") + 4
    length = struct.unpack(">I", blob[start - 8:start - 4])[0]
    rows = np.frombuffer(zlib.decompress(blob[start:start + length]), np.uint8).reshape(9, 1 + 11 * 6)
    assert (rows[:, 0] == 2).all()  # the Up filter: undo it with a running sum down the rows
    raw = np.cumsum(rows[:, 1:].astype(np.int64), axis=0) % 256
    decoded = (raw[:, 0::2] * 256 + raw[:, 1::2]).reshape(9, 11, 3)
    assert np.array_equal(decoded, samples)


def test_write_image_16_bits_round_trip(tmp_path):
    image = torch.rand(3, 21, 34)
    write_image(tmp_path / "x.png", image, bits=16)
    assert bit_depth(tmp_path / "x.png") == 16
    assert (read_image(tmp_path / "x.png") - image).abs().max() <= 0.5 / 65535 + 1e-7
    with pytest.raises(ValueError, match="only PNG"):
        write_image(tmp_path / "x.jpg", image, bits=16)
