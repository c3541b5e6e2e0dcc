#include "cuda/step_plan.h"

namespace taylor_fast::cuda {

namespace {

template <typename acc_t>
Geometry tiled(int64_t N, int64_t C, int64_t H, int64_t W, int64_t hidden) {
  using T = Tile<acc_t>;
  Geometry g;
  g.N = N;
  g.C = C;
  g.H = H;
  g.W = W;
  g.hidden = hidden;
  g.tiles_y = (H + T::TH - 1) / T::TH;
  g.tiles_x = (W + T::TW - 1) / T::TW;
  g.tiles = N * g.tiles_y * g.tiles_x;
  return g;
}

const void* advance(const void* p, int64_t elements, int elem_size) {
  return static_cast<const char*>(p) + elements * elem_size;
}

void* advance(void* p, int64_t elements, int elem_size) {
  return static_cast<char*>(p) + elements * elem_size;
}

}  // namespace

Geometry make_geometry(int64_t N, int64_t C, int64_t H, int64_t W, int64_t hidden, ScalarKind kind) {
  return kind == ScalarKind::Double ? tiled<double>(N, C, H, W, hidden) : tiled<float>(N, C, H, W, hidden);
}

ImageRef stacked_image(void* base, const Geometry& geo, int64_t index, ScalarKind kind) {
  ImageRef im;
  im.sw = 1;
  im.sh = geo.W;
  im.sc = geo.H * geo.W;
  im.sn = geo.C * im.sc;
  im.data = advance(base, index * geo.N * im.sn, scalar_size(kind));
  return im;
}

WeightsRef weight_set(const WeightsRef& all, const Geometry& geo, int64_t set, ScalarKind kind) {
  const int s = acc_size(kind);
  const int64_t C = geo.C, hidden = geo.hidden;
  WeightsRef w;
  w.w1 = advance(all.w1, set * hidden * 2 * C * 9, s);
  w.b1 = advance(all.b1, set * hidden, s);
  w.w2 = advance(all.w2, set * C * hidden * 9, s);
  w.b2 = advance(all.b2, set * C, s);
  return w;
}

StepForwardParams plan_step_forward(const Geometry& geo, const ImageRef& g, const ImageRef& y,
                                    const ImageRef& acc_in, const ImageRef& g_out, const ImageRef& acc_out,
                                    const WeightsRef& w, int64_t k, double slope, bool tensor_cores) {
  StepForwardParams p;
  p.geo = geo;
  p.g = g;
  p.y = y;
  p.acc_in = acc_in;
  p.g_out = g_out;
  p.acc_out = acc_out;
  p.w = w;
  p.k = static_cast<double>(k);
  p.acc_coef = inverse_factorial(k + 1);
  p.slope = slope;
  p.tensor_cores = tensor_cores;
  return p;
}

std::vector<StepForwardParams> plan_expand_forward(const Geometry& geo, ScalarKind kind, int64_t order,
                                                   bool per_order, const ImageRef& f, const ImageRef& y,
                                                   const ImageRef& out, void* gs, const WeightsRef& w,
                                                   double slope, bool tensor_cores) {
  std::vector<StepForwardParams> steps;
  for (int64_t k = 0; k < order; ++k) {
    const ImageRef g = k == 0 ? f : stacked_image(gs, geo, k - 1, kind);
    const ImageRef acc_in = k == 0 ? f : out;
    steps.push_back(plan_step_forward(geo, g, y, acc_in, stacked_image(gs, geo, k, kind), out,
                                      weight_set(w, geo, per_order ? k : 0, kind), k, slope, tensor_cores));
  }
  return steps;
}

namespace {

BackwardLaunch backward_launch(const Geometry& geo, ScalarKind kind, const ImageRef& dg, double dg_scale,
                               const ImageRef& g, const ImageRef& y, const WeightsRef& w, int64_t k,
                               double slope, const BackwardBuffers& out, const ImageRef& grad_g,
                               int64_t wgrad_row, bool accumulate_weights) {
  const int64_t entries = weight_grad_layout(geo.C, geo.hidden).total;
  void* wgrad = advance(out.wgrad, wgrad_row * entries, acc_size(kind));
  BackwardLaunch l;
  StepBackwardParams& s = l.step;
  s.geo = geo;
  s.g = g;
  s.y = y;
  s.dg = dg;
  s.dg_scale = dg_scale;
  s.grad_g = grad_g;
  s.grad_y = out.grad_y;
  s.w = w;
  s.k = static_cast<double>(k);
  s.slope = slope;
  s.atomic = out.atomic;
  s.wgrad = wgrad;
  s.partials = out.partials;
  l.reduce = !out.atomic;
  l.sum.partials = out.partials;
  l.sum.out = wgrad;
  l.sum.entries = entries;
  l.sum.blocks = out.blocks;
  l.sum.accumulate = accumulate_weights;
  return l;
}

}  // namespace

BackwardLaunch plan_step_backward(const Geometry& geo, ScalarKind kind, const ImageRef& dg, const ImageRef& g,
                                  const ImageRef& y, const WeightsRef& w, int64_t k, double slope,
                                  const BackwardBuffers& out) {
  return backward_launch(geo, kind, dg, 1.0, g, y, w, k, slope, out, out.grad_g[0], 0, false);
}

ExpandBackwardPlan plan_expand_backward(const Geometry& geo, ScalarKind kind, int64_t order, bool per_order,
                                        const ImageRef& grad_out, const ImageRef& f, const ImageRef& y,
                                        void* gs, const WeightsRef& w, double slope, const BackwardBuffers& out) {
  ExpandBackwardPlan plan;
  for (int64_t k = order - 1; k >= 0; --k) {
    const int written = static_cast<int>((order - 1 - k) % 2);
    const bool last_order = k == order - 1;
    // a_{k+1}: dO / order! for the last order, else what the previous launch wrote
    const ImageRef dg = last_order ? grad_out : out.grad_g[1 - written];
    const double dg_scale = last_order ? inverse_factorial(order) : 1.0;
    const ImageRef g = k == 0 ? f : stacked_image(gs, geo, k - 1, kind);
    // shared weights sum their gradient over the orders; per-order weights own a row each
    const bool accumulate_weights = !per_order && !last_order;
    BackwardLaunch l = backward_launch(geo, kind, dg, dg_scale, g, y, weight_set(w, geo, per_order ? k : 0, kind),
                                       k, slope, out, out.grad_g[written], per_order ? k : 0, accumulate_weights);
    l.step.accumulate_grad_y = !last_order;
    l.step.dout = grad_out;
    l.step.dout_scale = inverse_factorial(k);
    plan.launches.push_back(l);
    plan.result_buffer = written;
  }
  return plan;
}

}  // namespace taylor_fast::cuda
