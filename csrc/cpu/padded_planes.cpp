#include "cpu/padded_planes.h"

#include <ATen/ops/zeros.h>

#include <algorithm>

namespace taylor_fast::cpu {

template <typename T>
PaddedImages<T> padded_images(const Tiling& t, const TileKernels<T>& kernels, const at::TensorOptions& options) {
  const PlaneGeometry g = plane_geometry(t, kernels.vector_width);
  const at::Tensor storage = at::zeros({t.N, t.C, g.rows, g.row}, options);
  const int64_t plane = g.rows * g.row, batch = t.C * plane, origin = 2 * g.row + g.pad_left;
  PaddedImages<T> p;
  p.storage = storage;
  p.interior = storage.as_strided({t.N, t.C, t.H, t.W}, {batch, plane, g.row, 1}, origin);
  p.planes = {storage.data_ptr<T>() + origin, batch, plane, g.row};
  return p;
}

template <typename T>
PaddedImages<T> padded_copy(const Tiling& t, const TileKernels<T>& kernels, const at::Tensor& images) {
  PaddedImages<T> p = padded_images(t, kernels, images.options());
  p.interior.copy_(images);
  return p;
}

template <typename T>
PaddedImages<T> padded_band(const Tiling& t, const TileKernels<T>& kernels, const at::Tensor& images,
                            int64_t first_row_block, int64_t end_row_block) {
  const PlaneGeometry g = plane_geometry(t, kernels.vector_width);
  const int64_t reach = 2 * t.depth, first = first_row_block * t.tile_h;
  const int64_t end = std::min(end_row_block * t.tile_h, t.H), top = first - reach;
  const int64_t rows = end + reach - top;
  const at::Tensor storage = at::zeros({t.N, t.C, rows, g.row}, images.options());
  const int64_t plane = rows * g.row, batch = t.C * plane;
  const int64_t lo = std::max<int64_t>(top, 0), hi = std::min(end + reach, t.H);  // image rows held
  PaddedImages<T> p;
  p.storage = storage;
  p.interior = storage.as_strided({t.N, t.C, hi - lo, t.W}, {batch, plane, g.row, 1}, (lo - top) * g.row + g.pad_left);
  p.interior.copy_(images.narrow(2, lo, hi - lo));
  // image row 0 would sit -top rows into the storage; only rows [top, end + reach) are read
  p.planes = {storage.data_ptr<T>() + g.pad_left - top * g.row, batch, plane, g.row};
  return p;
}

template <typename T>
View<T> view_of(const at::Tensor& t) {
  return {t.data_ptr<T>(), t.stride(0), t.stride(1), t.stride(2), t.stride(3)};
}

template <typename T>
View<const T> read_view_of(const at::Tensor& t) {
  return {t.const_data_ptr<T>(), t.stride(0), t.stride(1), t.stride(2), t.stride(3)};
}

#define TF_INSTANTIATE(T)                                                                                   \
  template PaddedImages<T> padded_images<T>(const Tiling&, const TileKernels<T>&, const at::TensorOptions&); \
  template PaddedImages<T> padded_copy<T>(const Tiling&, const TileKernels<T>&, const at::Tensor&);         \
  template PaddedImages<T> padded_band<T>(const Tiling&, const TileKernels<T>&, const at::Tensor&, int64_t, \
                                          int64_t);                                                         \
  template View<T> view_of<T>(const at::Tensor&);                                                           \
  template View<const T> read_view_of<T>(const at::Tensor&);
TF_INSTANTIATE(float)
TF_INSTANTIATE(double)
#undef TF_INSTANTIATE

}  // namespace taylor_fast::cpu
