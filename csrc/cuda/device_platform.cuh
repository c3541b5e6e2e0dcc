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

// ---------------------------------------------------------------- tensor-core path (bf16, fp16)
// 16-bit values travel as raw bits through shared memory, two to a 32-bit word, lower index in
// the low half (the register layout of mma.sync operands).
TF_DEVICE uint16_t raw_bits(__nv_bfloat16 v) { return __bfloat16_as_ushort(v); }
TF_DEVICE uint16_t raw_bits(__half v) { return __half_as_ushort(v); }
TF_DEVICE uint16_t bits_from_float(float v, const __nv_bfloat16*) { return __bfloat16_as_ushort(__float2bfloat16_rn(v)); }
TF_DEVICE uint16_t bits_from_float(float v, const __half*) { return __half_as_ushort(__float2half_rn(v)); }
TF_DEVICE float float_from_bits(uint16_t b, const __nv_bfloat16*) { return __bfloat162float(__ushort_as_bfloat16(b)); }
TF_DEVICE float float_from_bits(uint16_t b, const __half*) { return __half2float(__ushort_as_half(b)); }
TF_DEVICE uint32_t load_pair(const uint16_t* p) { return *reinterpret_cast<const uint32_t*>(p); }
TF_DEVICE void store_pair(uint16_t* p, uint32_t v) { *reinterpret_cast<uint32_t*>(p) = v; }

// d = A B + d for one m16n8k16 tile with fp32 accumulation; operand fragments as the PTX ISA
// lays them out ("Matrix Fragments for mma.m16n8k16"), restated in tests/cuda_emulator/platform.h.
TF_DEVICE void mma_16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const __nv_bfloat16*) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

TF_DEVICE void mma_16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const __half*) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

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

// kernel<<<blocks, kThreads, smem, stream>>>(params), after allowing it that much shared memory;
// returns the attribute call's error (the caller checks the launch itself).
template <class Kernel, class Params>
cudaError_t launch_blocks(Kernel kernel, int64_t blocks, size_t smem, cudaStream_t stream, const Params& params) {
  const cudaError_t err = allow_dynamic_smem(kernel, smem);
  if (err != cudaSuccess) return err;
  kernel<<<static_cast<unsigned>(blocks), kThreads, smem, stream>>>(params);
  return cudaSuccess;
}

}  // namespace taylor_fast::cuda
