// Tells whether this binary carries code the visible GPU can run (SASS for its arch, or PTX
// it can JIT), by asking the runtime for a trivial kernel's attributes. Needs no torch headers.
#include <cuda_runtime.h>

#include "extension_info.h"

namespace taylor_fast {

namespace {
__global__ void probe_kernel() {}
}  // namespace

std::vector<int> cuda_compiled_archs() {
#ifdef __CUDA_ARCH_LIST__
  return {__CUDA_ARCH_LIST__};
#else
  return {};
#endif
}

CudaProbe cuda_probe(int device) {
  CudaProbe probe;
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    probe.message = err != cudaSuccess ? cudaGetErrorString(err) : "no CUDA device is visible";
    cudaGetLastError();
    return probe;
  }
  if (device < 0 || device >= count) {
    probe.message = "device index out of range";
    return probe;
  }
  int previous = 0;
  cudaGetDevice(&previous);
  cudaSetDevice(device);
  cudaFuncAttributes attrs{};
  err = cudaFuncGetAttributes(&attrs, probe_kernel);
  cudaSetDevice(previous);
  if (err != cudaSuccess) {
    probe.message = cudaGetErrorString(err);
    cudaGetLastError();
    return probe;
  }
  probe.ok = true;
  probe.binary_version = attrs.binaryVersion;
  probe.ptx_version = attrs.ptxVersion;
  return probe;
}

}  // namespace taylor_fast
