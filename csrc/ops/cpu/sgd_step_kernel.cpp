// CPU kernel of normopt::sgd_step_: validates the lists and hands raw
// pointers to the fused pass (optim_step_impl.cpp).
#include "../optim_step_checks.h"
#include "optim_step_impl.h"

#include <ATen/ATen.h>
#include <torch/library.h>

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
  constexpr const char* kOp = "normopt::sgd_step_";
  detail::check_step_lists(kOp,
                           at::kCPU,
                           params,
                           {{"grads", grads}},
                           {{"momentum_buffers", momentum_buffers}});
  TORCH_CHECK(lr >= 0, kOp, ": invalid learning rate ", lr);
  TORCH_CHECK(momentum == 0 || momentum_buffers.size() == params.size(),
              kOp,
              ": momentum ",
              momentum,
              " needs one momentum buffer per parameter, got ",
              momentum_buffers.size());
  TORCH_CHECK(!nesterov || (momentum > 0 && dampening == 0),
              kOp,
              ": Nesterov momentum requires a momentum and zero dampening");
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

TORCH_LIBRARY_IMPL(normopt, CPU, m) {
  m.impl("sgd_step_", &sgd_step_cpu);
}

}  // namespace normopt::ops
