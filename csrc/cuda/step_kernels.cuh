// Block bodies of the fused derivative step (the schedule: docs/kernels.md), written once for
// two platforms: the CUDA build (device_platform.cuh, included by step_forward.cu /
// step_backward.cu) and the host emulator that runs them without a GPU (tests/cuda_emulator).
// The includer defines TF_DEVICE, threadIdx/blockIdx/gridDim, __syncthreads(), atomicAdd,
// dynamic_smem(), smem_load() and the to_acc/store overloads of its reduced-precision types.
//
// One block owns one TH x TW output tile. g and y are read once over the tile plus a 2-pixel
// halo into shared memory; the hidden activation h is computed HC channels at a time over the
// tile plus a 1-pixel halo and lives only in shared memory; the epilogue adds k g, writes
// g_next and updates acc. The backward recomputes h the same way.
//
// Index conventions (all conv taps are cross-correlations with zero padding 1):
//   inner (r, c), 0 <= r < TH, 0 <= c < TW   <->  image (oy + r,     ox + c)
//   E1    (r1, c1) = (r + 1, c + 1)          <->  image (oy + r1 - 1, ox + c1 - 1)   h, gu
//   E2    (r2, c2) = (r + 2, c + 2)          <->  image (oy + r2 - 2, ox + c2 - 2)   g, y, dG
#pragma once
#include "cuda/step_params.h"
#include "step_math.h"

#ifndef TF_DEVICE
#error "include a platform header (device_platform.cuh or the emulator's) before step_kernels.cuh"
#endif

namespace taylor_fast::cuda {

template <typename scalar_t>
struct AccType {
  using type = float;
};
template <>
struct AccType<double> {
  using type = double;
};

TF_DEVICE float to_acc(float v) { return v; }
TF_DEVICE double to_acc(double v) { return v; }
TF_DEVICE void store(float* dst, float v) { *dst = v; }
TF_DEVICE void store(double* dst, double v) { *dst = v; }

struct TileOrigin {
  int64_t n, oy, ox;
};

template <class T>
TF_DEVICE TileOrigin tile_origin(const Geometry& geo, int64_t tile) {
  const int64_t per_image = geo.tiles_y * geo.tiles_x;
  const int64_t n = tile / per_image, rest = tile - n * per_image;
  const int64_t ty = rest / geo.tiles_x, tx = rest - ty * geo.tiles_x;
  return {n, ty * T::TH, tx * T::TW};
}

TF_DEVICE bool inside(const Geometry& geo, int64_t row, int64_t col) {
  return row >= 0 && row < geo.H && col >= 0 && col < geo.W;
}

TF_DEVICE int64_t offset(const ImageRef& im, int64_t n, int64_t c, int64_t row, int64_t col) {
  return n * im.sn + c * im.sc + row * im.sh + col * im.sw;
}

// dst[ch][E2] = convert(im[n, ch, ...]) over the input region, zero outside the image
template <class T, typename scalar_t, typename dst_t, class Convert>
TF_DEVICE void load_region_as(dst_t* dst, const ImageRef& im, int channels, const Geometry& geo, const TileOrigin& o,
                              Convert convert) {
  const scalar_t* src = static_cast<const scalar_t*>(im.data);
  for (int idx = threadIdx.x; idx < channels * T::E2; idx += kThreads) {
    const int ch = idx / T::E2, rest = idx - ch * T::E2;
    const int r2 = rest / T::E2W, c2 = rest - r2 * T::E2W;
    const int64_t row = o.oy + r2 - 2, col = o.ox + c2 - 2;
    dst[idx] = inside(geo, row, col) ? convert(src[offset(im, o.n, ch, row, col)]) : dst_t(0);
  }
}

template <class T, typename scalar_t, typename acc_t>
TF_DEVICE void load_region(acc_t* dst, const ImageRef& im, int channels, const Geometry& geo, const TileOrigin& o,
                           acc_t scale) {
  load_region_as<T, scalar_t>(dst, im, channels, geo, o, [scale](scalar_t v) { return scale * to_acc(v); });
}

// dst = conv1's input cat[g, y] over the input region: channels [0, C) of g, then C of y
template <class T, typename scalar_t, typename dst_t, class Convert>
TF_DEVICE void load_conv1_input(dst_t* dst, const ImageRef& g, const ImageRef& y, int C, const Geometry& geo,
                                const TileOrigin& o, Convert convert) {
  load_region_as<T, scalar_t>(dst, g, C, geo, o, convert);
  load_region_as<T, scalar_t>(dst + C * T::E2, y, C, geo, o, convert);
}

// ------------------------------------------------------------------ weights of one hidden chunk
// Rearranged per use so that every inner loop reads them with broadcast vector loads;
// hidden channels past `hidden` (and input channels past 2C) are zero, so padded lanes add 0.

template <class T, typename acc_t>
TF_DEVICE void load_w1_by_input(acc_t* w1a, const acc_t* w1, int C2, int hidden, int j0) {
  for (int idx = threadIdx.x; idx < C2 * 9 * T::HC; idx += kThreads) {
    const int jj = idx % T::HC, tap_of_ci = idx / T::HC;  // (ci * 9 + tap)
    const int j = j0 + jj;
    w1a[idx] = j < hidden ? w1[static_cast<int64_t>(j) * C2 * 9 + tap_of_ci] : acc_t(0);
  }
}

template <class T, typename acc_t>
TF_DEVICE void load_b1(acc_t* b1s, const acc_t* b1, int hidden, int j0) {
  for (int jj = threadIdx.x; jj < T::HC; jj += kThreads) b1s[jj] = j0 + jj < hidden ? b1[j0 + jj] : acc_t(0);
}

template <class T, typename acc_t>
TF_DEVICE void load_w2_by_hidden(acc_t* w2b, const acc_t* w2, int C, int hidden, int j0) {
  for (int idx = threadIdx.x; idx < T::HC * 9 * kMaxChannels; idx += kThreads) {
    const int c = idx % kMaxChannels, tap_of_jj = idx / kMaxChannels;  // (jj * 9 + tap)
    const int jj = tap_of_jj / 9, tap = tap_of_jj % 9, j = j0 + jj;
    w2b[idx] = (c < C && j < hidden) ? w2[(static_cast<int64_t>(c) * hidden + j) * 9 + tap] : acc_t(0);
  }
}

template <class T, typename acc_t>
TF_DEVICE void load_w2_by_channel(acc_t* w2g, const acc_t* w2, int C, int hidden, int j0) {
  for (int idx = threadIdx.x; idx < C * 9 * T::HC; idx += kThreads) {
    const int jj = idx % T::HC, tap_of_c = idx / T::HC;  // (c * 9 + tap)
    const int c = tap_of_c / 9, tap = tap_of_c % 9, j = j0 + jj;
    w2g[idx] = j < hidden ? w2[(static_cast<int64_t>(c) * hidden + j) * 9 + tap] : acc_t(0);
  }
}

template <class T, typename acc_t>
TF_DEVICE void load_w1_by_hidden(acc_t* w1d, const acc_t* w1, int C2, int hidden, int j0) {
  for (int idx = threadIdx.x; idx < T::HC * 9 * 2 * kMaxChannels; idx += kThreads) {
    const int ci = idx % (2 * kMaxChannels), tap_of_jj = idx / (2 * kMaxChannels);  // (jj * 9 + tap)
    const int jj = tap_of_jj / 9, tap = tap_of_jj % 9, j = j0 + jj;
    w1d[idx] = (ci < C2 && j < hidden) ? w1[(static_cast<int64_t>(j) * C2 + ci) * 9 + tap] : acc_t(0);
  }
}

// ------------------------------------------------------------------ phases
// Unrolling is limited on purpose (`#pragma unroll 1` / `3` below): fully unrolled tap loops
// let the compiler hoist every tap's shared-memory loads at once, which overflows the register
// budgets (step_params.h) and spills. Each remaining iteration still issues 16 to 32
// independent FMAs.

// The thread's item i among `count` positions (the E1 positions, or the tile's INNER pixels),
// or -1 past them.
template <int count>
TF_DEVICE int thread_item(int i) {
  const int p = threadIdx.x + i * kThreads;
  return p < count ? p : -1;
}

// body(i, r, c, row, col) for each of the thread's output pixels that lies in the image: its item
// i, at (r, c) in the tile and (row, col) in the image
template <class T, class Body>
TF_DEVICE void for_each_output_pixel(const Geometry& geo, const TileOrigin& o, Body&& body) {
#pragma unroll
  for (int i = 0; i < T::B_ITEMS; ++i) {
    const int q = thread_item<T::INNER>(i);
    if (q < 0) continue;
    const int r = q / T::TW, c = q % T::TW;
    const int64_t row = o.oy + r, col = o.ox + c;
    if (inside(geo, row, col)) body(i, r, c, row, col);
  }
}

// Whether E1 position e lies in the image: h (and its gradient) is zero outside, conv2's zero padding.
template <class T>
TF_DEVICE bool e1_in_image(const Geometry& geo, const TileOrigin& o, int e) {
  return inside(geo, o.oy + e / T::E1W - 1, o.ox + e % T::E1W - 1);
}

// Phases A and G: acc[i][jj] += sum over planes and taps of w[plane][tap][jj] * src[plane] at
// the thread's E1 positions, src being an E2 array read at +tap from the position's top-left
// tap (SIGN = +1: conv1 of x with w1) or at -tap from its bottom-right tap (SIGN = -1: the
// transposed conv2 of dG with w2, i.e. grad_h).
template <class T, int SIGN, typename acc_t>
TF_DEVICE void conv_to_hidden(acc_t (&acc)[T::A_ITEMS][T::HC], const acc_t* src, const acc_t* w, int planes) {
  constexpr int corner = SIGN > 0 ? 0 : 2;
  int base[T::A_ITEMS];
#pragma unroll
  for (int i = 0; i < T::A_ITEMS; ++i) {
    const int p = thread_item<T::E1>(i) < 0 ? 0 : thread_item<T::E1>(i);
    base[i] = (p / T::E1W + corner) * T::E2W + p % T::E1W + corner;
  }
  for (int plane = 0; plane < planes; ++plane) {
    const acc_t* sp = src + plane * T::E2;
    const acc_t* wp = w + plane * 9 * T::HC;
#pragma unroll 1
    for (int tap = 0; tap < 9; ++tap) {
      acc_t wt[T::HC];
      smem_load(wt, wp + tap * T::HC);
      const int shift = SIGN * ((tap / 3) * T::E2W + tap % 3);
#pragma unroll
      for (int i = 0; i < T::A_ITEMS; ++i) {
        const acc_t v = sp[base[i] + shift];
#pragma unroll
        for (int jj = 0; jj < T::HC; ++jj) acc[i][jj] += wt[jj] * v;
      }
    }
  }
}

// Phase A: u[i][jj] = b1 + conv(x, w1) at the thread's E1 positions, for the chunk's channels.
template <class T, typename acc_t>
TF_DEVICE void pre_activation(acc_t (&u)[T::A_ITEMS][T::HC], const acc_t* x_s, const acc_t* w1a,
                              const acc_t* b1s, int C2) {
  acc_t b[T::HC];
  smem_load(b, b1s);
#pragma unroll
  for (int i = 0; i < T::A_ITEMS; ++i)
#pragma unroll
    for (int jj = 0; jj < T::HC; ++jj) u[i][jj] = b[jj];
  conv_to_hidden<T, +1>(u, x_s, w1a, C2);
}

// Backward phase G: gh[i][jj] = sum_{c,tap} w2[c, j, tap] dG[c, p - tap + 1] at the thread's
// E1 positions.
template <class T, typename acc_t>
TF_DEVICE void hidden_grad(acc_t (&gh)[T::A_ITEMS][T::HC], const acc_t* d_s, const acc_t* w2g, int C) {
#pragma unroll
  for (int i = 0; i < T::A_ITEMS; ++i)
#pragma unroll
    for (int jj = 0; jj < T::HC; ++jj) gh[i][jj] = acc_t(0);
  conv_to_hidden<T, -1>(gh, d_s, w2g, C);
}

// Forward phase B: out[i][c] += sum_{jj,tap} w2[c, j, tap] h[jj, q + tap - 1] at the thread's pixels.
template <class T, typename acc_t>
TF_DEVICE void accumulate_output(acc_t (&out)[T::B_ITEMS][kMaxChannels], const acc_t* h_s, const acc_t* w2b, int C) {
  int base[T::B_ITEMS];  // E1 index of (r, c): tap (dy, dx) reads base + dy*E1W + dx
#pragma unroll
  for (int i = 0; i < T::B_ITEMS; ++i) {
    const int q = thread_item<T::INNER>(i) < 0 ? 0 : thread_item<T::INNER>(i);
    base[i] = (q / T::TW) * T::E1W + q % T::TW;
  }
#pragma unroll 1
  for (int jj = 0; jj < T::HC; ++jj) {
    const acc_t* hj = h_s + jj * T::E1;
#pragma unroll 3
    for (int tap = 0; tap < 9; ++tap) {
      acc_t w[kMaxChannels];
      smem_load(w, w2b + (jj * 9 + tap) * kMaxChannels);
      const int shift = (tap / 3) * T::E1W + tap % 3;
#pragma unroll
      for (int i = 0; i < T::B_ITEMS; ++i) {
        const acc_t hv = hj[base[i] + shift];
#pragma unroll
        for (int c = 0; c < kMaxChannels; ++c)
          if (c < C) out[i][c] += w[c] * hv;
      }
    }
  }
}

// Backward phase D: gin[i][ci] += sum_{jj,tap} w1[j, ci, tap] gu[jj, q - tap + 1] (transposed
// first convolution) at the thread's pixels; ci < C is g's gradient, C <= ci < 2C is y's.
template <class T, typename acc_t>
TF_DEVICE void accumulate_input_grad(acc_t (&gin)[T::B_ITEMS][2 * kMaxChannels], const acc_t* gu_s,
                                     const acc_t* w1d, int C2) {
  int base[T::B_ITEMS];  // E1 index of (r + 2, c + 2): tap (dy, dx) reads base - dy*E1W - dx
#pragma unroll
  for (int i = 0; i < T::B_ITEMS; ++i) {
    const int q = thread_item<T::INNER>(i) < 0 ? 0 : thread_item<T::INNER>(i);
    base[i] = (q / T::TW + 2) * T::E1W + q % T::TW + 2;
  }
#pragma unroll 1
  for (int jj = 0; jj < T::HC; ++jj) {
    const acc_t* gj = gu_s + jj * T::E1;
#pragma unroll 3
    for (int tap = 0; tap < 9; ++tap) {
      acc_t w[2 * kMaxChannels];
      smem_load(w, w1d + (jj * 9 + tap) * 2 * kMaxChannels);
      const int shift = (tap / 3) * T::E1W + tap % 3;
#pragma unroll
      for (int i = 0; i < T::B_ITEMS; ++i) {
        const acc_t gv = gj[base[i] - shift];
#pragma unroll
        for (int ci = 0; ci < 2 * kMaxChannels; ++ci)
          if (ci < C2) gin[i][ci] += w[ci] * gv;
      }
    }
  }
}

// The loop over chunks of HC hidden channels that the forward and backward blocks share. Per
// chunk, once every thread is done with the previous chunk's shared arrays: conv1's weights and
// bias and the chunk's other weights (load_more(j0)) go to shared memory; then body(j0, u) runs
// with u the chunk's pre-activation b1 + conv(x, w1) at the thread's E1 positions.
template <class T, typename acc_t, class LoadMore, class Body>
TF_DEVICE void for_each_hidden_chunk(const acc_t* x_s, acc_t* w1a, acc_t* b1s, const WeightsRef& w, int C,
                                     int hidden, LoadMore&& load_more, Body&& body) {
  const int C2 = 2 * C;
  for (int j0 = 0; j0 < hidden; j0 += T::HC) {
    __syncthreads();  // the previous chunk is done with the weights and the hidden arrays
    load_w1_by_input<T>(w1a, static_cast<const acc_t*>(w.w1), C2, hidden, j0);
    load_b1<T>(b1s, static_cast<const acc_t*>(w.b1), hidden, j0);
    load_more(j0);
    __syncthreads();
    acc_t u[T::A_ITEMS][T::HC];
    pre_activation<T>(u, x_s, w1a, b1s, C2);
    body(j0, u);
  }
}

// ------------------------------------------------------------------ weight gradients

// Where a block's weight-gradient contributions go: its own row of partials, written by its
// first tile and added to by later ones, each entry always by the same thread in the same
// order (deterministic); or, when determinism is not requested, atomicAdd into the total.
template <typename acc_t>
struct WeightGradSink {
  acc_t* target;
  bool atomic, first_tile;
  TF_DEVICE void add(int64_t e, acc_t v) const {
    if (atomic)
      atomicAdd(target + e, v);
    else
      target[e] = first_tile ? v : target[e] + v;
  }
};

// grad_b2[c] = sum over the tile's pixels of dG[c]
template <class T, typename acc_t>
TF_DEVICE void bias2_grads(const acc_t* d_s, int C, const WeightGradLayout& lay, const WeightGradSink<acc_t>& sink) {
  for (int c = threadIdx.x; c < C; c += kThreads) {
    acc_t sum = acc_t(0);
    for (int r = 0; r < T::TH; ++r)
      for (int col = 0; col < T::TW; ++col) sum += d_s[c * T::E2 + (r + 2) * T::E2W + col + 2];
    sink.add(lay.b2 + c, sum);
  }
}

// The chunk's share of grad_w1, grad_b1 and grad_w2, summed over the tile's pixels (the inner
// region: every pixel of the image belongs to exactly one tile). Each item keeps 4 hidden
// channels x 3 horizontal taps in registers and slides along rows so each step loads one new
// value of the sliding operand.
template <class T, typename acc_t>
TF_DEVICE void weight_grads(const acc_t* x_s, const acc_t* d_s, const acc_t* h_s, const acc_t* gu_s, int C,
                            int hidden, int j0, const WeightGradLayout& lay, const WeightGradSink<acc_t>& sink) {
  constexpr int JG = T::HC / 4;
  const int C2 = 2 * C;
  const int n_w1 = JG * C2 * 3, n_w2 = JG * C * 3, n_b1 = JG;
  for (int item = threadIdx.x; item < n_w1 + n_w2 + n_b1; item += kThreads) {
    acc_t acc[4][3];
#pragma unroll
    for (int jj = 0; jj < 4; ++jj)
#pragma unroll
      for (int dx = 0; dx < 3; ++dx) acc[jj][dx] = acc_t(0);
    if (item < n_w1) {
      // grad_w1[j, ci, dy, dx] += sum_(r,c) gu[j] at E1 (r+1, c+1) * x[ci] at E2 (r+dy+1, c+dx+1)
      const int dy = item % 3, ci = (item / 3) % C2, jg = item / (3 * C2);
      for (int r = 0; r < T::TH; ++r) {
        const acc_t* xr = x_s + ci * T::E2 + (r + dy + 1) * T::E2W + 1;
        const acc_t* gr = gu_s + jg * 4 * T::E1 + (r + 1) * T::E1W + 1;
        acc_t x0 = xr[0], x1 = xr[1];
        for (int c = 0; c < T::TW; ++c) {
          const acc_t x2 = xr[c + 2];
#pragma unroll
          for (int jj = 0; jj < 4; ++jj) {
            const acc_t g = gr[jj * T::E1 + c];
            acc[jj][0] += g * x0;
            acc[jj][1] += g * x1;
            acc[jj][2] += g * x2;
          }
          x0 = x1;
          x1 = x2;
        }
      }
#pragma unroll
      for (int jj = 0; jj < 4; ++jj) {
        const int j = j0 + jg * 4 + jj;
        if (j < hidden)
#pragma unroll
          for (int dx = 0; dx < 3; ++dx) sink.add(lay.w1 + (static_cast<int64_t>(j) * C2 + ci) * 9 + dy * 3 + dx, acc[jj][dx]);
      }
    } else if (item < n_w1 + n_w2) {
      // grad_w2[c, j, dy, dx] += sum_(r,col) dG[c] at E2 (r+2, col+2) * h[j] at E1 (r+dy, col+dx)
      const int it = item - n_w1;
      const int dy = it % 3, c = (it / 3) % C, jg = it / (3 * C);
      for (int r = 0; r < T::TH; ++r) {
        const acc_t* dr = d_s + c * T::E2 + (r + 2) * T::E2W + 2;
        const acc_t* hr = h_s + jg * 4 * T::E1 + (r + dy) * T::E1W;
        acc_t h0[4], h1[4];
#pragma unroll
        for (int jj = 0; jj < 4; ++jj) {
          h0[jj] = hr[jj * T::E1];
          h1[jj] = hr[jj * T::E1 + 1];
        }
        for (int col = 0; col < T::TW; ++col) {
          const acc_t dv = dr[col];
#pragma unroll
          for (int jj = 0; jj < 4; ++jj) {
            const acc_t h2 = hr[jj * T::E1 + col + 2];
            acc[jj][0] += dv * h0[jj];
            acc[jj][1] += dv * h1[jj];
            acc[jj][2] += dv * h2;
            h0[jj] = h1[jj];
            h1[jj] = h2;
          }
        }
      }
#pragma unroll
      for (int jj = 0; jj < 4; ++jj) {
        const int j = j0 + jg * 4 + jj;
        if (j < hidden)
#pragma unroll
          for (int dx = 0; dx < 3; ++dx) sink.add(lay.w2 + (static_cast<int64_t>(c) * hidden + j) * 9 + dy * 3 + dx, acc[jj][dx]);
      }
    } else {
      // grad_b1[j] += sum_(r,c) gu[j] at E1 (r+1, c+1)
      const int jg = item - n_w1 - n_w2;
      for (int r = 0; r < T::TH; ++r)
        for (int c = 0; c < T::TW; ++c)
#pragma unroll
          for (int jj = 0; jj < 4; ++jj) acc[jj][0] += gu_s[(jg * 4 + jj) * T::E1 + (r + 1) * T::E1W + c + 1];
#pragma unroll
      for (int jj = 0; jj < 4; ++jj)
        if (j0 + jg * 4 + jj < hidden) sink.add(lay.b1 + j0 + jg * 4 + jj, acc[jj][0]);
    }
  }
}

// ------------------------------------------------------------------ blocks

// The forward epilogue at one output: g_out = G + k g, acc_out = acc_in + g_out / (k+1)!
// (G without k g in v; g the input at that pixel)
template <typename scalar_t, typename acc_t>
TF_DEVICE void store_step_output(const StepForwardParams& p, const TileOrigin& o, int ch, int64_t row, int64_t col,
                                 acc_t v, acc_t g) {
  if (p.k != 0) v += static_cast<acc_t>(p.k) * g;
  store(static_cast<scalar_t*>(p.g_out.data) + offset(p.g_out, o.n, ch, row, col), v);
  const acc_t a = to_acc(static_cast<const scalar_t*>(p.acc_in.data)[offset(p.acc_in, o.n, ch, row, col)]);
  store(static_cast<scalar_t*>(p.acc_out.data) + offset(p.acc_out, o.n, ch, row, col),
        a + static_cast<acc_t>(p.acc_coef) * v);
}

template <typename scalar_t>
TF_DEVICE void step_forward_block(const StepForwardParams& p) {
  using acc_t = typename AccType<scalar_t>::type;
  using T = Tile<acc_t>;
  const int C = static_cast<int>(p.geo.C), hidden = static_cast<int>(p.geo.hidden);
  const SmemLayout L = smem_layout<acc_t>(C, false);
  acc_t* smem = reinterpret_cast<acc_t*>(dynamic_smem());
  acc_t *x_s = smem + L.x, *h_s = smem + L.h, *w1a = smem + L.w1a, *w2b = smem + L.w2b, *b1s = smem + L.b1;
  const acc_t slope = static_cast<acc_t>(p.slope);
  const TileOrigin o = tile_origin<T>(p.geo, blockIdx.x);

  load_conv1_input<T, scalar_t>(x_s, p.g, p.y, C, p.geo, o, [](scalar_t v) { return to_acc(v); });

  acc_t out[T::B_ITEMS][kMaxChannels];
#pragma unroll
  for (int i = 0; i < T::B_ITEMS; ++i)
#pragma unroll
    for (int c = 0; c < kMaxChannels; ++c) out[i][c] = acc_t(0);

  for_each_hidden_chunk<T>(
      x_s, w1a, b1s, p.w, C, hidden,
      [&](int j0) { load_w2_by_hidden<T>(w2b, static_cast<const acc_t*>(p.w.w2), C, hidden, j0); },
      [&](int j0, acc_t(&u)[T::A_ITEMS][T::HC]) {
#pragma unroll
        for (int i = 0; i < T::A_ITEMS; ++i) {
          const int e = thread_item<T::E1>(i);
          if (e < 0) continue;
          const bool in_image = e1_in_image<T>(p.geo, o, e);
          // a padded hidden lane (j0 + jj >= hidden) has zero weights, but u = 0 * inf = NaN next
          // to an infinite pixel, and w2's zeros would carry it into every output: h is 0 there
#pragma unroll
          for (int jj = 0; jj < T::HC; ++jj)
            h_s[jj * T::E1 + e] = in_image && j0 + jj < hidden ? activate(u[i][jj], slope) : acc_t(0);
        }
        __syncthreads();
        accumulate_output<T>(out, h_s, w2b, C);
      });
  __syncthreads();  // x_s is complete even when no hidden chunk ran (hidden == 0)

  const acc_t* b2 = static_cast<const acc_t*>(p.w.b2);
  for_each_output_pixel<T>(p.geo, o, [&](int i, int r, int c, int64_t row, int64_t col) {
#pragma unroll
    for (int ch = 0; ch < kMaxChannels; ++ch)
      if (ch < C)
        store_step_output<scalar_t>(p, o, ch, row, col, out[i][ch] + b2[ch],
                                    x_s[ch * T::E2 + (r + 2) * T::E2W + c + 2]);
  });
}

template <typename scalar_t>
TF_DEVICE void step_backward_block(const StepBackwardParams& p) {
  using acc_t = typename AccType<scalar_t>::type;
  using T = Tile<acc_t>;
  const int C = static_cast<int>(p.geo.C), C2 = 2 * C, hidden = static_cast<int>(p.geo.hidden);
  const SmemLayout L = smem_layout<acc_t>(C, true);
  acc_t* smem = reinterpret_cast<acc_t*>(dynamic_smem());
  acc_t *x_s = smem + L.x, *d_s = smem + L.d, *h_s = smem + L.h, *gu_s = smem + L.gu;
  acc_t *w1a = smem + L.w1a, *w2g = smem + L.w2g, *w1d = smem + L.w1d, *b1s = smem + L.b1;
  const acc_t slope = static_cast<acc_t>(p.slope), k = static_cast<acc_t>(p.k);
  const WeightGradLayout lay = weight_grad_layout(C, hidden);
  acc_t* wg_target = p.atomic ? static_cast<acc_t*>(p.wgrad)
                              : static_cast<acc_t*>(p.partials) + static_cast<int64_t>(blockIdx.x) * lay.total;
  const acc_t* w1 = static_cast<const acc_t*>(p.w.w1);
  const acc_t* w2 = static_cast<const acc_t*>(p.w.w2);

  // persistent blocks: a fixed set of tiles per block keeps the partials buffer small
  for (int64_t tile = blockIdx.x; tile < p.geo.tiles; tile += gridDim.x) {
    const WeightGradSink<acc_t> sink{wg_target, p.atomic, tile == static_cast<int64_t>(blockIdx.x)};
    const TileOrigin o = tile_origin<T>(p.geo, tile);
    __syncthreads();  // the previous tile is done with every shared array
    load_conv1_input<T, scalar_t>(x_s, p.g, p.y, C, p.geo, o, [](scalar_t v) { return to_acc(v); });
    load_region<T, scalar_t>(d_s, p.dg, C, p.geo, o, static_cast<acc_t>(p.dg_scale));
    __syncthreads();
    bias2_grads<T>(d_s, C, lay, sink);

    acc_t gin[T::B_ITEMS][2 * kMaxChannels];
#pragma unroll
    for (int i = 0; i < T::B_ITEMS; ++i)
#pragma unroll
      for (int ci = 0; ci < 2 * kMaxChannels; ++ci) gin[i][ci] = acc_t(0);

    for_each_hidden_chunk<T>(
        x_s, w1a, b1s, p.w, C, hidden,
        [&](int j0) {
          load_w2_by_channel<T>(w2g, w2, C, hidden, j0);
          load_w1_by_hidden<T>(w1d, w1, C2, hidden, j0);
        },
        // the pre-activation u is parked in h_s (own positions only), then its registers take
        // grad_h; h = act(u) and gu = grad_h * act'(u), both zero off the image
        [&](int j0, acc_t(&r)[T::A_ITEMS][T::HC]) {
#pragma unroll
          for (int i = 0; i < T::A_ITEMS; ++i) {
            const int e = thread_item<T::E1>(i);
            if (e < 0) continue;
#pragma unroll
            for (int jj = 0; jj < T::HC; ++jj) h_s[jj * T::E1 + e] = r[i][jj];
          }
          hidden_grad<T>(r, d_s, w2g, C);
#pragma unroll
          for (int i = 0; i < T::A_ITEMS; ++i) {
            const int e = thread_item<T::E1>(i);
            if (e < 0) continue;
            const bool in_image = e1_in_image<T>(p.geo, o, e);
#pragma unroll
            for (int jj = 0; jj < T::HC; ++jj) {
              const acc_t u = h_s[jj * T::E1 + e];
              // padded lanes 0, as in the forward (an infinite upstream gradient makes their dh NaN)
              const bool real = in_image && j0 + jj < hidden;
              h_s[jj * T::E1 + e] = real ? activate(u, slope) : acc_t(0);
              gu_s[jj * T::E1 + e] = real ? activate_backward(r[i][jj], u, slope) : acc_t(0);
            }
          }
          __syncthreads();
          weight_grads<T>(x_s, d_s, h_s, gu_s, C, hidden, j0, lay, sink);
          accumulate_input_grad<T>(gin, gu_s, w1d, C2);
        });

    // epilogue: grad_g = J_g^T dG + k dG + dout_scale dout;  grad_y (+)= J_y^T dG
    const scalar_t* dout = static_cast<const scalar_t*>(p.dout.data);
    scalar_t* grad_g = static_cast<scalar_t*>(p.grad_g.data);
    scalar_t* grad_y = static_cast<scalar_t*>(p.grad_y.data);
    const acc_t dout_scale = static_cast<acc_t>(p.dout_scale);
    for_each_output_pixel<T>(p.geo, o, [&](int i, int r, int c, int64_t row, int64_t col) {
#pragma unroll
      for (int ci = 0; ci < 2 * kMaxChannels; ++ci) {
        if (ci < C) {
          acc_t v = gin[i][ci];
          if (p.k != 0) v += k * d_s[ci * T::E2 + (r + 2) * T::E2W + c + 2];
          if (dout != nullptr) v += dout_scale * to_acc(dout[offset(p.dout, o.n, ci, row, col)]);
          store(grad_g + offset(p.grad_g, o.n, ci, row, col), v);
        } else if (ci < C2) {
          scalar_t* dst = grad_y + offset(p.grad_y, o.n, ci - C, row, col);
          acc_t v = gin[i][ci];
          if (p.accumulate_grad_y) v += to_acc(*dst);
          store(dst, v);
        }
      }
    });
  }
}

template <typename acc_t>
TF_DEVICE void reduce_weight_grads_thread(const WeightGradReduceParams& p) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * kReduceThreads + threadIdx.x;
  if (e >= p.entries) return;
  const acc_t* src = static_cast<const acc_t*>(p.partials) + e;
  acc_t* out = static_cast<acc_t*>(p.out) + e;
  acc_t sum = p.accumulate ? *out : acc_t(0);
  for (int64_t b = 0; b < p.blocks; ++b) sum += src[b * p.entries];
  *out = sum;
}

}  // namespace taylor_fast::cuda
