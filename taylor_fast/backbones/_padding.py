"""Mirror padding to the size multiple a network needs, and cropping back, for any H and W."""
import torch

MODES = ("reflect", "symmetric")


def _pad_axis(x, before, after, dim, keep_edge):
    """Pad dim -1 (width) or -2 (height); each pass reflects at most the current size."""
    while before or after:
        size = x.shape[dim]
        if not keep_edge and size == 1:  # nothing to reflect: numpy repeats the pixel
            return torch.cat([x.narrow(dim, 0, 1)] * before + [x] + [x.narrow(dim, 0, 1)] * after, dim=dim)
        room = size if keep_edge else size - 1
        b, a = min(before, room), min(after, room)
        skip = 0 if keep_edge else 1
        head = x.narrow(dim, skip, b).flip(dim)
        tail = x.narrow(dim, size - skip - a, a).flip(dim)
        x = torch.cat([head, x, tail], dim=dim)
        before, after = before - b, after - a
    return x


def mirror_pad(x: torch.Tensor, left: int, right: int, top: int, bottom: int, mode: str = "reflect") -> torch.Tensor:
    """Pad the last two dims as numpy.pad's "reflect" (edge pixel not repeated) and "symmetric"
    (edge repeated) modes do, by any amount: pads larger than the image are done in several
    reflections, and a reflected side of one pixel is repeated.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    keep_edge = mode == "symmetric"
    return _pad_axis(_pad_axis(x, left, right, -1, keep_edge), top, bottom, -2, keep_edge)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad the bottom and right of (N, C, H, W) so that H and W are multiples of `multiple`."""
    height, width = x.shape[-2:]
    return mirror_pad(x, 0, -width % multiple, 0, -height % multiple)


def crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The top-left height x width of x (undoes pad_to_multiple)."""
    return x[..., :height, :width]
