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
//                over input channels x 3x3 taps read from three rows (image planes or rings)
//   out_of_hidden (conv2, and dx = conv1^T): CB channels x P2 pixel vectors, reduces over
//                hidden channels x 3x3 taps read from a ring of three rows
//   weight gradients: lane-wise partial sums (one vector per weight) over a tile's rows,
//                added across lanes once per tile
//
// The forward runs up to a few orders in one pass over a tile (a row pipeline: order k+1 works
// two rows behind order k, reading order k's rows from a small ring), so the y half of conv1,
// the same at every order when the weights are shared, is computed once per row and tile.
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

// Calls f.template operator()<P>() with P = min(n, PMax), P >= 1: the column remainder of a row.
template <int PMax, class F>
inline void with_vectors(int64_t n, F&& f) {
  if constexpr (PMax > 1) {
    if (n < PMax) return with_vectors<PMax - 1>(n, f);
  }
  f.template operator()<PMax>();
}

// body.template operator()<Tail>(x, n_x) over the columns [0, n) of a tile's row, one vector of W
// at a time: whole vectors (Tail false, n_x = W), then the n % W columns left (Tail true), which
// the body loads with V::load_first. A tile as wide as the image need not be a whole number of
// vectors, and the weight gradients must not read past its columns (the next hidden channel's
// row, or the end of the scratch).
template <int W, class F>
inline __attribute__((always_inline)) void over_columns(int64_t n, F&& body) {
  int64_t x = 0;
  for (; x + W <= n; x += W) body.template operator()<false>(x, W);
  if constexpr (W > 1) {
    if (x < n) body.template operator()<true>(x, static_cast<int>(n - x));
  }
}

// V::load (V::load_to_register if Pin), or for a row's last partial vector the first n lanes
// (zero above)
template <class V, bool Tail, bool Pin = false>
inline V load_columns(const typename V::value_type* p, int n) {
  if constexpr (Tail) return V::load_first(p, n);
  else if constexpr (Pin) return V::load_to_register(p);
  else return V::load(p);
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

// ---------------------------------------------------------------------------------- forward

// Scratch of the forward pipeline over D orders: per order a ring of three hidden rows, per
// order but the last a ring of three rows of the g it makes (the next order's input), the y half
// of conv1 (a ring of 2D - 1 rows when the orders share it, else one row), one conv2 row.
template <class B>
struct ForwardScratch {
  typename B::T *h_rings, *g_rings, *zy_rows, *out;
  int64_t zy_count, g_ring, size;

  ForwardScratch(const Shape<B>& s, int64_t orders, bool shared, typename B::T* base) {
    zy_count = shared ? 2 * orders - 1 : 1;
    g_ring = 3 * s.C * s.gw;
    h_rings = base;
    g_rings = h_rings + orders * 3 * s.slot;
    zy_rows = g_rings + (orders - 1) * g_ring;
    out = zy_rows + zy_count * s.slot;
    size = (out + s.out_p * s.ow) - base;
  }
  typename B::T* g_row(int64_t k, int64_t r) const { return g_rings + k * g_ring + ring_slot(r) * g_ring / 3; }
};

template <class B>
int64_t forward_scratch_size(const Tiling& t, int64_t orders) {
  const Shape<B> s(t.C, t.hidden, t.tile_w, 2 * (orders - 1));
  return ForwardScratch<B>(s, orders, true, nullptr).size;  // shared weights need the larger y ring
}

// Output row o of pipelined order k: g' = conv2 + (k0 + k) g, kept for the next order (all ow
// columns, zero outside the image) and, where the tile owns the row and column, written to
// g_next (unless the call keeps no g) and added to acc.
template <class B>
void forward_epilogue(const ForwardArgs<typename B::T>& a, const Shape<B>& s, const ForwardScratch<B>& sc,
                      const Tiling::Tile& tl, int64_t k, int64_t o, typename B::T* next_ring_row) {
  using T = typename B::T;
  const int64_t C = s.C, kk = a.k0 + k;
  for (int64_t c = 0; c < C; ++c) {
    T* g_new = sc.out + c * s.ow;
    const T* g = k == 0 ? plane_row(a.g, tl.n, c, o) + tl.c0 - s.e : sc.g_row(k - 1, o) + c * s.gw + 2;
    if (kk)
      for (int64_t x = 0; x < s.ow; ++x) g_new[x] += T(kk) * g[x];
    if (next_ring_row)
      for (int64_t x = 0; x < s.ow; ++x) next_ring_row[c * s.gw + 2 + x] = g_new[x];
  }
  if (next_ring_row) zero_outside(next_ring_row, C, s.gw, s.gw, tl.c0 - s.e - 2, a.tiling.W, 2, s.ow + 2);
  if (o < tl.r0 || o >= tl.r1) return;

  const int64_t xe = min_of(s.tile_w, a.tiling.W - tl.c0);
  View<T> g_next = a.g_next;
  g_next.data += k * a.g_next_stride;
  const View<const T> acc_src = k == 0 ? a.acc_in : View<const T>{a.acc_out.data, a.acc_out.sn, a.acc_out.sc,
                                                                  a.acc_out.sh, a.acc_out.sw};
  const T coef = a.coefs[k];
  const bool unit = (!g_next.data || g_next.sw == 1) && acc_src.sw == 1 && a.acc_out.sw == 1;
  with_unit_stride(unit, [&]<bool Unit>() {
    for (int64_t c = 0; c < C; ++c) {
      const T* v = sc.out + c * s.ow + s.e;
      const ViewRow<Unit, T> out_g(g_next, tl.n, c, o, tl.c0), acc_out(a.acc_out, tl.n, c, o, tl.c0);
      const ViewRow<Unit, const T> acc_in(acc_src, tl.n, c, o, tl.c0);
      if (out_g.p)
        for (int64_t x = 0; x < xe; ++x) out_g[x] = v[x];
      for (int64_t x = 0; x < xe; ++x) acc_out[x] = acc_in[x] + coef * v[x];
    }
  });
}

// The rows of a tile's D pipelined orders. At step t, order k computes its hidden row t - 2k
// and its output row t - 2k - 1, on rows reaching e_k = 2 (D - 1 - k) beyond the tile (the
// halo the later orders need); order k + 1 reads order k's output rows from a ring.
template <class B>
void forward_tile(const ForwardArgs<typename B::T>& a, int64_t index, typename B::T* scratch) {
  using T = typename B::T;
  using V = typename B::Vec;
  const Tiling& t = a.tiling;
  const int64_t D = a.orders, e = 2 * (D - 1);
  const bool shared = a.weights_stride == 0;
  const Shape<B> s(t.C, t.hidden, t.tile_w, e);
  const ForwardScratch<B> sc(s, D, shared, scratch);
  const Tiling::Tile tl = tile_at(t, index);
  const auto act = V::make_act(a.slope);
  const int64_t read_col = tl.c0 - e - 2;  // the image column hidden column 0 reads with dx = 0
  for (int64_t step = tl.r0 - e - 1; step <= tl.r1 + e; ++step) {
    for (int64_t k = 0; k < D; ++k) {
      const int64_t r = step - 2 * k, ek = 2 * (D - 1 - k);
      if (r < tl.r0 - ek - 1 || r > tl.r1 + ek) continue;
      const T* w = a.weights + k * a.weights_stride;
      T* h_ring = sc.h_rings + k * 3 * s.slot;
      T* h = h_ring + ring_slot(r) * s.slot;
      if (r < 0 || r >= t.H) {
        fill_zero(h, s.slot);
      } else {
        T* zy = sc.zy_rows + (shared ? mod(r, sc.zy_count) : 0) * s.slot;
        if (!shared || k == 0) {  // with shared weights order 0 reaches every row first
          const T* y_rows[3];
          for (int d = 0; d < 3; ++d) y_rows[d] = plane_row(a.y, tl.n, 0, r - 1 + d) + read_col;
          into_hidden_row(s, y_rows, a.y.plane, t.C, w + s.w1y, w + s.b1, static_cast<const T*>(nullptr),
                          [&](int64_t m, int64_t j, V v) { v.store(zy + m * s.hw + j); });
        }
        const T* g_rows[3];
        for (int d = 0; d < 3; ++d)
          g_rows[d] = k == 0 ? plane_row(a.g, tl.n, 0, r - 1 + d) + read_col : sc.g_row(k - 1, r - 1 + d);
        into_hidden_row(s, g_rows, k == 0 ? a.g.plane : s.gw, t.C, w + s.w1g, static_cast<const T*>(nullptr), zy,
                        [&](int64_t m, int64_t j, V v) { V::activate(v, act).store(h + m * s.hw + j); });
        zero_hidden_outside(s, h, tl.c0, t.W);
      }
      const int64_t o = r - 1;
      if (o < tl.r0 - ek) continue;
      T* next_ring_row = k + 1 < D ? sc.g_row(k, o) : nullptr;
      if (o < 0 || o >= t.H) {
        if (next_ring_row) fill_zero(next_ring_row, sc.g_ring / 3);
        continue;
      }
      const T* rows[3];
      ring_rows(h_ring, s.slot, o, rows);
      out_of_hidden_row(s, rows, s.out_p, w + s.w2, w + s.b2, sc.out);
      forward_epilogue(a, s, sc, tl, k, o, next_ring_row);
    }
  }
}

// ---------------------------------------------------------------------------------- backward

// Scratch of the backward over D pipelined orders (pipeline position q runs order k - q): per
// order the h and dz rings; conv1's y half (a ring of 2D - 1 rows: position 0 reaches every row
// first); for D > 1 the sum over the orders of dz (a ring of 2D + 1 rows; for D = 1 the dz ring
// is that sum); per order but the last a ring of three rows of the gradient it hands on; one row
// each of conv1^T into g's and into y's channels; the lane-wise weight-gradient accumulators and
// a zero row standing in for padded channels of the incoming gradient.
template <class B>
struct BackwardScratch {
  typename B::T *h_rings, *dz_rings, *zy_rows, *sdz_rows, *a_rings, *dx_g, *dx_y, *lanes_w1, *lanes_b1, *lanes_w2,
      *lanes_b2, *zero_row;
  int64_t orders, slot, zy_count, sdz_count, a_row_size, lanes_size, size;

  BackwardScratch(const Shape<B>& s, int64_t orders_, typename B::T* base) : orders(orders_), slot(s.slot) {
    constexpr int W = B::W;
    zy_count = 2 * orders - 1;
    sdz_count = orders > 1 ? 2 * orders + 1 : 0;
    a_row_size = s.C * s.gw;
    h_rings = base;
    dz_rings = h_rings + orders * 3 * slot;
    zy_rows = dz_rings + orders * 3 * slot;
    sdz_rows = zy_rows + zy_count * slot;
    a_rings = sdz_rows + sdz_count * slot;
    dx_g = a_rings + (orders - 1) * 3 * a_row_size;
    dx_y = dx_g + s.out_p * s.ow;
    lanes_w1 = dx_y + s.out_p * s.ow;
    lanes_b1 = lanes_w1 + s.hid_p * 18 * s.C * W;
    lanes_w2 = lanes_b1 + s.hid_p * W;
    lanes_b2 = lanes_w2 + s.out_p * 9 * s.hid_p * W;
    zero_row = lanes_b2 + s.out_p * W;
    lanes_size = zero_row - lanes_w1;
    size = (zero_row + s.tile_w) - base;
  }
  typename B::T* h_row(int64_t q, int64_t r) const { return h_rings + (q * 3 + ring_slot(r)) * slot; }
  typename B::T* dz_row(int64_t q, int64_t r) const { return dz_rings + (q * 3 + ring_slot(r)) * slot; }
  typename B::T* sdz_row(int64_t r) const { return orders > 1 ? sdz_rows + mod(r, sdz_count) * slot : dz_row(0, r); }
  typename B::T* a_row(int64_t q, int64_t r) const { return a_rings + (q * 3 + ring_slot(r)) * a_row_size; }
};

template <class B>
int64_t backward_scratch_size(const Tiling& t, int64_t orders) {
  const Shape<B> s(t.C, t.hidden, t.tile_w, 2 * (orders - 1));
  return BackwardScratch<B>(s, orders, nullptr).size;
}

// grad_w1 lanes[m][first + i * 9 + tap] += dz[m][x] * src_i[o + dy - 1][x + dx - 1] over the tile's
// columns, for the C input channels of one half of conv1's input (first = 0: g's, 9C: y's); HB
// hidden channels x 3 (input, tap) pairs per block. src is channel 0's row o - 1 at column
// c0 - 2 (channels plane apart, rows row apart); dz is a ring row at image column c0.
template <class B>
void accumulate_grad_w1(const Shape<B>& s, const typename B::T* src, int64_t plane, int64_t row,
                        const typename B::T* dz_row, int64_t first, typename B::T* lanes) {
  using V = typename B::Vec;
  using T = typename B::T;
  constexpr int HB = B::HB, W = B::W;
  const int64_t pairs = 18 * s.C;
  for (int64_t hb = 0; hb < s.hid_blocks; ++hb) {
    const T* dz = dz_row + hb * HB * s.hw;
    for (int64_t t0 = 0; t0 < 9 * s.C; t0 += 3) {
      V acc[HB][3];
      const T* in[3];
      T* at[HB][3];
      TF_UNROLL for (int q = 0; q < 3; ++q) {
        const int64_t i = (t0 + q) / 9, tap = (t0 + q) % 9;
        in[q] = src + i * plane + tap / 3 * row + tap % 3 + 1;
        TF_UNROLL for (int h = 0; h < HB; ++h) {
          at[h][q] = lanes + ((hb * HB + h) * pairs + first + t0 + q) * W;
          acc[h][q] = V::load(at[h][q]);
        }
      }
      over_columns<W>(s.tile_w, [&]<bool Tail>(int64_t x, int n) {
        V iv[3];
        TF_UNROLL for (int q = 0; q < 3; ++q) iv[q] = load_columns<V, Tail>(in[q] + x, n);
        TF_UNROLL for (int h = 0; h < HB; ++h) {
          const V d = load_columns<V, Tail, true>(dz + h * s.hw + x, n);
          TF_UNROLL for (int q = 0; q < 3; ++q) acc[h][q] = fma(d, iv[q], acc[h][q]);
        }
      });
      TF_UNROLL for (int q = 0; q < 3; ++q) {
        TF_UNROLL for (int h = 0; h < HB; ++h) acc[h][q].store(at[h][q]);
      }
    }
  }
}

// grad_w2 lanes[c][m][tap] += gn[c][o][x] * h[m][o + dy - 1][x + dx - 1]; CB channels x HB
// (hidden, tap) pairs per block. gn points at column c0 of row o of channel 0 (channels plane
// apart), h_rows at the ring column of image column c0 - 1; padded channels read zero_row.
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
      over_columns<W>(s.tile_w, [&]<bool Tail>(int64_t x, int n) {
        V gv[CB];
        TF_UNROLL for (int c = 0; c < CB; ++c) gv[c] = load_columns<V, Tail>(gp[c] + x, n);
        TF_UNROLL for (int q = 0; q < HB; ++q) {
          const V hv = load_columns<V, Tail, true>(hp[q] + x, n);
          TF_UNROLL for (int c = 0; c < CB; ++c) acc[c][q] = fma(gv[c], hv, acc[c][q]);
        }
      });
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
    over_columns<B::W>(tile_w, [&]<bool Tail>(int64_t x, int n) {
      acc = acc + load_columns<V, Tail>(row + m * stride + x, n);
    });
    acc.store(lanes + m * B::W);
  }
}

// Output row o of pipeline position q: the gradient it hands on, dx_g + k_q a + dout_coef_q dout
// (a: the gradient reaching its output, channel 0 at image column c0 - e, channels a_chan
// apart), formed in sc.dx_g over all ow columns; for a position before the last kept in its ring
// (zero outside the image) for the next, for the last written to grad_g on the tile's columns,
// with grad_y (+)= sc.dx_y there.
template <class B>
void backward_epilogue(const BackwardArgs<typename B::T>& a, const Shape<B>& s, const BackwardScratch<B>& sc,
                       const Tiling::Tile& tl, int64_t q, int64_t o, const typename B::T* a_in, int64_t a_chan) {
  using T = typename B::T;
  const int64_t W = a.tiling.W, col0 = tl.c0 - s.e;  // the image column of ow column 0
  const int64_t xb = max_of(0, -col0), xe = min_of(s.ow, W - col0);  // ow columns inside the image
  const T kf = T(a.k - q), dout_coef = a.dout_coefs ? a.dout_coefs[q] : T(0);
  const bool last = q + 1 == a.orders;
  const int64_t own_b = s.e, own_e = s.e + min_of(s.tile_w, W - tl.c0);  // the tile's columns
  const bool unit = (!a.dout.data || a.dout.sw == 1) && (!a.grad_g.data || a.grad_g.sw == 1) && a.grad_y.sw == 1;
  with_unit_stride(unit, [&]<bool Unit>() {
    for (int64_t c = 0; c < s.C; ++c) {
      T* g_row = sc.dx_g + c * s.ow;
      if (kf != T(0))
        for (int64_t x = 0; x < s.ow; ++x) g_row[x] += kf * a_in[c * a_chan + x];
      if (a.dout.data) {
        const ViewRow<Unit, const T> dout(a.dout, tl.n, c, o, col0 + xb);
        for (int64_t x = xb; x < xe; ++x) g_row[x] += dout_coef * dout[x - xb];
      }
      if (!last) {
        T* next = sc.a_row(q, o) + c * s.gw + 2;
        for (int64_t x = 0; x < s.ow; ++x) next[x] = g_row[x];
        continue;
      }
      if (a.grad_g_planes.origin) {
        T* plane = plane_row(a.grad_g_planes, tl.n, c, o) + col0;
        for (int64_t x = own_b; x < own_e; ++x) plane[x] = g_row[x];
      }
      if (a.grad_g.data) {
        const ViewRow<Unit, T> grad_g(a.grad_g, tl.n, c, o, tl.c0);
        for (int64_t x = own_b; x < own_e; ++x) grad_g[x - own_b] = g_row[x];
      }
      const T* dy = sc.dx_y + c * s.ow;
      const ViewRow<Unit, T> grad_y(a.grad_y, tl.n, c, o, tl.c0);
      if (a.accumulate_y)
        for (int64_t x = own_b; x < own_e; ++x) grad_y[x - own_b] += dy[x];
      else
        for (int64_t x = own_b; x < own_e; ++x) grad_y[x - own_b] = dy[x];
    }
  });
  if (!last) zero_outside(sc.a_row(q, o), s.C, s.gw, s.gw, col0 - 2, W, 2, s.ow + 2);
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

// The backward of D consecutive orders k, k - 1, ..., k - D + 1 of one weight set, pipelined like
// the forward: at step t, position q (order k - q) works on hidden row t - 2q, reading the
// gradient position q - 1 handed on from a ring. Every order's dz is added into one sum, so the
// terms that are linear in dz and read y (conv1^T into y's channels, y's part of grad_w1, and
// grad_b1) are computed once per row for all D orders; conv1's y half is computed once too.
template <class B>
void backward_tile(const BackwardArgs<typename B::T>& a, int64_t index, typename B::T* scratch,
                   typename B::T* weight_grads) {
  using T = typename B::T;
  using V = typename B::Vec;
  const Tiling& t = a.tiling;
  const int64_t D = a.orders, e = 2 * (D - 1);
  const Shape<B> s(t.C, t.hidden, t.tile_w, e);
  const BackwardScratch<B> sc(s, D, scratch);
  const Tiling::Tile tl = tile_at(t, index);
  const auto act = V::make_act(a.slope);
  const int64_t plane = a.y.plane, row = a.y.row;
  const int64_t read_col = tl.c0 - e - 2;  // the image column hidden column 0 reads with dx = 0
  const T* w = a.weights;
  const T* none = nullptr;
  fill_zero(sc.lanes_w1, sc.lanes_size + s.tile_w);  // the lanes and the zero row

  for (int64_t step = tl.r0 - e - 1; step <= tl.r1 + e; ++step) {
    for (int64_t q = 0; q < D; ++q) {
      const int64_t r = step - 2 * q, eq = 2 * (D - 1 - q);
      if (r < tl.r0 - eq - 1 || r > tl.r1 + eq) continue;
      T* h = sc.h_row(q, r);
      T* dz = sc.dz_row(q, r);
      if (r < 0 || r >= t.H) {
        fill_zero(h, s.slot);
        fill_zero(dz, s.slot);
        if (D > 1 && q == 0) fill_zero(sc.sdz_row(r), s.slot);
      } else {
        T* zy = sc.zy_rows + mod(r, sc.zy_count) * s.slot;
        const T *g_rows[3], *gn_rows[3];
        if (q == 0) {
          const T* y_rows[3];
          for (int d = 0; d < 3; ++d) y_rows[d] = plane_row(a.y, tl.n, 0, r - 1 + d) + read_col;
          into_hidden_row(s, y_rows, plane, t.C, w + s.w1y, w + s.b1, none,
                          [&](int64_t m, int64_t j, V v) { v.store(zy + m * s.hw + j); });
        }
        for (int d = 0; d < 3; ++d) {
          g_rows[d] = plane_row(a.g[q], tl.n, 0, r - 1 + d) + read_col;
          gn_rows[d] = q == 0 ? plane_row(a.grad_g_next, tl.n, 0, r - 1 + d) + read_col : sc.a_row(q - 1, r - 1 + d);
        }
        // z = conv1 (kept in dz's ring row until dz replaces it), h = act(z)
        into_hidden_row(s, g_rows, plane, t.C, w + s.w1g, none, zy, [&](int64_t m, int64_t j, V v) {
          v.store(dz + m * s.hw + j);
          V::activate(v, act).store(h + m * s.hw + j);
        });
        // dz = act'(z) * conv2^T(gradient reaching this order's output), added into the orders' sum
        T* sum = D > 1 ? sc.sdz_row(r) : nullptr;
        auto make_dz = [&](auto add) {
          into_hidden_row(s, gn_rows, q == 0 ? plane : s.gw, t.C, w + s.wdh, none, none,
                          [&](int64_t m, int64_t j, V v) {
                            T* p = dz + m * s.hw + j;
                            const V d = V::activate_backward(v, V::load(p), act);
                            d.store(p);
                            add(m * s.hw + j, d);
                          });
        };
        if (!sum) make_dz([](int64_t, V) {});
        else if (q == 0) make_dz([&](int64_t i, V d) { d.store(sum + i); });
        else make_dz([&](int64_t i, V d) { (V::load(sum + i) + d).store(sum + i); });
        zero_hidden_outside(s, h, tl.c0, t.W);
        zero_hidden_outside(s, dz, tl.c0, t.W);
        if (sum) zero_hidden_outside(s, sum, tl.c0, t.W);
      }
      const int64_t o = r - 1;
      if (o < tl.r0 - eq) continue;
      const bool last = q + 1 == D;
      if (o < 0 || o >= t.H) {
        if (!last) fill_zero(sc.a_row(q, o), sc.a_row_size);
        continue;
      }
      const T *dz_rows[3], *h_rows[3];
      ring_rows(sc.dz_rings + q * 3 * s.slot, s.slot, o, dz_rows);
      ring_rows(sc.h_rings + q * 3 * s.slot, s.slot, o, h_rows);
      out_of_hidden_row(s, dz_rows, s.out_p, w + s.wdx_g, none, sc.dx_g);
      const T* sdz_rows[3] = {sc.sdz_row(o - 1), sc.sdz_row(o), sc.sdz_row(o + 1)};
      if (last) out_of_hidden_row(s, sdz_rows, s.out_p, w + s.wdx_y, none, sc.dx_y);
      const T* a_in = q == 0 ? plane_row(a.grad_g_next, tl.n, 0, o) + tl.c0 - e : sc.a_row(q - 1, o) + 2;
      const int64_t a_chan = q == 0 ? plane : s.gw;
      backward_epilogue(a, s, sc, tl, q, o, a_in, a_chan);
      if (o < tl.r0 || o >= tl.r1) continue;  // weight gradients: the tile's own rows and columns

      const T* h_own[3] = {h_rows[0] + e, h_rows[1] + e, h_rows[2] + e};
      accumulate_grad_w1(s, plane_row(a.g[q], tl.n, 0, o - 1) + tl.c0 - 2, plane, row, dz_rows[1] + e + 1, 0,
                         sc.lanes_w1);
      accumulate_grad_w2(s, a_in + e, a_chan, sc.zero_row, h_own, sc.lanes_w2);
      accumulate_sums<B>(a_in + e, a_chan, t.C, s.tile_w, sc.lanes_b2);
      if (last) {
        accumulate_grad_w1(s, plane_row(a.y, tl.n, 0, o - 1) + tl.c0 - 2, plane, row, sdz_rows[1] + e + 1, 9 * t.C,
                           sc.lanes_w1);
        accumulate_sums<B>(sdz_rows[1] + e + 1, s.hw, s.hid_p, s.tile_w, sc.lanes_b1);
      }
    }
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
