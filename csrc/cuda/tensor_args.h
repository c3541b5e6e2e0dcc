// What the CUDA ops share between taking tensors and launching kernels: the dtype as the
// kernels know it, tensors as ImageRef / WeightsRef, the geometry and its bounds, the weights in
// the accumulation type, a backward's weight-gradient buffers, and the launch checks.
#pragma once
#include <ATen/core/Tensor.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <tuple>

#include "cuda/step_params.h"
#include "cuda/step_plan.h"
#include "taylor_step.h"

namespace taylor_fast::cuda {

using Grads = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

ScalarKind scalar_kind(const at::Tensor& t);

ImageRef image_ref(const at::Tensor& t);

// The kernels' tiling of the call, after checking the bounds they are compiled for.
Geometry cuda_geometry(const StepGeometry& sg, ScalarKind kind);

// bf16/fp16 forwards run on tensor cores unless TAYLOR_FAST_CUDA_TENSOR_CORES=0 (the SIMT
// kernels then run every dtype: for comparison, and as a fallback)
bool use_tensor_cores(ScalarKind kind);

// Raises the attribute call's error, then any launch error (C10_CUDA_KERNEL_LAUNCH_CHECK).
void check_launch(cudaError_t attribute_error);

// The weights as the kernels read them: contiguous, in the accumulation type.
struct AccWeights {
  at::Tensor w1, b1, w2, b2;
  AccWeights(const at::Tensor& w1_, const at::Tensor& b1_, const at::Tensor& w2_, const at::Tensor& b2_,
             ScalarKind kind);
  WeightsRef ref() const;
};

// Weight-gradient accumulators of a backward call: `sets` rows of WeightGradLayout in the
// accumulation type, plus one row of partials per persistent block unless atomics are allowed.
struct WeightGradBuffers {
  WeightGradLayout lay;
  at::Tensor wgrad, partials;
  BackwardBuffers buffers;

  WeightGradBuffers(const Geometry& geo, ScalarKind kind, int64_t sets, const at::Tensor& like);
  // copies the sums into gradients allocated like the weights (and converts to their dtype)
  void copy_to(at::Tensor& gw1, at::Tensor& gb1, at::Tensor& gw2, at::Tensor& gb2) const;
};

// The backward step of one launch, then the fixed-order sum of its partials if it has one.
void run_backward(const BackwardLaunch& l, ScalarKind kind, int64_t blocks, cudaStream_t stream);

// (grad_g, grad_y) with zero weight gradients, for calls with no pixels or no orders
Grads zero_weight_grads(at::Tensor grad_g, at::Tensor grad_y, const at::Tensor& w1, const at::Tensor& b1,
                        const at::Tensor& w2, const at::Tensor& b2);

}  // namespace taylor_fast::cuda
