// Runs the fused CUDA ops on the CPU through the host platform (platform.h): the same block
// bodies (csrc/cuda/step_kernels.cuh) and the same launch plans (csrc/cuda/step_plan.cpp) as
// the CUDA build, with buffers allocated the way the CUDA ops (csrc/cuda/<op>_op.cpp) allocate them.
// Driven by tests/test_cuda_emulated.py:
//
//   emulator SPEC_FILE
//
// SPEC_FILE has one directive per line:
//   op step_forward|step_backward|expand_forward|expand_backward
//   dtype float32|float64|bfloat16
//   geometry N C H W hidden
//   order N | k K | slope S | per_order 0|1 | blocks B | atomic 0|1 | tensor_cores 0|1
//   schedule forward|reverse|shuffle SEED
//   image NAME FILE sn sc sh sw      an image's storage (dense), element strides
//   raw NAME FILE                    a contiguous buffer (weights in the accumulation type, gs)
//   out DIR                          where NAME.bin outputs go (images with their input's strides)
// Outputs and scratch buffers start as NaN bytes so anything left unwritten shows.
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <type_traits>

#include "platform.h"
// the platform first: the kernels are written against it
#include "cuda/step_kernels.cuh"
#include "cuda/step_kernels_mma.cuh"
#include "cuda/step_plan.h"

using namespace taylor_fast::cuda;
using Bytes = std::vector<unsigned char>;

namespace {

struct Image {
  Bytes bytes;
  int64_t sn = 0, sc = 0, sh = 0, sw = 0;
  ImageRef ref() {
    ImageRef r;
    r.data = bytes.data();
    r.sn = sn;
    r.sc = sc;
    r.sh = sh;
    r.sw = sw;
    return r;
  }
  Image poisoned_like() const {
    Image o = *this;
    std::fill(o.bytes.begin(), o.bytes.end(), 0xFF);
    return o;
  }
};

struct Spec {
  std::string op, dtype;
  int64_t N = 0, C = 0, H = 0, W = 0, hidden = 0, order = 0, k = 0, blocks = 1;
  double slope = 0;
  bool per_order = false, atomic = false, tensor_cores = false;
  std::map<std::string, Image> images;
  std::map<std::string, Bytes> raw;
  std::string out;
};

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) tf_emu::fail(("cannot read " + path).c_str());
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) tf_emu::fail(("cannot write " + path).c_str());
}

Spec read_spec(const std::string& path) {
  Spec s;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string key;
    ls >> key;
    if (key == "op") ls >> s.op;
    else if (key == "dtype") ls >> s.dtype;
    else if (key == "geometry") ls >> s.N >> s.C >> s.H >> s.W >> s.hidden;
    else if (key == "order") ls >> s.order;
    else if (key == "k") ls >> s.k;
    else if (key == "slope") ls >> s.slope;
    else if (key == "per_order") ls >> s.per_order;
    else if (key == "blocks") ls >> s.blocks;
    else if (key == "atomic") ls >> s.atomic;
    else if (key == "tensor_cores") ls >> s.tensor_cores;
    else if (key == "schedule") {
      std::string mode;
      ls >> mode >> tf_emu::options().seed;
      tf_emu::options().schedule = mode == "reverse" ? tf_emu::Schedule::Reverse
                                   : mode == "shuffle" ? tf_emu::Schedule::Shuffle
                                                       : tf_emu::Schedule::Forward;
    } else if (key == "image") {
      std::string name, file;
      Image im;
      ls >> name >> file >> im.sn >> im.sc >> im.sh >> im.sw;
      im.bytes = read_file(file);
      s.images[name] = std::move(im);
    } else if (key == "raw") {
      std::string name, file;
      ls >> name >> file;
      s.raw[name] = read_file(file);
    } else if (key == "out") ls >> s.out;
    else if (!key.empty()) tf_emu::fail(("unknown directive " + key).c_str());
  }
  return s;
}

ScalarKind kind_of(const std::string& dtype) {
  if (dtype == "float32") return ScalarKind::Float;
  if (dtype == "float64") return ScalarKind::Double;
  if (dtype == "bfloat16") return ScalarKind::BFloat16;
  tf_emu::fail("the emulator runs float32, float64 and bfloat16");
}

template <class F>
void dispatch(ScalarKind kind, F&& f) {
  if (kind == ScalarKind::Float) f(float{});
  else if (kind == ScalarKind::Double) f(double{});
  else f(bf16{});
}

// ------------------------------------------------------------------ emulated launches

void launch_forward(const StepForwardParams& p, ScalarKind kind) {
  dispatch(kind, [&](auto tag) {
    using scalar_t = decltype(tag);
    using acc_t = typename AccType<scalar_t>::type;
    const int C = static_cast<int>(p.geo.C);
    if constexpr (std::is_same_v<scalar_t, bf16>) {
      if (p.tensor_cores) {
        tf_emu::launch(p.geo.tiles, kThreads, mma_smem_layout(C).total, [&] { step_forward_block_mma<scalar_t>(p); });
        return;
      }
    }
    tf_emu::launch(p.geo.tiles, kThreads, smem_bytes<acc_t>(C, false), [&] { step_forward_block<scalar_t>(p); });
  });
}

void launch_backward(const BackwardLaunch& l, ScalarKind kind, int64_t blocks) {
  dispatch(kind, [&](auto tag) {
    using scalar_t = decltype(tag);
    using acc_t = typename AccType<scalar_t>::type;
    tf_emu::launch(blocks, kThreads, smem_bytes<acc_t>(static_cast<int>(l.step.geo.C), true),
                   [&] { step_backward_block<scalar_t>(l.step); });
    if (l.reduce) {
      const int64_t grid = (l.sum.entries + kReduceThreads - 1) / kReduceThreads;
      tf_emu::launch(grid, kReduceThreads, 0, [&] { reduce_weight_grads_thread<acc_t>(l.sum); });
    }
  });
}

// ------------------------------------------------------------------ ops, as the torch glue

struct Weights {
  WeightsRef ref;
  explicit Weights(Spec& s) {
    ref.w1 = s.raw.at("w1").data();
    ref.b1 = s.raw.at("b1").data();
    ref.w2 = s.raw.at("w2").data();
    ref.b2 = s.raw.at("b2").data();
  }
};

// the weight-gradient buffers of the glue: wgrad zeroed only for atomics, partials per block
struct GradBuffers {
  Bytes wgrad, partials;
  BackwardBuffers b;
  GradBuffers(const Geometry& geo, ScalarKind kind, int64_t sets, int64_t blocks, bool atomic) {
    const int64_t entries = weight_grad_layout(geo.C, geo.hidden).total;
    b.blocks = std::min(blocks, geo.tiles);
    b.atomic = atomic;
    wgrad.assign(sets * entries * acc_size(kind), atomic ? 0x00 : 0xFF);
    if (!atomic) partials.assign(b.blocks * entries * acc_size(kind), 0xFF);
    b.wgrad = wgrad.data();
    b.partials = atomic ? nullptr : partials.data();
  }
};

void run(Spec& s) {
  const ScalarKind kind = kind_of(s.dtype);
  const Geometry geo = make_geometry(s.N, s.C, s.H, s.W, s.hidden, kind);
  const Weights w(s);
  std::map<std::string, Bytes> outputs;
  if (s.op == "step_forward") {
    Image g_next = s.images.at("g").poisoned_like(), acc_next = s.images.at("acc").poisoned_like();
    launch_forward(plan_step_forward(geo, s.images.at("g").ref(), s.images.at("y").ref(), s.images.at("acc").ref(),
                                     g_next.ref(), acc_next.ref(), w.ref, s.k, s.slope, s.tensor_cores),
                   kind);
    outputs = {{"g_next", g_next.bytes}, {"acc_next", acc_next.bytes}};
  } else if (s.op == "step_backward") {
    Image grad_g = s.images.at("g").poisoned_like(), grad_y = s.images.at("y").poisoned_like();
    GradBuffers gb(geo, kind, 1, s.blocks, s.atomic);
    gb.b.grad_g[0] = grad_g.ref();
    gb.b.grad_y = grad_y.ref();
    const BackwardLaunch l = plan_step_backward(geo, kind, s.images.at("grad_g_next").ref(), s.images.at("g").ref(),
                                                s.images.at("y").ref(), w.ref, s.k, s.slope, gb.b);
    launch_backward(l, kind, gb.b.blocks);
    outputs = {{"grad_g", grad_g.bytes}, {"grad_y", grad_y.bytes}, {"wgrad", gb.wgrad}};
  } else if (s.op == "expand_forward") {
    Image out = s.images.at("f").poisoned_like();
    Bytes gs(s.order * s.N * s.C * s.H * s.W * scalar_size(kind), 0xFF);
    for (const auto& p : plan_expand_forward(geo, kind, s.order, s.per_order, s.images.at("f").ref(),
                                             s.images.at("y").ref(), out.ref(), gs.data(), w.ref, s.slope,
                                             s.tensor_cores))
      launch_forward(p, kind);
    outputs = {{"out", out.bytes}, {"gs", gs}};
  } else if (s.op == "expand_backward") {
    Image a[2] = {s.images.at("f").poisoned_like(), s.images.at("f").poisoned_like()};
    Image grad_y = s.images.at("y").poisoned_like();
    GradBuffers gb(geo, kind, s.per_order ? s.order : 1, s.blocks, s.atomic);
    gb.b.grad_g[0] = a[0].ref();
    gb.b.grad_g[1] = a[1].ref();
    gb.b.grad_y = grad_y.ref();
    const ExpandBackwardPlan plan =
        plan_expand_backward(geo, kind, s.order, s.per_order, s.images.at("grad_out").ref(), s.images.at("f").ref(),
                             s.images.at("y").ref(), s.raw.at("gs").data(), w.ref, s.slope, gb.b);
    for (const auto& l : plan.launches) launch_backward(l, kind, gb.b.blocks);
    outputs = {{"grad_f", a[plan.result_buffer].bytes}, {"grad_y", grad_y.bytes}, {"wgrad", gb.wgrad}};
  } else {
    tf_emu::fail(("unknown op " + s.op).c_str());
  }
  for (const auto& [name, bytes] : outputs) write_file(s.out + "/" + name + ".bin", bytes);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s SPEC_FILE\n", argv[0]);
    return 2;
  }
  Spec spec = read_spec(argv[1]);
  run(spec);
  return 0;
}
