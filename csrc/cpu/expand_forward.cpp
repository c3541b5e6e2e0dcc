// taylor_fast::expand_forward on CPU: every order in one call, g^{k+1} feeding the next order
// straight from its zero-bordered planes; out accumulates f + sum_k g^k / k! in place.
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>

#include <utility>

#include "cpu/cpu_ops.h"
#include "cpu/order_launch.h"
#include "cpu/reduced_precision.h"

namespace taylor_fast::cpu {

std::tuple<at::Tensor, at::Tensor> expand_forward(const at::Tensor& f, const at::Tensor& y, const at::Tensor& w1,
                                                  const at::Tensor& b1, const at::Tensor& w2, const at::Tensor& b2,
                                                  int64_t order, double negative_slope) {
  const StepGeometry geo = check_expand_args(f, y, w1, b1, w2, b2, order);
  if (computes_in_float(f)) {
    const auto [out, gs] = expand_forward(in_float(f), in_float(y), in_float(w1), in_float(b1), in_float(w2),
                                          in_float(b2), order, negative_slope);
    return {rounded_like(out, f), gs.to(f.scalar_type())};
  }
  at::Tensor out = at::empty_like(f).copy_(f);
  at::Tensor gs = at::empty({order, geo.N, geo.C, geo.H, geo.W}, f.options());
  if (order == 0 || f.numel() == 0) return {out, gs};
  AT_DISPATCH_FLOATING_TYPES(f.scalar_type(), "taylor_fast::expand_forward", [&] {
    const auto& kernels = tile_kernels<scalar_t>(active_cpu_isa());
    const Tiling t = choose_tiling(geo, kernels);
    const auto y_planes = padded_copy(t, kernels, y);
    auto g = padded_copy(t, kernels, f);
    PaddedImages<scalar_t> g_next;
    if (order > 1) g_next = padded_images(t, kernels, f.options());
    const bool per_order = w1.dim() == 5;
    std::vector<scalar_t> weights;
    for (int64_t k = 0; k < order; ++k) {
      if (per_order || k == 0) weights = packed_weight_set(kernels, w1, b1, w2, b2, k);
      ForwardArgs<scalar_t> a = forward_args(t, g, y_planes, weights, k, negative_slope);
      if (k + 1 < order) a.g_next_planes = g_next.planes;
      a.g_next = view_of<scalar_t>(gs[k]);
      a.acc_in = read_view_of<scalar_t>(out);
      a.acc_out = view_of<scalar_t>(out);
      run_forward_order(kernels, a);
      std::swap(g, g_next);
    }
  });
  return {out, gs};
}

}  // namespace taylor_fast::cpu
