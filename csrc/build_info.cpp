// What this binary was built with, for `taylor-fast info` and the stale-build check.
#include "build_info.h"
#include "extension_info.h"

namespace taylor_fast {

std::vector<std::pair<std::string, std::string>> build_info() {
  return {
      {"torch_version", TF_BUILD_TORCH_VERSION},
      {"torch_cuda_version", TF_BUILD_TORCH_CUDA_VERSION},
      {"cxx11_abi", TF_BUILD_CXX11_ABI},
      {"cxx_compiler", TF_BUILD_CXX_COMPILER},
      {"build_type", TF_BUILD_TYPE},
      {"python_version", TF_BUILD_PYTHON_VERSION},
      {"cuda_requested", TF_BUILD_CUDA_REQUESTED},
#ifdef TAYLOR_FAST_WITH_CUDA
      {"cuda_built", "1"},
#else
      {"cuda_built", "0"},
#endif
      {"cuda_skip_reason", TF_BUILD_CUDA_SKIP_REASON},
      {"cuda_compiler_version", TF_BUILD_CUDA_COMPILER_VERSION},
      {"cuda_archs", TF_BUILD_CUDA_ARCHS},
      {"cuda_archs_from", TF_BUILD_CUDA_ARCH_SOURCE},
  };
}

}  // namespace taylor_fast
