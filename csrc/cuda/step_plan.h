// Which kernels an op launches, in which order, on which buffers: pure functions from buffers
// to kernel parameters. The CUDA ops (<op>_op.cpp) allocate the buffers and
// launches; the host emulator (tests/cuda_emulator) runs the very same plans without a GPU.
#pragma once
#include <cstdint>
#include <vector>

#include "cuda/step_params.h"

namespace taylor_fast::cuda {

Geometry make_geometry(int64_t N, int64_t C, int64_t H, int64_t W, int64_t hidden, ScalarKind kind);

// Slice `index` of a contiguous (S, N, C, H, W) stack of images such as gs.
ImageRef stacked_image(void* base, const Geometry& geo, int64_t index, ScalarKind kind);

// Weight set `set` of per-order weights stored contiguously (set 0 for shared weights).
WeightsRef weight_set(const WeightsRef& all, const Geometry& geo, int64_t set, ScalarKind kind);

// tensor_cores: run bf16/fp16 calls on the mma.sync kernel (ignored for fp32/fp64)
StepForwardParams plan_step_forward(const Geometry& geo, const ImageRef& g, const ImageRef& y,
                                    const ImageRef& acc_in, const ImageRef& g_out, const ImageRef& acc_out,
                                    const WeightsRef& w, int64_t k, double slope, bool tensor_cores);

// g^0 = f; step k writes g^{k+1} to gs[k] and out = f + sum g^k / k! in place.
std::vector<StepForwardParams> plan_expand_forward(const Geometry& geo, ScalarKind kind, int64_t order,
                                                   bool per_order, const ImageRef& f, const ImageRef& y,
                                                   const ImageRef& out, void* gs, const WeightsRef& w,
                                                   double slope, bool tensor_cores);

struct BackwardLaunch {
  StepBackwardParams step;
  bool reduce = false;  // then sum step.partials into `sum` (deterministic path)
  WeightGradReduceParams sum;
};

// Buffers of a backward call. grad_g[0..1] are two images like f (grad_g[1] unused when only
// one step runs); wgrad holds `weight_sets` rows of WeightGradLayout::total accumulation-type
// values (zeroed first when atomic); partials holds `blocks` such rows (unused when atomic).
struct BackwardBuffers {
  ImageRef grad_g[2];
  ImageRef grad_y;
  void* wgrad = nullptr;
  void* partials = nullptr;
  int64_t blocks = 0;  // grid of the backward kernel: resident blocks, at most the tile count
  bool atomic = false;
};

// One step: dg is the whole gradient reaching g_next.
BackwardLaunch plan_step_backward(const Geometry& geo, ScalarKind kind, const ImageRef& dg, const ImageRef& g,
                                  const ImageRef& y, const WeightsRef& w, int64_t k, double slope,
                                  const BackwardBuffers& out);

// The adjoint recursion of the expansion, k = order-1 .. 0:
//   a_order = dO / order!,  a_k = dO / k! + J_k^T a_{k+1} + k a_{k+1},  grad_f = a_0
// a_k alternates between out.grad_g[0] and [1]; result_buffer says which holds grad_f.
struct ExpandBackwardPlan {
  std::vector<BackwardLaunch> launches;
  int result_buffer = 0;
};
ExpandBackwardPlan plan_expand_backward(const Geometry& geo, ScalarKind kind, int64_t order, bool per_order,
                                        const ImageRef& grad_out, const ImageRef& f, const ImageRef& y,
                                        void* gs, const WeightsRef& w, double slope, const BackwardBuffers& out);

}  // namespace taylor_fast::cuda
