// taylor_fast::expand_forward on CUDA: one fused step launch per order; out = f + sum_k g^k / k!,
// with g^1..g^n returned for the backward.
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "cuda/cuda_ops.h"
#include "cuda/launch.h"
#include "cuda/tensor_args.h"

namespace taylor_fast::cuda {

using at::Tensor;

std::tuple<Tensor, Tensor> expand_forward_cuda(const Tensor& f, const Tensor& y, const Tensor& w1, const Tensor& b1,
                                               const Tensor& w2, const Tensor& b2, int64_t order, double slope) {
  const StepGeometry sg = check_expand_args(f, y, w1, b1, w2, b2, order);
  const ScalarKind kind = scalar_kind(f);
  const c10::cuda::CUDAGuard guard(f.device());
  Tensor out = at::empty_like(f);
  Tensor gs = at::empty({order, sg.N, sg.C, sg.H, sg.W}, f.options());
  const Geometry geo = cuda_geometry(sg, kind);
  if (order == 0 || geo.tiles == 0) {
    out.copy_(f);
    return {out, gs};
  }
  const AccWeights w(w1, b1, w2, b2, kind);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  for (const StepForwardParams& p : plan_expand_forward(geo, kind, order, w1.dim() == 5, image_ref(f), image_ref(y),
                                                        image_ref(out), gs.data_ptr(), w.ref(), slope,
                                                        use_tensor_cores(kind)))
    check_launch(launch_step_forward(p, kind, stream));
  return {out, gs};
}

}  // namespace taylor_fast::cuda
