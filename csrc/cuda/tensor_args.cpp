#include "cuda/tensor_args.h"

#include <ATen/Context.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <c10/cuda/CUDAException.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <string_view>

#include "cuda/launch.h"

namespace taylor_fast::cuda {

namespace {

at::ScalarType acc_type(ScalarKind kind) { return kind == ScalarKind::Double ? at::kDouble : at::kFloat; }

}  // namespace

ScalarKind scalar_kind(const at::Tensor& t) {
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

ImageRef image_ref(const at::Tensor& t) {
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

bool use_tensor_cores(ScalarKind kind) {
  if (kind != ScalarKind::Half && kind != ScalarKind::BFloat16) return false;
  const char* env = std::getenv("TAYLOR_FAST_CUDA_TENSOR_CORES");
  return env == nullptr || std::string_view(env) != "0";
}

void check_launch(cudaError_t attribute_error) {
  C10_CUDA_CHECK(attribute_error);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

AccWeights::AccWeights(const at::Tensor& w1_, const at::Tensor& b1_, const at::Tensor& w2_, const at::Tensor& b2_,
                       ScalarKind kind)
    : w1(w1_.to(acc_type(kind)).contiguous()),
      b1(b1_.to(acc_type(kind)).contiguous()),
      w2(w2_.to(acc_type(kind)).contiguous()),
      b2(b2_.to(acc_type(kind)).contiguous()) {}

WeightsRef AccWeights::ref() const {
  WeightsRef r;
  r.w1 = w1.data_ptr();
  r.b1 = b1.data_ptr();
  r.w2 = w2.data_ptr();
  r.b2 = b2.data_ptr();
  return r;
}

WeightGradBuffers::WeightGradBuffers(const Geometry& geo, ScalarKind kind, int64_t sets, const at::Tensor& like) {
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

void WeightGradBuffers::copy_to(at::Tensor& gw1, at::Tensor& gb1, at::Tensor& gw2, at::Tensor& gb2) const {
  gw1.copy_(wgrad.narrow(1, lay.w1, lay.b1 - lay.w1).reshape(gw1.sizes()));
  gb1.copy_(wgrad.narrow(1, lay.b1, lay.w2 - lay.b1).reshape(gb1.sizes()));
  gw2.copy_(wgrad.narrow(1, lay.w2, lay.b2 - lay.w2).reshape(gw2.sizes()));
  gb2.copy_(wgrad.narrow(1, lay.b2, lay.total - lay.b2).reshape(gb2.sizes()));
}

void run_backward(const BackwardLaunch& l, ScalarKind kind, int64_t blocks, cudaStream_t stream) {
  check_launch(launch_step_backward(l.step, kind, blocks, stream));
  if (l.reduce) check_launch(launch_reduce_weight_grads(l.sum, kind, stream));
}

Grads zero_weight_grads(at::Tensor grad_g, at::Tensor grad_y, const at::Tensor& w1, const at::Tensor& b1,
                        const at::Tensor& w2, const at::Tensor& b2) {
  return {grad_g, grad_y, at::zeros_like(w1), at::zeros_like(b1), at::zeros_like(w2), at::zeros_like(b2)};
}

}  // namespace taylor_fast::cuda
