// bfloat16 and float16 on CPU: the kernels compute in float32 (float32 accumulation, as on
// CUDA) on float32 copies of the inputs, and every result is rounded once, on the way out,
// into a tensor laid out like empty_like(<the matching input>).
#pragma once
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>

namespace taylor_fast::cpu {

inline bool computes_in_float(const at::Tensor& t) {
  return t.scalar_type() == at::kBFloat16 || t.scalar_type() == at::kHalf;
}

inline at::Tensor in_float(const at::Tensor& t) { return t.to(at::kFloat); }

// `result` (float32) rounded into a tensor allocated like `original`
inline at::Tensor rounded_like(const at::Tensor& result, const at::Tensor& original) {
  return at::empty_like(original).copy_(result);
}

}  // namespace taylor_fast::cpu
