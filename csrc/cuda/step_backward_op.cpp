// taylor_fast::step_backward on CUDA: the gradients of one step, h recomputed per tile; the
// weight gradients summed per persistent block, then over the blocks in a fixed order (or with
// atomics when determinism is not requested).
#include <ATen/ops/empty_like.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "cuda/cuda_ops.h"
#include "cuda/tensor_args.h"

namespace taylor_fast::cuda {

using at::Tensor;

Grads step_backward_cuda(const Tensor& grad_g_next, const Tensor& g, const Tensor& y, const Tensor& w1,
                         const Tensor& b1, const Tensor& w2, const Tensor& b2, int64_t k, double slope) {
  const StepGeometry sg = check_step_args(g, y, g, w1, b1, w2, b2, k);
  TORCH_CHECK(grad_g_next.sizes() == g.sizes() && grad_g_next.scalar_type() == g.scalar_type() &&
                  grad_g_next.device() == g.device(),
              "taylor_fast: grad_g_next must match g in shape, dtype and device, got ", grad_g_next.sizes(), " ",
              grad_g_next.scalar_type(), " on ", grad_g_next.device(), " for g ", g.sizes(), " ", g.scalar_type(),
              " on ", g.device());
  const ScalarKind kind = scalar_kind(g);
  const c10::cuda::CUDAGuard guard(g.device());
  Tensor grad_g = at::empty_like(g), grad_y = at::empty_like(y);
  const Geometry geo = cuda_geometry(sg, kind);
  if (geo.tiles == 0) return zero_weight_grads(grad_g, grad_y, w1, b1, w2, b2);
  Tensor gw1 = at::empty_like(w1), gb1 = at::empty_like(b1), gw2 = at::empty_like(w2), gb2 = at::empty_like(b2);
  const AccWeights w(w1, b1, w2, b2, kind);
  WeightGradBuffers wb(geo, kind, 1, g);
  wb.buffers.grad_g[0] = image_ref(grad_g);
  wb.buffers.grad_y = image_ref(grad_y);
  const BackwardLaunch l =
      plan_step_backward(geo, kind, image_ref(grad_g_next), image_ref(g), image_ref(y), w.ref(), k, slope, wb.buffers);
  run_backward(l, kind, wb.buffers.blocks, c10::cuda::getCurrentCUDAStream());
  wb.copy_to(gw1, gb1, gw2, gb2);
  return {grad_g, grad_y, gw1, gb1, gw2, gb2};
}

}  // namespace taylor_fast::cuda
