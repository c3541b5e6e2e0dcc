// The weights on their way into the tile kernels (packed per weight set, in the layout of the
// active ISA's kernels) and their gradients on the way out (as tensors shaped like the weights).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <tuple>
#include <vector>

#include "cpu/tile_kernels.h"

namespace taylor_fast::cpu {

// The weight set order k uses, packed: set k of per-order weights (5-D w1), else the shared set.
template <typename T>
std::vector<T> packed_weight_set(const TileKernels<T>& kernels, const at::Tensor& w1, const at::Tensor& b1,
                                 const at::Tensor& w2, const at::Tensor& b2, int64_t k);
// Every weight set packed, one after another (one set when shared).
template <typename T>
std::vector<T> packed_weight_sets(const TileKernels<T>& kernels, const at::Tensor& w1, const at::Tensor& b1,
                                  const at::Tensor& w2, const at::Tensor& b2);

// grads holds `sets` consecutive weight-gradient blocks; returns them as tensors shaped and
// laid out like empty_like(w1), empty_like(b1), empty_like(w2), empty_like(b2).
template <typename T>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> weight_grad_tensors(
    const std::vector<T>& grads, const at::Tensor& w1, const at::Tensor& b1, const at::Tensor& w2,
    const at::Tensor& b2);

}  // namespace taylor_fast::cpu
