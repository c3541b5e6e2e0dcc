// The tile loop of the CPU ops: the arguments of a forward or backward pass, and the pass run
// over every tile (or a band of tile rows) in parallel, with the backward's per-tile
// weight-gradient shares summed in tile order.
#pragma once
#include <cstdint>
#include <vector>

#include "cpu/padded_planes.h"
#include "cpu/tile_kernels.h"

namespace taylor_fast::cpu {

// The inputs of a forward pass over `orders` orders from k0 (weights: the pass's sets, one after
// another, or the shared set; coefs: 1 / (k+1)! of each); the caller adds where results go.
template <typename T>
ForwardArgs<T> forward_args(const Tiling& t, const PaddedImages<T>& g, const PaddedImages<T>& y,
                            const T* weights, int64_t weights_stride, const T* coefs, int64_t k0, int64_t orders,
                            double negative_slope);
// The inputs of a backward pass over orders k, k - 1, ..., k - orders + 1 (g: their inputs
// g^{k-q}, `orders` planes), of one weight set; the caller adds where the results go.
template <typename T>
BackwardArgs<T> backward_args(const Tiling& t, const std::vector<Planes<const T>>& g, const PaddedImages<T>& y,
                              const PaddedImages<T>& grad_g_next, const std::vector<T>& weights, int64_t k,
                              double negative_slope);

template <typename T>
void run_forward_pass(const TileKernels<T>& kernels, const ForwardArgs<T>& args);

// Adds the pass's weight gradients (weight_grad_size values, natural layout) into grads. The
// tiles' shares are summed in tile order, so for a given tiling the result does not depend on
// which thread computed which tile.
template <typename T>
void run_backward_pass(const TileKernels<T>& kernels, const BackwardArgs<T>& args, T* grads);
// The same over the tiles of row blocks [first_row_block, end_row_block) only.
template <typename T>
void run_backward_band(const TileKernels<T>& kernels, const BackwardArgs<T>& args, T* grads,
                       int64_t first_row_block, int64_t end_row_block);

}  // namespace taylor_fast::cpu
