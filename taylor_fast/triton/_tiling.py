"""Tiling shared by the forward and backward kernels: the autotuning configs, the halo-tile
geometry, the on-the-fly im2col loads and the gather that stands in for a shifted register tile.

A program owns the interior (TH-2) x (TW-2) pixels of a TH x TW "halo tile" and evaluates the
hidden activation h on the whole halo tile, its pixels flattened row-major into the TH*TW rows of
a matrix (an implicit GEMM):
    conv1:  pre = X @ W1cat + b1      X[q, i*9 + tap] = x[i, q + d(tap)]     (im2col, K = 2C*9)
    conv2:  for each output channel c:  Z = h @ W2_c  (W2_c[j, tap] = w2[c, j, tap]),
            out[p, c] = sum_tap Z[p + d(tap), tap] + b2[c]
X is read straight from global memory (g and y with a 2-pixel halo, never concatenated); h and Z
stay on chip. Triton cannot slice or shift a register tile, so "row p + d(tap)" of Z is a
tl.gather along rows with one shift per column. Matrix dimensions are padded to powers of two
>= 16 (tl.dot's minimum): 2C*9 = 54 -> 64 for C = 3, hidden 32 stays 32, 9 taps -> 16 columns.
"""
import math
import os

import torch
import triton
import triton.language as tl

from ._registration import INTERPRETED

TAPS = 9  # a 3x3 kernel


def _config(th, tw, warps):
    return triton.Config({"TH": th, "TW": tw}, num_warps=warps, num_stages=1)


# Halo tiles TH x TW and warps tried by the autotuner. Larger tiles waste less work on the ring of
# pixels that neighbours recompute (interior/tile: 8x8 56%, 8x16 66%, 8x32 70%, 16x16 77%), but
# every program holds TH*TW x 64 (X) and TH*TW x hidden (h) tiles, so registers bound the tile.
# Chosen from benchmarks/triton_aot_report.py (sm_90, ptxas -v, compiled on a CPU machine: no GPU
# has timed them yet); C=3, hidden 32, TF32 and bf16, Triton 3.8 / 3.6:
#   forward  8x16/4 warps 111 / 111 registers, 8x32/8 and 16x16/8 148 / 148, none spill;
#   backward 8x8/8 warps spills nothing (3.6: 96 bytes in bf16); every 128-pixel tile spills in
#            both versions (8x16/8: 36-124 bytes in 3.8, 1.4-1.5 KB in 3.6; 4 warps or 16 warps
#            spill more), so the backward runs 8x8 tiles only.
# num_stages=1: there is no K loop to software-pipeline, and pipelining the backward's loop over
# tiles would only multiply its shared memory.
FORWARD_CONFIGS = [_config(8, 16, 4), _config(8, 32, 8), _config(16, 16, 8)]
BACKWARD_CONFIGS = [_config(8, 8, 8)]
# The interpreter (TRITON_INTERPRET=1, CPU tests) gets one config: nothing to tune there, and a
# single config skips the autotuner's benchmarking. TH != TW so that a row/column mix-up in the
# tile geometry cannot cancel out, and tiles small enough that the tests' images span several.
INTERPRETER_CONFIGS = [_config(8, 16, 4)]


def shared_memory_bytes(kernel: str, config, channels: int, hidden: int, dtype_bytes: int, exact: bool) -> int:
    """An upper bound on the shared memory a program takes: tl.dot stages its operands there, the
    im2col tile (twice in the backward: the image's and the gradient's) and the weight matrix
    (twice for exact fp32, whose 3xTF32 products split it in two). Fitted to what ptxas reports
    for every config, size and precision benchmarks/triton_aot_report.py compiles (exact for most,
    above it for the rest), which checks that it never falls short."""
    shapes = dot_shapes(channels, hidden)
    pixels = config.kwargs["TH"] * config.kwargs["TW"]
    tiles, k = (1, shapes["K1"]) if kernel == "forward" else (2, max(shapes["K1"], shapes["K2"]))
    return (tiles * pixels + (2 if exact else 1) * shapes["HP"]) * k * dtype_bytes


def fits_shared_memory(kernel: str, config, channels: int, hidden: int, dtype_bytes: int, exact: bool,
                       available: int) -> bool:
    return shared_memory_bytes(kernel, config, channels, hidden, dtype_bytes, exact) <= available


def shared_memory_shortfall(device, dtype: torch.dtype, channels: int, hidden: int) -> str | None:
    """Why the smallest tile of either kernel would not fit the shared memory of GPU `device` for
    these sizes, or None (the backend then refuses the call: a launch would fail)."""
    available = _device_shared_memory(device)
    for kernel, tuned in (("forward", FORWARD_CONFIGS), ("backward", BACKWARD_CONFIGS)):
        need = shared_memory_bytes(kernel, tuned[0], channels, hidden, dtype.itemsize, ieee_fp32(dtype))
        if need > available:
            return (f"the {kernel} kernel's smallest tile needs {need} bytes of shared memory for C={channels}, "
                    f"hidden={hidden}; this GPU has {available} per block")
    return None


def configs(tuned):
    return INTERPRETER_CONFIGS if INTERPRETED else tuned


def _device_shared_memory(device) -> int:
    return torch.cuda.get_device_properties(device).shared_memory_per_block_optin


def _autotuning() -> bool:
    """TAYLOR_FAST_TRITON_AUTOTUNE=0 runs the pinned config always: one compile per kernel and
    shape instead of one per config, for when compiling costs more than tuning gains (tests)."""
    return os.environ.get("TAYLOR_FAST_TRITON_AUTOTUNE", "1") != "0"


class Tunable:
    """A kernel autotuned over `tuned` configs, or pinned to the first of them while
    torch.use_deterministic_algorithms(True) is in force (or TAYLOR_FAST_TRITON_AUTOTUNE=0).

    Why pin: the tile shape decides how the backward groups pixels into per-program partial sums
    of the weight gradients, and tile and warps decide how tl.dot is lowered, so two configs can
    round differently; the autotuner picks by measured time, which can pick differently in another
    process or on a busy GPU. One fixed config makes every run agree bitwise on the same GPU. The
    first config of each list is the lightest on registers, spills and shared memory (see above).

    The key holds every argument that changes the compiled code or the best tile: the image size,
    C and hidden, and the constexpr flags (exact fp32, the backward's extra inputs); the
    autotuner adds the tensors' dtypes itself. Configs whose operands would not fit the GPU's
    shared memory are pruned before tuning."""

    KEY = ["H", "W", "C", "HIDDEN", "IEEE", "HAS_EXTRA", "ACCUMULATE_DY"]

    def __init__(self, kernel, tuned, kind: str):
        self.kind = kind
        prune = {"early_config_prune": self._prune}
        self.tuned = triton.autotune(configs=configs(tuned), key=self.KEY, prune_configs_by=prune)(kernel)
        self.pinned = triton.autotune(configs=configs(tuned)[:1], key=self.KEY)(kernel)

    def _prune(self, candidates, named_args, **kwargs):
        weights = named_args["w1_ptr"]  # the dot operands' dtype
        if weights.device.type != "cuda":  # the interpreter: no shared memory to run out of
            return candidates
        available = _device_shared_memory(weights.device)
        fitting = [c for c in candidates if fits_shared_memory(self.kind, c, kwargs["C"], kwargs["HIDDEN"],
                                                               weights.element_size(), kwargs["IEEE"], available)]
        # the backend refuses calls whose first config does not fit (shared_memory_shortfall)
        return fitting or candidates[:1]

    def for_this_call(self):
        if torch.are_deterministic_algorithms_enabled() or not _autotuning():
            return self.pinned
        return self.tuned


def padded(n: int) -> int:
    """The smallest power of two >= max(n, 16): tl.arange needs powers of two, tl.dot >= 16."""
    return max(16, triton.next_power_of_2(n))


def dot_shapes(channels: int, hidden: int) -> dict:
    """Constexpr matrix sizes of the kernels for C channels and `hidden` hidden channels."""
    return {
        "C": channels,
        "HIDDEN": hidden,
        "K1": padded(2 * channels * TAPS),  # im2col of [g, y]
        # im2col of the incoming gradient (backward). At least 64: it is also the M of the dW2
        # product D^T h, and below 64 rows Triton cannot use sm_90's wgmma there; its mma.sync
        # fallback replicated h across warps (ptxas: 255 registers, 8x16 tile, 8 warps).
        "K2": max(64, padded(channels * TAPS)),
        "HP": padded(hidden),
    }


def ieee_fp32(dtype: torch.dtype) -> bool:
    """fp32 tl.dot precision follows the flag that governs eager fp32 convolutions (the reference):
    TF32 tensor cores when torch.backends.cudnn.allow_tf32 (torch's default), fp32 accuracy
    otherwise (see mm)."""
    return dtype == torch.float32 and not torch.backends.cudnn.allow_tf32


def tiles(height: int, width: int, th: int, tw: int) -> int:
    return triton.cdiv(height, th - 2) * triton.cdiv(width, tw - 2)


def programs_for_reduction(batch: int, height: int, width: int, device: torch.device) -> int:
    """How many programs the backward runs: each reduces the weight gradients of the tiles it
    visits into one partial, and the partials are summed in a fixed order (deterministic). Enough
    programs to fill the GPU, no more (the partial buffer grows with them); under the interpreter
    a handful, so the tests exercise programs that visit several tiles."""
    most = batch * max(tiles(height, width, c.kwargs["TH"], c.kwargs["TW"]) for c in configs(BACKWARD_CONFIGS))
    if device.type != "cuda":  # the interpreter (or a trace on fake CPU tensors)
        return min(most, 3)
    return min(most, 8 * torch.cuda.get_device_properties(device).multi_processor_count)


def inverse_factorial(n: int) -> float:
    return 1.0 / math.factorial(n)


# Device helpers. `zero` is added to every index vector: 0 in the forward, and in the backward's
# loop over tiles a 0 the compiler cannot prove constant, so that it recomputes these vectors per
# tile instead of hoisting them out of the loop broadcast to whole tiles, which kept them in
# registers across it (ptxas, sm_90: 230 registers instead of 128 for the loop body alone).


@triton.jit
def tile_geometry(tile, H, W, TH: tl.constexpr, TW: tl.constexpr, zero):
    """Halo tile `tile` of an image, rows flattened row-major: (q, image row, image column,
    inside the image, owned by this program = interior of the tile and inside the image)."""
    tiles_w = tl.cdiv(W, TW - 2)
    q = tl.arange(0, TH * TW) + zero
    qr = q // TW
    qc = q % TW
    rows = (tile // tiles_w) * (TH - 2) - 1 + qr
    cols = (tile % tiles_w) * (TW - 2) - 1 + qc
    inside = (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)
    owned = inside & (qr >= 1) & (qr < TH - 1) & (qc >= 1) & (qc < TW - 1)
    return q, rows, cols, inside, owned


@triton.jit
def load_taps(base_lo, base_hi, rows, cols, H, W, SPLIT: tl.constexpr, VALID: tl.constexpr, K: tl.constexpr,
              SIGN: tl.constexpr, zero):
    """im2col from global memory, [TH*TW, K]: column kk < VALID holds channel kk // 9 at pixel
    (row, col) + SIGN * d(kk % 9), zero outside the image (zero padding). Channels below SPLIT come
    from the CHW image at base_lo, the others from base_hi: [g, y] is read without concatenating
    it. SIGN = +1 reads a convolution's inputs, -1 a transposed convolution's."""
    kk = tl.arange(0, K) + zero
    tap = kk % 9
    channel = kk // 9
    column_base = tl.where(channel < SPLIT, base_lo + channel * (H * W), base_hi + (channel - SPLIT) * (H * W))
    rr = rows[:, None] + SIGN * (tap // 3 - 1)[None, :]
    cc = cols[:, None] + SIGN * (tap % 3 - 1)[None, :]
    ok = (kk < VALID)[None, :] & (rr >= 0) & (rr < H) & (cc >= 0) & (cc < W)
    return tl.load(column_base[None, :] + (rr * W + cc), mask=ok, other=0.0)


@triton.jit
def shifted_tap_sum(z, q, TW: tl.constexpr, P: tl.constexpr, SIGN: tl.constexpr, zero):
    """out[p] = sum_{tap < 9} z[p + SIGN * d(tap), tap] for the rows p of a halo tile (z: P x 16),
    d(tap) being the tap's offset in the flattened tile. Valid for interior rows; ring rows get
    clamped indices and values that the callers never store."""
    tap = tl.arange(0, 16) + zero
    shift = (tap // 3 - 1) * TW + (tap % 3 - 1)
    src = tl.minimum(tl.maximum(q[:, None] + SIGN * shift[None, :], 0), P - 1)
    shifted = tl.gather(z, src, 0)
    # the padding columns (tap >= 9) are zero only while z is finite: never let them carry NaN/inf
    return tl.sum(tl.where((tap < 9)[None, :], shifted, 0.0), axis=1)


@triton.jit
def activate(x, slope):
    """x > 0 ? x : slope * x. relu is slope 0 and, like torch.relu, maps -inf to 0 (not
    0 * -inf = NaN) and keeps NaN (csrc/step_math.h)."""
    negative = tl.where(slope == 0.0, 0.0, x * slope)
    return tl.where(x > 0, x, tl.where(x != x, x, negative))


@triton.jit
def activate_backward(dh, x, slope):
    """dh carried back through act at the pre-activation x, as torch does (csrc/step_math.h):
    relu selects 0 where x <= 0 (NaN passes dh; an infinite dh gives 0, not NaN), leaky_relu
    keeps dh where x > 0 and scales it elsewhere (NaN included)."""
    relu = tl.where(x <= 0, 0.0, dh)
    return tl.where(slope == 0.0, relu, tl.where(x > 0, dh, dh * slope))


# Triton 3.8's interpreter multiplies bfloat16 dot operands as their raw 16-bit patterns (it
# stores bf16 as uint16 and passes those to numpy.matmul); bf16 values are exact in fp32, so the
# interpreter gets the product that the GPU's bf16 tensor cores accumulate in fp32.
_UPCAST_BF16_DOT = tl.constexpr(INTERPRETED)


@triton.jit
def mm(a, b, IEEE: tl.constexpr):
    """a @ b with fp32 accumulation. With IEEE, fp32 operands get fp32-accurate products as three
    TF32 tensor-core products (3xTF32: the high and low halves of each operand, dropping only
    low x low, about 2^-22 of the product), not Triton's "ieee" CUDA-core product: that one needs
    the whole tile's products in registers and spilled 25-84 KB per backward program on sm_90
    (ptxas, Triton 3.8), where 3xTF32 spills 1.6-3.5 KB (benchmarks/triton_aot_report.py)."""
    if _UPCAST_BF16_DOT and a.dtype == tl.bfloat16:
        a = a.to(tl.float32)
        b = b.to(tl.float32)
    if IEEE:
        out = tl.dot(a, b, input_precision="tf32x3")
    else:
        out = tl.dot(a, b)
    return out


@triton.jit
def load_im2col_weight(w_ptr, chan_stride, col_stride, K_VALID, COLS_VALID, K: tl.constexpr, COLS: tl.constexpr,
                       zero):
    """M[kk, j] = w[(kk // 9) * chan_stride + j * col_stride + kk % 9] (K x COLS, zero padded): a
    contiguous 3x3 weight read as the right-hand side of an im2col product, with no host repacking.
    conv1: W1cat[kk, j] = w1[j, kk//9, kk%9]; backward's dh: W2T[kk, j] = w2[kk//9, j, kk%9]."""
    kk = (tl.arange(0, K) + zero)[:, None]
    j = (tl.arange(0, COLS) + zero)[None, :]
    offset = (kk // 9) * chan_stride + j * col_stride + kk % 9
    return tl.load(w_ptr + offset, mask=(kk < K_VALID) & (j < COLS_VALID), other=0.0)


@triton.jit
def load_tap_matrix(w_ptr, row_stride, ROWS_VALID, ROWS: tl.constexpr, zero):
    """M[r, tap] = w[r * row_stride + tap] (ROWS x 16, zero padded): the right-hand side whose
    product shifted_tap_sum turns into one channel of a convolution.
    forward: w2[c, j, tap] (r = j); backward's dx: w1[j, i, tap] (r = j)."""
    r = (tl.arange(0, ROWS) + zero)[:, None]
    tap = (tl.arange(0, 16) + zero)[None, :]
    return tl.load(w_ptr + r * row_stride + tap, mask=(tap < 9) & (r < ROWS_VALID), other=0.0)
