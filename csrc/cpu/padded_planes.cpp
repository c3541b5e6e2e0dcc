#include "cpu/padded_planes.h"

#include <ATen/ops/zeros.h>

#include <algorithm>

namespace taylor_fast::cpu {

namespace {

// Zeroed planes holding image rows [top, bottom) (top < 0 or bottom > H: zero rows beyond the
// image), with pixel addresses relative to image row 0; interior views the image rows among them.
template <typename T>
PaddedImages<T> padded_rows(const Tiling& t, const TileKernels<T>& kernels, const at::TensorOptions& options,
                            int64_t top, int64_t bottom) {
  const PlaneGeometry g = plane_geometry(t, kernels.vector_width);
  const int64_t rows = bottom - top;
  const at::Tensor storage = at::zeros({t.N, t.C, rows, g.row}, options);
  const int64_t plane = rows * g.row, batch = t.C * plane;
  const int64_t lo = std::max<int64_t>(top, 0), hi = std::min(bottom, t.H);  // image rows held
  PaddedImages<T> p;
  p.storage = storage;
  p.interior = storage.as_strided({t.N, t.C, hi - lo, t.W}, {batch, plane, g.row, 1}, (lo - top) * g.row + g.pad_left);
  // image row 0 sits -top rows into the storage (or before it, for a band below the top)
  p.planes = {storage.data_ptr<T>() + g.pad_left - top * g.row, batch, plane, g.row};
  return p;
}

// padded_rows holding those rows of `images`
template <typename T>
PaddedImages<T> padded_rows_of(const Tiling& t, const TileKernels<T>& kernels, const at::Tensor& images,
                               int64_t top, int64_t bottom) {
  PaddedImages<T> p = padded_rows(t, kernels, images.options(), top, bottom);
  p.interior.copy_(images.narrow(2, std::max<int64_t>(top, 0), p.interior.size(2)));
  return p;
}

}  // namespace

template <typename T>
PaddedImages<T> padded_images(const Tiling& t, const TileKernels<T>& kernels, const at::TensorOptions& options) {
  return padded_rows(t, kernels, options, -kBorderRows, t.H + kBorderRows);
}

template <typename T>
PaddedImages<T> padded_copy(const Tiling& t, const TileKernels<T>& kernels, const at::Tensor& images) {
  return padded_rows_of(t, kernels, images, -kBorderRows, t.H + kBorderRows);
}

template <typename T>
PaddedImages<T> padded_band(const Tiling& t, const TileKernels<T>& kernels, const at::Tensor& images,
                            int64_t first_row_block, int64_t end_row_block) {
  const int64_t reach = 2 * t.depth;
  const int64_t first = first_row_block * t.tile_h, end = std::min(end_row_block * t.tile_h, t.H);
  return padded_rows_of(t, kernels, images, first - reach, end + reach);
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
