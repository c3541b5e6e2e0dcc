"""A batch too large for memory is processed in parts, not failed. Out-of-memory
errors are injected (a real one is not practical here): a model wrapper raises what torch raises
when a call holds more than a set number of pixels."""
import warnings

import pytest
import torch

from taylor_fast import backbones
from taylor_fast.engine import evaluate, tiling
from taylor_fast.engine.chunks import Chunked, ChunkingWarning, OutOfMemory, is_out_of_memory

CPU_OOM = ("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
           "you tried to allocate 400000000000 bytes. Error code 12 (Cannot allocate memory)")


class MemoryBound(torch.nn.Module):
    """model(x), but failing like torch when x holds more than `budget` pixels (N*H*W)."""

    def __init__(self, model, budget, error=lambda: RuntimeError(CPU_OOM)):
        super().__init__()
        self.model, self.budget, self.error, self.calls = model, budget, error, []

    def forward(self, x):
        self.calls.append(tuple(x.shape))
        if x.shape[0] * x.shape[2] * x.shape[3] > self.budget:
            raise self.error()
        return self.model(x)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return backbones.create("tiny", width=8, depth=1).double().eval()


@pytest.mark.parametrize("error", [
    lambda: RuntimeError(CPU_OOM),
    lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    lambda: RuntimeError("std::bad_alloc"),
    MemoryError,
], ids=["cpu-allocator", "torch.OutOfMemoryError", "bad_alloc", "MemoryError"])
def test_an_out_of_memory_batch_is_split_down_to_what_fits(model, error):
    batch = torch.rand(7, 3, 10, 10, dtype=torch.float64)
    bound = MemoryBound(model, budget=2 * 100, error=error)
    run = Chunked(bound)
    with pytest.warns(ChunkingWarning, match="out of memory on a batch of 7 items .* continuing 3 at a time"):
        out = run(batch)
    with torch.no_grad():
        assert torch.equal(out, model(batch))
    assert [shape[0] for shape in bound.calls] == [7, 3, 1, 1, 1, 1, 1, 1, 1]
    assert run.limit == 1
    bound.calls.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the limit learnt is kept: no new failure, no new warning
        run(batch[:2])
    assert [shape[0] for shape in bound.calls] == [1, 1]


def test_other_errors_are_not_mistaken_for_out_of_memory(model):
    def broken(x):
        raise RuntimeError("Expected 3 channels, got 4")

    with pytest.raises(RuntimeError, match="Expected 3 channels"):
        Chunked(broken)(torch.rand(4, 3, 5, 5))
    assert not is_out_of_memory(ValueError("out of memory"))  # only errors an allocator raises
    assert is_out_of_memory(RuntimeError(CPU_OOM))


def test_a_single_item_that_does_not_fit_raises_clearly():
    def never_fits(x):
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.warns(ChunkingWarning), pytest.raises(OutOfMemory, match=r"a single item of shape \(3, 5, 5\) does "
                                                                          "not fit in memory on cpu"):
        Chunked(never_fits)(torch.rand(2, 3, 5, 5))


def test_batch_zero_goes_straight_through(model):
    assert Chunked(model)(torch.rand(0, 3, 5, 5, dtype=torch.float64)).shape == (0, 3, 5, 5)


def test_an_image_too_large_for_memory_falls_back_to_tiles(model):
    """Tiling with an overlap of 4x the receptive field reproduces the whole-image output exactly,
    so the fallback's result can be checked against the model run on the whole image."""
    image = torch.rand(1, 3, 70, 90, dtype=torch.float64)
    bound = MemoryBound(model, budget=50 * 50)
    with pytest.warns(ChunkingWarning, match=r"retrying the 70x90 image in tiles of 45 pixels"):
        out = tiling.tiled(bound, image, tile=None, overlap=12)
    with torch.no_grad():
        assert torch.allclose(out, model(image), atol=1e-12)
    assert bound.calls[0] == (1, 3, 70, 90) and bound.calls[-1] == (1, 3, 45, 45)


def test_tiles_too_large_are_halved_and_a_hopeless_case_is_reported(model):
    image = torch.rand(2, 3, 64, 64, dtype=torch.float64)
    bound = MemoryBound(model, budget=20 * 20)
    with pytest.warns(ChunkingWarning, match="tiles of 16 pixels"):
        out = tiling.tiled(bound, image, tile=32, overlap=12, batch=4)
    with torch.no_grad():
        assert torch.allclose(out, model(image), atol=1e-12)
    with pytest.warns(ChunkingWarning), pytest.raises(OutOfMemory, match="no smaller tiling to fall back to"):
        tiling.tiled(MemoryBound(model, budget=5), image, tile=32, overlap=12)


def test_evaluate_restore_uses_the_chunks_and_keeps_what_it_learnt(model):
    """engine.evaluate.restore on a Chunked model: a batch of tiles that ran out of memory is
    split, and the next image starts from the part size that fitted."""
    image = torch.rand(3, 40, 40, dtype=torch.float64)
    expected = evaluate.restore(model, image, tile=24, overlap=8)  # 2 x 2 windows, one batch of 4
    bound = MemoryBound(model, budget=2 * 24 * 24)
    run = Chunked(bound)
    with pytest.warns(ChunkingWarning, match="batch of 4 items"):
        first = evaluate.restore(run, image, tile=24, overlap=8)
    assert torch.allclose(first, expected, atol=1e-12)
    bound.calls.clear()
    evaluate.restore(run, image, tile=24, overlap=8)
    assert [shape[0] for shape in bound.calls] == [2, 2]
