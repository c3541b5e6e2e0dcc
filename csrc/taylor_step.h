// The derivative step shared by every backend: tensor geometry and the argument checks that
// run before any kernel. The Python layer validates first and names the argument in its
// errors; these checks protect callers that reach torch.ops.taylor_fast.* directly.
//
// Semantics (docs/semantics.md in full), with act(x) = x > 0 ? x : negative_slope * x (relu: slope 0):
//   G(g, y)  = conv3x3(act(conv3x3(cat[g, y], w1) + b1), w2) + b2     (zero padding 1)
//   step k:   g_next = G(g, y) + k * g,   acc_next = acc + g_next / (k+1)!
//   expand n: g^0 = f, out = f + sum_{k=1..n} g^k / k!, also returns gs = stack(g^1..g^n)
// Weights are shared, w1 (hidden, 2C, 3, 3), or per order, w1 (n, hidden, 2C, 3, 3), etc.
//
// Output allocation contract (the fake kernels in taylor_fast/_autograd.py promise the same
// shapes and strides to torch.compile): g_next, acc_next, out and every gradient are allocated
// like at::empty_like(<the matching input>) (memory format preserved: channels_last stays
// channels_last); gs is a contiguous (order, N, C, H, W) tensor.
#pragma once
#include <cstdint>

namespace at {
class Tensor;
}

namespace taylor_fast {

struct StepGeometry {
  int64_t N = 0, C = 0, H = 0, W = 0;
  int64_t hidden = 0;
  int64_t weight_sets = 1;  // 1: shared across orders; n: one set per order (leading weight dim)
};

// expand: f, y (N, C, H, W); weights shared (4-D w1) or per order (5-D w1, leading dim == order)
StepGeometry check_expand_args(const at::Tensor& f, const at::Tensor& y, const at::Tensor& w1,
                               const at::Tensor& b1, const at::Tensor& w2, const at::Tensor& b2,
                               int64_t order);
// step: g, y, acc (N, C, H, W); one weight set (4-D w1)
StepGeometry check_step_args(const at::Tensor& g, const at::Tensor& y, const at::Tensor& acc,
                             const at::Tensor& w1, const at::Tensor& b1, const at::Tensor& w2,
                             const at::Tensor& b2, int64_t k);
// step_backward: grad_g_next, g, y (N, C, H, W); one weight set (4-D w1)
StepGeometry check_step_backward_args(const at::Tensor& grad_g_next, const at::Tensor& g, const at::Tensor& y,
                                      const at::Tensor& w1, const at::Tensor& b1, const at::Tensor& w2,
                                      const at::Tensor& b2, int64_t k);
// expand_backward additionally: grad_out like f, gs (order, N, C, H, W)
void check_expand_backward_args(const at::Tensor& grad_out, const at::Tensor& f,
                                const at::Tensor& gs, int64_t order);

}  // namespace taylor_fast
