// Tile geometry, shared-memory layout and kernel parameters of the fused CUDA derivative step.
// CUDA-free on purpose: the CUDA ops (<op>_op.cpp), the kernels (*.cu) and the host
// emulator the tests run without a GPU (tests/cuda_emulator) all compute sizes and offsets from
// this one file, so a launch and the kernel it starts cannot disagree about them.
#pragma once
#include <cstddef>
#include <cstdint>

#include "step_math.h"

namespace taylor_fast::cuda {

constexpr int kThreads = 128;     // threads per block, every kernel of the step
constexpr int kMaxChannels = 4;   // image channels C (grey, RGB, RGBA); Python reads it from _C.limits()
constexpr int kReduceThreads = 256;
// Register budgets, as resident blocks per SM (65536 registers / (kThreads * blocks)): the
// forward gets 128 registers, the backward 168. Both fit without spills (check with
// TAYLOR_FAST_PTXAS_VERBOSE=1) and roughly match what their shared memory allows on sm_90.
constexpr int kForwardMinBlocks = 4;
constexpr int kBackwardMinBlocks = 3;

enum class ScalarKind { Float, Double, Half, BFloat16 };

TF_HOST_DEVICE int scalar_size(ScalarKind k) {
  return k == ScalarKind::Double ? 8 : k == ScalarKind::Float ? 4 : 2;
}
// fp16/bf16/fp32 accumulate in fp32, fp64 in fp64
TF_HOST_DEVICE int acc_size(ScalarKind k) { return k == ScalarKind::Double ? 8 : 4; }

// One block computes a TH x TW tile of outputs. It needs h on the tile plus a 1-pixel halo
// (region E1) and g, y on the tile plus a 2-pixel halo (region E2). Hidden channels are
// processed HC at a time (HC a multiple of 4: the weight-gradient items take 4 at once).
// fp32 tiles make E1 = 16 x 32 = 4 x kThreads positions, so phase A has no idle threads.
template <typename acc_t>
struct TileConfig {
  static constexpr int TH = 14, TW = 30, HC = 8;
};
template <>
struct TileConfig<double> {  // smaller tile: fp64 shared memory must fit 99 KiB (sm_86/sm_89)
  static constexpr int TH = 6, TW = 30, HC = 8;
};

template <typename acc_t>
struct Tile {
  static constexpr int TH = TileConfig<acc_t>::TH, TW = TileConfig<acc_t>::TW, HC = TileConfig<acc_t>::HC;
  static constexpr int E1W = TW + 2, E1H = TH + 2, E1 = E1W * E1H;
  static constexpr int E2W = TW + 4, E2H = TH + 4, E2 = E2W * E2H;
  static constexpr int INNER = TH * TW;
  static constexpr int A_ITEMS = (E1 + kThreads - 1) / kThreads;     // E1 positions per thread
  static constexpr int B_ITEMS = (INNER + kThreads - 1) / kThreads;  // output pixels per thread
  static_assert(HC % 4 == 0, "hidden chunks are taken 4 channels at a time");
};

// Offsets, in acc_t elements, of the arrays a block keeps in dynamic shared memory.
// Every array starts on a 4-element boundary so smem_load can use 16-byte vector loads.
struct SmemLayout {
  int x = -1;    // [2C][E2]   g then y, over the input region
  int d = -1;    // [C][E2]    gradient reaching g_next (backward)
  int h = -1;    // [HC][E1]   hidden activation of the current chunk
  int gu = -1;   // [HC][E1]   gradient of the pre-activation (backward)
  int w1a = -1;  // [2C*9][HC] w1 by (input channel, tap), hidden fastest: phase A
  int w2b = -1;  // [HC*9][kMaxChannels] w2 by (hidden, tap), channel fastest: forward output
  int w2g = -1;  // [C*9][HC]  w2 by (channel, tap), hidden fastest: backward grad_h
  int w1d = -1;  // [HC*9][2*kMaxChannels] w1 by (hidden, tap), input channel fastest: grad_in
  int b1 = -1;   // [HC]
  int total = 0;
};

TF_HOST_DEVICE int take(int& cursor, int elements) {
  const int at = cursor;
  cursor += (elements + 3) / 4 * 4;
  return at;
}

template <typename acc_t>
TF_HOST_DEVICE SmemLayout smem_layout(int C, bool backward) {
  using T = Tile<acc_t>;
  SmemLayout s;
  int cur = 0;
  s.x = take(cur, 2 * C * T::E2);
  s.h = take(cur, T::HC * T::E1);
  s.w1a = take(cur, 2 * C * 9 * T::HC);
  s.b1 = take(cur, T::HC);
  if (backward) {
    s.d = take(cur, C * T::E2);
    s.gu = take(cur, T::HC * T::E1);
    s.w2g = take(cur, C * 9 * T::HC);
    s.w1d = take(cur, T::HC * 9 * 2 * kMaxChannels);
  } else {
    s.w2b = take(cur, T::HC * 9 * kMaxChannels);
  }
  s.total = cur;
  return s;
}

template <typename acc_t>
TF_HOST_DEVICE size_t smem_bytes(int C, bool backward) {
  return smem_layout<acc_t>(C, backward).total * sizeof(acc_t);
}

// The tensor-core forward (bf16/fp16, step_kernels_mma.cuh) uses the fp32 tiles and keeps its
// operands as 16-bit values; byte offsets, each array on a 16-byte boundary.
constexpr int kMmaHidden = 32;                    // hidden channels per chunk: 4 n8 tiles
constexpr int kMmaHiddenStride = kMmaHidden + 8;  // h row, padded: fragment loads hit 32 banks
constexpr int kMmaMaxKSteps = (2 * kMaxChannels * 9 + 15) / 16;
constexpr int kMmaMinBlocks = 3;

struct MmaSmemLayout {
  int k1_steps = 0;   // conv1's K = 2C*9 in steps of 16
  int w1_stride = 0;  // elements per row of w1 (K padded, plus 8 to spread the banks)
  int x = 0;          // [2C][E2]          g then y over the input region
  int h = 0;          // [E1][kMmaHiddenStride]  hidden activation of the chunk
  int w1 = 0;         // [kMmaHidden][w1_stride] conv1 weights by (hidden, K)
  int w2 = 0;         // [9][8][kMmaHiddenStride] conv2 weights by (tap, channel padded to 8, hidden)
  int b1 = 0;         // [kMmaHidden] floats
  int total = 0;
};

TF_HOST_DEVICE int take_bytes(int& cursor, int bytes) {
  const int at = cursor;
  cursor += (bytes + 15) / 16 * 16;
  return at;
}

TF_HOST_DEVICE MmaSmemLayout mma_smem_layout(int C) {
  using T = Tile<float>;
  MmaSmemLayout s;
  s.k1_steps = (2 * C * 9 + 15) / 16;
  s.w1_stride = s.k1_steps * 16 + 8;
  int cur = 0;
  s.x = take_bytes(cur, 2 * C * T::E2 * 2);
  s.h = take_bytes(cur, T::E1 * kMmaHiddenStride * 2);
  s.w1 = take_bytes(cur, kMmaHidden * s.w1_stride * 2);
  s.w2 = take_bytes(cur, 9 * 8 * kMmaHiddenStride * 2);
  s.b1 = take_bytes(cur, kMmaHidden * 4);
  s.total = cur;
  return s;
}

// Weight gradients of one weight set, flattened: [w1 (hidden,2C,3,3) | b1 | w2 (C,hidden,3,3) | b2]
struct WeightGradLayout {
  int64_t w1 = 0, b1 = 0, w2 = 0, b2 = 0, total = 0;
};
TF_HOST_DEVICE WeightGradLayout weight_grad_layout(int64_t C, int64_t hidden) {
  WeightGradLayout l;
  l.w1 = 0;
  l.b1 = hidden * 2 * C * 9;
  l.w2 = l.b1 + hidden;
  l.b2 = l.w2 + C * hidden * 9;
  l.total = l.b2 + C;
  return l;
}

struct Geometry {
  int64_t N = 0, C = 0, H = 0, W = 0, hidden = 0;
  int64_t tiles_y = 0, tiles_x = 0, tiles = 0;  // tiles = N * tiles_y * tiles_x
};

// An image tensor (N, C, H, W) of the call's dtype with element strides (any layout:
// NCHW, channels_last, or a slice of a stack).
struct ImageRef {
  void* data = nullptr;
  int64_t sn = 0, sc = 0, sh = 0, sw = 0;
};

// One weight set, contiguous, in the accumulation type (fp32, or fp64 for fp64 calls).
struct WeightsRef {
  const void* w1 = nullptr;
  const void* b1 = nullptr;
  const void* w2 = nullptr;
  const void* b2 = nullptr;
};

// g_out = G(g, y) + k g;  acc_out = acc_in + acc_coef * g_out   (acc_in may alias acc_out)
struct StepForwardParams {
  Geometry geo;
  ImageRef g, y, acc_in, g_out, acc_out;
  WeightsRef w;
  double k = 0, acc_coef = 0, slope = 0;
  bool tensor_cores = false;  // bf16/fp16: the mma.sync kernel instead of the SIMT one
};

// With dG = dg_scale * dg (the gradient reaching g_next):
//   grad_g = J_g^T dG + k dG + dout_scale * dout      (dout.data may be null)
//   grad_y = J_y^T dG (+ grad_y when accumulate_grad_y)
// Weight gradients go to `partials` (one row of WeightGradLayout::total per block, written or
// added per tile in a fixed order, later summed by the reduce kernel) or, when `atomic`,
// straight into `wgrad` with atomicAdd (which must then be zeroed first).
struct StepBackwardParams {
  Geometry geo;
  ImageRef g, y, dg, dout, grad_g, grad_y;
  WeightsRef w;
  double k = 0, dg_scale = 1, dout_scale = 0, slope = 0;
  bool accumulate_grad_y = false;
  bool atomic = false;
  void* wgrad = nullptr;
  void* partials = nullptr;
};

// out[e] = (accumulate ? out[e] : 0) + sum_{b < blocks} partials[b][e], b in increasing order
struct WeightGradReduceParams {
  const void* partials = nullptr;
  void* out = nullptr;
  int64_t entries = 0, blocks = 0;
  bool accumulate = false;
};

}  // namespace taylor_fast::cuda
