// bfloat16 and float16 on CPU: the kernels compute in float32 (float32 accumulation, as on
// CUDA) on float32 copies of the inputs, and every result is rounded once, on the way out,
// into a tensor laid out like empty_like(<the matching input>).
#pragma once
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>

#include <tuple>

namespace taylor_fast::cpu {

inline bool computes_in_float(const at::Tensor& t) {
  return t.scalar_type() == at::kBFloat16 || t.scalar_type() == at::kHalf;
}

inline at::Tensor in_float(const at::Tensor& t) { return t.to(at::kFloat); }

// `result` (float32) rounded into a tensor allocated like `original`
inline at::Tensor rounded_like(const at::Tensor& result, const at::Tensor& original) {
  return at::empty_like(original).copy_(result);
}

using Gradients = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// A backward's float32 gradients (image, y, w1, b1, w2, b2), each rounded like its input
inline Gradients rounded_like(const Gradients& grads, const at::Tensor& image, const at::Tensor& y,
                              const at::Tensor& w1, const at::Tensor& b1, const at::Tensor& w2, const at::Tensor& b2) {
  const auto& [d_image, dy, dw1, db1, dw2, db2] = grads;
  return {rounded_like(d_image, image), rounded_like(dy, y),   rounded_like(dw1, w1),
          rounded_like(db1, b1),        rounded_like(dw2, w2), rounded_like(db2, b2)};
}

}  // namespace taylor_fast::cpu
