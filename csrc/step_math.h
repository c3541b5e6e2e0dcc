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

// d act / dx at the pre-activation x, with torch's answer at x = NaN so that gradients near a
// NaN match the reference: relu's threshold_backward zeroes only where x <= 0 (NaN passes, 1),
// leaky_relu_backward keeps the gradient only where x > 0 (NaN gets the slope).
template <typename T>
TF_HOST_DEVICE T activate_grad(T x, T slope) {
  if (slope == T(0)) return x <= T(0) ? T(0) : T(1);
  return x > T(0) ? T(1) : slope;
}

// The gradient dh reaching act(x) carried back to x: exactly 0 where relu is flat, even for an
// infinite dh (threshold_backward selects, it does not multiply)
template <typename T>
TF_HOST_DEVICE T activate_backward(T dh, T x, T slope) {
  const T d = activate_grad(x, slope);
  return d == T(0) ? T(0) : d * dh;
}

// 1 / n! in double precision (n! overflows float at n = 35; orders are far smaller)
TF_HOST_DEVICE double inverse_factorial(int64_t n) {
  double r = 1.0;
  for (int64_t i = 2; i <= n; ++i) r /= static_cast<double>(i);
  return r;
}

}  // namespace taylor_fast
