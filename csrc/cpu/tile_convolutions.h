// The pieces the forward and backward tile kernels share: the register-blocked 3x3
// convolutions over rows (into hidden space: conv1 and conv2^T; out of it: conv2 and conv1^T),
// zeroing outside the image, and the addressing of ring rows, tiles, planes and output views.
#pragma once
#include <cstdint>

#include "cpu/tile_blocking.h"

namespace taylor_fast::cpu {
namespace {

// Calls f.template operator()<P>() with P = min(n, PMax), P >= 1: the column remainder of a row.
template <int PMax, class F>
inline void with_vectors(int64_t n, F&& f) {
  if constexpr (PMax > 1) {
    if (n < PMax) return with_vectors<PMax - 1>(n, f);
  }
  f.template operator()<PMax>();
}

// acc[h][p] = init[h][p] + sum_{i < n_in, dy, dx} w[i][dy][dx][h] * rows[dy][i * chan + dx + p * W],
// with init[h][p] read from init rows (init_stride apart) if given, else the bias (or zero);
// then store(h, p, acc).
template <class B, int P, class Store>
inline __attribute__((always_inline)) void into_hidden(const typename B::T* const rows[3], int64_t chan,
                                                       int64_t n_in, const typename B::T* w,
                                                       const typename B::T* bias, const typename B::T* init,
                                                       int64_t init_stride, Store&& store) {
  using V = typename B::Vec;
  constexpr int HB = B::HB, W = B::W;
  V acc[HB][P];
  TF_UNROLL for (int h = 0; h < HB; ++h) {
    const V b = bias ? V::broadcast(bias + h) : V::zero();
    TF_UNROLL for (int p = 0; p < P; ++p) acc[h][p] = init ? V::load(init + h * init_stride + p * W) : b;
  }
  for (int64_t i = 0; i < n_in; ++i) {
    TF_UNROLL for (int dy = 0; dy < 3; ++dy) {
      const typename B::T* src = rows[dy] + i * chan;
      TF_UNROLL for (int dx = 0; dx < 3; ++dx) {
        V x[P];
        TF_UNROLL for (int p = 0; p < P; ++p) x[p] = V::load(src + dx + p * W);
        TF_UNROLL for (int h = 0; h < HB; ++h) {
          const V wv = V::broadcast(w + h);
          TF_UNROLL for (int p = 0; p < P; ++p) acc[h][p] = fma(wv, x[p], acc[h][p]);
        }
        w += HB;
      }
    }
  }
  TF_UNROLL for (int h = 0; h < HB; ++h) {
    TF_UNROLL for (int p = 0; p < P; ++p) store(h, p, acc[h][p]);
  }
}

// One ring row of hidden channels: store(hidden channel, column j, vector) for all hid_p
// channels and columns [0, hw). rows[dy] are the input rows (image row r - 1 + dy, n_in
// channels chan apart) at the column that ring column 0 reads with dx = 0; init, if given, is a
// ring row (hid_p rows of hw) the sums start from instead of the bias.
template <class B, class Store>
void into_hidden_row(const Shape<B>& s, const typename B::T* const rows[3], int64_t chan, int64_t n_in,
                     const typename B::T* w, const typename B::T* bias, const typename B::T* init, Store&& store) {
  using V = typename B::Vec;
  constexpr int HB = B::HB, W = B::W;
  for (int64_t hb = 0; hb < s.hid_blocks; ++hb) {
    const auto* wb = w + hb * n_in * 9 * HB;
    const auto* bb = bias ? bias + hb * HB : nullptr;
    for (int64_t j = 0; j < s.hw; j += B::P1 * W) {
      const typename B::T* shifted[3] = {rows[0] + j, rows[1] + j, rows[2] + j};
      const auto* ib = init ? init + hb * HB * s.hw + j : nullptr;
      with_vectors<B::P1>((s.hw - j) / W, [&]<int P>() {
        into_hidden<B, P>(shifted, chan, n_in, wb, bb, ib, s.hw,
                          [&](int h, int p, V v) { store(hb * HB + h, j + p * W, v); });
      });
    }
  }
}

// out[c][p] = bias[c] + sum_{m < hidden, dy, dx} w[m][dy][dx][c] * rows[dy][m * hw + dx + p * W],
// for the CB channels of one block and P vectors of columns; out rows are out_stride apart.
template <class B, int P>
inline void out_of_hidden(const typename B::T* const rows[3], int64_t hidden, int64_t hw,
                          const typename B::T* w, const typename B::T* bias, typename B::T* out,
                          int64_t out_stride) {
  using V = typename B::Vec;
  constexpr int CB = B::CB, W = B::W;
  V acc[CB][P];
  TF_UNROLL for (int c = 0; c < CB; ++c) {
    const V b = bias ? V::broadcast(bias + c) : V::zero();
    TF_UNROLL for (int p = 0; p < P; ++p) acc[c][p] = b;
  }
  // only the real hidden channels: a padded one has zero weights, but its h (conv1 of an
  // infinite input with zero weights) or dz may be NaN, and 0 * NaN would reach every output
  for (int64_t m = 0; m < hidden; ++m) {
    TF_UNROLL for (int dy = 0; dy < 3; ++dy) {
      const auto* src = rows[dy] + m * hw;
      TF_UNROLL for (int dx = 0; dx < 3; ++dx) {
        V wv[CB];
        TF_UNROLL for (int c = 0; c < CB; ++c) wv[c] = V::broadcast(w + c);
        w += CB;
        TF_UNROLL for (int p = 0; p < P; ++p) {
          const V hv = V::load_to_register(src + dx + p * W);
          TF_UNROLL for (int c = 0; c < CB; ++c) acc[c][p] = fma(wv[c], hv, acc[c][p]);
        }
      }
    }
  }
  TF_UNROLL for (int c = 0; c < CB; ++c) {
    TF_UNROLL for (int p = 0; p < P; ++p) acc[c][p].store(out + c * out_stride + p * W);
  }
}

// n_out_p channels (a multiple of CB) of one output row, ow columns, into out[c][ow]:
// rows[dy] is the ring row of image row o - 1 + dy, read at columns j = x + dx.
template <class B>
void out_of_hidden_row(const Shape<B>& s, const typename B::T* const rows[3], int64_t n_out_p,
                       const typename B::T* w, const typename B::T* bias, typename B::T* out) {
  constexpr int CB = B::CB, P2 = B::P2, W = B::W;
  for (int64_t cb = 0; cb < n_out_p / CB; ++cb) {
    const auto* wb = w + cb * s.hid_p * 9 * CB;
    const auto* bb = bias ? bias + cb * CB : nullptr;
    for (int64_t x = 0; x < s.ow; x += P2 * W) {
      const typename B::T* shifted[3] = {rows[0] + x, rows[1] + x, rows[2] + x};
      with_vectors<P2>((s.ow - x) / W, [&]<int P>() {
        out_of_hidden<B, P>(shifted, s.hidden, s.hw, wb, bb, out + cb * CB * s.ow + x, s.ow);
      });
    }
  }
}

// Zero, in `count` rows of `width` columns (stride apart) whose column q is image column
// col0 + q, every column outside the image or outside [keep_begin, keep_end): conv2's zero
// padding of h, conv1's of g, and no gradient flows into the pre-activation there.
template <typename T>
void zero_outside(T* rows, int64_t count, int64_t stride, int64_t width, int64_t col0, int64_t W,
                  int64_t keep_begin, int64_t keep_end) {
  const int64_t first = max_of(keep_begin, -col0), end = min_of(keep_end, W - col0);
  for (int64_t m = 0; m < count; ++m) {
    T* r = rows + m * stride;
    for (int64_t q = 0; q < min_of(first, width); ++q) r[q] = 0;
    for (int64_t q = max_of(end, 0); q < width; ++q) r[q] = 0;
  }
}

// A hidden ring row (image row of the tile starting at column c0) outside the image: zeroed.
template <class B>
void zero_hidden_outside(const Shape<B>& s, typename B::T* ring_row, int64_t c0, int64_t W) {
  zero_outside(ring_row, s.hid_p, s.hw, s.hw, c0 - s.e - 1, W, 0, s.hw);
}

inline int64_t mod(int64_t a, int64_t m) { return (a % m + m) % m; }

inline int64_t ring_slot(int64_t r) { return mod(r, 3); }

// The ring rows of image rows o - 1, o, o + 1.
template <typename T>
void ring_rows(T* ring, int64_t slot, int64_t o, const T* rows[3]) {
  for (int d = 0; d < 3; ++d) rows[d] = ring + ring_slot(o - 1 + d) * slot;
}

inline Tiling::Tile tile_at(const Tiling& t, int64_t index) {
  const int64_t cols = (t.W + t.tile_w - 1) / t.tile_w, rows = (t.H + t.tile_h - 1) / t.tile_h;
  const int64_t n = index / (rows * cols), rb = index / cols % rows, cb = index % cols;
  const int64_t r0 = rb * t.tile_h;
  return {n, r0, min_of(r0 + t.tile_h, t.H), cb * t.tile_w};
}

template <typename T>
T* plane_row(const Planes<T>& p, int64_t n, int64_t c, int64_t r) {
  return p.origin + n * p.batch + c * p.plane + r * p.row;
}

// Column x of one image row of a View; Unit (every view of the row has column stride 1) lets
// the compiler vectorise the epilogues, which would otherwise cost ~10% of a tile.
template <bool Unit, typename T>
struct ViewRow {
  T* p;
  int64_t sw;
  ViewRow(const View<T>& v, int64_t n, int64_t c, int64_t r, int64_t c0)
      : p(v.data ? v.data + n * v.sn + c * v.sc + r * v.sh + c0 * v.sw : nullptr), sw(v.sw) {}
  T& operator[](int64_t x) const { return Unit ? p[x] : p[x * sw]; }
};

template <class F>
void with_unit_stride(bool unit, F&& f) {
  if (unit) f.template operator()<true>();
  else f.template operator()<false>();
}

}  // namespace
}  // namespace taylor_fast::cpu
