// taylor_fast::step_forward on CUDA: g_next = G(g, y) + k g, acc_next = acc + g_next / (k+1)!,
// one fused launch.
#include <ATen/ops/empty_like.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "cuda/cuda_ops.h"
#include "cuda/launch.h"
#include "cuda/tensor_args.h"

namespace taylor_fast::cuda {

using at::Tensor;

std::tuple<Tensor, Tensor> step_forward_cuda(const Tensor& g, const Tensor& y, const Tensor& acc, const Tensor& w1,
                                             const Tensor& b1, const Tensor& w2, const Tensor& b2, int64_t k,
                                             double slope) {
  const StepGeometry sg = check_step_args(g, y, acc, w1, b1, w2, b2, k);
  const ScalarKind kind = scalar_kind(g);
  const c10::cuda::CUDAGuard guard(g.device());
  Tensor g_next = at::empty_like(g), acc_next = at::empty_like(acc);
  const Geometry geo = cuda_geometry(sg, kind);
  if (geo.tiles == 0) return {g_next, acc_next};
  const AccWeights w(w1, b1, w2, b2, kind);
  const StepForwardParams p = plan_step_forward(geo, image_ref(g), image_ref(y), image_ref(acc), image_ref(g_next),
                                                image_ref(acc_next), w.ref(), k, slope, use_tensor_cores(kind));
  check_launch(launch_step_forward(p, kind, c10::cuda::getCurrentCUDAStream()));
  return {g_next, acc_next};
}

}  // namespace taylor_fast::cuda
