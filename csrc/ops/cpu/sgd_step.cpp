// The CPU entry of normopt::sgd_step_: validates the lists and hands raw
// pointers to the fused pass (optim_step_kernel.cpp).
#include "../optim_step_checks.h"
#include "optim_step_kernel.h"

#include <ATen/ATen.h>
#include <c10/util/SmallVector.h>
#include <torch/library.h>

#include "../../util/library.h"

namespace normopt::ops {
namespace {

void sgd_cpu(const detail::SgdLists& l, const SgdStepOptions& o) {
  detail::check_sgd_args(at::kCPU, l, o);
  const bool with_buf = o.momentum != 0;
  // On the stack up to 8 tensors: a step of a small model allocates nothing.
  c10::SmallVector<cpu::SgdTensor, 8> tensors(l.params.size());
  for (size_t i = 0; i < l.params.size(); ++i) {
    tensors[i] =
        cpu::SgdTensor{l.params[i].scalar_type(),
                       l.params[i].numel(),
                       l.params[i].data_ptr(),
                       l.grads[i].const_data_ptr(),
                       with_buf ? l.momentum_buffers[i].data_ptr() : nullptr};
  }
  cpu::sgd_apply(tensors, o);
}

}  // namespace

NORMOPT_LIBRARY_IMPL(CPU, m) {
  m.impl("sgd_step_", &detail::sgd_entry<&sgd_cpu>);
}

}  // namespace normopt::ops
