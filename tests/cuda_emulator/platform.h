// A host platform for csrc/cuda/step_kernels.cuh: runs the CUDA block bodies on the CPU so the
// kernels' index arithmetic, shared-memory layout and barrier placement are tested on machines
// without a GPU.
//
// Every CUDA thread of a block is an OS thread, but only one runs at a time: the scheduler
// lets each thread run to its next __syncthreads() (or its end), in an order chosen per phase
// (forward, reverse or shuffled). A kernel whose result depends on that order reads shared
// memory that another thread writes without a barrier in between. Shared memory starts out
// filled with NaN bytes, so reading what no thread wrote shows up in the results; a barrier
// that not every thread reaches aborts. Built with AddressSanitizer by the tests, which also
// catches out-of-bounds accesses of shared and global memory.
//
// Warp-wide instructions (mma.sync) are collectives: a lane waits at them until all 32 lanes
// of its warp arrive, then each computes its share from every lane's registers, laid out as
// the PTX ISA documents (section "Matrix Fragments for mma.m16n8k16").
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <semaphore>
#include <thread>
#include <vector>

#define TF_DEVICE inline

namespace tf_emu {

struct Dim {
  unsigned x = 0, y = 0, z = 0;
};

[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "cuda emulator: %s\n", what);
  std::fflush(stderr);
  std::abort();
}

enum class Schedule { Forward, Reverse, Shuffle };

struct Block;

struct ThreadContext {
  Block* block = nullptr;
  unsigned index = 0;
  Dim thread_idx;
};

inline thread_local ThreadContext* current_thread = nullptr;

struct Block {
  enum class State { Ready, Running, AtBarrier, AtWarpBarrier, Finished };

  Dim block_idx, grid_dim, block_dim;
  std::vector<unsigned char> smem;
  std::vector<State> state;
  std::vector<std::unique_ptr<std::binary_semaphore>> go;
  std::binary_semaphore back{0};
  std::vector<unsigned> warp_arrived;
  std::vector<std::array<uint32_t, 10>> exchange;  // registers a lane hands to a warp collective

  void yield(unsigned i) {
    back.release();
    go[i]->acquire();
  }

  void barrier(unsigned i) {
    state[i] = State::AtBarrier;
    yield(i);
  }

  // Returns once every lane of thread i's warp has called it.
  void warp_barrier(unsigned i) {
    const unsigned first = i / 32 * 32, lanes = std::min(32u, block_dim.x - first);
    if (++warp_arrived[i / 32] == lanes) {
      warp_arrived[i / 32] = 0;
      for (unsigned l = first; l < first + lanes; ++l)
        if (l != i) state[l] = State::Ready;
      return;
    }
    state[i] = State::AtWarpBarrier;
    yield(i);
  }
};

inline ThreadContext& current() {
  if (current_thread == nullptr) fail("a device function ran outside an emulated kernel");
  return *current_thread;
}

struct LaunchOptions {
  Schedule schedule = Schedule::Forward;
  unsigned seed = 0;
};

inline LaunchOptions& options() {
  static LaunchOptions o;
  return o;
}

// Runs body() as block `b` of a grid of `grid` blocks with `threads` threads each.
template <class Body>
void run_block(unsigned b, unsigned grid, unsigned threads, size_t smem_bytes, const Body& body) {
  Block block;
  block.block_idx.x = b;
  block.grid_dim.x = grid;
  block.block_dim.x = threads;
  block.smem.assign(smem_bytes + 16, 0xFF);  // NaN bytes; +16 lets smem() align to 16
  block.state.assign(threads, Block::State::Ready);
  block.warp_arrived.assign((threads + 31) / 32, 0);
  block.exchange.resize(threads);
  std::vector<ThreadContext> contexts(threads);
  for (unsigned i = 0; i < threads; ++i) block.go.push_back(std::make_unique<std::binary_semaphore>(0));
  std::vector<std::thread> workers;
  for (unsigned i = 0; i < threads; ++i) {
    contexts[i].block = &block;
    contexts[i].index = i;
    contexts[i].thread_idx.x = i;
    workers.emplace_back([&, i] {
      block.go[i]->acquire();
      current_thread = &contexts[i];
      body();
      current_thread = nullptr;
      block.state[i] = Block::State::Finished;
      block.back.release();
    });
  }
  std::vector<unsigned> order(threads);
  std::iota(order.begin(), order.end(), 0u);
  std::mt19937 rng(options().seed + b);
  for (;;) {
    if (options().schedule == Schedule::Reverse) std::reverse(order.begin(), order.end());
    if (options().schedule == Schedule::Shuffle) std::shuffle(order.begin(), order.end(), rng);
    // run every ready thread until it blocks; lanes freed by a warp collective become ready again
    for (bool ran = true; ran;) {
      ran = false;
      for (unsigned i : order) {
        if (block.state[i] != Block::State::Ready) continue;
        block.state[i] = Block::State::Running;
        block.go[i]->release();
        block.back.acquire();
        ran = true;
      }
    }
    if (std::count(block.state.begin(), block.state.end(), Block::State::AtWarpBarrier) != 0)
      fail("a warp-wide instruction was not reached by every lane of the warp");
    const auto finished = std::count(block.state.begin(), block.state.end(), Block::State::Finished);
    if (finished == static_cast<long>(threads)) break;
    if (finished != 0) fail("__syncthreads() was not reached by every thread of the block");
    std::fill(block.state.begin(), block.state.end(), Block::State::Ready);  // all were at the barrier
  }
  for (auto& w : workers) w.join();
}

template <class Body>
void launch(int64_t grid, unsigned threads, size_t smem_bytes, const Body& body) {
  for (int64_t b = 0; b < grid; ++b) run_block(static_cast<unsigned>(b), static_cast<unsigned>(grid), threads, smem_bytes, body);
}

inline unsigned char* smem_base() {
  auto& v = current().block->smem;
  const auto addr = reinterpret_cast<uintptr_t>(v.data());
  return v.data() + (16 - addr % 16) % 16;
}

}  // namespace tf_emu

#define threadIdx (::tf_emu::current().thread_idx)
#define blockIdx (::tf_emu::current().block->block_idx)
#define gridDim (::tf_emu::current().block->grid_dim)
#define blockDim (::tf_emu::current().block->block_dim)

inline void __syncthreads() { ::tf_emu::current().block->barrier(::tf_emu::current().index); }

template <class T>
T atomicAdd(T* address, T value) {  // one emulated thread runs at a time
  const T old = *address;
  *address = old + value;
  return old;
}

namespace taylor_fast::cuda {

inline unsigned char* dynamic_smem() { return tf_emu::smem_base(); }

// As the CUDA version: 16-byte vector loads of a row that must start 16-byte aligned.
template <int N, class T>
inline void smem_load(T (&dst)[N], const T* src) {
  static_assert(N * sizeof(T) % 16 == 0, "rows are loaded 16 bytes at a time");
  const auto& smem = tf_emu::current().block->smem;
  const auto* p = reinterpret_cast<const unsigned char*>(src);
  if (reinterpret_cast<uintptr_t>(src) % 16 != 0) tf_emu::fail("smem_load from an address that is not 16-byte aligned");
  if (p < smem.data() || p + N * sizeof(T) > smem.data() + smem.size()) tf_emu::fail("smem_load outside shared memory");
  for (int i = 0; i < N; ++i) dst[i] = src[i];
}

// bfloat16 with round-to-nearest-even, as __float2bfloat16_rn
struct bf16 {
  uint16_t bits;
};

inline float to_acc(bf16 v) {
  const uint32_t u = static_cast<uint32_t>(v.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline void store(bf16* dst, float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  if (v != v)
    u = 0x7FC00000u;
  else
    u += 0x7FFFu + ((u >> 16) & 1u);
  dst->bits = static_cast<uint16_t>(u >> 16);
}

// ---------------------------------------------------------------- tensor-core path (bf16)
inline uint16_t raw_bits(bf16 v) { return v.bits; }

inline uint16_t bits_from_float(float v, const bf16*) {
  bf16 b;
  store(&b, v);
  return b.bits;
}

inline float float_from_bits(uint16_t bits, const bf16*) { return to_acc(bf16{bits}); }

inline uint32_t load_pair(const uint16_t* p) {
  if (reinterpret_cast<uintptr_t>(p) % 4 != 0) tf_emu::fail("32-bit shared-memory access that is not 4-byte aligned");
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 16;
}

inline void store_pair(uint16_t* p, uint32_t v) {
  if (reinterpret_cast<uintptr_t>(p) % 4 != 0) tf_emu::fail("32-bit shared-memory access that is not 4-byte aligned");
  p[0] = static_cast<uint16_t>(v);
  p[1] = static_cast<uint16_t>(v >> 16);
}

// mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}.f32: d = A B + d. With g = lane / 4 and
// t = lane % 4, a lane holds (low 16 bits = lower column / row index):
//   a[0] = A[g][2t..2t+1]  a[1] = A[g+8][2t..2t+1]  a[2] = A[g][2t+8..2t+9]  a[3] = A[g+8][2t+8..2t+9]
//   b[0] = B[2t..2t+1][g]  b[1] = B[2t+8..2t+9][g]
//   d    = D[g][2t], D[g][2t+1], D[g+8][2t], D[g+8][2t+1]
template <class Tag>
inline void mma_16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const Tag* tag) {
  tf_emu::Block& block = *tf_emu::current().block;
  const unsigned self = tf_emu::current().index, first = self / 32 * 32;
  if (block.block_dim.x < first + 32) tf_emu::fail("mma.sync needs a full warp");
  auto& mine = block.exchange[self];
  for (int i = 0; i < 4; ++i) mine[i] = a[i];
  mine[4] = b[0];
  mine[5] = b[1];
  for (int i = 0; i < 4; ++i) std::memcpy(&mine[6 + i], &d[i], 4);
  block.warp_barrier(self);
  float A[16][16], B[16][8], D[16][8];
  auto lo = [&](uint32_t v) { return float_from_bits(static_cast<uint16_t>(v), tag); };
  auto hi = [&](uint32_t v) { return float_from_bits(static_cast<uint16_t>(v >> 16), tag); };
  for (unsigned lane = 0; lane < 32; ++lane) {
    const auto& r = block.exchange[first + lane];
    const unsigned g = lane / 4, t = lane % 4;
    for (unsigned h = 0; h < 2; ++h) {  // h = 1: rows g + 8 (a[1], a[3])
      A[g + 8 * h][2 * t] = lo(r[h]);
      A[g + 8 * h][2 * t + 1] = hi(r[h]);
      A[g + 8 * h][2 * t + 8] = lo(r[2 + h]);
      A[g + 8 * h][2 * t + 9] = hi(r[2 + h]);
    }
    B[2 * t][g] = lo(r[4]);
    B[2 * t + 1][g] = hi(r[4]);
    B[2 * t + 8][g] = lo(r[5]);
    B[2 * t + 9][g] = hi(r[5]);
    float c[4];
    std::memcpy(c, &r[6], 16);
    D[g][2 * t] = c[0];
    D[g][2 * t + 1] = c[1];
    D[g + 8][2 * t] = c[2];
    D[g + 8][2 * t + 1] = c[3];
  }
  const unsigned g = (self - first) / 4, t = (self - first) % 4;
  const unsigned rows[4] = {g, g, g + 8, g + 8}, cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
  float out[4];
  for (int i = 0; i < 4; ++i) {
    float sum = D[rows[i]][cols[i]];
    for (int k = 0; k < 16; ++k) sum += A[rows[i]][k] * B[k][cols[i]];
    out[i] = sum;
  }
  block.warp_barrier(self);  // every lane has read the exchange before any lane reuses it
  for (int i = 0; i < 4; ++i) d[i] = out[i];
}

}  // namespace taylor_fast::cuda
