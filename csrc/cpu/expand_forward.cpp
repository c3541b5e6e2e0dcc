// taylor_fast::expand_forward and expand_inference on CPU: every order in one call, in passes of
// up to kMaxPipelinedOrders orders pipelined through each tile; out = f + sum_k g^k / k!.
// expand_forward also returns g^1..g^n for the backward; expand_inference, for calls that need no
// gradient, keeps none of them (n images less to allocate, fault in and write).
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>

#include <algorithm>

#include "cpu/cpu_ops.h"
#include "cpu/padded_planes.h"
#include "cpu/reduced_precision.h"
#include "cpu/tile_loop.h"
#include "cpu/tiling.h"
#include "cpu/weight_packing.h"
#include "step_math.h"

namespace taylor_fast::cpu {

namespace {

// out = f + sum_k g^k / k!, with g^1..g^order written to gs[0..order-1] if gs is defined. Without
// gs only a pass that hands on to a later pass writes its g's, into one image (each order of the
// pass overwrites the previous one's pixels after the pipeline is done with them, so the image
// ends up holding the pass's last g).
void run_expansion(const StepGeometry& geo, const at::Tensor& f, const at::Tensor& y, const at::Tensor& w1,
                   const at::Tensor& b1, const at::Tensor& w2, const at::Tensor& b2, int64_t order,
                   double negative_slope, at::Tensor& out, const at::Tensor& gs) {
  AT_DISPATCH_FLOATING_TYPES(f.scalar_type(), "taylor_fast::expand_forward", [&] {
    using T = scalar_t;
    const auto& kernels = tile_kernels<T>(active_cpu_isa());
    const int64_t depth = std::min(order, kMaxPipelinedOrders);
    const Tiling t = choose_tiling(geo, kernels, depth);
    const auto y_planes = padded_copy(t, kernels, y);
    auto g_planes = padded_copy(t, kernels, f);
    const std::vector<T> weights = packed_weight_sets(kernels, w1, b1, w2, b2);
    const int64_t set_size = w1.dim() == 5 ? kernels.packed_weights_size(geo.C, geo.hidden) : 0;
    const at::Tensor handed_on = !gs.defined() && order > depth ? at::empty_like(f) : at::Tensor();
    std::vector<T> coefs(order);
    for (int64_t k = 0; k < order; ++k) coefs[k] = static_cast<T>(inverse_factorial(k + 1));
    // passes of `depth` orders; a later pass starts from the last g the previous one wrote
    for (int64_t k0 = 0; k0 < order; k0 += depth) {
      if (k0 > 0) g_planes.interior.copy_(gs.defined() ? gs[k0 - 1] : handed_on);
      ForwardArgs<T> a = forward_args(t, g_planes, y_planes, weights.data() + k0 * set_size, set_size,
                                      coefs.data() + k0, k0, std::min(depth, order - k0), negative_slope);
      if (gs.defined()) {
        a.g_next = view_of<T>(gs[k0]);
        a.g_next_stride = gs.stride(0);
      } else if (k0 + depth < order) {
        a.g_next = view_of<T>(handed_on);  // g_next_stride 0: the orders of the pass share it
      }
      a.acc_in = read_view_of<T>(k0 == 0 ? f : out);
      a.acc_out = view_of<T>(out);
      run_forward_pass(kernels, a);
    }
  });
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> expand_forward(const at::Tensor& f, const at::Tensor& y, const at::Tensor& w1,
                                                  const at::Tensor& b1, const at::Tensor& w2, const at::Tensor& b2,
                                                  int64_t order, double negative_slope) {
  const StepGeometry geo = check_expand_args(f, y, w1, b1, w2, b2, order);
  if (computes_in_float(f)) {
    const auto [out, gs] = expand_forward(in_float(f), in_float(y), in_float(w1), in_float(b1), in_float(w2),
                                          in_float(b2), order, negative_slope);
    return {rounded_like(out, f), gs.to(f.scalar_type())};
  }
  at::Tensor out = at::empty_like(f);
  const at::Tensor gs = at::empty({order, geo.N, geo.C, geo.H, geo.W}, f.options());
  if (order == 0 || f.numel() == 0) return {out.copy_(f), gs};
  run_expansion(geo, f, y, w1, b1, w2, b2, order, negative_slope, out, gs);
  return {out, gs};
}

at::Tensor expand_inference(const at::Tensor& f, const at::Tensor& y, const at::Tensor& w1, const at::Tensor& b1,
                            const at::Tensor& w2, const at::Tensor& b2, int64_t order, double negative_slope) {
  const StepGeometry geo = check_expand_args(f, y, w1, b1, w2, b2, order);
  if (computes_in_float(f))
    return rounded_like(expand_inference(in_float(f), in_float(y), in_float(w1), in_float(b1), in_float(w2),
                                         in_float(b2), order, negative_slope),
                        f);
  at::Tensor out = at::empty_like(f);
  if (order == 0 || f.numel() == 0) return out.copy_(f);
  run_expansion(geo, f, y, w1, b1, w2, b2, order, negative_slope, out, at::Tensor());
  return out;
}

}  // namespace taylor_fast::cpu
