// The tile kernels with AVX-512 (this file is compiled with the AVX-512 flags). 32 zmm registers:
// 8 hidden x 3 vectors of accumulators into hidden space, 3 channels x 4 vectors out of it.
#include "cpu/isa_tile_kernels.h"
#include "cpu/vec_avx512.h"

namespace taylor_fast::cpu {

template <>
const TileKernels<float>& isa_tile_kernels<CpuIsa::Avx512, float>() {
  static const auto kernels = make_tile_kernels<Blocking<Avx512F32, 8, 3, 4>>("avx512");
  return kernels;
}

template <>
const TileKernels<double>& isa_tile_kernels<CpuIsa::Avx512, double>() {
  static const auto kernels = make_tile_kernels<Blocking<Avx512F64, 8, 3, 4>>("avx512");
  return kernels;
}

}  // namespace taylor_fast::cpu
