#include "cpu/order_launch.h"

#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "step_math.h"

namespace taylor_fast::cpu {

namespace {

int64_t ceil_to(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

// The size of the fewest equal blocks of at most `most` that cover `extent`, rounded up to `quantum`.
int64_t even_block(int64_t extent, int64_t most, int64_t quantum) {
  extent = std::max<int64_t>(extent, 1);
  const int64_t blocks = (extent + most - 1) / most;
  return ceil_to((extent + blocks - 1) / blocks, quantum);
}

// Estimated time of a tiling: the tiles the busiest thread runs, times a tile's area, times
// what a tile computes beyond its area: the hidden rows and columns of its halo (one pixel, and
// two more per pipelined order, columns rounded up to whole vectors) and a per-row cost of the
// weight-gradient rows (measured: 128 -> 512 columns makes the backward ~10% faster).
double tiling_cost(const Tiling& t, int64_t vector_width, int64_t threads) {
  const double w = static_cast<double>(t.tile_w), h = static_cast<double>(t.tile_h), d = static_cast<double>(t.depth);
  const double halo = ceil_to(t.tile_w + 4 * t.depth - 2, vector_width) / w * (h + 2 * d) / h;
  const double per_tile = w * h * halo * (1 + 2.0 * vector_width / w);
  return static_cast<double>((t.count() + threads - 1) / threads) * per_tile;
}

}  // namespace

template <typename T>
Tiling choose_tiling(const StepGeometry& geo, const TileKernels<T>& kernels, int64_t depth) {
  Tiling base;
  base.N = geo.N;
  base.C = geo.C;
  base.H = geo.H;
  base.W = geo.W;
  base.hidden = geo.hidden;
  base.depth = depth;
  const int64_t v = kernels.vector_width, threads = at::get_num_threads();
  std::vector<Tiling> candidates;
  for (int64_t most_w : {512, 256, 128, 64, 32}) {
    for (int64_t most_h : {256, 128, 64, 32, 16, 8}) {
      Tiling t = base;
      // one tile across the whole width computes exactly W columns (plus halo), not W rounded
      // up to whole vectors: 100 -> 112 computed columns instead of 128 with 16 lanes
      t.tile_w = geo.W <= std::max(most_w, v) ? geo.W : even_block(geo.W, std::max(most_w, v), v);
      t.tile_h = even_block(geo.H, most_h, 1);
      candidates.push_back(t);
    }
  }
  // at least two tiles per thread where the image allows, so that a thread descheduled on a
  // busy machine leaves work the others can take
  int64_t most_tiles = 0;
  for (const Tiling& t : candidates) most_tiles = std::max(most_tiles, t.count());
  const int64_t wanted = std::min(2 * threads, most_tiles);
  Tiling best = base;
  double best_cost = -1;
  for (const Tiling& t : candidates) {
    const double cost = tiling_cost(t, v, threads);
    if (t.count() >= wanted && (best_cost < 0 || cost < best_cost)) {
      best = t;
      best_cost = cost;
    }
  }
  return best;
}

template <typename T>
PaddedImages<T> padded_images(const Tiling& t, const TileKernels<T>& kernels, const at::TensorOptions& options) {
  const PlaneGeometry g = plane_geometry(t, kernels.vector_width);
  const at::Tensor storage = at::zeros({t.N, t.C, g.rows, g.row}, options);
  const int64_t plane = g.rows * g.row, batch = t.C * plane, origin = 2 * g.row + g.pad_left;
  PaddedImages<T> p;
  p.storage = storage;
  p.interior = storage.as_strided({t.N, t.C, t.H, t.W}, {batch, plane, g.row, 1}, origin);
  p.planes = {storage.data_ptr<T>() + origin, batch, plane, g.row};
  return p;
}

template <typename T>
PaddedImages<T> padded_copy(const Tiling& t, const TileKernels<T>& kernels, const at::Tensor& images) {
  PaddedImages<T> p = padded_images(t, kernels, images.options());
  p.interior.copy_(images);
  return p;
}

template <typename T>
PaddedImages<T> padded_band(const Tiling& t, const TileKernels<T>& kernels, const at::Tensor& images,
                            int64_t first_row_block, int64_t end_row_block) {
  const PlaneGeometry g = plane_geometry(t, kernels.vector_width);
  const int64_t reach = 2 * t.depth, first = first_row_block * t.tile_h;
  const int64_t end = std::min(end_row_block * t.tile_h, t.H), top = first - reach;
  const int64_t rows = end + reach - top;
  const at::Tensor storage = at::zeros({t.N, t.C, rows, g.row}, images.options());
  const int64_t plane = rows * g.row, batch = t.C * plane;
  const int64_t lo = std::max<int64_t>(top, 0), hi = std::min(end + reach, t.H);  // image rows held
  PaddedImages<T> p;
  p.storage = storage;
  p.interior = storage.as_strided({t.N, t.C, hi - lo, t.W}, {batch, plane, g.row, 1}, (lo - top) * g.row + g.pad_left);
  p.interior.copy_(images.narrow(2, lo, hi - lo));
  // image row 0 would sit -top rows into the storage; only rows [top, end + reach) are read
  p.planes = {storage.data_ptr<T>() + g.pad_left - top * g.row, batch, plane, g.row};
  return p;
}

template <typename T>
View<T> view_of(const at::Tensor& t) {
  return {t.data_ptr<T>(), t.stride(0), t.stride(1), t.stride(2), t.stride(3)};
}

template <typename T>
View<const T> read_view_of(const at::Tensor& t) {
  return {t.const_data_ptr<T>(), t.stride(0), t.stride(1), t.stride(2), t.stride(3)};
}

template <typename T>
std::vector<T> packed_weight_set(const TileKernels<T>& kernels, const at::Tensor& w1, const at::Tensor& b1,
                                 const at::Tensor& w2, const at::Tensor& b2, int64_t k) {
  const bool per_order = w1.dim() == 5;
  auto set = [&](const at::Tensor& w) { return (per_order ? w.select(0, k) : w).contiguous(); };
  const at::Tensor c1 = set(w1), cb1 = set(b1), c2 = set(w2), cb2 = set(b2);
  const int64_t C = c2.size(0), hidden = c1.size(0);
  std::vector<T> packed(kernels.packed_weights_size(C, hidden));
  kernels.pack_weights(c1.const_data_ptr<T>(), cb1.const_data_ptr<T>(), c2.const_data_ptr<T>(),
                       cb2.const_data_ptr<T>(), C, hidden, packed.data());
  return packed;
}

template <typename T>
ForwardArgs<T> forward_args(const Tiling& t, const PaddedImages<T>& g, const PaddedImages<T>& y,
                            const T* weights, int64_t weights_stride, const T* coefs, int64_t k0, int64_t orders,
                            double negative_slope) {
  ForwardArgs<T> a;
  a.tiling = t;
  a.orders = orders;
  a.k0 = k0;
  a.g = g.read();
  a.y = y.read();
  a.weights = weights;
  a.weights_stride = weights_stride;
  a.coefs = coefs;
  a.slope = static_cast<T>(negative_slope);
  return a;
}

template <typename T>
BackwardArgs<T> backward_args(const Tiling& t, const std::vector<Planes<const T>>& g, const PaddedImages<T>& y,
                              const PaddedImages<T>& grad_g_next, const std::vector<T>& weights, int64_t k,
                              double negative_slope) {
  BackwardArgs<T> a;
  a.tiling = t;
  a.orders = static_cast<int64_t>(g.size());
  a.g = g.data();
  a.y = y.read();
  a.grad_g_next = grad_g_next.read();
  a.weights = weights.data();
  a.k = k;
  a.slope = static_cast<T>(negative_slope);
  return a;
}

// Runs tile(i, scratch) for every tile. Threads claim tiles one at a time, so a thread that
// loses its core (a busy machine) does not hold up the others; a tile's result does not depend
// on the thread that computes it.
// Each thread's scratch starts on a cache line: its rows are whole vectors apart, so the kernels'
// aligned-column loads then never split a line (malloc's 16-byte alignment made the forward's
// time vary by ~1.5x from process to process with 64-byte vectors).
template <typename T, class Tile>
void for_each_tile(int64_t tiles, int64_t scratch_size, Tile&& tile) {
  constexpr int64_t line = 64;
  std::atomic<int64_t> next{0};
  at::parallel_for(0, std::min<int64_t>(tiles, at::get_num_threads()), 1, [&](int64_t, int64_t) {
    std::vector<T> storage(scratch_size + line / sizeof(T));
    const auto address = reinterpret_cast<std::uintptr_t>(storage.data());
    T* scratch = storage.data() + (line - address % line) % line / sizeof(T);
    for (int64_t i = next++; i < tiles; i = next++) tile(i, scratch);
  });
}

template <typename T>
std::vector<T> packed_weight_sets(const TileKernels<T>& kernels, const at::Tensor& w1, const at::Tensor& b1,
                                  const at::Tensor& w2, const at::Tensor& b2) {
  const int64_t sets = w1.dim() == 5 ? w1.size(0) : 1;
  std::vector<T> packed;
  for (int64_t k = 0; k < sets; ++k) {
    const std::vector<T> set = packed_weight_set(kernels, w1, b1, w2, b2, k);
    packed.insert(packed.end(), set.begin(), set.end());
  }
  return packed;
}

template <typename T>
void run_forward_pass(const TileKernels<T>& kernels, const ForwardArgs<T>& args) {
  for_each_tile<T>(args.tiling.count(), kernels.forward_scratch_size(args.tiling, args.orders),
                   [&](int64_t i, T* scratch) { kernels.forward_tile(args, i, scratch); });
}

template <typename T>
void run_backward_pass(const TileKernels<T>& kernels, const BackwardArgs<T>& args, T* grads) {
  run_backward_band(kernels, args, grads, 0, args.tiling.row_blocks());
}

template <typename T>
void run_backward_band(const TileKernels<T>& kernels, const BackwardArgs<T>& args, T* grads,
                       int64_t first_row_block, int64_t end_row_block) {
  const Tiling& t = args.tiling;
  const int64_t size = weight_grad_size(t.C, t.hidden), cols = t.col_blocks(), rows = t.row_blocks();
  std::vector<int64_t> band;  // tile indices, in tile order
  for (int64_t n = 0; n < t.N; ++n)
    for (int64_t rb = first_row_block; rb < end_row_block; ++rb)
      for (int64_t cb = 0; cb < cols; ++cb) band.push_back((n * rows + rb) * cols + cb);
  const int64_t tiles = static_cast<int64_t>(band.size());
  std::vector<T> shares(tiles * size);
  for_each_tile<T>(tiles, kernels.backward_scratch_size(t, args.orders), [&](int64_t i, T* scratch) {
    kernels.backward_tile(args, band[i], scratch, shares.data() + i * size);
  });
  at::parallel_for(0, size, 256, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      T sum = 0;
      for (int64_t i = 0; i < tiles; ++i) sum += shares[i * size + j];
      grads[j] += sum;
    }
  });
}

template <typename T>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> weight_grad_tensors(
    const std::vector<T>& grads, const at::Tensor& w1, const at::Tensor& b1, const at::Tensor& w2,
    const at::Tensor& b2) {
  const bool per_order = w1.dim() == 5;
  const int64_t sets = per_order ? w1.size(0) : 1;
  const int64_t lead = per_order ? 1 : 0, hidden = w1.size(lead), C = w2.size(lead);
  const int64_t sizes[4] = {hidden * 2 * C * 9, hidden, C * hidden * 9, C};
  const at::Tensor* weights[4] = {&w1, &b1, &w2, &b2};
  at::Tensor out[4];
  int64_t offset = 0;
  for (int i = 0; i < 4; ++i) {
    at::Tensor flat = at::empty({weights[i]->sizes()}, weights[i]->options());
    T* dst = flat.data_ptr<T>();
    for (int64_t s = 0; s < sets; ++s) {
      const T* src = grads.data() + s * weight_grad_size(C, hidden) + offset;
      std::copy(src, src + sizes[i], dst + s * sizes[i]);
    }
    offset += sizes[i];
    out[i] = weights[i]->is_contiguous() ? flat : at::empty_like(*weights[i]).copy_(flat);
  }
  return {out[0], out[1], out[2], out[3]};
}

#define TF_INSTANTIATE(T)                                                                                       \
  template Tiling choose_tiling<T>(const StepGeometry&, const TileKernels<T>&, int64_t);                        \
  template PaddedImages<T> padded_images<T>(const Tiling&, const TileKernels<T>&, const at::TensorOptions&);     \
  template PaddedImages<T> padded_copy<T>(const Tiling&, const TileKernels<T>&, const at::Tensor&);             \
  template View<T> view_of<T>(const at::Tensor&);                                                               \
  template View<const T> read_view_of<T>(const at::Tensor&);                                                   \
  template std::vector<T> packed_weight_set<T>(const TileKernels<T>&, const at::Tensor&, const at::Tensor&,     \
                                               const at::Tensor&, const at::Tensor&, int64_t);                  \
  template ForwardArgs<T> forward_args<T>(const Tiling&, const PaddedImages<T>&, const PaddedImages<T>&,          \
                                          const T*, int64_t, const T*, int64_t, int64_t, double);               \
  template std::vector<T> packed_weight_sets<T>(const TileKernels<T>&, const at::Tensor&, const at::Tensor&,    \
                                                const at::Tensor&, const at::Tensor&);                          \
  template BackwardArgs<T> backward_args<T>(const Tiling&, const std::vector<Planes<const T>>&,                \
                                            const PaddedImages<T>&, const PaddedImages<T>&, const std::vector<T>&, \
                                            int64_t, double);                                                    \
  template void run_forward_pass<T>(const TileKernels<T>&, const ForwardArgs<T>&);                             \
  template void run_backward_pass<T>(const TileKernels<T>&, const BackwardArgs<T>&, T*);     \
  template void run_backward_band<T>(const TileKernels<T>&, const BackwardArgs<T>&, T*, int64_t, int64_t);      \
  template PaddedImages<T> padded_band<T>(const Tiling&, const TileKernels<T>&, const at::Tensor&, int64_t,    \
                                          int64_t);                                                                                \
  template std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> weight_grad_tensors<T>(                   \
      const std::vector<T>&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&);
TF_INSTANTIATE(float)
TF_INSTANTIATE(double)
#undef TF_INSTANTIATE

}  // namespace taylor_fast::cpu
