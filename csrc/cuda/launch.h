// Kernel launchers of the fused CUDA step (step_forward.cu, step_backward.cu), called by the
// CUDA ops (<op>_op.cpp) on the current stream of the current device. Each returns
// the error of any attribute call it made; the caller checks the launch itself
// (C10_CUDA_KERNEL_LAUNCH_CHECK) right after.
#pragma once
#include <cuda_runtime_api.h>

#include "cuda/step_params.h"

namespace taylor_fast::cuda {

cudaError_t launch_step_forward(const StepForwardParams& p, ScalarKind kind, cudaStream_t stream);
cudaError_t launch_step_backward(const StepBackwardParams& p, ScalarKind kind, int64_t blocks, cudaStream_t stream);
cudaError_t launch_reduce_weight_grads(const WeightGradReduceParams& p, ScalarKind kind, cudaStream_t stream);

// How many backward blocks the current device keeps resident at once for C channels (the
// persistent grid; the partials buffer has one row per block).
cudaError_t backward_resident_blocks(ScalarKind kind, int C, int64_t* blocks);

}  // namespace taylor_fast::cuda
