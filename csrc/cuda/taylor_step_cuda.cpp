// The CUDA kernels of the taylor_fast::* ops (schemas in csrc/bindings.cpp): argument checks,
// outputs allocated per the contract in taylor_step.h, the device guard, the current stream,
// the launches of step_plan.h's plans, and registration for the CUDA dispatch key.
// No host synchronisation and no allocation outside the caching allocator: the ops can be
// captured in CUDA graphs.
#include <ATen/Context.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string_view>
#include <tuple>

#include "cuda/launch.h"
#include "cuda/step_plan.h"
#include "taylor_step.h"

namespace taylor_fast::cuda {

namespace {

using at::Tensor;
using Grads = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>;

ScalarKind scalar_kind(const Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat:
      return ScalarKind::Float;
    case at::kDouble:
      return ScalarKind::Double;
    case at::kHalf:
      return ScalarKind::Half;
    case at::kBFloat16:
      return ScalarKind::BFloat16;
    default:
      TORCH_CHECK(false, "taylor_fast (cuda): the fused kernels take float32, float64, float16 or bfloat16, got ",
                  t.scalar_type());
  }
}

at::ScalarType acc_type(ScalarKind kind) { return kind == ScalarKind::Double ? at::kDouble : at::kFloat; }

ImageRef image_ref(const Tensor& t) {
  ImageRef r;
  r.data = t.data_ptr();
  r.sn = t.stride(0);
  r.sc = t.stride(1);
  r.sh = t.stride(2);
  r.sw = t.stride(3);
  return r;
}

Geometry cuda_geometry(const StepGeometry& sg, ScalarKind kind) {
  TORCH_CHECK(sg.C <= kMaxChannels, "taylor_fast (cuda): the fused kernels take at most ", kMaxChannels,
              " image channels, got C = ", sg.C, " (use backend='reference')");
  TORCH_CHECK(sg.hidden <= (1 << 20), "taylor_fast (cuda): hidden must be at most 2^20, got ", sg.hidden);
  const Geometry geo = make_geometry(sg.N, sg.C, sg.H, sg.W, sg.hidden, kind);
  TORCH_CHECK(geo.tiles <= std::numeric_limits<int32_t>::max(), "taylor_fast (cuda): the images need ", geo.tiles,
              " tiles, more than one launch can address (2^31 - 1)");
  return geo;
}

// bf16/fp16 forwards run on tensor cores unless TAYLOR_FAST_CUDA_TENSOR_CORES=0 (the SIMT
// kernels then run every dtype: for comparison, and as a fallback)
bool use_tensor_cores(ScalarKind kind) {
  if (kind != ScalarKind::Half && kind != ScalarKind::BFloat16) return false;
  const char* env = std::getenv("TAYLOR_FAST_CUDA_TENSOR_CORES");
  return env == nullptr || std::string_view(env) != "0";
}

void check_launch(cudaError_t attribute_error) {
  C10_CUDA_CHECK(attribute_error);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// The weights as the kernels read them: contiguous, in the accumulation type.
struct AccWeights {
  Tensor w1, b1, w2, b2;
  AccWeights(const Tensor& w1_, const Tensor& b1_, const Tensor& w2_, const Tensor& b2_, ScalarKind kind)
      : w1(w1_.to(acc_type(kind)).contiguous()),
        b1(b1_.to(acc_type(kind)).contiguous()),
        w2(w2_.to(acc_type(kind)).contiguous()),
        b2(b2_.to(acc_type(kind)).contiguous()) {}
  WeightsRef ref() const {
    WeightsRef r;
    r.w1 = w1.data_ptr();
    r.b1 = b1.data_ptr();
    r.w2 = w2.data_ptr();
    r.b2 = b2.data_ptr();
    return r;
  }
};

// Weight-gradient accumulators of a backward call: `sets` rows of WeightGradLayout in the
// accumulation type, plus one row of partials per persistent block unless atomics are allowed.
struct WeightGradBuffers {
  WeightGradLayout lay;
  Tensor wgrad, partials;
  BackwardBuffers buffers;

  WeightGradBuffers(const Geometry& geo, ScalarKind kind, int64_t sets, const Tensor& like) {
    lay = weight_grad_layout(geo.C, geo.hidden);
    const auto options = like.options().dtype(acc_type(kind));
    int64_t resident = 0;
    C10_CUDA_CHECK(backward_resident_blocks(kind, static_cast<int>(geo.C), &resident));
    buffers.blocks = std::min(geo.tiles, resident);
    buffers.atomic = !at::globalContext().deterministicAlgorithms();
    wgrad = buffers.atomic ? at::zeros({sets, lay.total}, options) : at::empty({sets, lay.total}, options);
    buffers.wgrad = wgrad.data_ptr();
    if (!buffers.atomic) {
      partials = at::empty({buffers.blocks, lay.total}, options);
      buffers.partials = partials.data_ptr();
    }
  }

  // copies the sums into gradients allocated like the weights (and converts to their dtype)
  void copy_to(Tensor& gw1, Tensor& gb1, Tensor& gw2, Tensor& gb2) const {
    gw1.copy_(wgrad.narrow(1, lay.w1, lay.b1 - lay.w1).reshape(gw1.sizes()));
    gb1.copy_(wgrad.narrow(1, lay.b1, lay.w2 - lay.b1).reshape(gb1.sizes()));
    gw2.copy_(wgrad.narrow(1, lay.w2, lay.b2 - lay.w2).reshape(gw2.sizes()));
    gb2.copy_(wgrad.narrow(1, lay.b2, lay.total - lay.b2).reshape(gb2.sizes()));
  }
};

void run_backward(const BackwardLaunch& l, ScalarKind kind, int64_t blocks, cudaStream_t stream) {
  check_launch(launch_step_backward(l.step, kind, blocks, stream));
  if (l.reduce) check_launch(launch_reduce_weight_grads(l.sum, kind, stream));
}

Grads zero_weight_grads(Tensor grad_g, Tensor grad_y, const Tensor& w1, const Tensor& b1, const Tensor& w2,
                        const Tensor& b2) {
  return {grad_g, grad_y, at::zeros_like(w1), at::zeros_like(b1), at::zeros_like(w2), at::zeros_like(b2)};
}

std::tuple<Tensor, Tensor> step_forward_cuda(const Tensor& g, const Tensor& y, const Tensor& acc, const Tensor& w1,
                                             const Tensor& b1, const Tensor& w2, const Tensor& b2, int64_t k,
                                             double slope) {
  const StepGeometry sg = check_step_args(g, y, acc, w1, b1, w2, b2, k);
  const ScalarKind kind = scalar_kind(g);
  const c10::cuda::CUDAGuard guard(g.device());
  Tensor g_next = at::empty_like(g), acc_next = at::empty_like(acc);
  const Geometry geo = cuda_geometry(sg, kind);
  if (geo.tiles == 0) return {g_next, acc_next};
  const AccWeights w(w1, b1, w2, b2, kind);
  const StepForwardParams p = plan_step_forward(geo, image_ref(g), image_ref(y), image_ref(acc), image_ref(g_next),
                                                image_ref(acc_next), w.ref(), k, slope, use_tensor_cores(kind));
  check_launch(launch_step_forward(p, kind, c10::cuda::getCurrentCUDAStream()));
  return {g_next, acc_next};
}

Grads step_backward_cuda(const Tensor& grad_g_next, const Tensor& g, const Tensor& y, const Tensor& w1,
                         const Tensor& b1, const Tensor& w2, const Tensor& b2, int64_t k, double slope) {
  const StepGeometry sg = check_step_args(g, y, g, w1, b1, w2, b2, k);
  TORCH_CHECK(grad_g_next.sizes() == g.sizes() && grad_g_next.scalar_type() == g.scalar_type() &&
                  grad_g_next.device() == g.device(),
              "taylor_fast: grad_g_next must match g in shape, dtype and device, got ", grad_g_next.sizes(), " ",
              grad_g_next.scalar_type(), " on ", grad_g_next.device(), " for g ", g.sizes(), " ", g.scalar_type(),
              " on ", g.device());
  const ScalarKind kind = scalar_kind(g);
  const c10::cuda::CUDAGuard guard(g.device());
  Tensor grad_g = at::empty_like(g), grad_y = at::empty_like(y);
  const Geometry geo = cuda_geometry(sg, kind);
  if (geo.tiles == 0) return zero_weight_grads(grad_g, grad_y, w1, b1, w2, b2);
  Tensor gw1 = at::empty_like(w1), gb1 = at::empty_like(b1), gw2 = at::empty_like(w2), gb2 = at::empty_like(b2);
  const AccWeights w(w1, b1, w2, b2, kind);
  WeightGradBuffers wb(geo, kind, 1, g);
  wb.buffers.grad_g[0] = image_ref(grad_g);
  wb.buffers.grad_y = image_ref(grad_y);
  const BackwardLaunch l =
      plan_step_backward(geo, kind, image_ref(grad_g_next), image_ref(g), image_ref(y), w.ref(), k, slope, wb.buffers);
  run_backward(l, kind, wb.buffers.blocks, c10::cuda::getCurrentCUDAStream());
  wb.copy_to(gw1, gb1, gw2, gb2);
  return {grad_g, grad_y, gw1, gb1, gw2, gb2};
}

std::tuple<Tensor, Tensor> expand_forward_cuda(const Tensor& f, const Tensor& y, const Tensor& w1, const Tensor& b1,
                                               const Tensor& w2, const Tensor& b2, int64_t order, double slope) {
  const StepGeometry sg = check_expand_args(f, y, w1, b1, w2, b2, order);
  const ScalarKind kind = scalar_kind(f);
  const c10::cuda::CUDAGuard guard(f.device());
  Tensor out = at::empty_like(f);
  Tensor gs = at::empty({order, sg.N, sg.C, sg.H, sg.W}, f.options());
  const Geometry geo = cuda_geometry(sg, kind);
  if (order == 0 || geo.tiles == 0) {
    out.copy_(f);
    return {out, gs};
  }
  const AccWeights w(w1, b1, w2, b2, kind);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  for (const StepForwardParams& p : plan_expand_forward(geo, kind, order, w1.dim() == 5, image_ref(f), image_ref(y),
                                                        image_ref(out), gs.data_ptr(), w.ref(), slope,
                                                        use_tensor_cores(kind)))
    check_launch(launch_step_forward(p, kind, stream));
  return {out, gs};
}

Grads expand_backward_cuda(const Tensor& grad_out, const Tensor& f, const Tensor& y, const Tensor& gs,
                           const Tensor& w1, const Tensor& b1, const Tensor& w2, const Tensor& b2, int64_t order,
                           double slope) {
  const StepGeometry sg = check_expand_args(f, y, w1, b1, w2, b2, order);
  check_expand_backward_args(grad_out, f, gs, order);
  const ScalarKind kind = scalar_kind(f);
  const c10::cuda::CUDAGuard guard(f.device());
  Tensor a0 = at::empty_like(f), grad_y = at::empty_like(y);
  const Geometry geo = cuda_geometry(sg, kind);
  if (order == 0 || geo.tiles == 0) {  // out = f: the gradient passes straight through to f
    a0.copy_(grad_out);
    grad_y.zero_();
    return zero_weight_grads(a0, grad_y, w1, b1, w2, b2);
  }
  Tensor a1 = order > 1 ? at::empty_like(f) : Tensor();
  Tensor gw1 = at::empty_like(w1), gb1 = at::empty_like(b1), gw2 = at::empty_like(w2), gb2 = at::empty_like(b2);
  const bool per_order = w1.dim() == 5;
  const Tensor gs_dense = gs.contiguous();
  const AccWeights w(w1, b1, w2, b2, kind);
  WeightGradBuffers wb(geo, kind, per_order ? order : 1, f);
  wb.buffers.grad_g[0] = image_ref(a0);
  if (a1.defined()) wb.buffers.grad_g[1] = image_ref(a1);
  wb.buffers.grad_y = image_ref(grad_y);
  const ExpandBackwardPlan plan = plan_expand_backward(geo, kind, order, per_order, image_ref(grad_out), image_ref(f),
                                                       image_ref(y), gs_dense.data_ptr(), w.ref(), slope, wb.buffers);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  for (const BackwardLaunch& l : plan.launches) run_backward(l, kind, wb.buffers.blocks, stream);
  wb.copy_to(gw1, gb1, gw2, gb2);
  return {plan.result_buffer == 0 ? a0 : a1, grad_y, gw1, gb1, gw2, gb2};
}

}  // namespace

}  // namespace taylor_fast::cuda

TORCH_LIBRARY_IMPL(taylor_fast, CUDA, m) {
  m.impl("step_forward", &taylor_fast::cuda::step_forward_cuda);
  m.impl("step_backward", &taylor_fast::cuda::step_backward_cuda);
  m.impl("expand_forward", &taylor_fast::cuda::expand_forward_cuda);
  m.impl("expand_backward", &taylor_fast::cuda::expand_backward_cuda);
}
