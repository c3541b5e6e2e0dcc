"""Tiling shared by the forward and backward kernels: the autotuning configs, the halo-tile
geometry, the on-the-fly im2col loads and the gather that stands in for a shifted register tile.

A program owns the interior (TH-2) x (TW-2) pixels of a TH x TW "halo tile" and evaluates the
hidden activation h on the whole halo tile, flattened row-major into TH*TW rows of a matrix:
    conv1:  pre[q, :] = X[q, :] @ W1cat        X[q, i*9 + tap] = x[i, q + d(tap)]   (im2col, K = 2C*9)
    conv2:  Z = h @ W2cat  (W2cat[j, c*16 + tap] = w2[c, j, tap]),  out[p, c] = sum_tap Z[p + d(tap), c*16 + tap]
The im2col operand comes straight from global memory (g and y are read with a 2-pixel halo, never
concatenated); h and Z stay on chip. Triton cannot slice a register tile, so "row p + d(tap)" of Z
is a tl.gather along rows with one shift per column, followed by a sum over each 16-column group.
Matrix dimensions are padded to powers of two >= 16 (tl.dot's minimum): 2C*9 = 54 -> 64 for
C = 3; hidden 32 stays 32; the 9 taps of a channel occupy a 16-column group.
"""
import math

import torch
import triton
import triton.language as tl

from ._registration import INTERPRETED

TAPS = 9  # a 3x3 kernel
TAP_GROUP = 16  # columns per channel in the gathered tiles (9 taps padded to a power of two)


def _config(th, tw, warps):
    return triton.Config({"TH": th, "TW": tw}, num_warps=warps, num_stages=1)


# Halo tiles (TH x TW) tried by the autotuner. Larger tiles waste less work on the 1-pixel ring
# that is recomputed by neighbours (interior/tile: 8x16 66%, 16x16 77%, 16x32 82%) but hold more
# registers per program (X, h and Z are TH*TW x 64/32/64 fp32 tiles), so the best one depends on
# the GPU and dtype. num_stages=1: the kernels have no K loop to software-pipeline, and pipelining
# the backward's persistent tile loop would only multiply its shared-memory footprint.
FORWARD_CONFIGS = [_config(8, 16, 4), _config(16, 16, 4), _config(16, 16, 8), _config(16, 32, 8)]
BACKWARD_CONFIGS = [_config(8, 16, 4), _config(16, 16, 4), _config(16, 16, 8)]
# The interpreter (TRITON_INTERPRET=1, CPU tests) gets one config: nothing to tune there, and a
# single config skips the autotuner's benchmarking. TH != TW so that a row/column mix-up in the
# tile geometry cannot cancel out, and tiles small enough that the tests' images span several.
INTERPRETER_CONFIGS = [_config(8, 16, 4)]


def configs(tuned):
    return INTERPRETER_CONFIGS if INTERPRETED else tuned


def padded(n: int) -> int:
    """The smallest power of two >= max(n, 16): tl.arange needs powers of two, tl.dot >= 16."""
    return max(16, triton.next_power_of_2(n))


def dot_shapes(channels: int, hidden: int) -> dict:
    """Constexpr matrix sizes of the kernels for C channels and `hidden` hidden channels."""
    return {
        "C": channels,
        "HIDDEN": hidden,
        "K1": padded(2 * channels * TAPS),  # im2col of [g, y]
        "K2": padded(channels * TAPS),  # im2col of the incoming gradient (backward)
        "HP": padded(hidden),
        "CP": triton.next_power_of_2(channels),  # channel groups of the tiles sum_shifted_taps reduces
    }


def ieee_fp32(dtype: torch.dtype) -> bool:
    """fp32 tl.dot precision follows the flag that governs eager fp32 convolutions (the reference):
    TF32 tensor cores when torch.backends.cudnn.allow_tf32 (torch's default), exact fp32 otherwise."""
    return dtype == torch.float32 and not torch.backends.cudnn.allow_tf32


def tiles(height: int, width: int, th: int, tw: int) -> int:
    return triton.cdiv(height, th - 2) * triton.cdiv(width, tw - 2)


def max_tiles(height: int, width: int, config_list) -> int:
    return max(tiles(height, width, c.kwargs["TH"], c.kwargs["TW"]) for c in configs(config_list))


@triton.jit
def tile_geometry(tile, H, W, TH: tl.constexpr, TW: tl.constexpr):
    """Halo tile `tile` of an image, rows flattened row-major: (q, image row, image column,
    inside the image, owned by this program = interior of the tile and inside the image)."""
    tiles_w = tl.cdiv(W, TW - 2)
    q = tl.arange(0, TH * TW)
    qr = q // TW
    qc = q % TW
    rows = (tile // tiles_w) * (TH - 2) - 1 + qr
    cols = (tile % tiles_w) * (TW - 2) - 1 + qc
    inside = (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)
    owned = inside & (qr >= 1) & (qr < TH - 1) & (qc >= 1) & (qc < TW - 1)
    return q, rows, cols, inside, owned


@triton.jit
def load_taps(base_lo, base_hi, rows, cols, H, W, SPLIT: tl.constexpr, VALID: tl.constexpr, K: tl.constexpr,
              SIGN: tl.constexpr):
    """im2col from global memory, [TH*TW, K]: column kk < VALID holds channel kk // 9 at pixel
    (row, col) + SIGN * d(kk % 9), zero outside the image (zero padding). Channels below SPLIT come
    from the CHW image at base_lo, the others from base_hi: [g, y] is read without concatenating
    it. SIGN = +1 reads a convolution's inputs, -1 a transposed convolution's."""
    kk = tl.arange(0, K)
    tap = kk % 9
    channel = kk // 9
    column_base = tl.where(channel < SPLIT, base_lo + channel * (H * W), base_hi + (channel - SPLIT) * (H * W))
    rr = rows[:, None] + SIGN * (tap // 3 - 1)[None, :]
    cc = cols[:, None] + SIGN * (tap % 3 - 1)[None, :]
    ok = (kk < VALID)[None, :] & (rr >= 0) & (rr < H) & (cc >= 0) & (cc < W)
    return tl.load(column_base[None, :] + (rr * W + cc), mask=ok, other=0.0)


@triton.jit
def sum_shifted_taps(z, q, TW: tl.constexpr, P: tl.constexpr, GROUPS: tl.constexpr, SIGN: tl.constexpr):
    """out[p, c] = sum_{tap < 9} z[p + SIGN * d(tap), c*16 + tap] for the rows p of a halo tile,
    d(tap) being the tap's offset in the flattened tile. Valid for interior rows; the clamped
    indices of ring rows give values the callers never store."""
    col = tl.arange(0, GROUPS * 16)
    tap = col % 16
    shift = (tap // 3 - 1) * TW + (tap % 3 - 1)
    src = tl.minimum(tl.maximum(q[:, None] + SIGN * shift[None, :], 0), P - 1)
    shifted = tl.gather(z, src, 0)
    # the padding columns (tap >= 9) are zero only if z is finite; never let them carry NaN/inf
    shifted = tl.where((tap < 9)[None, :], shifted, 0.0)
    return tl.sum(tl.reshape(shifted, (P, GROUPS, 16)), axis=2)


@triton.jit
def activate(x, slope):
    """x > 0 ? x : slope * x. relu is slope 0 and, like torch.relu, maps -inf to 0 (not
    0 * -inf = NaN) and keeps NaN (csrc/step_math.h)."""
    negative = tl.where(slope == 0.0, 0.0, x * slope)
    return tl.where(x > 0, x, tl.where(x != x, x, negative))


@triton.jit
def activate_grad(x, slope):
    """d act / dx at the pre-activation (relu: 0 at x <= 0, as torch's threshold_backward)."""
    return tl.where(x > 0, 1.0, slope)


@triton.jit
def mm(a, b, IEEE: tl.constexpr):
    """a @ b with fp32 accumulation; fp32 operands use exact fp32 products when IEEE."""
    if IEEE:
        out = tl.dot(a, b, input_precision="ieee")
    else:
        out = tl.dot(a, b)
    return out


@triton.jit
def load_im2col_weight(w_ptr, chan_stride, col_stride, K_VALID, COLS_VALID, K: tl.constexpr, COLS: tl.constexpr):
    """M[kk, j] = w[(kk // 9) * chan_stride + j * col_stride + kk % 9] (K x COLS, zero padded): a
    contiguous 3x3 weight read as the right-hand side of an im2col product, with no host repacking.
    conv1: W1cat[kk, j] = w1[j, kk//9, kk%9]; backward's dh: W2T[kk, j] = w2[kk//9, j, kk%9]."""
    kk = tl.arange(0, K)[:, None]
    j = tl.arange(0, COLS)[None, :]
    offset = (kk // 9) * chan_stride + j * col_stride + kk % 9
    return tl.load(w_ptr + offset, mask=(kk < K_VALID) & (j < COLS_VALID), other=0.0)


@triton.jit
def load_tap_groups(w_ptr, group_stride, row_stride, GROUPS_VALID, ROWS_VALID, ROWS: tl.constexpr,
                    GROUPS: tl.constexpr):
    """M[r, g*16 + tap] = w[g * group_stride + r * row_stride + tap] (ROWS x GROUPS*16, zero padded):
    the right-hand side whose product sum_shifted_taps turns into a convolution.
    forward: W2cat[j, c*16 + tap] = w2[c, j, tap]; backward's dx: W1g[j, c*16 + tap] = w1[j, c (+C), tap]."""
    r = tl.arange(0, ROWS)[:, None]
    col = tl.arange(0, GROUPS * 16)[None, :]
    group = col // 16
    tap = col % 16
    mask = (group < GROUPS_VALID) & (tap < 9) & (r < ROWS_VALID)
    return tl.load(w_ptr + group * group_stride + r * row_stride + tap, mask=mask, other=0.0)


def programs_for_reduction(batch: int, height: int, width: int, device: torch.device) -> int:
    """How many programs the backward runs: each reduces the weight gradients of the tiles it
    visits into one partial, and the partials are summed in a fixed order (deterministic). Enough
    programs to fill the GPU, no more (the partial buffer grows with them); under the interpreter
    a handful, so the tests exercise programs that visit several tiles."""
    most = batch * max_tiles(height, width, BACKWARD_CONFIGS)
    if device.type != "cuda":  # the interpreter (or a trace on fake CPU tensors)
        return min(most, 3)
    return min(most, 8 * torch.cuda.get_device_properties(device).multi_processor_count)


def inverse_factorial(n: int) -> float:
    return 1.0 / math.factorial(n)
