"""One derivative step in Triton: g_next = G(g, y) + k g, acc_next = acc + g_next / (k+1)!, and
its hand-written backward. The kernels here also serve the whole expansion (expand.py), which
launches them once per order.

Forward, per halo tile (see _tiling.py for the layout): pre = X @ W1cat + b1, h = act(pre) (zero
outside the image: conv2's zero padding applies to h), then per output channel G = shifted-tap
sum of h @ W2_c, plus b2; the epilogue adds k g and updates acc. Only g_next and acc_next are written.

Backward, with dG the gradient reaching g_next (h is recomputed, never saved: docs/kernels.md):
    dh   = D @ W2T          D[q, c*9 + tap] = dG[c, q - d(tap)]   (im2col read of dG)
    dpre = dh * act'(pre)   (zero outside the image)
    dx_i = shifted-tap sum of dpre @ W1_i per input channel i -> grad_g = dx[:C] + k dG (+ extra),
           grad_y = dx[C:] (+ the previous orders' grad_y)
    dW1 += X^T dpre,  db1 += sum dpre,  dW2 += D^T h,  db2 += sum dG    (over owned pixels only)
Each backward program visits tiles pid, pid + programs, ... and keeps its weight-gradient sums in
registers; the host adds the per-program partials in a fixed order, so results are deterministic.
"""
import torch
import triton
import triton.language as tl
from torch import Tensor

from .. import _autograd
# The @triton.jit helpers are imported by name, never called as module attributes: inductor
# compiles a traced kernel from a copy of its source plus the jit functions it names directly,
# so `_tiling.mm(...)` inside a kernel would refer to a module its copy does not have.
from ._tiling import (
    BACKWARD_CONFIGS, FORWARD_CONFIGS, Tunable, activate, activate_backward, dot_shapes, ieee_fp32,
    inverse_factorial, load_im2col_weight, load_tap_matrix, load_taps, mm, programs_for_reduction,
    shifted_tap_sum, tile_geometry, tiles,
)
from ._registration import PREFIX, define, like, wrap_triton


# Image sizes are not specialised on (divisible by 16, equal to 1): each such variant would be a
# compile of its own, seconds each, for loads that are masked gathers either way.
@triton.jit(do_not_specialize=["H", "W"])
def _step_forward_kernel(
    g_ptr, y_ptr, acc_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, g_out_ptr, acc_out_ptr,
    H, W, k_coef, inv_fact, slope,
    C: tl.constexpr, HIDDEN: tl.constexpr, K1: tl.constexpr, K2: tl.constexpr, HP: tl.constexpr,
    IEEE: tl.constexpr, TH: tl.constexpr, TW: tl.constexpr,
):
    image = tl.program_id(1).to(tl.int64) * (C * H * W)
    q, rows, cols, inside, owned = tile_geometry(tl.program_id(0), H, W, TH, TW, 0)
    x = load_taps(g_ptr + image, y_ptr + image, rows, cols, H, W, C, 2 * C * 9, K1, 1, 0)
    hid = tl.arange(0, HP)
    w1 = load_im2col_weight(w1_ptr, 9, 2 * C * 9, 2 * C * 9, HIDDEN, K1, HP, 0)
    b1 = tl.load(b1_ptr + hid, mask=hid < HIDDEN, other=0.0).to(tl.float32)
    pre = mm(x, w1, IEEE) + b1[None, :]
    h = tl.where(inside[:, None] & (hid < HIDDEN)[None, :], activate(pre, slope), 0.0).to(w1.dtype)

    pixel = image + rows * W + cols
    for c in tl.static_range(C):
        w2 = load_tap_matrix(w2_ptr + c * (HIDDEN * 9), 9, HIDDEN, HP, 0)
        g_next = shifted_tap_sum(mm(h, w2, IEEE), q, TW, TH * TW, 1, 0) + tl.load(b2_ptr + c).to(tl.float32)
        offsets = pixel + c * (H * W)
        if k_coef != 0.0:  # k = 0 adds nothing (and must not turn an inf in g into NaN)
            g_next += k_coef * tl.load(g_ptr + offsets, mask=owned, other=0.0).to(tl.float32)
        acc = tl.load(acc_ptr + offsets, mask=owned, other=0.0).to(tl.float32)
        tl.store(g_out_ptr + offsets, g_next, mask=owned)
        tl.store(acc_out_ptr + offsets, acc + g_next * inv_fact, mask=owned)


@triton.jit(do_not_specialize=["N", "H", "W", "programs"])
def _step_backward_kernel(
    dg_ptr, g_ptr, y_ptr, w1_ptr, b1_ptr, w2_ptr, extra_ptr, dy_in_ptr, grad_g_ptr, dy_out_ptr,
    pw1_ptr, pb1_ptr, pw2_ptr, pb2_ptr,
    N, H, W, k_coef, extra_coef, slope, programs,
    C: tl.constexpr, HIDDEN: tl.constexpr, K1: tl.constexpr, K2: tl.constexpr, HP: tl.constexpr,
    IEEE: tl.constexpr, HAS_EXTRA: tl.constexpr, ACCUMULATE_DY: tl.constexpr, TH: tl.constexpr, TW: tl.constexpr,
):
    pid = tl.program_id(0)
    tiles_per_image = tl.cdiv(H, TH - 2) * tl.cdiv(W, TW - 2)
    total_tiles = N * tiles_per_image
    dw1 = tl.zeros((K1, HP), dtype=tl.float32)
    db1 = tl.zeros((HP,), dtype=tl.float32)
    dw2 = tl.zeros((K2, HP), dtype=tl.float32)
    db2 = tl.zeros((K2,), dtype=tl.float32)

    # Registers are what limit this kernel: the statements are ordered so that few tiles are live
    # at once, and the small weight tiles are re-read per tile (from cache). `zero`: see _tiling.
    # A while loop, not range(pid, total_tiles, programs): Triton 3.6's interpreter cannot take a
    # range over runtime values (it converts a 1-element array to an int, which NumPy refuses).
    tile = pid
    while tile < total_tiles:
        zero = tile // total_tiles
        image = (tile // tiles_per_image).to(tl.int64) * (C * H * W)
        q, rows, cols, inside, owned = tile_geometry(tile % tiles_per_image, H, W, TH, TW, zero)
        hid = tl.arange(0, HP) + zero
        d = load_taps(dg_ptr + image, dg_ptr + image, rows, cols, H, W, C, C * 9, K2, -1, zero).to(tl.float32)
        w2t = load_im2col_weight(w2_ptr, HIDDEN * 9, 9, C * 9, HIDDEN, K2, HP, zero)
        dot_type = w2t.dtype
        dh = mm(d.to(dot_type), w2t, IEEE)
        x = load_taps(g_ptr + image, y_ptr + image, rows, cols, H, W, C, 2 * C * 9, K1, 1, zero)
        w1 = load_im2col_weight(w1_ptr, 9, 2 * C * 9, 2 * C * 9, HIDDEN, K1, HP, zero)
        b1 = tl.load(b1_ptr + hid, mask=hid < HIDDEN, other=0.0).to(tl.float32)
        pre = mm(x, w1, IEEE) + b1[None, :]
        real = inside[:, None] & (hid < HIDDEN)[None, :]
        dpre = tl.where(real, activate_backward(dh, pre, slope), 0.0)
        h = tl.where(real, activate(pre, slope), 0.0)

        # Weight gradients: each pixel counts once, in the program that owns it. dW2's pixel is
        # the output q - d(tap) that D's column reads, so D is masked by that pixel's ownership
        # (D is already zero where that pixel is outside the image).
        dpre_owned = tl.where(owned[:, None], dpre, 0.0)
        dw1 += mm(tl.trans(x), dpre_owned.to(dot_type), IEEE)
        db1 += tl.sum(dpre_owned, axis=0)
        tap2 = (tl.arange(0, K2) + zero) % 9
        qr = (q // TW)[:, None] - (tap2 // 3 - 1)[None, :]
        qc = (q % TW)[:, None] - (tap2 % 3 - 1)[None, :]
        d_owned = tl.where((qr >= 1) & (qr < TH - 1) & (qc >= 1) & (qc < TW - 1), d, 0.0)
        dw2 += mm(tl.trans(d_owned.to(dot_type)), h.to(dot_type), IEEE)
        db2 += tl.sum(d_owned, axis=0)

        # dx = conv_transpose(dpre, w1), one input channel at a time: g's, then y's
        dpre = dpre.to(dot_type)
        pixel = image + rows * W + cols
        for i in tl.static_range(2 * C):
            w1_i = load_tap_matrix(w1_ptr + i * 9, 2 * C * 9, HIDDEN, HP, zero)
            dx = shifted_tap_sum(mm(dpre, w1_i, IEEE), q, TW, TH * TW, -1, zero)
            if i < C:
                offsets = pixel + i * (H * W)
                if k_coef != 0.0:
                    dx += k_coef * tl.load(dg_ptr + offsets, mask=owned, other=0.0).to(tl.float32)
                if HAS_EXTRA:
                    dx += extra_coef * tl.load(extra_ptr + offsets, mask=owned, other=0.0).to(tl.float32)
                tl.store(grad_g_ptr + offsets, dx, mask=owned)
            else:
                offsets = pixel + (i - C) * (H * W)
                if ACCUMULATE_DY:
                    dx += tl.load(dy_in_ptr + offsets, mask=owned, other=0.0).to(tl.float32)
                tl.store(dy_out_ptr + offsets, dx, mask=owned)
        tile += programs

    row = pid.to(tl.int64)
    hid = tl.arange(0, HP)
    j = hid[None, :]
    kk1 = tl.arange(0, K1)[:, None]
    tl.store(pw1_ptr + row * (HIDDEN * 2 * C * 9) + j * (2 * C * 9) + kk1, dw1,
             mask=(kk1 < 2 * C * 9) & (j < HIDDEN))
    tl.store(pb1_ptr + row * HIDDEN + hid, db1, mask=hid < HIDDEN)
    kk2 = tl.arange(0, K2)
    k2 = kk2[:, None]
    tl.store(pw2_ptr + row * (C * HIDDEN * 9) + (k2 // 9) * (HIDDEN * 9) + j * 9 + k2 % 9, dw2,
             mask=(k2 < C * 9) & (j < HIDDEN))
    # the sum over owned pixels of dG[c] is D's centre-tap column of channel c
    tl.store(pb2_ptr + row * C + kk2 // 9, db2, mask=(kk2 % 9 == 4) & (kk2 < C * 9))


_step_forward = Tunable(_step_forward_kernel, FORWARD_CONFIGS, "forward")
_step_backward = Tunable(_step_backward_kernel, BACKWARD_CONFIGS, "backward")


def launch_forward(g, y, acc, weights, g_out, acc_out, k, slope):
    """One forward step on contiguous (N, C, H, W) images into g_out and acc_out (which must not
    alias the inputs: neighbouring programs read g's halo, and the autotuner reruns the kernel)."""
    w1, b1, w2, b2 = (w.contiguous() for w in weights)
    batch, channels, height, width = g.shape

    def grid(meta):
        return (tiles(height, width, meta["TH"], meta["TW"]), batch)

    wrap_triton(_step_forward.for_this_call())[grid](
        g, y, acc, w1, b1, w2, b2, g_out, acc_out,
        height, width, float(k), inverse_factorial(k + 1), float(slope),
        IEEE=ieee_fp32(w1.dtype), **dot_shapes(channels, w1.shape[0]),
    )


def launch_backward(dg, g, y, weights, k, slope, grad_g, grad_y, extra=None, extra_coef=0.0, dy_in=None):
    """One backward step on contiguous images. Writes grad_g = J^T dg + k dg (+ extra_coef * extra)
    and grad_y (+ dy_in); returns the fp32 weight gradients (w1, b1, w2, b2), each the fixed-order
    sum of the per-program partials."""
    w1, b1, w2, b2 = (w.contiguous() for w in weights)
    batch, channels, height, width = g.shape
    programs = programs_for_reduction(batch, height, width, g.device)
    partials = [torch.empty((programs, w.numel()), device=g.device, dtype=torch.float32) for w in (w1, b1, w2, b2)]
    wrap_triton(_step_backward.for_this_call())[(programs,)](
        dg, g, y, w1, b1, w2,
        dg if extra is None else extra, y if dy_in is None else dy_in,  # unread when absent
        grad_g, grad_y, *partials,
        batch, height, width, float(k), float(extra_coef), float(slope), programs,
        IEEE=ieee_fp32(w1.dtype), HAS_EXTRA=extra is not None, ACCUMULATE_DY=dy_in is not None,
        **dot_shapes(channels, w1.shape[0]),
    )
    return tuple(p.sum(0).view(w.shape) for p, w in zip(partials, (w1, b1, w2, b2)))


@define("step_forward")
def step_forward(g: Tensor, y: Tensor, acc: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, k: int,
                 negative_slope: float) -> tuple[Tensor, Tensor]:
    g_c, y_c, acc_c = (t.contiguous() for t in (g, y, acc))
    g_next, acc_next = torch.empty_like(g_c), torch.empty_like(acc_c)
    launch_forward(g_c, y_c, acc_c, (w1, b1, w2, b2), g_next, acc_next, k, negative_slope)
    return like(g_next, g), like(acc_next, acc)


@define("step_backward")
def step_backward(grad_g_next: Tensor, g: Tensor, y: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor,
                  k: int, negative_slope: float) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    dg, g_c, y_c = (t.contiguous() for t in (grad_g_next, g, y))
    grad_g, grad_y = torch.empty_like(g_c), torch.empty_like(y_c)
    weights = (w1, b1, w2, b2)
    sums = launch_backward(dg, g_c, y_c, weights, k, negative_slope, grad_g, grad_y)
    return (like(grad_g, g), like(grad_y, y), *(like(s.to(w.dtype), w) for s, w in zip(sums, weights)))


_autograd.register_step_autograd(f"{PREFIX}step_forward", torch.ops.taylor_fast.triton_step_backward)
