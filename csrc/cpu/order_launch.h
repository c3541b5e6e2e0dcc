// Host side of the CPU ops: the split into tiles, the zero-bordered plane buffers the tile
// kernels read, packed weight sets, a forward pass or an order's backward run over all tiles
// in parallel, and the weight gradients handed back as tensors.
#pragma once
#include <ATen/core/Tensor.h>

#include <tuple>
#include <vector>

#include "cpu/tile_kernels.h"
#include "taylor_step.h"

namespace taylor_fast::cpu {

// depth: the most orders one forward pass will pipeline (1 for the backward and single steps)
template <typename T>
Tiling choose_tiling(const StepGeometry& geo, const TileKernels<T>& kernels, int64_t depth = 1);

// Orders an expansion's forward and backward pipeline per pass: the terms that involve y are
// computed once per pass, while the rings a pass keeps per order must stay in cache.
constexpr int64_t kMaxPipelinedOrders = 3;

// A batch of images in zero-bordered planes (see Planes), with the (N, C, H, W) view of the
// interior through which torch's copy_ fills them from any strides or memory format.
template <typename T>
struct PaddedImages {
  at::Tensor storage, interior;
  Planes<T> planes;
  Planes<const T> read() const { return {planes.origin, planes.batch, planes.plane, planes.row}; }
};

template <typename T>
PaddedImages<T> padded_images(const Tiling& t, const TileKernels<T>& kernels, const at::TensorOptions& options);
// padded_images holding a copy of `images`
template <typename T>
PaddedImages<T> padded_copy(const Tiling& t, const TileKernels<T>& kernels, const at::Tensor& images);

// The planes a band of tile rows [first_row_block, end_row_block) reads: its image rows and the
// 2 * depth rows around them (zero outside the image), in storage for those rows only; pixel
// addresses as in padded_copy for every row the band's tiles read.
template <typename T>
PaddedImages<T> padded_band(const Tiling& t, const TileKernels<T>& kernels, const at::Tensor& images,
                            int64_t first_row_block, int64_t end_row_block);

template <typename T>
View<T> view_of(const at::Tensor& t);
template <typename T>
View<const T> read_view_of(const at::Tensor& t);

// The weight set order k uses, packed: set k of per-order weights (5-D w1), else the shared set.
template <typename T>
std::vector<T> packed_weight_set(const TileKernels<T>& kernels, const at::Tensor& w1, const at::Tensor& b1,
                                 const at::Tensor& w2, const at::Tensor& b2, int64_t k);
// Every weight set packed, one after another (one set when shared).
template <typename T>
std::vector<T> packed_weight_sets(const TileKernels<T>& kernels, const at::Tensor& w1, const at::Tensor& b1,
                                  const at::Tensor& w2, const at::Tensor& b2);

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
// tiles' shares are summed in tile order, so the result does not depend on the thread count.
template <typename T>
void run_backward_pass(const TileKernels<T>& kernels, const BackwardArgs<T>& args, T* grads);
// The same over the tiles of row blocks [first_row_block, end_row_block) only.
template <typename T>
void run_backward_band(const TileKernels<T>& kernels, const BackwardArgs<T>& args, T* grads,
                       int64_t first_row_block, int64_t end_row_block);

// grads holds `sets` consecutive weight-gradient blocks; returns them as tensors shaped and
// laid out like empty_like(w1), empty_like(b1), empty_like(w2), empty_like(b2).
template <typename T>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> weight_grad_tensors(
    const std::vector<T>& grads, const at::Tensor& w1, const at::Tensor& b1, const at::Tensor& w2,
    const at::Tensor& b2);

}  // namespace taylor_fast::cpu
