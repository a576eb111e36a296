// CPU kernel of normopt::adam_step_: validates the lists, computes each
// tensor's bias corrections and hands raw pointers to the fused pass
// (optim_step_impl.cpp, one build per CPU capability).
#include "../adam_bias_correction.h"
#include "../optim_step_checks.h"
#include "optim_step_impl.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include "../library.h"

#include <vector>

namespace normopt::ops {
namespace {

void adam_step_cpu(at::TensorList params,
                   at::TensorList grads,
                   at::TensorList exp_avgs,
                   at::TensorList exp_avg_sqs,
                   at::TensorList max_exp_avg_sqs,
                   at::IntArrayRef steps,
                   double lr,
                   double beta1,
                   double beta2,
                   double eps,
                   double weight_decay,
                   bool amsgrad,
                   bool maximize,
                   bool decoupled_weight_decay,
                   bool keras_epsilon) {
  detail::check_adam_step_args(at::kCPU,
                               params,
                               grads,
                               exp_avgs,
                               exp_avg_sqs,
                               max_exp_avg_sqs,
                               steps,
                               lr,
                               beta1,
                               beta2,
                               eps,
                               amsgrad);
  const cpu::AdamHyper h{lr,
                         beta1,
                         beta2,
                         eps,
                         weight_decay,
                         amsgrad,
                         maximize,
                         decoupled_weight_decay};
  // Reused across calls: a step of a small model allocates nothing.
  thread_local std::vector<cpu::AdamTensor> tensors;
  tensors.resize(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    const auto bc =
        detail::adam_bias_correction(lr, beta1, beta2, steps[i], keras_epsilon);
    tensors[i] =
        cpu::AdamTensor{params[i].scalar_type(),
                        params[i].numel(),
                        params[i].data_ptr(),
                        grads[i].const_data_ptr(),
                        exp_avgs[i].data_ptr(),
                        exp_avg_sqs[i].data_ptr(),
                        amsgrad ? max_exp_avg_sqs[i].data_ptr() : nullptr,
                        bc.step_size,
                        bc.bc2_sqrt};
  }
  cpu::adam_apply(tensors, h);
}

}  // namespace

NORMOPT_LIBRARY_IMPL(CPU, m) {
  m.impl("adam_step_", &adam_step_cpu);
}

}  // namespace normopt::ops
