// The CUDA kernels of the taylor_fast::* operators (schemas in csrc/bindings.cpp), one op per
// file (<op>_op.cpp), registered by register_cuda_kernels.cpp. Each checks its arguments,
// allocates its outputs per the contract in taylor_step.h, and launches step_plan.h's plans on
// the current stream of the tensors' device. No host synchronisation and no allocation outside
// the caching allocator: the ops can be captured in CUDA graphs.
#pragma once
#include <ATen/core/Tensor.h>

#include <tuple>

namespace taylor_fast::cuda {

std::tuple<at::Tensor, at::Tensor> step_forward_cuda(const at::Tensor& g, const at::Tensor& y, const at::Tensor& acc,
                                                     const at::Tensor& w1, const at::Tensor& b1, const at::Tensor& w2,
                                                     const at::Tensor& b2, int64_t k, double slope);

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> step_backward_cuda(
    const at::Tensor& grad_g_next, const at::Tensor& g, const at::Tensor& y, const at::Tensor& w1,
    const at::Tensor& b1, const at::Tensor& w2, const at::Tensor& b2, int64_t k, double slope);

std::tuple<at::Tensor, at::Tensor> expand_forward_cuda(const at::Tensor& f, const at::Tensor& y, const at::Tensor& w1,
                                                       const at::Tensor& b1, const at::Tensor& w2,
                                                       const at::Tensor& b2, int64_t order, double slope);

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> expand_backward_cuda(
    const at::Tensor& grad_out, const at::Tensor& f, const at::Tensor& y, const at::Tensor& gs,
    const at::Tensor& w1, const at::Tensor& b1, const at::Tensor& w2, const at::Tensor& b2, int64_t order,
    double slope);

}  // namespace taylor_fast::cuda
