import os

import pytest
import torch

# Triton kernels run on CPU tensors through Triton's interpreter when no GPU is present; the
# variable is read when a kernel is decorated, so it is set before any test imports them.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def make_weights(channels=3, hidden=8, orders=None, dtype=torch.float64, scale=0.3, seed=0, kernel=3):
    """Random G weights (w1, b1, w2, b2): shared, or `orders` per-order sets."""
    gen = torch.Generator().manual_seed(seed)
    lead = () if orders is None else (orders,)
    shapes = [(hidden, 2 * channels, kernel, kernel), (hidden,), (channels, hidden, kernel, kernel), (channels,)]
    return [(scale * torch.randn(*lead, *s, generator=gen)).to(dtype) for s in shapes]


def make_images(n=2, channels=3, h=7, w=9, dtype=torch.float64, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [torch.rand(n, channels, h, w, generator=gen).to(dtype) for _ in range(2)]


@pytest.fixture
def weights():
    return make_weights
