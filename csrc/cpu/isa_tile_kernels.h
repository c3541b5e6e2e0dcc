// The fused tile kernels of one ISA: make_tile_kernels<Blocking> instantiates the forward and
// backward tile templates over a vector type V (vec_scalar.h, vec_avx2.h, vec_avx512.h);
// included only by tile_kernels_<isa>.cpp, which compiles it once per ISA.
//
// One tile = tile_h output rows x tile_w output columns of one image. Rows stream through ring
// buffers of three rows of hidden channels (h, and dz in the backward), so the hidden activation
// only ever exists for three rows of one tile, in cache. Every convolution is a register-blocked
// outer product: a weight broadcast times a vector of W neighbouring pixels, accumulated into
// an HB x P or CB x P block of accumulators.
//
//   into_hidden  (conv1, and dh = conv2^T): HB hidden channels x P1 pixel vectors, reduces
//                over input channels x 3x3 taps read from three rows (image planes or rings)
//   out_of_hidden (conv2, and dx = conv1^T): CB channels x P2 pixel vectors, reduces over
//                hidden channels x 3x3 taps read from a ring of three rows
//   weight gradients: lane-wise partial sums (one vector per weight) over a tile's rows,
//                added across lanes once per tile
//
// The forward runs up to a few orders in one pass over a tile (a row pipeline: order k+1 works
// two rows behind order k, reading order k's rows from a small ring), so the y half of conv1,
// the same at every order when the weights are shared, is computed once per row and tile.
#pragma once

#include "cpu/backward_tile.h"
#include "cpu/forward_tile.h"

namespace taylor_fast::cpu {
namespace {

// The table of one ISA's kernels for value type T.
template <class B>
TileKernels<typename B::T> make_tile_kernels(const char* isa) {
  return {isa,
          B::W,
          &packed_weights_size<B>,
          &pack_weights<B>,
          &forward_scratch_size<B>,
          &forward_tile<B>,
          &backward_scratch_size<B>,
          &backward_tile<B>};
}

}  // namespace
}  // namespace taylor_fast::cpu
