// One-lane "vector" for the baseline build: the tile kernels' vector interface over a plain
// scalar, using the shared per-element math of step_math.h.
#pragma once
#include "step_math.h"

namespace taylor_fast::cpu {

template <typename T>
struct ScalarVec {
  using value_type = T;
  static constexpr int width = 1;
  T v;

  static ScalarVec load(const T* p) { return {*p}; }
  static ScalarVec load_to_register(const T* p) { return {*p}; }
  static ScalarVec broadcast(const T* p) { return {*p}; }
  static ScalarVec zero() { return {T(0)}; }
  void store(T* p) const { *p = v; }
  friend ScalarVec fma(ScalarVec a, ScalarVec b, ScalarVec c) { return {a.v * b.v + c.v}; }
  friend ScalarVec operator+(ScalarVec a, ScalarVec b) { return {a.v + b.v}; }
  static T sum(ScalarVec a) { return a.v; }

  struct Act {
    T slope;
  };
  static Act make_act(T slope) { return {slope}; }
  static ScalarVec activate(ScalarVec z, const Act& a) { return {taylor_fast::activate(z.v, a.slope)}; }
  static ScalarVec activate_backward(ScalarVec dh, ScalarVec z, const Act& a) {
    return {taylor_fast::activate_backward(dh.v, z.v, a.slope)};
  }
};

}  // namespace taylor_fast::cpu
