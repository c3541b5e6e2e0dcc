// How the CPU ops split a call's images into the output tiles the tile kernels compute: the
// tile size that costs least for this thread count and vector width.
#pragma once
#include <cstdint>

#include "cpu/tile_kernels.h"
#include "taylor_step.h"

namespace taylor_fast::cpu {

// Orders an expansion's forward and backward pipeline per pass: the terms that involve y are
// computed once per pass, while the rings a pass keeps per order must stay in cache.
constexpr int64_t kMaxPipelinedOrders = 3;

// depth: the most orders one forward pass will pipeline (1 for the backward and single steps)
template <typename T>
Tiling choose_tiling(const StepGeometry& geo, const TileKernels<T>& kernels, int64_t depth = 1);

}  // namespace taylor_fast::cpu
