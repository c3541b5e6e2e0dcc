// The fused backward step kernel (persistent blocks over the tiles) and the fixed-order sum of
// its per-block weight-gradient partials (see step_kernels.cuh).
#include "cuda/device_platform.cuh"
#include "cuda/launch.h"
#include "cuda/step_kernels.cuh"

namespace taylor_fast::cuda {

namespace {

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads, kBackwardMinBlocks) step_backward_kernel(const StepBackwardParams p) {
  step_backward_block<scalar_t>(p);
}

template <typename acc_t>
__global__ void __launch_bounds__(kReduceThreads) reduce_weight_grads_kernel(const WeightGradReduceParams p) {
  reduce_weight_grads_thread<acc_t>(p);
}

template <typename scalar_t>
size_t backward_smem(int C) {
  return smem_bytes<typename AccType<scalar_t>::type>(C, true);
}

}  // namespace

cudaError_t launch_step_backward(const StepBackwardParams& p, ScalarKind kind, int64_t blocks, cudaStream_t stream) {
  return dispatch_scalar(kind, [&](auto tag) {
    using scalar_t = decltype(tag);
    return launch_blocks(step_backward_kernel<scalar_t>, blocks, backward_smem<scalar_t>(static_cast<int>(p.geo.C)),
                         stream, p);
  });
}

cudaError_t launch_reduce_weight_grads(const WeightGradReduceParams& p, ScalarKind kind, cudaStream_t stream) {
  const unsigned grid = static_cast<unsigned>((p.entries + kReduceThreads - 1) / kReduceThreads);
  if (kind == ScalarKind::Double)
    reduce_weight_grads_kernel<double><<<grid, kReduceThreads, 0, stream>>>(p);
  else
    reduce_weight_grads_kernel<float><<<grid, kReduceThreads, 0, stream>>>(p);
  return cudaSuccess;
}

cudaError_t backward_resident_blocks(ScalarKind kind, int C, int64_t* blocks) {
  int device = 0, sms = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (err != cudaSuccess) return err;
  return dispatch_scalar(kind, [&](auto tag) {
    using scalar_t = decltype(tag);
    const size_t smem = backward_smem<scalar_t>(C);
    cudaError_t e = allow_dynamic_smem(step_backward_kernel<scalar_t>, smem);
    int per_sm = 0;
    if (e == cudaSuccess)
      e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, step_backward_kernel<scalar_t>, kThreads, smem);
    *blocks = static_cast<int64_t>(sms) * (per_sm > 0 ? per_sm : 1);
    return e;
  });
}

}  // namespace taylor_fast::cuda
