#include "cpu/tiling.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

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

template Tiling choose_tiling<float>(const StepGeometry&, const TileKernels<float>&, int64_t);
template Tiling choose_tiling<double>(const StepGeometry&, const TileKernels<double>&, int64_t);

}  // namespace taylor_fast::cpu
