"""Issue 8 §3: batch 0, 1x1 images and images narrower than G's halo (2 pixels: two 3x3
convolutions) on every backend, forward and backward, against the fp64 reference; and restore
at an 8K-like aspect ratio through many tiles."""
import pytest
import torch

from backend_cases import OPS, backend_params, image_names, outputs_and_grads, valid_arguments
from taylor_fast import ops, reference
from taylor_fast.engine import evaluate, model, tiling
from taylor_fast.engine.config import DEFAULTS

# (N, H, W): batch 0, one pixel, one or two rows/columns, and a thin strip that spans tiles
SIZES = [(0, 5, 5), (0, 1, 1), (1, 1, 1), (3, 1, 1), (2, 1, 2), (2, 2, 1), (1, 2, 2), (1, 1, 7), (2, 7, 1),
         (1, 2, 19), (1, 3, 3)]


def reference_call(op, args):
    fn = reference.taylor_expand if op == "taylor_expand" else reference.taylor_step
    names = ["f", "y"] if op == "taylor_expand" else ["g", "y", "acc"]
    rest = ["w1", "b1", "w2", "b2", "order" if op == "taylor_expand" else "k", "activation", "negative_slope"]
    return fn(*[args[n] for n in names + rest])


@pytest.mark.parametrize("size", SIZES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("backend", backend_params())
def test_tiny_and_empty_images_match_the_reference(backend, op, size):
    n, h, w = size
    args = valid_arguments(op, n=n, h=h, w=w, dtype=torch.float32, backend=backend)
    args["activation"] = "leaky_relu"
    outs, grads = outputs_and_grads(lambda a: getattr(ops, op)(**a), args)
    exact = {k: v.double() if isinstance(v, torch.Tensor) else v for k, v in args.items() if k != "backend"}
    want_outs, want_grads = outputs_and_grads(lambda a: reference_call(op, a), exact)
    for got, want in zip(outs + tuple(grads), want_outs + tuple(want_grads)):
        assert got.shape == want.shape and got.dtype == torch.float32
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-5)
    assert all(o.shape == (n, 3, h, w) for o in outs)
    assert [g.shape for g in grads[:len(image_names(op))]] == [(n, 3, h, w)] * len(image_names(op))


def test_restore_through_many_tiles_at_an_8k_aspect_ratio():
    """7680x4320 at tile 512 / overlap 64 is 17 x 10 windows (a stride of 448); 496x286 at tile 48 /
    overlap 20 (a stride of 28) is 17 x 10 windows too, cheaply. The overlap is four times the model's reach (tiny backbone: 3 pixels, G at
    order 1: 2 more), so the tiled result must equal the whole-image one up to float32 rounding."""
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
