// The CUDA side of the platform step_kernels.cuh is written against (the host emulator in
// tests/cuda_emulator provides the other): dynamic shared memory, vectorised shared-memory
// loads, and conversions of the reduced-precision types to and from fp32.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "cuda/step_params.h"

#define TF_DEVICE __device__ __forceinline__

namespace taylor_fast::cuda {

TF_DEVICE unsigned char* dynamic_smem() {
  extern __shared__ __align__(16) unsigned char tf_dynamic_smem[];
  return tf_dynamic_smem;
}

// dst[0..N) = src[0..N); src is 16-byte aligned (SmemLayout puts every array on a 4-element
// boundary and each use starts a multiple of 4 elements in). The threads of a warp read the
// same address, so each 16-byte load is one broadcast.
template <int N>
TF_DEVICE void smem_load(float (&dst)[N], const float* src) {
  static_assert(N % 4 == 0, "float rows are loaded 4 at a time");
#pragma unroll
  for (int i = 0; i < N; i += 4) {
    const float4 v = *reinterpret_cast<const float4*>(src + i);
    dst[i] = v.x;
    dst[i + 1] = v.y;
    dst[i + 2] = v.z;
    dst[i + 3] = v.w;
  }
}

template <int N>
TF_DEVICE void smem_load(double (&dst)[N], const double* src) {
  static_assert(N % 2 == 0, "double rows are loaded 2 at a time");
#pragma unroll
  for (int i = 0; i < N; i += 2) {
    const double2 v = *reinterpret_cast<const double2*>(src + i);
    dst[i] = v.x;
    dst[i + 1] = v.y;
  }
}

TF_DEVICE float to_acc(__half v) { return __half2float(v); }
TF_DEVICE float to_acc(__nv_bfloat16 v) { return __bfloat162float(v); }
TF_DEVICE void store(__half* dst, float v) { *dst = __float2half_rn(v); }
TF_DEVICE void store(__nv_bfloat16* dst, float v) { *dst = __float2bfloat16_rn(v); }

}  // namespace taylor_fast::cuda

namespace taylor_fast::cuda {

// Calls f with a value of the C++ type of `kind` (its type picks the kernel instantiation).
template <class F>
cudaError_t dispatch_scalar(ScalarKind kind, F&& f) {
  switch (kind) {
    case ScalarKind::Float:
      return f(float{});
    case ScalarKind::Double:
      return f(double{});
    case ScalarKind::Half:
      return f(__half{});
    case ScalarKind::BFloat16:
      return f(__nv_bfloat16{});
  }
  return cudaErrorInvalidValue;
}

// Kernels using more than the default 48 KiB of dynamic shared memory must opt in (per device,
// so before every launch: the caller's device may differ from the last one).
template <class Kernel>
cudaError_t allow_dynamic_smem(Kernel kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return cudaSuccess;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
}

}  // namespace taylor_fast::cuda
