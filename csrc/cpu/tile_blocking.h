// The register blocking of one ISA's tile kernels (Blocking) and what follows from it for a
// problem: padded channel counts, ring-row widths and the packed weight layout (Shape), and the
// packing of the weights into that layout.
//
// This header and the other tile-kernel headers (tile_convolutions.h, forward_tile.h,
// backward_tile.h, isa_tile_kernels.h) put everything in an anonymous namespace: each ISA's
// translation unit (tile_kernels_<isa>.cpp) keeps its own copies, so code compiled with AVX
// flags can never be merged into (and run by) the baseline path.
#pragma once
#include <cstdint>

#include "cpu/tile_kernels.h"

#define TF_UNROLL _Pragma("GCC unroll 16")

namespace taylor_fast::cpu {
namespace {

constexpr int64_t ceil_to(int64_t a, int64_t b) { return (a + b - 1) / b * b; }
constexpr int64_t min_of(int64_t a, int64_t b) { return a < b ? a : b; }
constexpr int64_t max_of(int64_t a, int64_t b) { return a > b ? a : b; }

template <typename T>
void fill_zero(T* p, int64_t n) {
  for (int64_t i = 0; i < n; ++i) p[i] = T(0);
}

// Register blocking of one ISA. HB must make HB x P1, CB x P2, HB x 3 and CB x HB accumulators
// (plus a few operands) fit the register file.
template <class V, int HB_, int P1_, int P2_>
struct Blocking {
  using Vec = V;
  using T = typename V::value_type;
  static constexpr int W = V::width, HB = HB_, P1 = P1_, P2 = P2_, CB = 3;
};

// Sizes derived from the problem: hidden padded to HB, channel counts padded to CB (padding
// carries zero weights; the sums over hidden channels skip the padded ones, whose values may be
// NaN when an input is infinite), and the packed weight layout. A tile's rows are computed on
// e extra columns each side (e = 2 per order pipelined after the first; 0 in the backward),
// which fixes three column frames relative to the tile's first column c0:
//   hidden ring rows, hw columns:  column j is image column c0 - e - 1 + j
//   conv2 output rows, ow columns: column x is image column c0 - e + x
//   g ring rows, gw columns:       column i is image column c0 - e - 2 + i
template <class B>
struct Shape {
  int64_t C, hidden, hid_p, hid_blocks, out_p, tile_w, e, hw, ow, gw, slot;
  int64_t w1g, w1y, b1, w2, b2, wdh, wdx_g, wdx_y, packed;  // offsets into the packed weights, and their size

  Shape(int64_t C_, int64_t hidden_, int64_t tile_w_ = 0, int64_t e_ = 0)
      : C(C_), hidden(hidden_), tile_w(tile_w_), e(e_) {
    hid_p = ceil_to(hidden, B::HB);
    hid_blocks = hid_p / B::HB;
    out_p = ceil_to(C, B::CB);
    hw = ceil_to(tile_w + 2 * e + 2, B::W);
    ow = ceil_to(tile_w + 2 * e, B::W);
    gw = hw + B::W;
    slot = hid_p * hw;
    w1g = 0;                      // [hid block][c < C][tap][HB]: conv1's g half
    w1y = w1g + hid_p * C * 9;    // [hid block][c < C][tap][HB]: conv1's y half
    b1 = w1y + hid_p * C * 9;     // [hid_p]
    w2 = b1 + hid_p;              // [out block][hid][tap][CB]
    b2 = w2 + out_p * hid_p * 9;  // [out_p]
    wdh = b2 + out_p;             // [hid block][c < C][flipped tap][HB]
    wdx_g = wdh + hid_p * C * 9;  // [out block][hid][flipped tap][CB]: conv1^T into g's channels
    wdx_y = wdx_g + out_p * hid_p * 9;  // the same into y's channels
    packed = wdx_y + out_p * hid_p * 9;
  }
};

template <class B>
int64_t packed_weights_size(int64_t C, int64_t hidden) {
  return Shape<B>(C, hidden).packed;
}

// w1 (hidden, 2C, 3, 3), b1 (hidden), w2 (C, hidden, 3, 3), b2 (C), all contiguous. The
// transposed convolutions of the backward use the taps flipped (tap 8 - t).
template <class B>
void pack_weights(const typename B::T* w1, const typename B::T* b1, const typename B::T* w2,
                  const typename B::T* b2, int64_t C, int64_t hidden, typename B::T* out) {
  constexpr int HB = B::HB, CB = B::CB;
  const Shape<B> s(C, hidden);
  fill_zero(out, s.packed);
  for (int64_t m = 0; m < hidden; ++m) {
    const int64_t hb = m / HB, h = m % HB;
    out[s.b1 + m] = b1[m];
    for (int64_t i = 0; i < 2 * C; ++i)
      for (int t = 0; t < 9; ++t) {
        const auto w = w1[(m * 2 * C + i) * 9 + t];
        out[(i < C ? s.w1g : s.w1y) + ((hb * C + i % C) * 9 + t) * HB + h] = w;
        out[(i < C ? s.wdx_g : s.wdx_y) + ((i % C / CB * s.hid_p + m) * 9 + (8 - t)) * CB + i % C % CB] = w;
      }
    for (int64_t c = 0; c < C; ++c)
      for (int t = 0; t < 9; ++t) {
        const auto w = w2[(c * hidden + m) * 9 + t];
        out[s.w2 + ((c / CB * s.hid_p + m) * 9 + t) * CB + c % CB] = w;
        out[s.wdh + ((hb * C + c) * 9 + (8 - t)) * HB + h] = w;
      }
  }
  for (int64_t c = 0; c < C; ++c) out[s.b2 + c] = b2[c];
}

}  // namespace
}  // namespace taylor_fast::cpu
