// The CPU entry of normopt::sgd_step_: validates the lists and hands raw
// pointers to the fused pass (optim_step_kernel.cpp).
#include "../optim_step_checks.h"
#include "optim_step_kernel.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include "../../util/library.h"

#include <vector>

namespace normopt::ops {
namespace {

void sgd_step_cpu(at::TensorList params,
                  at::TensorList grads,
                  at::TensorList momentum_buffers,
                  double lr,
                  double momentum,
                  double dampening,
                  double weight_decay,
                  bool nesterov,
                  bool maximize,
                  bool is_first_step) {
  detail::check_sgd_step_args(at::kCPU,
                              params,
                              grads,
                              momentum_buffers,
                              lr,
                              momentum,
                              dampening,
                              nesterov);
  const cpu::SgdHyper h{
      lr, momentum, dampening, weight_decay, nesterov, maximize, is_first_step};
  const bool with_buf = momentum != 0;
  // Reused across calls: a step of a small model allocates nothing.
  thread_local std::vector<cpu::SgdTensor> tensors;
  tensors.resize(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    tensors[i] =
        cpu::SgdTensor{params[i].scalar_type(),
                       params[i].numel(),
                       params[i].data_ptr(),
                       grads[i].const_data_ptr(),
                       with_buf ? momentum_buffers[i].data_ptr() : nullptr};
  }
  cpu::sgd_apply(tensors, h);
}

}  // namespace

NORMOPT_LIBRARY_IMPL(CPU, m) {
  m.impl("sgd_step_", &sgd_step_cpu);
}

}  // namespace normopt::ops
