// The backward tile kernel: the input gradients of one or a few pipelined orders over one
// output tile, with h recomputed per row, and the tile's share of the weight gradients (see
// isa_tile_kernels.h for the schedule).
#pragma once
#include <cstdint>

#include "cpu/tile_convolutions.h"

namespace taylor_fast::cpu {
namespace {

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

}  // namespace
}  // namespace taylor_fast::cpu
