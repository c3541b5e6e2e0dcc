// The forward step on tensor cores, for bf16 and fp16 inputs: the tiles, halos, chunking and
// epilogue of step_forward_block (step_kernels.cuh), with both convolutions as implicit GEMMs
// on mma.sync m16n8k16 (fp32 accumulation). Like step_kernels.cuh it is compiled for CUDA and
// for the host emulator, which executes the mma instructions lane by lane from the fragment
// layout of the PTX ISA. The platform adds raw_bits, bits_from_float, float_from_bits,
// load_pair, store_pair and mma_16816.
//
//   conv1  M = the 512 positions of E1 (32 tiles of 16 = half an E1 row each)
//          N = the chunk's 32 hidden channels (4 tiles of 8)
//          K = (input channel, tap) = 2C*9, zero-padded to a multiple of 16
//   conv2  M = the tile's pixels (2 tiles per row; the second covers columns 16..29 and
//              two padding columns that are computed from valid memory and dropped)
//          N = the C image channels, zero-padded to 8
//          K = (tap, hidden channel) = 9 * 32 per chunk
// h is rounded to the input type between the convolutions (the eager reference rounds its
// convolution output the same way); everything else accumulates in fp32.
#pragma once
#include "cuda/step_kernels.cuh"

namespace taylor_fast::cuda {

// x16[koff + position offset], or 0 where koff marks K padding (-1)
TF_DEVICE uint16_t x_or_zero(const uint16_t* x16, int koff, int pos) { return koff < 0 ? uint16_t(0) : x16[koff + pos]; }

TF_DEVICE uint32_t pack(uint16_t lo, uint16_t hi) { return static_cast<uint32_t>(lo) | static_cast<uint32_t>(hi) << 16; }

template <typename scalar_t>
TF_DEVICE void step_forward_block_mma(const StepForwardParams& p) {
  using T = Tile<float>;
  constexpr int kWarps = kThreads / 32;
  constexpr int M1_TILES = T::E1 / 16, M2_TILES = 2 * T::TH, M2_PER_WARP = M2_TILES / kWarps;
  constexpr int HS = kMmaHiddenStride;
  static_assert(T::E1W == 32 && T::TW > 16 && T::TW <= 32, "two conv2 tiles per row, one conv1 tile per half E1 row");
  static_assert(M1_TILES % kWarps == 0 && M2_TILES % kWarps == 0, "warps share the tiles evenly");
  const scalar_t* tag = nullptr;
  const int C = static_cast<int>(p.geo.C), K1 = 2 * C * 9, hidden = static_cast<int>(p.geo.hidden);
  const MmaSmemLayout L = mma_smem_layout(C);
  unsigned char* smem = dynamic_smem();
  uint16_t* x16 = reinterpret_cast<uint16_t*>(smem + L.x);
  uint16_t* h16 = reinterpret_cast<uint16_t*>(smem + L.h);
  uint16_t* w1m = reinterpret_cast<uint16_t*>(smem + L.w1);
  uint16_t* w2m = reinterpret_cast<uint16_t*>(smem + L.w2);
  float* b1s = reinterpret_cast<float*>(smem + L.b1);
  const int warp = threadIdx.x / 32, g = threadIdx.x % 32 / 4, t = threadIdx.x % 4;
  const float slope = static_cast<float>(p.slope);
  const float* w1 = static_cast<const float*>(p.w.w1);
  const float* w2 = static_cast<const float*>(p.w.w2);
  const float* b1 = static_cast<const float*>(p.w.b1);
  const TileOrigin o = tile_origin<T>(p.geo, blockIdx.x);

  load_conv1_input<T, scalar_t>(x16, p.g, p.y, C, p.geo, o, [](scalar_t v) { return raw_bits(v); });

  // the lane's four conv1 K columns per step: 2t, 2t+1, 2t+8, 2t+9 -> offset in x16 of
  // (input channel, tap) relative to a position's top-left tap, -1 for K padding
  int koff[kMmaMaxKSteps][4];
#pragma unroll
  for (int ks = 0; ks < kMmaMaxKSteps; ++ks)
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int k = ks * 16 + 2 * t + (q & 1) + (q >> 1) * 8;
      const int ci = k / 9, tap = k % 9;
      koff[ks][q] = k < K1 ? ci * T::E2 + (tap / 3) * T::E2W + tap % 3 : -1;
    }

  float out[M2_PER_WARP][4];
#pragma unroll
  for (int i = 0; i < M2_PER_WARP; ++i)
#pragma unroll
    for (int q = 0; q < 4; ++q) out[i][q] = 0.f;

  for (int j0 = 0; j0 < hidden; j0 += kMmaHidden) {
    __syncthreads();  // the previous chunk is done with the weights and h
    for (int idx = threadIdx.x; idx < kMmaHidden * L.w1_stride; idx += kThreads) {
      const int n = idx / L.w1_stride, k = idx % L.w1_stride, j = j0 + n;
      w1m[idx] = (k < K1 && j < hidden) ? bits_from_float(w1[static_cast<int64_t>(j) * K1 + k], tag) : uint16_t(0);
    }
    for (int idx = threadIdx.x; idx < 9 * 8 * HS; idx += kThreads) {
      const int jj = idx % HS, n = idx / HS % 8, tap = idx / HS / 8, j = j0 + jj;
      const bool real = n < C && jj < kMmaHidden && j < hidden;
      w2m[idx] = real ? bits_from_float(w2[(static_cast<int64_t>(n) * hidden + j) * 9 + tap], tag) : uint16_t(0);
    }
    for (int jj = threadIdx.x; jj < kMmaHidden; jj += kThreads) b1s[jj] = j0 + jj < hidden ? b1[j0 + jj] : 0.f;
    __syncthreads();

    // conv1 -> h16. The chunk's B fragments stay in registers across the warp's 8 M tiles.
    uint32_t bw[kMmaMaxKSteps][4][2];
#pragma unroll
    for (int ks = 0; ks < kMmaMaxKSteps; ++ks)
#pragma unroll
      for (int nt = 0; nt < 4; ++nt) {
        const uint16_t* row = w1m + (nt * 8 + g) * L.w1_stride + ks * 16 + 2 * t;
        bw[ks][nt][0] = ks < L.k1_steps ? load_pair(row) : 0u;
        bw[ks][nt][1] = ks < L.k1_steps ? load_pair(row + 8) : 0u;
      }
#pragma unroll 1
    for (int mt = warp; mt < M1_TILES; mt += kWarps) {
      const int pos = mt * 16 + g;                                // E1 position of row g; row g+8 is pos + 8
      const int base = (pos / T::E1W) * T::E2W + pos % T::E1W;    // its top-left tap in x16
      float acc[4][4] = {};
#pragma unroll
      for (int ks = 0; ks < kMmaMaxKSteps; ++ks) {
        if (ks >= L.k1_steps) break;
        const uint32_t a[4] = {
            pack(x_or_zero(x16, koff[ks][0], base), x_or_zero(x16, koff[ks][1], base)),
            pack(x_or_zero(x16, koff[ks][0], base + 8), x_or_zero(x16, koff[ks][1], base + 8)),
            pack(x_or_zero(x16, koff[ks][2], base), x_or_zero(x16, koff[ks][3], base)),
            pack(x_or_zero(x16, koff[ks][2], base + 8), x_or_zero(x16, koff[ks][3], base + 8))};
#pragma unroll
        for (int nt = 0; nt < 4; ++nt) mma_16816(acc[nt], a, bw[ks][nt], tag);
      }
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int e = pos + 8 * half;
        const bool in_image = e1_in_image<T>(p.geo, o, e);
#pragma unroll
        for (int nt = 0; nt < 4; ++nt) {
          // a padded hidden channel (j0 + n >= hidden) has zero weights, but 0 * inf = NaN next
          // to an infinite pixel, which w2's zeros would carry into every output: h is 0 there
          const int n = nt * 8 + 2 * t;
          const bool real0 = in_image && j0 + n < hidden, real1 = in_image && j0 + n + 1 < hidden;
          const float h0 = real0 ? activate(acc[nt][2 * half] + b1s[n], slope) : 0.f;
          const float h1 = real1 ? activate(acc[nt][2 * half + 1] + b1s[n + 1], slope) : 0.f;
          store_pair(h16 + e * HS + n, pack(bits_from_float(h0, tag), bits_from_float(h1, tag)));
        }
      }
    }
    __syncthreads();

    // conv2: out += sum over taps and the chunk's hidden channels
#pragma unroll 1
    for (int tap = 0; tap < 9; ++tap) {
      const int shift = (tap / 3) * T::E1W + tap % 3;
#pragma unroll
      for (int kk = 0; kk < 2; ++kk) {
        const uint16_t* wb = w2m + (tap * 8 + g) * HS + kk * 16 + 2 * t;
        const uint32_t b[2] = {load_pair(wb), load_pair(wb + 8)};
#pragma unroll
        for (int i = 0; i < M2_PER_WARP; ++i) {
          const int mt = warp + i * kWarps, r = mt / 2, cb = (mt % 2) * 16;
          const int c_lo = cb + g, c_hi = cb + g + 8 < T::TW ? cb + g + 8 : T::TW - 1;  // padding column: any valid one
          const uint16_t* hl = h16 + (r * T::E1W + c_lo + shift) * HS + kk * 16 + 2 * t;
          const uint16_t* hh = h16 + (r * T::E1W + c_hi + shift) * HS + kk * 16 + 2 * t;
          const uint32_t a[4] = {load_pair(hl), load_pair(hh), load_pair(hl + 8), load_pair(hh + 8)};
          mma_16816(out[i], a, b, tag);
        }
      }
    }
  }

  __syncthreads();  // x16 is complete even when no hidden chunk ran (hidden == 0)

  // epilogue: the lane holds channels 2t, 2t+1 of pixels (r, cb+g) and (r, cb+g+8)
  const float* b2 = static_cast<const float*>(p.w.b2);
#pragma unroll
  for (int i = 0; i < M2_PER_WARP; ++i) {
    const int mt = warp + i * kWarps, r = mt / 2, cb = (mt % 2) * 16;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int c = cb + g + 8 * half;
      const int64_t row = o.oy + r, col = o.ox + c;
      if (c >= T::TW || !inside(p.geo, row, col)) continue;
#pragma unroll
      for (int q = 0; q < 2; ++q) {
        const int ch = 2 * t + q;
        if (ch < C)
          store_step_output<scalar_t>(p, o, ch, row, col, out[i][2 * half + q] + b2[ch],
                                      float_from_bits(x16[ch * T::E2 + (r + 2) * T::E2W + c + 2], tag));
      }
    }
  }
}

}  // namespace taylor_fast::cuda
