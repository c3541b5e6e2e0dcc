// The interface between the CPU ops (torch-aware host code) and the per-ISA tile kernels
// (torch-free, compiled once per vector ISA). One call of a tile kernel covers one output tile:
// forward_tile runs one or a few consecutive orders of the derivative step there and writes
// their g and acc; backward_tile runs one or a few consecutive orders' backward there, writes the input gradients
// and returns the tile's share of the weight gradients.
//
// Images reach the kernels as zero-bordered planes (Planes), so the 3x3 convolutions need no
// bounds checks and any input layout (strided, channels_last) is handled once, by the packing.
// Outputs are written through View, i.e. straight into tensors of any strides.
//
// The inline helpers below are for the host code only: the ISA translation units keep to their
// own (anonymous-namespace) helpers, so that no function compiled with AVX flags is shared.
#pragma once
#include <cstddef>
#include <cstdint>

#include "extension_info.h"

namespace taylor_fast::cpu {

// C-channel images in zero-bordered planes: pixel (n, c, r, x) is at
// origin + n*batch + c*plane + r*row + x, readable (zeros outside the image) for
// r in [-2, H + 2) and x in [-pad_left, row - pad_left).
template <typename T>
struct Planes {
  T* origin = nullptr;
  int64_t batch = 0, plane = 0, row = 0;
};

// Any strided (N, C, H, W) tensor.
template <typename T>
struct View {
  T* data = nullptr;
  int64_t sn = 0, sc = 0, sh = 0, sw = 0;
};

// The problem and its split into output tiles of tile_h rows x tile_w columns, tile index
// running over (n, row block, column block) in that order.
struct Tiling {
  int64_t N = 0, C = 0, H = 0, W = 0, hidden = 0;
  int64_t tile_w = 0, tile_h = 0;
  int64_t depth = 1;  // the most orders a pass pipelines (ForwardArgs::orders, BackwardArgs::orders)

  int64_t col_blocks() const { return (W + tile_w - 1) / tile_w; }
  int64_t row_blocks() const { return (H + tile_h - 1) / tile_h; }
  int64_t count() const { return N * row_blocks() * col_blocks(); }
  struct Tile {
    int64_t n, r0, r1, c0;  // rows [r0, r1), columns [c0, c0 + tile_w) clipped to the image by the kernel
  };
};

// Where the padded planes of a Tiling put their pixels: kernels read up to 2 * depth columns
// beyond a tile on either side (2, and 2 more per order a forward pass pipelines); pad_left
// keeps row starts vector aligned and the right margin covers the widest vector read of the
// last column block.
struct PlaneGeometry {
  int64_t pad_left = 0, row = 0;
};
// The zero rows above and below the planes of whole images (Planes: rows [-2, H + 2)).
constexpr int64_t kBorderRows = 2;
inline PlaneGeometry plane_geometry(const Tiling& t, int64_t vector_width) {
  auto round_up = [](int64_t a, int64_t b) { return (a + b - 1) / b * b; };
  const int64_t reach = 2 * t.depth;
  PlaneGeometry g;
  g.pad_left = round_up(reach, vector_width);
  g.row = round_up(g.pad_left + round_up(t.W, t.tile_w) + reach + vector_width, vector_width);
  return g;
}

// Gradients of one weight set in the natural (contiguous) layout of w1, b1, w2, b2.
inline int64_t weight_grad_size(int64_t C, int64_t hidden) {
  return hidden * 2 * C * 9 + hidden + C * hidden * 9 + C;
}

// `orders` (<= tiling.depth) consecutive orders in one pass: order i (k = k0 + i) makes g^{k+1} = G(g^k, y) + k g^k
// from g^{k0} (the planes g) and adds g^{k+1} / (k+1)! to acc.
template <typename T>
struct ForwardArgs {
  Tiling tiling;
  int64_t orders = 1, k0 = 0;
  Planes<const T> g, y;
  const T* weights = nullptr;  // order i's set (TileKernels::pack_weights) at weights + i * weights_stride;
  int64_t weights_stride = 0;  // 0: one set shared by the orders, whose y half of conv1 is then computed once
  const T* coefs = nullptr;    // coefs[i] = 1 / (k0 + i + 1)!
  T slope = 0;
  View<T> g_next;              // g^{k0+i+1} at g_next.data + i * g_next_stride; null: not kept
  int64_t g_next_stride = 0;
  View<const T> acc_in;
  View<T> acc_out;             // acc_out = acc_in + sum_i coefs[i] g^{k0+i+1} (may alias acc_in)
};

// `orders` consecutive orders k, k - 1, ..., k - orders + 1 of one weight set (a pipelined pass;
// orders <= tiling.depth): pipeline position q runs order k - q.
template <typename T>
struct BackwardArgs {
  Tiling tiling;
  int64_t orders = 1, k = 0;
  const Planes<const T>* g = nullptr;  // g[q]: g^{k-q}, the input of position q's order
  Planes<const T> y;
  Planes<const T> grad_g_next;  // the whole gradient reaching g^{k+1}
  const T* weights = nullptr;
  T slope = 0;
  // the gradient position q hands on: dout_coefs[q] * dout + J_g^T a + (k - q) a, a the gradient
  // reaching its output (dout.data may be null; dout_coefs then unused)
  View<const T> dout;
  const T* dout_coefs = nullptr;
  // where the last position's goes (grad_g_planes.origin and grad_g.data may be null)
  Planes<T> grad_g_planes;
  View<T> grad_g;
  View<T> grad_y;  // grad_y = sum over the orders of J_y^T a, or += when accumulate_y
  bool accumulate_y = false;
};

template <typename T>
struct TileKernels {
  const char* isa;
  int64_t vector_width;  // tile_w is a multiple of this, unless one tile spans the image's width
  int64_t (*packed_weights_size)(int64_t C, int64_t hidden);
  void (*pack_weights)(const T* w1, const T* b1, const T* w2, const T* b2, int64_t C, int64_t hidden,
                       T* packed);
  int64_t (*forward_scratch_size)(const Tiling&, int64_t orders);
  void (*forward_tile)(const ForwardArgs<T>&, int64_t tile, T* scratch);
  int64_t (*backward_scratch_size)(const Tiling&, int64_t orders);
  // weight_grads: weight_grad_size(C, hidden) values, overwritten with this tile's share
  void (*backward_tile)(const BackwardArgs<T>&, int64_t tile, T* scratch, T* weight_grads);
};

// The kernels of one ISA (tile_kernels_<isa>.cpp); Avx2/Avx512 exist only on x86-64 builds.
template <CpuIsa isa, typename T>
const TileKernels<T>& isa_tile_kernels();
template <> const TileKernels<float>& isa_tile_kernels<CpuIsa::Baseline, float>();
template <> const TileKernels<double>& isa_tile_kernels<CpuIsa::Baseline, double>();
template <> const TileKernels<float>& isa_tile_kernels<CpuIsa::Avx2, float>();
template <> const TileKernels<double>& isa_tile_kernels<CpuIsa::Avx2, double>();
template <> const TileKernels<float>& isa_tile_kernels<CpuIsa::Avx512, float>();
template <> const TileKernels<double>& isa_tile_kernels<CpuIsa::Avx512, double>();

// The ISA the CPU ops use: the best this CPU offers, or a lower one named by the environment
// variable TAYLOR_FAST_CPU_ISA (baseline, avx2, avx512) for testing the other code paths.
CpuIsa active_cpu_isa();

template <typename T>
const TileKernels<T>& tile_kernels(CpuIsa isa);

}  // namespace taylor_fast::cpu
