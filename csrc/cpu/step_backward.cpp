// taylor_fast::step_backward on CPU: the gradients of one step, h recomputed per tile.
#include <ATen/Dispatch.h>
#include <ATen/ops/empty_like.h>

#include "cpu/cpu_ops.h"
#include "cpu/padded_planes.h"
#include "cpu/reduced_precision.h"
#include "cpu/tile_loop.h"
#include "cpu/tiling.h"
#include "cpu/weight_packing.h"

namespace taylor_fast::cpu {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> step_backward(
    const at::Tensor& grad_g_next, const at::Tensor& g, const at::Tensor& y, const at::Tensor& w1,
    const at::Tensor& b1, const at::Tensor& w2, const at::Tensor& b2, int64_t k, double negative_slope) {
  const StepGeometry geo = check_step_backward_args(grad_g_next, g, y, w1, b1, w2, b2, k);
  if (computes_in_float(g)) {
    return rounded_like(step_backward(in_float(grad_g_next), in_float(g), in_float(y), in_float(w1), in_float(b1),
                                      in_float(w2), in_float(b2), k, negative_slope),
                        g, y, w1, b1, w2, b2);
  }
  at::Tensor grad_g = at::empty_like(g), grad_y = at::empty_like(y);
  at::Tensor gw1, gb1, gw2, gb2;
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "taylor_fast::step_backward", [&] {
    const auto& kernels = tile_kernels<scalar_t>(active_cpu_isa());
    std::vector<scalar_t> grads(weight_grad_size(geo.C, geo.hidden), scalar_t(0));
    if (g.numel() > 0) {
      const Tiling t = choose_tiling(geo, kernels);
      const auto g_planes = padded_copy(t, kernels, g), y_planes = padded_copy(t, kernels, y);
      const auto gn_planes = padded_copy(t, kernels, grad_g_next);
      const auto weights = packed_weight_set(kernels, w1, b1, w2, b2, 0);
      const std::vector<Planes<const scalar_t>> inputs = {g_planes.read()};
      BackwardArgs<scalar_t> a = backward_args(t, inputs, y_planes, gn_planes, weights, k, negative_slope);
      a.grad_g = view_of<scalar_t>(grad_g);
      a.grad_y = view_of<scalar_t>(grad_y);
      run_backward_pass(kernels, a, grads.data());
    }
    std::tie(gw1, gb1, gw2, gb2) = weight_grad_tensors(grads, w1, b1, w2, b2);
  });
  return {grad_g, grad_y, gw1, gb1, gw2, gb2};
}

}  // namespace taylor_fast::cpu
