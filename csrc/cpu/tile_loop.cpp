#include "cpu/tile_loop.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

namespace taylor_fast::cpu {

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

namespace {

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

}  // namespace

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

#define TF_INSTANTIATE(T)                                                                                      \
  template ForwardArgs<T> forward_args<T>(const Tiling&, const PaddedImages<T>&, const PaddedImages<T>&,        \
                                          const T*, int64_t, const T*, int64_t, int64_t, double);               \
  template BackwardArgs<T> backward_args<T>(const Tiling&, const std::vector<Planes<const T>>&,                \
                                            const PaddedImages<T>&, const PaddedImages<T>&, const std::vector<T>&, \
                                            int64_t, double);                                                    \
  template void run_forward_pass<T>(const TileKernels<T>&, const ForwardArgs<T>&);                             \
  template void run_backward_pass<T>(const TileKernels<T>&, const BackwardArgs<T>&, T*);                       \
  template void run_backward_band<T>(const TileKernels<T>&, const BackwardArgs<T>&, T*, int64_t, int64_t);
TF_INSTANTIATE(float)
TF_INSTANTIATE(double)
#undef TF_INSTANTIATE

}  // namespace taylor_fast::cpu
