// The forward tile kernel: one or a few pipelined orders of the derivative step over one
// output tile (see isa_tile_kernels.h for the schedule).
#pragma once
#include <cstdint>

#include "cpu/tile_convolutions.h"

namespace taylor_fast::cpu {
namespace {

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

}  // namespace
}  // namespace taylor_fast::cpu
