// How images reach the tile kernels and how their results leave: a batch of images copied into
// zero-bordered planes (Planes, tile_kernels.h), whole or a band of tile rows, and any strided
// output tensor seen as a View.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "cpu/tile_kernels.h"

namespace taylor_fast::cpu {

// A batch of images in zero-bordered planes (see Planes), with the (N, C, H, W) view of the
// interior through which torch's copy_ fills them from any strides or memory format.
template <typename T>
struct PaddedImages {
  at::Tensor storage, interior;
  Planes<T> planes;
  Planes<const T> read() const { return {planes.origin, planes.batch, planes.plane, planes.row}; }
};

template <typename T>
PaddedImages<T> padded_images(const Tiling& t, const TileKernels<T>& kernels, const at::TensorOptions& options);
// padded_images holding a copy of `images`
template <typename T>
PaddedImages<T> padded_copy(const Tiling& t, const TileKernels<T>& kernels, const at::Tensor& images);

// The planes a band of tile rows [first_row_block, end_row_block) reads: its image rows and the
// 2 * depth rows around them (zero outside the image), in storage for those rows only; pixel
// addresses as in padded_copy for every row the band's tiles read.
template <typename T>
PaddedImages<T> padded_band(const Tiling& t, const TileKernels<T>& kernels, const at::Tensor& images,
                            int64_t first_row_block, int64_t end_row_block);

template <typename T>
View<T> view_of(const at::Tensor& t);
template <typename T>
View<const T> read_view_of(const at::Tensor& t);

}  // namespace taylor_fast::cpu
