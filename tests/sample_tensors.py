"""Random images and G weights for the tests, the same for a given seed on every machine."""
import torch


def make_weights(channels=3, hidden=8, orders=None, dtype=torch.float64, scale=0.3, seed=0, kernel=3):
    """Random G weights (w1, b1, w2, b2): shared, or `orders` per-order sets."""
    gen = torch.Generator().manual_seed(seed)
    lead = () if orders is None else (orders,)
    shapes = [(hidden, 2 * channels, kernel, kernel), (hidden,), (channels, hidden, kernel, kernel), (channels,)]
    return [(scale * torch.randn(*lead, *s, generator=gen)).to(dtype) for s in shapes]


def make_images(n=2, channels=3, h=7, w=9, dtype=torch.float64, seed=1):
    """Two random (n, channels, h, w) images in [0, 1): f (or g) and y."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.rand(n, channels, h, w, generator=gen).to(dtype) for _ in range(2)]
