// The CUDA kernels of the taylor_fast::* schemas; with them the "cuda" backend becomes available.
#include <torch/library.h>

#include "cuda/cuda_ops.h"

TORCH_LIBRARY_IMPL(taylor_fast, CUDA, m) {
  m.impl("step_forward", &taylor_fast::cuda::step_forward_cuda);
  m.impl("step_backward", &taylor_fast::cuda::step_backward_cuda);
  m.impl("expand_forward", &taylor_fast::cuda::expand_forward_cuda);
  m.impl("expand_backward", &taylor_fast::cuda::expand_backward_cuda);
}
