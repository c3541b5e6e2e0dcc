// The tile kernels for any CPU: one lane at a time (compiled without vector-ISA flags).
#include "cpu/isa_tile_kernels.h"
#include "cpu/vec_scalar.h"

namespace taylor_fast::cpu {

template <>
const TileKernels<float>& isa_tile_kernels<CpuIsa::Baseline, float>() {
  static const auto kernels = make_tile_kernels<Blocking<ScalarVec<float>, 4, 3, 4>>("baseline");
  return kernels;
}

template <>
const TileKernels<double>& isa_tile_kernels<CpuIsa::Baseline, double>() {
  static const auto kernels = make_tile_kernels<Blocking<ScalarVec<double>, 4, 3, 4>>("baseline");
  return kernels;
}

}  // namespace taylor_fast::cpu
