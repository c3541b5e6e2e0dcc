// The fused tile kernels, written once over a vector type V (vec_scalar.h, vec_avx2.h,
// vec_avx512.h) and compiled once per ISA by tile_kernels_<isa>.cpp. Everything here sits in an
// anonymous namespace: each ISA's translation unit keeps its own copies, so code compiled with
// AVX flags can never be merged into (and run by) the baseline path.
//
// One tile = tile_h output rows x tile_w output columns of one image. Rows stream through ring
// buffers of three rows of hidden channels (h, and dz in the backward), so the hidden activation
// only ever exists for three rows of one tile, in cache. Every convolution is a register-blocked
// outer product: a weight broadcast times a vector of W neighbouring pixels, accumulated into
// an HB x P or CB x P block of accumulators.
//
//   into_hidden  (conv1, and dh = conv2^T): HB hidden channels x P1 pixel vectors, reduces
//                over input planes x 3x3 taps read from the zero-bordered image planes
//   out_of_hidden (conv2, and dx = conv1^T): CB channels x P2 pixel vectors, reduces over
//                hidden channels x 3x3 taps read from a ring of three rows
//   weight gradients: lane-wise partial sums (one vector per weight) over a tile's rows,
//                added across lanes once per tile
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
// carries zero weights, so it contributes nothing), ring rows of hw >= tile_w + 2 columns
// (column j of a ring row is image column c0 - 1 + j), and the packed weight layout.
template <class B>
struct Shape {
  int64_t C, hidden, hid_p, hid_blocks, out_p, in2_p, tile_w, hw, slot;
  int64_t w1, b1, w2, b2, wdh, wdx, packed;  // offsets into the packed weights, and their size

  Shape(int64_t C_, int64_t hidden_, int64_t tile_w_ = 0)
      : C(C_), hidden(hidden_), tile_w(tile_w_) {
    hid_p = ceil_to(hidden, B::HB);
    hid_blocks = hid_p / B::HB;
    out_p = ceil_to(C, B::CB);
    in2_p = ceil_to(2 * C, B::CB);
    hw = ceil_to(tile_w + 2, B::W);
    slot = hid_p * hw;
    w1 = 0;                          // [hid block][i < 2C][tap][HB]
    b1 = w1 + hid_p * 2 * C * 9;     // [hid_p]
    w2 = b1 + hid_p;                 // [out block][hid][tap][CB]
    b2 = w2 + out_p * hid_p * 9;     // [out_p]
    wdh = b2 + out_p;                // [hid block][c < C][flipped tap][HB]
    wdx = wdh + hid_p * C * 9;       // [in2 block][hid][flipped tap][CB]
    packed = wdx + in2_p * hid_p * 9;
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
        out[s.w1 + ((hb * 2 * C + i) * 9 + t) * HB + h] = w;
        out[s.wdx + ((i / CB * s.hid_p + m) * 9 + (8 - t)) * CB + i % CB] = w;
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

// Calls f.template operator()<P>() with P = min(n, PMax), P >= 1: the column remainder of a row.
template <int PMax, class F>
inline void with_vectors(int64_t n, F&& f) {
  if constexpr (PMax > 1) {
    if (n < PMax) return with_vectors<PMax - 1>(n, f);
  }
  f.template operator()<PMax>();
}

// acc[h][p] = bias[h] + sum_{i, dy, dx} w[i][dy][dx][h] * src_i[dy * row + dx + p * W] where input
// plane i is a_src + i * plane for i < n_a, else b_src + (i - n_a) * plane; store(h, p, acc).
template <class B, int P, class Store>
inline __attribute__((always_inline)) void into_hidden(const typename B::T* a_src, const typename B::T* b_src,
                                                       int64_t n_a, int64_t n_in, int64_t plane, int64_t row,
                                                       const typename B::T* w, const typename B::T* bias,
                                                       Store&& store) {
  using V = typename B::Vec;
  constexpr int HB = B::HB, W = B::W;
  V acc[HB][P];
  TF_UNROLL for (int h = 0; h < HB; ++h) {
    const V b = bias ? V::broadcast(bias + h) : V::zero();
    TF_UNROLL for (int p = 0; p < P; ++p) acc[h][p] = b;
  }
  for (int64_t i = 0; i < n_in; ++i) {
    const typename B::T* s = i < n_a ? a_src + i * plane : b_src + (i - n_a) * plane;
    TF_UNROLL for (int dy = 0; dy < 3; ++dy) {
      TF_UNROLL for (int dx = 0; dx < 3; ++dx) {
        V x[P];
        TF_UNROLL for (int p = 0; p < P; ++p) x[p] = V::load(s + dy * row + dx + p * W);
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
// channels and columns [0, hw). a_src/b_src point at (row r - 1, column c0 - 2) of the planes.
template <class B, class Store>
void into_hidden_row(const Shape<B>& s, const typename B::T* a_src, const typename B::T* b_src, int64_t n_a,
                     int64_t n_in, int64_t plane, int64_t row, const typename B::T* w,
                     const typename B::T* bias, Store&& store) {
  using V = typename B::Vec;
  constexpr int HB = B::HB, W = B::W;
  for (int64_t hb = 0; hb < s.hid_blocks; ++hb) {
    const auto* wb = w + hb * n_in * 9 * HB;
    const auto* bb = bias ? bias + hb * HB : nullptr;
    for (int64_t j = 0; j < s.hw; j += B::P1 * W) {
      with_vectors<B::P1>((s.hw - j) / W, [&]<int P>() {
        into_hidden<B, P>(a_src + j, b_src + j, n_a, n_in, plane, row, wb, bb,
                          [&](int h, int p, V v) { store(hb * HB + h, j + p * W, v); });
      });
    }
  }
}

// out[c][p] = bias[c] + sum_{m, dy, dx} w[m][dy][dx][c] * rows[dy][m * hw + dx + p * W], for the
// CB channels of one block and P vectors of columns; out rows are out_stride apart.
template <class B, int P>
inline void out_of_hidden(const typename B::T* const rows[3], int64_t hid_p, int64_t hw,
                          const typename B::T* w, const typename B::T* bias, typename B::T* out,
                          int64_t out_stride) {
  using V = typename B::Vec;
  constexpr int CB = B::CB, W = B::W;
  V acc[CB][P];
  TF_UNROLL for (int c = 0; c < CB; ++c) {
    const V b = bias ? V::broadcast(bias + c) : V::zero();
    TF_UNROLL for (int p = 0; p < P; ++p) acc[c][p] = b;
  }
  for (int64_t m = 0; m < hid_p; ++m) {
    TF_UNROLL for (int dy = 0; dy < 3; ++dy) {
      const auto* src = rows[dy] + m * hw;
      TF_UNROLL for (int dx = 0; dx < 3; ++dx) {
        V wv[CB];
        TF_UNROLL for (int c = 0; c < CB; ++c) wv[c] = V::broadcast(w + c);
        w += CB;
        TF_UNROLL for (int p = 0; p < P; ++p) {
          const V hv = V::load(src + dx + p * W);
          TF_UNROLL for (int c = 0; c < CB; ++c) acc[c][p] = fma(wv[c], hv, acc[c][p]);
        }
      }
    }
  }
  TF_UNROLL for (int c = 0; c < CB; ++c) {
    TF_UNROLL for (int p = 0; p < P; ++p) acc[c][p].store(out + c * out_stride + p * W);
  }
}

// n_out_p channels (a multiple of CB) of one output row, tile_w columns, into out[c][tile_w]:
// rows[dy] is the ring row of image row o - 1 + dy, read at columns j = x + dx.
template <class B>
void out_of_hidden_row(const Shape<B>& s, const typename B::T* const rows[3], int64_t n_out_p,
                       const typename B::T* w, const typename B::T* bias, typename B::T* out) {
  constexpr int CB = B::CB, P2 = B::P2, W = B::W;
  for (int64_t cb = 0; cb < n_out_p / CB; ++cb) {
    const auto* wb = w + cb * s.hid_p * 9 * CB;
    const auto* bb = bias ? bias + cb * CB : nullptr;
    for (int64_t x = 0; x < s.tile_w; x += P2 * W) {
      const typename B::T* shifted[3] = {rows[0] + x, rows[1] + x, rows[2] + x};
      with_vectors<P2>((s.tile_w - x) / W, [&]<int P>() {
        out_of_hidden<B, P>(shifted, s.hid_p, s.hw, wb, bb, out + cb * CB * s.tile_w + x, s.tile_w);
      });
    }
  }
}

// Zero a ring row's columns that lie outside the image (conv2's zero padding of h, and no
// gradient flows into the pre-activation there).
template <class B>
void zero_outside_columns(const Shape<B>& s, typename B::T* ring_row, int64_t c0, int64_t W) {
  const int64_t first = max_of(0, 1 - c0), end = min_of(s.hw, W - c0 + 1);
  for (int64_t m = 0; m < s.hid_p; ++m) {
    auto* r = ring_row + m * s.hw;
    for (int64_t j = 0; j < first; ++j) r[j] = 0;
    for (int64_t j = end; j < s.hw; ++j) r[j] = 0;
  }
}

inline int64_t ring_slot(int64_t r) { return (r + 3) % 3; }  // r >= -1

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

// ---------------------------------------------------------------------------------- forward

template <class B>
int64_t forward_scratch_size(const Tiling& t) {
  const Shape<B> s(t.C, t.hidden, t.tile_w);
  return 3 * s.slot + s.out_p * s.tile_w;
}

// g_next = conv2 + k g, acc_out = acc_in + coef g_next, for the tile's columns of row o.
template <class B>
void forward_epilogue(const ForwardArgs<typename B::T>& a, const Shape<B>& s, const Tiling::Tile& tl, int64_t o,
                      const typename B::T* out) {
  using T = typename B::T;
  const int64_t xe = min_of(s.tile_w, a.tiling.W - tl.c0);
  const T kf = T(a.k), coef = a.coef;
  const bool unit = a.g_next.sw == 1 && a.acc_in.sw == 1 && a.acc_out.sw == 1;
  with_unit_stride(unit, [&]<bool Unit>() {
    for (int64_t c = 0; c < s.C; ++c) {
      const T* conv = out + c * s.tile_w;
      const T* g = plane_row(a.g, tl.n, c, o) + tl.c0;
      const ViewRow<Unit, T> g_next(a.g_next, tl.n, c, o, tl.c0), acc_out(a.acc_out, tl.n, c, o, tl.c0);
      const ViewRow<Unit, const T> acc_in(a.acc_in, tl.n, c, o, tl.c0);
      T* next_plane = a.g_next_planes.origin ? plane_row(a.g_next_planes, tl.n, c, o) + tl.c0 : nullptr;
      if (next_plane)
        for (int64_t x = 0; x < xe; ++x) next_plane[x] = a.k ? conv[x] + kf * g[x] : conv[x];
      for (int64_t x = 0; x < xe; ++x) {
        const T v = a.k ? conv[x] + kf * g[x] : conv[x];
        g_next[x] = v;
        acc_out[x] = acc_in[x] + coef * v;
      }
    }
  });
}

template <class B>
void forward_tile(const ForwardArgs<typename B::T>& a, int64_t index, typename B::T* scratch) {
  using T = typename B::T;
  using V = typename B::Vec;
  const Tiling& t = a.tiling;
  const Shape<B> s(t.C, t.hidden, t.tile_w);
  const Tiling::Tile tl = tile_at(t, index);
  const auto act = V::make_act(a.slope);
  T* ring = scratch;
  T* out = ring + 3 * s.slot;
  const T* w = a.weights;
  for (int64_t r = tl.r0 - 1; r <= tl.r1; ++r) {
    T* h = ring + ring_slot(r) * s.slot;
    if (r < 0 || r >= t.H) {
      fill_zero(h, s.slot);
    } else {
      into_hidden_row(s, plane_row(a.g, tl.n, 0, r - 1) + tl.c0 - 2, plane_row(a.y, tl.n, 0, r - 1) + tl.c0 - 2,
                      t.C, 2 * t.C, a.g.plane, a.g.row, w + s.w1, w + s.b1,
                      [&](int64_t m, int64_t j, V v) { V::activate(v, act).store(h + m * s.hw + j); });
      zero_outside_columns(s, h, tl.c0, t.W);
    }
    const int64_t o = r - 1;
    if (o >= tl.r0) {
      const T* rows[3];
      ring_rows(ring, s.slot, o, rows);
      out_of_hidden_row(s, rows, s.out_p, w + s.w2, w + s.b2, out);
      forward_epilogue(a, s, tl, o, out);
    }
  }
}

// ---------------------------------------------------------------------------------- backward

// Scratch of the backward: the h and dz rings, one row of input gradients, the lane-wise
// weight-gradient accumulators and a zero row standing in for padded channels of grad_g_next.
template <class B>
struct BackwardScratch {
  typename B::T *h_ring, *dz_ring, *dx_row, *lanes_w1, *lanes_b1, *lanes_w2, *lanes_b2, *zero_row;
  int64_t lanes_size;
  int64_t size;

  BackwardScratch(const Shape<B>& s, typename B::T* base) {
    constexpr int W = B::W;
    h_ring = base;
    dz_ring = h_ring + 3 * s.slot;
    dx_row = dz_ring + 3 * s.slot;
    lanes_w1 = dx_row + s.in2_p * s.tile_w;
    lanes_b1 = lanes_w1 + s.hid_p * 18 * s.C * W;
    lanes_w2 = lanes_b1 + s.hid_p * W;
    lanes_b2 = lanes_w2 + s.out_p * 9 * s.hid_p * W;
    zero_row = lanes_b2 + s.out_p * W;
    lanes_size = zero_row - lanes_w1;
    size = (zero_row + s.tile_w) - base;
  }
};

template <class B>
int64_t backward_scratch_size(const Tiling& t) {
  const Shape<B> s(t.C, t.hidden, t.tile_w);
  return BackwardScratch<B>(s, nullptr).size;
}

// grad_w1 lanes[m][i][tap] += dz[m][o][x] * input_i[o + dy - 1][x + dx - 1] over the tile's columns;
// HB hidden channels x 3 (input, tap) pairs per block. dz_row is the ring row of image row o.
template <class B>
void accumulate_grad_w1(const Shape<B>& s, const typename B::T* a_src, const typename B::T* b_src, int64_t plane,
                        int64_t row, const typename B::T* dz_row, typename B::T* lanes) {
  using V = typename B::Vec;
  using T = typename B::T;
  constexpr int HB = B::HB, W = B::W;
  const int64_t pairs = 18 * s.C;
  for (int64_t hb = 0; hb < s.hid_blocks; ++hb) {
    const T* dz = dz_row + hb * HB * s.hw + 1;
    for (int64_t t0 = 0; t0 < pairs; t0 += 3) {
      V acc[HB][3];
      const T* in[3];
      TF_UNROLL for (int q = 0; q < 3; ++q) {
        const int64_t i = (t0 + q) / 9, tap = (t0 + q) % 9;
        in[q] = (i < s.C ? a_src + i * plane : b_src + (i - s.C) * plane) + tap / 3 * row + tap % 3 + 1;
        TF_UNROLL for (int h = 0; h < HB; ++h) acc[h][q] = V::load(lanes + ((hb * HB + h) * pairs + t0 + q) * W);
      }
      for (int64_t x = 0; x < s.tile_w; x += W) {
        V iv[3];
        TF_UNROLL for (int q = 0; q < 3; ++q) iv[q] = V::load(in[q] + x);
        TF_UNROLL for (int h = 0; h < HB; ++h) {
          const V d = V::load(dz + h * s.hw + x);
          TF_UNROLL for (int q = 0; q < 3; ++q) acc[h][q] = fma(d, iv[q], acc[h][q]);
        }
      }
      TF_UNROLL for (int q = 0; q < 3; ++q) {
        TF_UNROLL for (int h = 0; h < HB; ++h) acc[h][q].store(lanes + ((hb * HB + h) * pairs + t0 + q) * W);
      }
    }
  }
}

// grad_w2 lanes[c][m][tap] += gn[c][o][x] * h[m][o + dy - 1][x + dx - 1]; CB channels x HB
// (hidden, tap) pairs per block. gn points at column c0 of row o of channel 0; padded channels
// read zero_row.
template <class B>
void accumulate_grad_w2(const Shape<B>& s, const typename B::T* gn, int64_t plane, const typename B::T* zero_row,
                        const typename B::T* const h_rows[3], typename B::T* lanes) {
  using V = typename B::Vec;
  using T = typename B::T;
  constexpr int HB = B::HB, CB = B::CB, W = B::W;
  const int64_t pairs = 9 * s.hid_p;
  for (int64_t cb = 0; cb < s.out_p / CB; ++cb) {
    for (int64_t u0 = 0; u0 < pairs; u0 += HB) {
      V acc[CB][HB];
      const T* gp[CB];
      TF_UNROLL for (int c = 0; c < CB; ++c) gp[c] = cb * CB + c < s.C ? gn + (cb * CB + c) * plane : zero_row;
      const T* hp[HB];
      TF_UNROLL for (int q = 0; q < HB; ++q) {
        const int64_t m = (u0 + q) / 9, tap = (u0 + q) % 9;
        hp[q] = h_rows[tap / 3] + m * s.hw + tap % 3;
        TF_UNROLL for (int c = 0; c < CB; ++c) acc[c][q] = V::load(lanes + ((cb * CB + c) * pairs + u0 + q) * W);
      }
      for (int64_t x = 0; x < s.tile_w; x += W) {
        V gv[CB];
        TF_UNROLL for (int c = 0; c < CB; ++c) gv[c] = V::load(gp[c] + x);
        TF_UNROLL for (int q = 0; q < HB; ++q) {
          const V hv = V::load(hp[q] + x);
          TF_UNROLL for (int c = 0; c < CB; ++c) acc[c][q] = fma(gv[c], hv, acc[c][q]);
        }
      }
      TF_UNROLL for (int q = 0; q < HB; ++q) {
        TF_UNROLL for (int c = 0; c < CB; ++c) acc[c][q].store(lanes + ((cb * CB + c) * pairs + u0 + q) * W);
      }
    }
  }
}

// lanes[m] += row[m * stride + x] over the tile's columns, for m < count
template <class B>
void accumulate_sums(const typename B::T* row, int64_t stride, int64_t count, int64_t tile_w, typename B::T* lanes) {
  using V = typename B::Vec;
  for (int64_t m = 0; m < count; ++m) {
    V acc = V::load(lanes + m * B::W);
    for (int64_t x = 0; x < tile_w; x += B::W) acc = acc + V::load(row + m * stride + x);
    acc.store(lanes + m * B::W);
  }
}

// grad_g = dout_coef * dout + dx[:C] + k gn, grad_y (+)= dx[C:], for the tile's columns of row o.
template <class B>
void backward_epilogue(const BackwardArgs<typename B::T>& a, const Shape<B>& s, const Tiling::Tile& tl, int64_t o,
                       typename B::T* dx) {
  using T = typename B::T;
  const int64_t xe = min_of(s.tile_w, a.tiling.W - tl.c0);
  const T kf = T(a.k), dout_coef = a.dout_coef;
  const bool unit = (!a.dout.data || a.dout.sw == 1) && (!a.grad_g.data || a.grad_g.sw == 1) && a.grad_y.sw == 1;
  with_unit_stride(unit, [&]<bool Unit>() {
    for (int64_t c = 0; c < s.C; ++c) {
      const T* gn = plane_row(a.grad_g_next, tl.n, c, o) + tl.c0;
      T* g_row = dx + c * s.tile_w;  // grad_g is formed in place, then copied out
      if (a.k)
        for (int64_t x = 0; x < xe; ++x) g_row[x] += kf * gn[x];
      if (a.dout.data) {
        const ViewRow<Unit, const T> dout(a.dout, tl.n, c, o, tl.c0);
        for (int64_t x = 0; x < xe; ++x) g_row[x] += dout_coef * dout[x];
      }
      if (a.grad_g_planes.origin) {
        T* plane = plane_row(a.grad_g_planes, tl.n, c, o) + tl.c0;
        for (int64_t x = 0; x < xe; ++x) plane[x] = g_row[x];
      }
      if (a.grad_g.data) {
        const ViewRow<Unit, T> grad_g(a.grad_g, tl.n, c, o, tl.c0);
        for (int64_t x = 0; x < xe; ++x) grad_g[x] = g_row[x];
      }
      const T* dy = dx + (s.C + c) * s.tile_w;
      const ViewRow<Unit, T> grad_y(a.grad_y, tl.n, c, o, tl.c0);
      if (a.accumulate_y)
        for (int64_t x = 0; x < xe; ++x) grad_y[x] += dy[x];
      else
        for (int64_t x = 0; x < xe; ++x) grad_y[x] = dy[x];
    }
  });
}

// The tile's weight gradients, lanes added up, in the natural layout of w1, b1, w2, b2.
template <class B>
void reduce_lanes(const Shape<B>& s, const BackwardScratch<B>& sc, typename B::T* grads) {
  using V = typename B::Vec;
  constexpr int W = B::W;
  const int64_t C = s.C, hidden = s.hidden, pairs1 = 18 * C, pairs2 = 9 * s.hid_p;
  auto* gw1 = grads;
  auto* gb1 = gw1 + hidden * 2 * C * 9;
  auto* gw2 = gb1 + hidden;
  auto* gb2 = gw2 + C * hidden * 9;
  for (int64_t m = 0; m < hidden; ++m) {
    for (int64_t t = 0; t < pairs1; ++t) gw1[m * pairs1 + t] = V::sum(V::load(sc.lanes_w1 + (m * pairs1 + t) * W));
    gb1[m] = V::sum(V::load(sc.lanes_b1 + m * W));
  }
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t u = 0; u < 9 * hidden; ++u) gw2[c * 9 * hidden + u] = V::sum(V::load(sc.lanes_w2 + (c * pairs2 + u) * W));
    gb2[c] = V::sum(V::load(sc.lanes_b2 + c * W));
  }
}

template <class B>
void backward_tile(const BackwardArgs<typename B::T>& a, int64_t index, typename B::T* scratch,
                   typename B::T* weight_grads) {
  using T = typename B::T;
  using V = typename B::Vec;
  const Tiling& t = a.tiling;
  const Shape<B> s(t.C, t.hidden, t.tile_w);
  const BackwardScratch<B> sc(s, scratch);
  const Tiling::Tile tl = tile_at(t, index);
  const auto act = V::make_act(a.slope);
  const int64_t plane = a.g.plane, row = a.g.row;
  const T* w = a.weights;
  fill_zero(sc.lanes_w1, sc.lanes_size + s.tile_w);  // the lanes and the zero row

  for (int64_t r = tl.r0 - 1; r <= tl.r1; ++r) {
    T* h = sc.h_ring + ring_slot(r) * s.slot;
    T* dz = sc.dz_ring + ring_slot(r) * s.slot;
    if (r < 0 || r >= t.H) {
      fill_zero(h, s.slot);
      fill_zero(dz, s.slot);
    } else {
      // z = conv1 (kept in dz's ring row until dz replaces it), h = act(z)
      into_hidden_row(s, plane_row(a.g, tl.n, 0, r - 1) + tl.c0 - 2, plane_row(a.y, tl.n, 0, r - 1) + tl.c0 - 2,
                      t.C, 2 * t.C, plane, row, w + s.w1, w + s.b1, [&](int64_t m, int64_t j, V v) {
                        v.store(dz + m * s.hw + j);
                        V::activate(v, act).store(h + m * s.hw + j);
                      });
      // dz = act'(z) * conv2^T(grad_g_next)
      const T* gn = plane_row(a.grad_g_next, tl.n, 0, r - 1) + tl.c0 - 2;
      into_hidden_row(s, gn, gn, t.C, t.C, plane, row, w + s.wdh, static_cast<const T*>(nullptr),
                      [&](int64_t m, int64_t j, V v) {
                        T* p = dz + m * s.hw + j;
                        V::activate_backward(v, V::load(p), act).store(p);
                      });
      zero_outside_columns(s, h, tl.c0, t.W);
      zero_outside_columns(s, dz, tl.c0, t.W);
    }
    const int64_t o = r - 1;
    if (o < tl.r0) continue;
    const T *dz_rows[3], *h_rows[3];
    ring_rows(sc.dz_ring, s.slot, o, dz_rows);
    ring_rows(sc.h_ring, s.slot, o, h_rows);
    out_of_hidden_row(s, dz_rows, s.in2_p, w + s.wdx, static_cast<const T*>(nullptr), sc.dx_row);
    backward_epilogue(a, s, tl, o, sc.dx_row);

    accumulate_grad_w1(s, plane_row(a.g, tl.n, 0, o - 1) + tl.c0 - 2, plane_row(a.y, tl.n, 0, o - 1) + tl.c0 - 2,
                       plane, row, dz_rows[1], sc.lanes_w1);
    accumulate_sums<B>(dz_rows[1] + 1, s.hw, s.hid_p, s.tile_w, sc.lanes_b1);
    const T* gn_row = plane_row(a.grad_g_next, tl.n, 0, o) + tl.c0;
    accumulate_grad_w2(s, gn_row, plane, sc.zero_row, h_rows, sc.lanes_w2);
    accumulate_sums<B>(gn_row, plane, t.C, s.tile_w, sc.lanes_b2);
  }
  reduce_lanes(s, sc, weight_grads);
}

// The table of one ISA's kernels for value type T.
template <class B>
TileKernels<typename B::T> make_tile_kernels(const char* isa) {
  return {isa,
          B::W,
          &packed_weights_size<B>,
          &pack_weights<B>,
          &forward_scratch_size<B>,
          &forward_tile<B>,
          &backward_scratch_size<B>,
          &backward_tile<B>};
}

}  // namespace
}  // namespace taylor_fast::cpu
