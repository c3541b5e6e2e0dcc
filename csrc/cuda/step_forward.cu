// The fused forward step kernel: one block per output tile (see step_kernels.cuh).
#include "cuda/device_platform.cuh"
#include "cuda/launch.h"
#include "cuda/step_kernels.cuh"

namespace taylor_fast::cuda {

namespace {

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads, kForwardMinBlocks) step_forward_kernel(const StepForwardParams p) {
  step_forward_block<scalar_t>(p);
}

}  // namespace

cudaError_t launch_step_forward(const StepForwardParams& p, ScalarKind kind, cudaStream_t stream) {
  return dispatch_scalar(kind, [&](auto tag) {
    using scalar_t = decltype(tag);
    using acc_t = typename AccType<scalar_t>::type;
    const size_t smem = smem_layout<acc_t>(static_cast<int>(p.geo.C), false).total * sizeof(acc_t);
    const cudaError_t err = allow_dynamic_smem(step_forward_kernel<scalar_t>, smem);
    if (err != cudaSuccess) return err;
    step_forward_kernel<scalar_t><<<static_cast<unsigned>(p.geo.tiles), kThreads, smem, stream>>>(p);
    return cudaSuccess;
  });
}

}  // namespace taylor_fast::cuda
