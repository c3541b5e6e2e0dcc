#include "taylor_step.h"

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

namespace taylor_fast {

namespace {

void check_image(const at::Tensor& t, const char* name, const at::Tensor& like, const char* like_name) {
  TORCH_CHECK(t.dim() == 4, "taylor_fast: ", name, " must be 4-D (N, C, H, W), got ", t.dim(), "-D");
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), "taylor_fast: ", name,
              " must be a floating-point tensor, got ", t.scalar_type());
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), "taylor_fast: ", name, " has dtype ",
              t.scalar_type(), " but ", like_name, " has ", like.scalar_type());
  TORCH_CHECK(t.device() == like.device(), "taylor_fast: ", name, " is on ", t.device(), " but ",
              like_name, " is on ", like.device());
  TORCH_CHECK(t.sizes() == like.sizes(), "taylor_fast: ", name, " has shape ", t.sizes(),
              " but ", like_name, " has ", like.sizes());
}

void check_param(const at::Tensor& t, const char* name, at::IntArrayRef expected, const at::Tensor& like) {
  TORCH_CHECK(t.sizes() == expected, "taylor_fast: ", name, " must have shape ", expected, ", got ",
              t.sizes());
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), "taylor_fast: ", name, " has dtype ",
              t.scalar_type(), " but the images have ", like.scalar_type());
  TORCH_CHECK(t.device() == like.device(), "taylor_fast: ", name, " is on ", t.device(),
              " but the images are on ", like.device());
}

StepGeometry check_weights(const at::Tensor& x, const at::Tensor& w1, const at::Tensor& b1,
                           const at::Tensor& w2, const at::Tensor& b2, int64_t sets, bool per_order) {
  StepGeometry geo;
  geo.N = x.size(0);
  geo.C = x.size(1);
  geo.H = x.size(2);
  geo.W = x.size(3);
  const int64_t lead = per_order ? 1 : 0;
  TORCH_CHECK(w1.dim() == 4 + lead, "taylor_fast: w1 must be ", 4 + lead, "-D, got ", w1.dim(), "-D");
  geo.hidden = w1.size(lead);
  geo.weight_sets = per_order ? sets : 1;
  std::vector<int64_t> pre = per_order ? std::vector<int64_t>{sets} : std::vector<int64_t>{};
  auto with = [&](std::initializer_list<int64_t> dims) {
    std::vector<int64_t> v = pre;
    v.insert(v.end(), dims);
    return v;
  };
  check_param(w1, "w1", with({geo.hidden, 2 * geo.C, 3, 3}), x);
  check_param(b1, "b1", with({geo.hidden}), x);
  check_param(w2, "w2", with({geo.C, geo.hidden, 3, 3}), x);
  check_param(b2, "b2", with({geo.C}), x);
  return geo;
}

}  // namespace

StepGeometry check_expand_args(const at::Tensor& f, const at::Tensor& y, const at::Tensor& w1,
                               const at::Tensor& b1, const at::Tensor& w2, const at::Tensor& b2,
                               int64_t order) {
  TORCH_CHECK(order >= 0, "taylor_fast: order must be >= 0, got ", order);
  check_image(f, "f", f, "f");
  check_image(y, "y", f, "f");
  return check_weights(f, w1, b1, w2, b2, order, w1.dim() == 5);
}

namespace {

// g, y and a third image named `other` like g, one weight set, k >= 0
StepGeometry check_one_step(const at::Tensor& g, const at::Tensor& y, const at::Tensor& other,
                            const char* other_name, const at::Tensor& w1, const at::Tensor& b1,
                            const at::Tensor& w2, const at::Tensor& b2, int64_t k) {
  TORCH_CHECK(k >= 0, "taylor_fast: k must be >= 0, got ", k);
  check_image(g, "g", g, "g");
  check_image(y, "y", g, "g");
  check_image(other, other_name, g, "g");
  return check_weights(g, w1, b1, w2, b2, 1, false);
}

}  // namespace

StepGeometry check_step_args(const at::Tensor& g, const at::Tensor& y, const at::Tensor& acc,
                             const at::Tensor& w1, const at::Tensor& b1, const at::Tensor& w2,
                             const at::Tensor& b2, int64_t k) {
  return check_one_step(g, y, acc, "acc", w1, b1, w2, b2, k);
}

StepGeometry check_step_backward_args(const at::Tensor& grad_g_next, const at::Tensor& g, const at::Tensor& y,
                                      const at::Tensor& w1, const at::Tensor& b1, const at::Tensor& w2,
                                      const at::Tensor& b2, int64_t k) {
  return check_one_step(g, y, grad_g_next, "grad_g_next", w1, b1, w2, b2, k);
}

void check_expand_backward_args(const at::Tensor& grad_out, const at::Tensor& f,
                                const at::Tensor& gs, int64_t order) {
  check_image(grad_out, "grad_out", f, "f");
  TORCH_CHECK(gs.dim() == 5 && gs.size(0) == order && gs.sizes().slice(1) == f.sizes(),
              "taylor_fast: gs must have shape (order, N, C, H, W) = (", order, ", ", f.sizes(),
              "), got ", gs.sizes());
  TORCH_CHECK(gs.scalar_type() == f.scalar_type() && gs.device() == f.device(),
              "taylor_fast: gs must match f in dtype and device");
}

}  // namespace taylor_fast
