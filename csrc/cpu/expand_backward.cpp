// taylor_fast::expand_backward on CPU: the adjoint recursion over every order in one call,
//   a_n = dO / n!,   a_k = dO / k! + J_k^T a_{k+1} + k a_{k+1},   grad_f = a_0,
// each order recomputing its hidden activation per tile from the saved 3-channel g^k. With
// shared weights the orders run in pipelined passes of up to kMaxPipelinedOrders, whose terms in y
// are computed once per pass from the sum of the orders' dz. grad_y sums every pass's share;
// shared weights sum every order's gradients, in a fixed order.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/all.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/isfinite.h>

#include "cpu/cpu_ops.h"
#include "cpu/padded_planes.h"
#include "cpu/reduced_precision.h"
#include "cpu/tile_loop.h"
#include "cpu/tiling.h"
#include "cpu/weight_packing.h"
#include "step_math.h"

#include <algorithm>
#include <initializer_list>

namespace taylor_fast::cpu {

namespace {

bool all_finite(std::initializer_list<at::Tensor> tensors) {
  for (const at::Tensor& t : tensors)
    if (!at::isfinite(t).all().item<bool>()) return false;
  return true;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> expand_backward(
    const at::Tensor& grad_out, const at::Tensor& f, const at::Tensor& y, const at::Tensor& gs,
    const at::Tensor& w1, const at::Tensor& b1, const at::Tensor& w2, const at::Tensor& b2, int64_t order,
    double negative_slope) {
  const StepGeometry geo = check_expand_args(f, y, w1, b1, w2, b2, order);
  check_expand_backward_args(grad_out, f, gs, order);
  if (computes_in_float(f)) {
    // gs holds g^k rounded to f's dtype; a backward from those would recompute activations that
    // differ from the forward's near 0 (measured: twice the bfloat16 reference's error in grad_b2),
    // so the float32 g^k are recomputed, one more forward, and the gradients are float32's
    const at::Tensor f32 = in_float(f), y32 = in_float(y), w1_32 = in_float(w1), b1_32 = in_float(b1),
                     w2_32 = in_float(w2), b2_32 = in_float(b2);
    const at::Tensor gs32 = std::get<1>(expand_forward(f32, y32, w1_32, b1_32, w2_32, b2_32, order, negative_slope));
    return rounded_like(expand_backward(in_float(grad_out), f32, y32, gs32, w1_32, b1_32, w2_32, b2_32, order,
                                        negative_slope),
                        f, y, w1, b1, w2, b2);
  }
  at::Tensor grad_f = at::empty_like(f), grad_y = at::empty_like(y);
  at::Tensor gw1, gb1, gw2, gb2;
  AT_DISPATCH_FLOATING_TYPES(f.scalar_type(), "taylor_fast::expand_backward", [&] {
    const bool per_order = w1.dim() == 5;
    const int64_t size = weight_grad_size(geo.C, geo.hidden);
    std::vector<scalar_t> grads((per_order ? order : 1) * size, scalar_t(0));
    if (order == 0) {
      grad_f.copy_(grad_out);
      grad_y.zero_();
    } else if (f.numel() > 0) {
      const auto& kernels = tile_kernels<scalar_t>(active_cpu_isa());
      // shared weights: passes of up to `depth` orders, their y terms computed once per pass from
      // the sum of the orders' dz; with an infinite y or weight that sum would turn the reference's
      // 0 * inf = NaN of an order with dz = 0 into +-inf, so such calls run order by order
      const bool pipelined = !per_order && all_finite({y, w1, b1, w2, b2});
      const int64_t depth = pipelined ? std::min(order, kMaxPipelinedOrders) : 1;
      const Tiling t = choose_tiling(geo, kernels, depth);
      const auto input_of = [&](int64_t k) { return k == 0 ? f : gs[k - 1]; };
      const auto coefs_from = [&](int64_t k, int64_t orders) {
        std::vector<scalar_t> coefs;
        for (int64_t q = 0; q < orders; ++q) coefs.push_back(static_cast<scalar_t>(inverse_factorial(k - q)));
        return coefs;
      };
      const auto finish_args = [&](BackwardArgs<scalar_t>& a, const std::vector<scalar_t>& coefs, int64_t k) {
        a.dout = read_view_of<scalar_t>(grad_out);
        a.dout_coefs = coefs.data();
        a.grad_y = view_of<scalar_t>(grad_y);
        a.accumulate_y = k != order - 1;
      };
      std::vector<scalar_t> weights = packed_weight_set(kernels, w1, b1, w2, b2, order - 1);
      if (order <= depth) {
        // one pass: its planes (y, every g^k, the incoming gradient) are made band by band, each
        // band of tile rows keeping the tiling's >= 2 tiles per thread, so they hold a band's rows,
        // not the image's
        const int64_t rows = t.row_blocks();
        const int64_t bands = std::clamp<int64_t>(t.count() / (2 * at::get_num_threads()), 1, rows);
        const std::vector<scalar_t> coefs = coefs_from(order - 1, order);
        for (int64_t band = 0; band < bands; ++band) {
          const int64_t first = band * rows / bands, end = (band + 1) * rows / bands;
          const auto y_band = padded_band(t, kernels, y, first, end);
          const auto adjoint = padded_band(t, kernels, grad_out, first, end);
          adjoint.storage.mul_(inverse_factorial(order));
          std::vector<PaddedImages<scalar_t>> g;
          std::vector<Planes<const scalar_t>> inputs;
          for (int64_t q = 0; q < order; ++q) {
            g.push_back(padded_band(t, kernels, input_of(order - 1 - q), first, end));
            inputs.push_back(g.back().read());
          }
          BackwardArgs<scalar_t> a = backward_args(t, inputs, y_band, adjoint, weights, order - 1, negative_slope);
          finish_args(a, coefs, order - 1);
          a.grad_g = view_of<scalar_t>(grad_f);
          run_backward_band(kernels, a, grads.data(), first, end);
        }
      } else {
        const auto y_planes = padded_copy(t, kernels, y);
        std::vector<PaddedImages<scalar_t>> g;
        for (int64_t q = 0; q < depth; ++q) g.push_back(padded_images(t, kernels, f.options()));
        // the gradient reaching each pass's last output, and the one the pass hands on to the next
        PaddedImages<scalar_t> adjoint[2] = {padded_copy(t, kernels, grad_out), padded_images(t, kernels, f.options())};
        adjoint[0].interior.mul_(inverse_factorial(order));
        for (int64_t k = order - 1, cur = 0; k >= 0; k -= depth, cur = 1 - cur) {
          const int64_t orders = std::min(depth, k + 1);
          std::vector<Planes<const scalar_t>> inputs;
          for (int64_t q = 0; q < orders; ++q) {
            g[q].interior.copy_(input_of(k - q));
            inputs.push_back(g[q].read());
          }
          if (per_order) weights = packed_weight_set(kernels, w1, b1, w2, b2, k);
          const std::vector<scalar_t> coefs = coefs_from(k, orders);
          BackwardArgs<scalar_t> a = backward_args(t, inputs, y_planes, adjoint[cur], weights, k, negative_slope);
          finish_args(a, coefs, k);
          if (k - orders + 1 > 0) a.grad_g_planes = adjoint[1 - cur].planes;
          else a.grad_g = view_of<scalar_t>(grad_f);
          run_backward_pass(kernels, a, grads.data() + (per_order ? k : 0) * size);
        }
      }
    }
    std::tie(gw1, gb1, gw2, gb2) = weight_grad_tensors(grads, w1, b1, w2, b2);
  });
  return {grad_f, grad_y, gw1, gb1, gw2, gb2};
}

}  // namespace taylor_fast::cpu
