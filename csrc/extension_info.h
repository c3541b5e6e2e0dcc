// Facts about this build and this machine, reported by `taylor-fast info`.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace taylor_fast {

std::vector<std::pair<std::string, std::string>> build_info();

enum class CpuIsa { Baseline, Avx2, Avx512 };
CpuIsa detect_cpu_isa();
const char* cpu_isa_name(CpuIsa isa);

struct CudaProbe {
  bool ok = false;          // the visible device can run this binary's kernels
  int binary_version = 0;   // SASS arch the runtime picked (e.g. 90), 0 when it JITs PTX
  int ptx_version = 0;
  std::string message;      // why not, when !ok
};
#ifdef TAYLOR_FAST_WITH_CUDA
std::vector<int> cuda_compiled_archs();  // virtual archs nvcc compiled for, e.g. {800, 860, 890, 900}
CudaProbe cuda_probe(int device);
#endif

}  // namespace taylor_fast
