// taylor_fast::step_forward on CPU: g_next = G(g, y) + k g, acc_next = acc + g_next / (k+1)!.
#include <ATen/Dispatch.h>
#include <ATen/ops/empty_like.h>

#include "cpu/cpu_ops.h"
#include "cpu/padded_planes.h"
#include "cpu/reduced_precision.h"
#include "cpu/tile_loop.h"
#include "cpu/tiling.h"
#include "cpu/weight_packing.h"
#include "step_math.h"

namespace taylor_fast::cpu {

std::tuple<at::Tensor, at::Tensor> step_forward(const at::Tensor& g, const at::Tensor& y, const at::Tensor& acc,
                                                const at::Tensor& w1, const at::Tensor& b1, const at::Tensor& w2,
                                                const at::Tensor& b2, int64_t k, double negative_slope) {
  const StepGeometry geo = check_step_args(g, y, acc, w1, b1, w2, b2, k);
  if (computes_in_float(g)) {
    const auto [g_next, acc_next] = step_forward(in_float(g), in_float(y), in_float(acc), in_float(w1), in_float(b1),
                                                 in_float(w2), in_float(b2), k, negative_slope);
    return {rounded_like(g_next, g), rounded_like(acc_next, acc)};
  }
  at::Tensor g_next = at::empty_like(g), acc_next = at::empty_like(acc);
  if (g.numel() == 0) return {g_next, acc_next};
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "taylor_fast::step_forward", [&] {
    const auto& kernels = tile_kernels<scalar_t>(active_cpu_isa());
    const Tiling t = choose_tiling(geo, kernels);
    const auto g_planes = padded_copy(t, kernels, g), y_planes = padded_copy(t, kernels, y);
    const auto weights = packed_weight_set(kernels, w1, b1, w2, b2, 0);
    const auto coef = static_cast<scalar_t>(inverse_factorial(k + 1));
    ForwardArgs<scalar_t> a = forward_args(t, g_planes, y_planes, weights.data(), 0, &coef, k, 1, negative_slope);
    a.g_next = view_of<scalar_t>(g_next);
    a.acc_in = read_view_of<scalar_t>(acc);
    a.acc_out = view_of<scalar_t>(acc_next);
    run_forward_pass(kernels, a);
  });
  return {g_next, acc_next};
}

}  // namespace taylor_fast::cpu
