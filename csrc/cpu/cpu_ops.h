// The CPU kernels of the taylor_fast::* operators (schemas in csrc/bindings.cpp), registered by
// register_cpu_kernels.cpp. Semantics and output layout: csrc/taylor_step.h.
#pragma once
#include <ATen/core/Tensor.h>

#include <tuple>

namespace taylor_fast::cpu {

std::tuple<at::Tensor, at::Tensor> step_forward(const at::Tensor& g, const at::Tensor& y, const at::Tensor& acc,
                                                const at::Tensor& w1, const at::Tensor& b1, const at::Tensor& w2,
                                                const at::Tensor& b2, int64_t k, double negative_slope);

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> step_backward(
    const at::Tensor& grad_g_next, const at::Tensor& g, const at::Tensor& y, const at::Tensor& w1,
    const at::Tensor& b1, const at::Tensor& w2, const at::Tensor& b2, int64_t k, double negative_slope);

std::tuple<at::Tensor, at::Tensor> expand_forward(const at::Tensor& f, const at::Tensor& y, const at::Tensor& w1,
                                                  const at::Tensor& b1, const at::Tensor& w2, const at::Tensor& b2,
                                                  int64_t order, double negative_slope);

at::Tensor expand_inference(const at::Tensor& f, const at::Tensor& y, const at::Tensor& w1, const at::Tensor& b1,
                            const at::Tensor& w2, const at::Tensor& b2, int64_t order, double negative_slope);

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> expand_backward(
    const at::Tensor& grad_out, const at::Tensor& f, const at::Tensor& y, const at::Tensor& gs,
    const at::Tensor& w1, const at::Tensor& b1, const at::Tensor& w2, const at::Tensor& b2, int64_t order,
    double negative_slope);

}  // namespace taylor_fast::cpu
