// The CPU kernels of the taylor_fast::* schemas; with them the "cpu" backend becomes available.
#include <torch/library.h>

#include "cpu/cpu_ops.h"

TORCH_LIBRARY_IMPL(taylor_fast, CPU, m) {
  m.impl("step_forward", &taylor_fast::cpu::step_forward);
  m.impl("step_backward", &taylor_fast::cpu::step_backward);
  m.impl("expand_forward", &taylor_fast::cpu::expand_forward);
  m.impl("expand_inference", &taylor_fast::cpu::expand_inference);
  m.impl("expand_backward", &taylor_fast::cpu::expand_backward);
}
