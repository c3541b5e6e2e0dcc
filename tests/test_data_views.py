import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from taylor_fast.data import TrainingPatches, dihedral


class Images(Dataset):
    """In-memory pairs: target = 1 - input, so alignment is checkable pixel by pixel."""

    def __init__(self, count=6, h=20, w=24):
        gen = torch.Generator().manual_seed(0)
        self.images = [torch.rand(3, h, w, generator=gen) for _ in range(count)]

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"input": self.images[i], "target": 1 - self.images[i], "name": f"img{i}"}


def _stack(view):
    return torch.stack([view[i]["input"] for i in range(len(view))])


def test_default_patch_is_the_papers_100():
    assert TrainingPatches(Images()).patch == (100, 100)


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("k", range(4))
def test_dihedral_matches_numpy(flip, k):
    image = torch.arange(3 * 4 * 5, dtype=torch.float32).view(3, 4, 5)
    expected = np.rot90(np.flip(image.numpy(), axis=2) if flip else image.numpy(), k, axes=(1, 2))
    np.testing.assert_array_equal(dihedral(image, flip, k).numpy(), expected)


def test_patch_is_the_transformed_crop_and_aligned():
    data = Images()
    view = TrainingPatches(data, patch=8, seed=3)
    for i in range(len(view)):
        item = view[i]
        p = view.params(i, 20, 24)
        crop = data.images[i][:, p.top:p.top + 8, p.left:p.left + 8]
        assert torch.equal(item["input"], dihedral(crop, p.flip, p.rot90))
        assert torch.equal(item["target"], 1 - item["input"])
        assert item["name"] == f"img{i}"


def test_reproducible_from_seed_and_epoch():
    data = Images()
    a, b = TrainingPatches(data, patch=8, seed=5), TrainingPatches(data, patch=8, seed=5)
    assert torch.equal(_stack(a), _stack(b))
    assert not torch.equal(_stack(a), _stack(TrainingPatches(data, patch=8, seed=6)))
    first = _stack(a)
    a.set_epoch(1)
    assert not torch.equal(first, _stack(a))
    a.set_epoch(0)
    assert torch.equal(first, _stack(a))


def test_all_symmetries_and_positions_are_drawn():
    view = TrainingPatches(Images(), patch=8, seed=0)
    params = [view.params(i, 20, 24) for i in range(400)]
    assert {(p.flip, p.rot90) for p in params} == {(f, k) for f in (False, True) for k in range(4)}
    assert {p.top for p in params} == set(range(13)) and {p.left for p in params} == set(range(17))
    plain = TrainingPatches(Images(), patch=8, seed=0, flips=False, rotations=False)
    assert {(p.flip, p.rot90) for p in (plain.params(i, 20, 24) for i in range(100))} == {(False, 0)}


def test_rectangular_patch_keeps_its_shape():
    view = TrainingPatches(Images(), patch=(6, 10), seed=0)
    assert {view.params(i, 20, 24).rot90 for i in range(100)} == {0, 2}
    assert all(view[i]["input"].shape == (3, 6, 10) for i in range(len(view)))


def test_dataloader_workers_give_the_same_batches():
    view = TrainingPatches(Images(count=8), patch=8, seed=11)
    view.set_epoch(2)
    serial = [b["input"] for b in DataLoader(view, batch_size=4)]
    parallel = [b["input"] for b in DataLoader(view, batch_size=4, num_workers=2)]
    assert all(torch.equal(s, p) for s, p in zip(serial, parallel)) and len(serial) == 2


def test_too_small_image_and_bad_arguments():
    with pytest.raises(ValueError, match="img0 is 20x24 \\(HxW\\), smaller than the 32x32 training patch"):
        TrainingPatches(Images(), patch=32)[0]
    with pytest.raises(ValueError, match="patch: expected a positive size"):
        TrainingPatches(Images(), patch=0)
    with pytest.raises(ValueError, match="seed: expected a non-negative integer"):
        TrainingPatches(Images(), seed=-1)
