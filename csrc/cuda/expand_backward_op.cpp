// taylor_fast::expand_backward on CUDA: the adjoint recursion of the expansion, one fused
// backward launch per order (step_plan.h's plan_expand_backward), the adjoint alternating
// between two images.
#include <ATen/ops/empty_like.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "cuda/cuda_ops.h"
#include "cuda/tensor_args.h"

namespace taylor_fast::cuda {

using at::Tensor;

Grads expand_backward_cuda(const Tensor& grad_out, const Tensor& f, const Tensor& y, const Tensor& gs,
                           const Tensor& w1, const Tensor& b1, const Tensor& w2, const Tensor& b2, int64_t order,
                           double slope) {
  const StepGeometry sg = check_expand_args(f, y, w1, b1, w2, b2, order);
  check_expand_backward_args(grad_out, f, gs, order);
  const ScalarKind kind = scalar_kind(f);
  const c10::cuda::CUDAGuard guard(f.device());
  Tensor a0 = at::empty_like(f), grad_y = at::empty_like(y);
  const Geometry geo = cuda_geometry(sg, kind);
  if (order == 0 || geo.tiles == 0) {  // out = f: the gradient passes straight through to f
    a0.copy_(grad_out);
    grad_y.zero_();
    return zero_weight_grads(a0, grad_y, w1, b1, w2, b2);
  }
  Tensor a1 = order > 1 ? at::empty_like(f) : Tensor();
  Tensor gw1 = at::empty_like(w1), gb1 = at::empty_like(b1), gw2 = at::empty_like(w2), gb2 = at::empty_like(b2);
  const bool per_order = w1.dim() == 5;
  const Tensor gs_dense = gs.contiguous();
  const AccWeights w(w1, b1, w2, b2, kind);
  WeightGradBuffers wb(geo, kind, per_order ? order : 1, f);
  wb.buffers.grad_g[0] = image_ref(a0);
  if (a1.defined()) wb.buffers.grad_g[1] = image_ref(a1);
  wb.buffers.grad_y = image_ref(grad_y);
  const ExpandBackwardPlan plan = plan_expand_backward(geo, kind, order, per_order, image_ref(grad_out), image_ref(f),
                                                       image_ref(y), gs_dense.data_ptr(), w.ref(), slope, wb.buffers);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  for (const BackwardLaunch& l : plan.launches) run_backward(l, kind, wb.buffers.blocks, stream);
  wb.copy_to(gw1, gb1, gw2, gb2);
  return {plan.result_buffer == 0 ? a0 : a1, grad_y, gw1, gb1, gw2, gb2};
}

}  // namespace taylor_fast::cuda
