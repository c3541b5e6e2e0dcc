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
#pragma once
#include <algorithm>
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
  enum class State { Ready, AtBarrier, Finished };

  Dim block_idx, grid_dim, block_dim;
  std::vector<unsigned char> smem;
  std::vector<State> state;
  std::vector<std::unique_ptr<std::binary_semaphore>> go;
  std::binary_semaphore back{0};

  void barrier(unsigned i) {
    state[i] = State::AtBarrier;
    back.release();
    go[i]->acquire();
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
    for (unsigned i : order) {
      block.go[i]->release();
      block.back.acquire();
    }
    const auto finished = std::count(block.state.begin(), block.state.end(), Block::State::Finished);
    if (finished == static_cast<long>(threads)) break;
    if (finished != 0) fail("__syncthreads() was not reached by every thread of the block");
    std::fill(block.state.begin(), block.state.end(), Block::State::Ready);
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

}  // namespace taylor_fast::cuda
