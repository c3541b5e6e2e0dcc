// 256-bit vectors (AVX2 + FMA) for the tile kernels; included only by *_avx2.cpp files, which
// CMake compiles with -mavx2 -mfma. Semantics match vec_scalar.h lane by lane.
#pragma once
#include <immintrin.h>

namespace taylor_fast::cpu {

struct Avx2F32 {
  using value_type = float;
  static constexpr int width = 8;
  __m256 v;

  static Avx2F32 load(const float* p) { return {_mm256_loadu_ps(p)}; }
  // a load the compiler must keep in a register: used by several FMAs, it would otherwise be
  // folded into each of them as a memory operand, one (often cache-line-splitting) load per FMA
  static Avx2F32 load_to_register(const float* p) {
    __m256 x = _mm256_loadu_ps(p);
    asm("" : "+x"(x));
    return {x};
  }
  // lanes [0, n) from p, zero above (0 < n < width); masked-off lanes are not read, so p + n may
  // be the end of the memory
  static Avx2F32 load_first(const float* p, int n) {
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return {_mm256_maskload_ps(p, mask)};
  }
  static Avx2F32 broadcast(const float* p) { return {_mm256_broadcast_ss(p)}; }
  static Avx2F32 zero() { return {_mm256_setzero_ps()}; }
  void store(float* p) const { _mm256_storeu_ps(p, v); }
  friend Avx2F32 fma(Avx2F32 a, Avx2F32 b, Avx2F32 c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
  friend Avx2F32 operator+(Avx2F32 a, Avx2F32 b) { return {_mm256_add_ps(a.v, b.v)}; }
  static float sum(Avx2F32 a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }

  // keep_negative is all-ones for leaky_relu and zero for relu, so relu maps -inf to 0, not NaN
  struct Act {
    __m256 slope, keep_negative;
  };
  static Act make_act(float slope) {
    return {_mm256_set1_ps(slope), slope != 0.0f ? _mm256_castsi256_ps(_mm256_set1_epi32(-1)) : _mm256_setzero_ps()};
  }
  static Avx2F32 activate(Avx2F32 z, const Act& a) {
    const __m256 negative = _mm256_and_ps(_mm256_mul_ps(z.v, a.slope), a.keep_negative);
    const __m256 keep = _mm256_cmp_ps(z.v, _mm256_setzero_ps(), _CMP_NLE_UQ);  // z > 0 or NaN
    return {_mm256_blendv_ps(negative, z.v, keep)};
  }
  // dh where z > 0, slope * dh elsewhere; at z = NaN relu passes dh and leaky_relu scales it, as
  // torch's threshold_backward and leaky_relu_backward do (step_math.h activate_grad)
  static Avx2F32 activate_backward(Avx2F32 dh, Avx2F32 z, const Act& a) {
    const __m256 negative = _mm256_and_ps(_mm256_mul_ps(dh.v, a.slope), a.keep_negative);
    const __m256 nan_relu = _mm256_andnot_ps(a.keep_negative, _mm256_cmp_ps(z.v, z.v, _CMP_UNORD_Q));
    const __m256 keep = _mm256_or_ps(_mm256_cmp_ps(z.v, _mm256_setzero_ps(), _CMP_GT_OQ), nan_relu);
    return {_mm256_blendv_ps(negative, dh.v, keep)};
  }
};

struct Avx2F64 {
  using value_type = double;
  static constexpr int width = 4;
  __m256d v;

  static Avx2F64 load(const double* p) { return {_mm256_loadu_pd(p)}; }
  static Avx2F64 load_to_register(const double* p) {
    __m256d x = _mm256_loadu_pd(p);
    asm("" : "+x"(x));
    return {x};
  }
  static Avx2F64 load_first(const double* p, int n) {
    const __m256i mask = _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
    return {_mm256_maskload_pd(p, mask)};
  }
  static Avx2F64 broadcast(const double* p) { return {_mm256_broadcast_sd(p)}; }
  static Avx2F64 zero() { return {_mm256_setzero_pd()}; }
  void store(double* p) const { _mm256_storeu_pd(p, v); }
  friend Avx2F64 fma(Avx2F64 a, Avx2F64 b, Avx2F64 c) { return {_mm256_fmadd_pd(a.v, b.v, c.v)}; }
  friend Avx2F64 operator+(Avx2F64 a, Avx2F64 b) { return {_mm256_add_pd(a.v, b.v)}; }
  static double sum(Avx2F64 a) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a.v), _mm256_extractf128_pd(a.v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
  }

  struct Act {
    __m256d slope, keep_negative;
  };
  static Act make_act(double slope) {
    return {_mm256_set1_pd(slope), slope != 0.0 ? _mm256_castsi256_pd(_mm256_set1_epi64x(-1)) : _mm256_setzero_pd()};
  }
  static Avx2F64 activate(Avx2F64 z, const Act& a) {
    const __m256d negative = _mm256_and_pd(_mm256_mul_pd(z.v, a.slope), a.keep_negative);
    const __m256d keep = _mm256_cmp_pd(z.v, _mm256_setzero_pd(), _CMP_NLE_UQ);
    return {_mm256_blendv_pd(negative, z.v, keep)};
  }
  static Avx2F64 activate_backward(Avx2F64 dh, Avx2F64 z, const Act& a) {
    const __m256d negative = _mm256_and_pd(_mm256_mul_pd(dh.v, a.slope), a.keep_negative);
    const __m256d nan_relu = _mm256_andnot_pd(a.keep_negative, _mm256_cmp_pd(z.v, z.v, _CMP_UNORD_Q));
    const __m256d keep = _mm256_or_pd(_mm256_cmp_pd(z.v, _mm256_setzero_pd(), _CMP_GT_OQ), nan_relu);
    return {_mm256_blendv_pd(negative, dh.v, keep)};
  }
};

}  // namespace taylor_fast::cpu
