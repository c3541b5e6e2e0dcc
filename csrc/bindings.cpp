// The taylor_fast::* operator schemas (registered once, here) and the Python module _C.
// Backends add kernels for these schemas in csrc/cpu/ and csrc/cuda/ (TORCH_LIBRARY_IMPL);
// the Python layer (taylor_fast/backends/extension.py) adds fake tensors and autograd, and reads
// the kernels' compiled limits from _C.limits() instead of restating them.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/library.h>

#include "cuda/step_params.h"  // CUDA-free: its limits are known whether or not the CUDA half is built
#include "extension_info.h"

TORCH_LIBRARY(taylor_fast, m) {
  // One derivative step: g_next = G(g, y) + k g, acc_next = acc + g_next / (k+1)!
  m.def(
      "step_forward(Tensor g, Tensor y, Tensor acc, Tensor w1, Tensor b1, Tensor w2, Tensor b2, "
      "int k, float negative_slope) -> (Tensor g_next, Tensor acc_next)");
  // grad_g_next is the whole gradient reaching g_next (the acc path already folded in by the caller)
  m.def(
      "step_backward(Tensor grad_g_next, Tensor g, Tensor y, Tensor w1, Tensor b1, Tensor w2, "
      "Tensor b2, int k, float negative_slope) -> (Tensor grad_g, Tensor grad_y, Tensor grad_w1, "
      "Tensor grad_b1, Tensor grad_w2, Tensor grad_b2)");
  // The whole expansion: out = f + sum_{k=1..order} g^k / k!, gs = stack(g^1..g^order)
  m.def(
      "expand_forward(Tensor f, Tensor y, Tensor w1, Tensor b1, Tensor w2, Tensor b2, int order, "
      "float negative_slope) -> (Tensor out, Tensor gs)");
  // The same out, for calls that need no gradient: no g^k is kept (the CPU implements it; the
  // other backends serve such calls with expand_forward)
  m.def(
      "expand_inference(Tensor f, Tensor y, Tensor w1, Tensor b1, Tensor w2, Tensor b2, int order, "
      "float negative_slope) -> Tensor out");
  m.def(
      "expand_backward(Tensor grad_out, Tensor f, Tensor y, Tensor gs, Tensor w1, Tensor b1, "
      "Tensor w2, Tensor b2, int order, float negative_slope) -> (Tensor grad_f, Tensor grad_y, "
      "Tensor grad_w1, Tensor grad_b1, Tensor grad_w2, Tensor grad_b2)");
}

PYBIND11_MODULE(_C, m) {
  m.doc() = "taylor_fast native extension: fused derivative-step kernels (see torch.ops.taylor_fast)";
  m.def("build_info", []() {
    pybind11::dict info;
    for (const auto& [key, value] : taylor_fast::build_info()) info[key.c_str()] = value;
    return info;
  });
  // The sizes the compiled kernels are limited to (read by taylor_fast/backends/capabilities.py).
  m.def("limits", []() {
    pybind11::dict limits;
    limits["cuda_max_channels"] = taylor_fast::cuda::kMaxChannels;
    return limits;
  });
  m.def("cpu_isa", []() { return std::string(taylor_fast::cpu_isa_name(taylor_fast::detect_cpu_isa())); });
#ifdef TAYLOR_FAST_WITH_CUDA
  m.def("cuda_compiled_archs", &taylor_fast::cuda_compiled_archs);
  m.def("cuda_probe", [](int device) {
    auto p = taylor_fast::cuda_probe(device);
    pybind11::dict d;
    d["ok"] = p.ok;
    d["binary_version"] = p.binary_version;
    d["ptx_version"] = p.ptx_version;
    d["message"] = p.message;
    return d;
  });
#endif
}
