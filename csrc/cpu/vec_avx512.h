// 512-bit vectors (AVX-512 F/DQ/BW/VL + FMA) for the tile kernels; included only by *_avx512.cpp
// files, which CMake compiles with the AVX-512 flags. Semantics match vec_scalar.h lane by lane.
#pragma once
#include <immintrin.h>

namespace taylor_fast::cpu {

struct Avx512F32 {
  using value_type = float;
  static constexpr int width = 16;
  __m512 v;

  static Avx512F32 load(const float* p) { return {_mm512_loadu_ps(p)}; }
  // a load the compiler must keep in a register: used by several FMAs, it would otherwise be
  // folded into each of them as a memory operand, one (often cache-line-splitting) load per FMA
  static Avx512F32 load_to_register(const float* p) {
    __m512 x = _mm512_loadu_ps(p);
    asm("" : "+v"(x));
    return {x};
  }
  // lanes [0, n) from p, zero above (0 < n < width); masked-off lanes are not read, so p + n may
  // be the end of the memory
  static Avx512F32 load_first(const float* p, int n) {
    return {_mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1), p)};
  }
  static Avx512F32 broadcast(const float* p) { return {_mm512_set1_ps(*p)}; }
  static Avx512F32 zero() { return {_mm512_setzero_ps()}; }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
  friend Avx512F32 fma(Avx512F32 a, Avx512F32 b, Avx512F32 c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
  friend Avx512F32 operator+(Avx512F32 a, Avx512F32 b) { return {_mm512_add_ps(a.v, b.v)}; }
  static float sum(Avx512F32 a) { return _mm512_reduce_add_ps(a.v); }

  // keep_negative: every lane for leaky_relu, none for relu (relu maps -inf to 0, not NaN)
  struct Act {
    __m512 slope;
    __mmask16 keep_negative;
  };
  static Act make_act(float slope) { return {_mm512_set1_ps(slope), __mmask16(slope != 0.0f ? 0xFFFF : 0)}; }
  static Avx512F32 activate(Avx512F32 z, const Act& a) {
    const __m512 negative = _mm512_maskz_mul_ps(a.keep_negative, z.v, a.slope);
    const __mmask16 keep = _mm512_cmp_ps_mask(z.v, _mm512_setzero_ps(), _CMP_NLE_UQ);  // z > 0 or NaN
    return {_mm512_mask_blend_ps(keep, negative, z.v)};
  }
  // dh where z > 0, slope * dh elsewhere; at z = NaN relu passes dh and leaky_relu scales it, as
  // torch's threshold_backward and leaky_relu_backward do (step_math.h activate_grad)
  static Avx512F32 activate_backward(Avx512F32 dh, Avx512F32 z, const Act& a) {
    const __m512 negative = _mm512_maskz_mul_ps(a.keep_negative, dh.v, a.slope);
    const __mmask16 nan_relu = _mm512_cmp_ps_mask(z.v, z.v, _CMP_UNORD_Q) & __mmask16(~a.keep_negative);
    const __mmask16 keep = _mm512_cmp_ps_mask(z.v, _mm512_setzero_ps(), _CMP_GT_OQ) | nan_relu;
    return {_mm512_mask_blend_ps(keep, negative, dh.v)};
  }
};

struct Avx512F64 {
  using value_type = double;
  static constexpr int width = 8;
  __m512d v;

  static Avx512F64 load(const double* p) { return {_mm512_loadu_pd(p)}; }
  static Avx512F64 load_to_register(const double* p) {
    __m512d x = _mm512_loadu_pd(p);
    asm("" : "+v"(x));
    return {x};
  }
  static Avx512F64 load_first(const double* p, int n) {
    return {_mm512_maskz_loadu_pd(static_cast<__mmask8>((1u << n) - 1), p)};
  }
  static Avx512F64 broadcast(const double* p) { return {_mm512_set1_pd(*p)}; }
  static Avx512F64 zero() { return {_mm512_setzero_pd()}; }
  void store(double* p) const { _mm512_storeu_pd(p, v); }
  friend Avx512F64 fma(Avx512F64 a, Avx512F64 b, Avx512F64 c) { return {_mm512_fmadd_pd(a.v, b.v, c.v)}; }
  friend Avx512F64 operator+(Avx512F64 a, Avx512F64 b) { return {_mm512_add_pd(a.v, b.v)}; }
  static double sum(Avx512F64 a) { return _mm512_reduce_add_pd(a.v); }

  struct Act {
    __m512d slope;
    __mmask8 keep_negative;
  };
  static Act make_act(double slope) { return {_mm512_set1_pd(slope), __mmask8(slope != 0.0 ? 0xFF : 0)}; }
  static Avx512F64 activate(Avx512F64 z, const Act& a) {
    const __m512d negative = _mm512_maskz_mul_pd(a.keep_negative, z.v, a.slope);
    const __mmask8 keep = _mm512_cmp_pd_mask(z.v, _mm512_setzero_pd(), _CMP_NLE_UQ);
    return {_mm512_mask_blend_pd(keep, negative, z.v)};
  }
  static Avx512F64 activate_backward(Avx512F64 dh, Avx512F64 z, const Act& a) {
    const __m512d negative = _mm512_maskz_mul_pd(a.keep_negative, dh.v, a.slope);
    const __mmask8 nan_relu = _mm512_cmp_pd_mask(z.v, z.v, _CMP_UNORD_Q) & __mmask8(~a.keep_negative);
    const __mmask8 keep = _mm512_cmp_pd_mask(z.v, _mm512_setzero_pd(), _CMP_GT_OQ) | nan_relu;
    return {_mm512_mask_blend_pd(keep, negative, dh.v)};
  }
};

}  // namespace taylor_fast::cpu
