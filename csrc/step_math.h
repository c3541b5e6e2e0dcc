// Per-element math of the derivative step, shared by the CPU and CUDA kernels so both
// backends apply the activation, its derivative and the order coefficients identically.
#pragma once
#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define TF_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define TF_HOST_DEVICE inline
#endif

namespace taylor_fast {

// act(x) = x > 0 ? x : slope * x. relu is slope 0, and must map -inf to 0 (not 0 * -inf = NaN)
// and keep NaN as NaN, as torch.relu does.
template <typename T>
TF_HOST_DEVICE T activate(T x, T slope) {
  if (x > T(0)) return x;
  if (slope == T(0)) return x != x ? x : T(0);
  return slope * x;
}

// d act / dx at the pre-activation x (relu: 0 at x <= 0, as torch's threshold_backward)
template <typename T>
TF_HOST_DEVICE T activate_grad(T x, T slope) {
  return x > T(0) ? T(1) : slope;
}

// 1 / n! in double precision (n! overflows float at n = 35; orders are far smaller)
TF_HOST_DEVICE double inverse_factorial(int64_t n) {
  double r = 1.0;
  for (int64_t i = 2; i <= n; ++i) r /= static_cast<double>(i);
  return r;
}

}  // namespace taylor_fast
