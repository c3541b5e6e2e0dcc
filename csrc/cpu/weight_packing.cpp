#include "cpu/weight_packing.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>

#include <algorithm>

namespace taylor_fast::cpu {

template <typename T>
std::vector<T> packed_weight_set(const TileKernels<T>& kernels, const at::Tensor& w1, const at::Tensor& b1,
                                 const at::Tensor& w2, const at::Tensor& b2, int64_t k) {
  const bool per_order = w1.dim() == 5;
  auto set = [&](const at::Tensor& w) { return (per_order ? w.select(0, k) : w).contiguous(); };
  const at::Tensor c1 = set(w1), cb1 = set(b1), c2 = set(w2), cb2 = set(b2);
  const int64_t C = c2.size(0), hidden = c1.size(0);
  std::vector<T> packed(kernels.packed_weights_size(C, hidden));
  kernels.pack_weights(c1.const_data_ptr<T>(), cb1.const_data_ptr<T>(), c2.const_data_ptr<T>(),
                       cb2.const_data_ptr<T>(), C, hidden, packed.data());
  return packed;
}

template <typename T>
std::vector<T> packed_weight_sets(const TileKernels<T>& kernels, const at::Tensor& w1, const at::Tensor& b1,
                                  const at::Tensor& w2, const at::Tensor& b2) {
  const int64_t sets = w1.dim() == 5 ? w1.size(0) : 1;
  std::vector<T> packed;
  for (int64_t k = 0; k < sets; ++k) {
    const std::vector<T> set = packed_weight_set(kernels, w1, b1, w2, b2, k);
    packed.insert(packed.end(), set.begin(), set.end());
  }
  return packed;
}

template <typename T>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> weight_grad_tensors(
    const std::vector<T>& grads, const at::Tensor& w1, const at::Tensor& b1, const at::Tensor& w2,
    const at::Tensor& b2) {
  const bool per_order = w1.dim() == 5;
  const int64_t sets = per_order ? w1.size(0) : 1;
  const int64_t lead = per_order ? 1 : 0, hidden = w1.size(lead), C = w2.size(lead);
  const int64_t sizes[4] = {hidden * 2 * C * 9, hidden, C * hidden * 9, C};
  const at::Tensor* weights[4] = {&w1, &b1, &w2, &b2};
  at::Tensor out[4];
  int64_t offset = 0;
  for (int i = 0; i < 4; ++i) {
    at::Tensor flat = at::empty({weights[i]->sizes()}, weights[i]->options());
    T* dst = flat.data_ptr<T>();
    for (int64_t s = 0; s < sets; ++s) {
      const T* src = grads.data() + s * weight_grad_size(C, hidden) + offset;
      std::copy(src, src + sizes[i], dst + s * sizes[i]);
    }
    offset += sizes[i];
    out[i] = weights[i]->is_contiguous() ? flat : at::empty_like(*weights[i]).copy_(flat);
  }
  return {out[0], out[1], out[2], out[3]};
}

#define TF_INSTANTIATE(T)                                                                                    \
  template std::vector<T> packed_weight_set<T>(const TileKernels<T>&, const at::Tensor&, const at::Tensor&,  \
                                               const at::Tensor&, const at::Tensor&, int64_t);               \
  template std::vector<T> packed_weight_sets<T>(const TileKernels<T>&, const at::Tensor&, const at::Tensor&, \
                                                const at::Tensor&, const at::Tensor&);                       \
  template std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> weight_grad_tensors<T>(                \
      const std::vector<T>&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&);
TF_INSTANTIATE(float)
TF_INSTANTIATE(double)
#undef TF_INSTANTIATE

}  // namespace taylor_fast::cpu
