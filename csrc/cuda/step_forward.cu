// The fused forward step kernels: one block per output tile; SIMT for every dtype
// (step_kernels.cuh), tensor cores for bf16/fp16 when the params ask (step_kernels_mma.cuh).
#include <type_traits>

#include "cuda/device_platform.cuh"
#include "cuda/launch.h"
#include "cuda/step_kernels.cuh"
#include "cuda/step_kernels_mma.cuh"

namespace taylor_fast::cuda {

namespace {

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads, kForwardMinBlocks) step_forward_kernel(const StepForwardParams p) {
  step_forward_block<scalar_t>(p);
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads, kMmaMinBlocks) step_forward_mma_kernel(const StepForwardParams p) {
  step_forward_block_mma<scalar_t>(p);
}

}  // namespace

cudaError_t launch_step_forward(const StepForwardParams& p, ScalarKind kind, cudaStream_t stream) {
  const int C = static_cast<int>(p.geo.C);
  return dispatch_scalar(kind, [&](auto tag) {
    using scalar_t = decltype(tag);
    using acc_t = typename AccType<scalar_t>::type;
    if constexpr (std::is_same_v<scalar_t, __half> || std::is_same_v<scalar_t, __nv_bfloat16>) {
      if (p.tensor_cores)
        return launch_blocks(step_forward_mma_kernel<scalar_t>, p.geo.tiles, mma_smem_layout(C).total, stream, p);
    }
    return launch_blocks(step_forward_kernel<scalar_t>, p.geo.tiles, smem_bytes<acc_t>(C, false), stream, p);
  });
}

}  // namespace taylor_fast::cuda
