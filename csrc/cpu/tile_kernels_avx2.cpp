// The tile kernels with AVX2 + FMA (this file is compiled with -mavx2 -mfma). 16 ymm registers:
// 4 hidden x 2 vectors (into hidden space; 3 vectors measured ~6% slower, the 16 registers
// then spill) and 3 channels x 4 vectors (out of it) of accumulators.
#include "cpu/isa_tile_kernels.h"
#include "cpu/vec_avx2.h"

namespace taylor_fast::cpu {

template <>
const TileKernels<float>& isa_tile_kernels<CpuIsa::Avx2, float>() {
  static const auto kernels = make_tile_kernels<Blocking<Avx2F32, 4, 2, 4>>("avx2");
  return kernels;
}

template <>
const TileKernels<double>& isa_tile_kernels<CpuIsa::Avx2, double>() {
  static const auto kernels = make_tile_kernels<Blocking<Avx2F64, 4, 2, 4>>("avx2");
  return kernels;
}

}  // namespace taylor_fast::cpu
