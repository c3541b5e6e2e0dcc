// Which ISA's tile kernels the CPU ops run: the best the CPU offers, unless the environment
// variable TAYLOR_FAST_CPU_ISA asks for a lower one (tests use it to cover every code path).
#include <c10/util/Exception.h>

#include <cstdlib>
#include <string>

#include "cpu/tile_kernels.h"

namespace taylor_fast::cpu {

CpuIsa active_cpu_isa() {
  const CpuIsa best = detect_cpu_isa();
  const char* env = std::getenv("TAYLOR_FAST_CPU_ISA");
  if (env == nullptr || *env == '\0') return best;
  const std::string name(env);
  for (CpuIsa isa : {CpuIsa::Baseline, CpuIsa::Avx2, CpuIsa::Avx512}) {
    if (name != cpu_isa_name(isa)) continue;
    TORCH_CHECK(static_cast<int>(isa) <= static_cast<int>(best), "taylor_fast: TAYLOR_FAST_CPU_ISA=", name,
                " but this CPU offers at most ", cpu_isa_name(best));
    return isa;
  }
  TORCH_CHECK(false, "taylor_fast: TAYLOR_FAST_CPU_ISA must be baseline, avx2 or avx512 (or unset), got '", name,
              "'");
}

template <typename T>
const TileKernels<T>& tile_kernels(CpuIsa isa) {
#if defined(__x86_64__) || defined(__i386__)
  if (isa == CpuIsa::Avx512) return isa_tile_kernels<CpuIsa::Avx512, T>();
  if (isa == CpuIsa::Avx2) return isa_tile_kernels<CpuIsa::Avx2, T>();
#endif
  return isa_tile_kernels<CpuIsa::Baseline, T>();
}

template const TileKernels<float>& tile_kernels<float>(CpuIsa);
template const TileKernels<double>& tile_kernels<double>(CpuIsa);

}  // namespace taylor_fast::cpu
