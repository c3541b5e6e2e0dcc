"""Tiled inference: windows cover the image, blending weights are a partition of unity, and a
model whose receptive field fits in a quarter of the overlap gives its whole-image output."""
import pytest
import torch

from taylor_fast import backbones
from taylor_fast.engine import evaluate, model, tiling
from taylor_fast.engine.config import DEFAULTS


@pytest.mark.parametrize("size, tile, overlap", [(100, 32, 8), (33, 16, 4), (16, 16, 8), (7, 16, 8), (257, 64, 20)])
def test_weights_cover_every_pixel_and_sum_to_one_between_two_windows(size, tile, overlap):
    starts = tiling.starts(size, tile, overlap)
    assert starts[0] == 0 and starts[-1] + min(tile, size) == size
    total = torch.zeros(size, dtype=torch.float64)
    for s in starts:
        length = min(tile, size)
        w = tiling.ramp(s, length, size, overlap)
        total[s:s + length] += w
        # no weight within a quarter of the overlap of an inner window edge
        if s > 0:
            assert (w[: overlap // 4] == 0).all()
        if s + length < size:
            assert (w[length - overlap // 4:] == 0).all()
    assert (total > 0).all()
    if len(starts) == 2 or size <= tile:
        assert torch.allclose(total, torch.ones_like(total))


def test_identity_model_is_reproduced_exactly():
    image = torch.rand(2, 3, 45, 71, dtype=torch.float64)
    assert torch.allclose(tiling.tiled(lambda x: x, image, tile=16, overlap=8), image, atol=1e-12)


@pytest.mark.parametrize("height, width", [(67, 91), (33, 129), (101, 48)])
def test_tiled_equals_whole_image_for_a_small_receptive_field(height, width):
    torch.manual_seed(0)
    model = backbones.create("tiny", width=8, depth=1).double().eval()  # 3 convs 3x3: reach 3 pixels
    image = torch.rand(1, 3, height, width, dtype=torch.float64)
    with torch.no_grad():
        whole = model(image)
        calls = []
        pieces = tiling.tiled(model, image, tile=32, overlap=12, batch=3, progress=calls.append)
    assert pieces.shape == image.shape
    assert torch.allclose(pieces, whole, atol=1e-12)
    assert sum(calls) == tiling.count(height, width, 32, 12) > 1


@pytest.mark.parametrize("tile, overlap, message", [(0, 0, "tile"), (16, 16, "overlap"), (16, -1, "overlap"),
                                                    (16, 2, "at least 4")])
def test_bad_tile_settings(tile, overlap, message):
    with pytest.raises(ValueError, match=message):
        tiling.check(tile, overlap)


def test_restore_through_many_tiles_at_an_8k_aspect_ratio():
    """7680x4320 at tile 512 / overlap 64 is 17 x 10 windows (a stride of 448); 496x286 at tile 48 /
    overlap 20 (a stride of 28) is 17 x 10 windows too, cheaply. The overlap is four times the
    model's reach (tiny backbone: 3 pixels, G at order 1: 2 more), so the tiled result must equal
    the whole-image one up to float32 rounding."""
    assert tiling.count(4320, 7680, 512, 64) == tiling.count(286, 496, 48, 20) == 17 * 10
    torch.manual_seed(0)
    net = model.build({**DEFAULTS["model"], "order": 1, "hidden": 8,
                       "backbone_options": {"width": 4, "depth": 1}}).eval()
    image = torch.rand(3, 286, 496)
    tiles = []
    tiled = evaluate.restore(net, image, tile=48, overlap=20, progress=tiles.append)
    whole = evaluate.restore(net, image, tile=None)
    assert sum(tiles) == 17 * 10 and tiled.shape == image.shape
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-5)
