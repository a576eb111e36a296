// The CPU entries of normopt::adam_step_ and adam_step_capturable_: validate
// the lists, compute each tensor's bias corrections and hand raw pointers to
// the fused pass (optim_step_kernel.cpp, one build per CPU capability). The
// capturable op reads and advances its step counts in their tensors: on the
// CPU that is a memory access like any other, and the same double step gives
// the same constants, so both ops update bit for bit alike.
#include "../adam_bias_correction.h"
#include "../optim_step_checks.h"
#include "optim_step_kernel.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include "../../util/library.h"

#include <vector>

namespace normopt::ops {
namespace {

// The fused pass over validated lists; step(i) gives tensor i's step count
// including this step.
template <typename Step>
void adam_apply_lists(at::TensorList params,
                      at::TensorList grads,
                      at::TensorList exp_avgs,
                      at::TensorList exp_avg_sqs,
                      at::TensorList max_exp_avg_sqs,
                      const Step& step,
                      double lr,
                      double beta1,
                      double beta2,
                      double eps,
                      double weight_decay,
                      bool amsgrad,
                      bool maximize,
                      bool decoupled_weight_decay,
                      bool keras_epsilon) {
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
  // Tensors usually share their step count: its constants are computed
  // once (two pow() calls) and reused while it repeats.
  double last_step = -1;
  detail::AdamBiasCorrection bc{};
  for (size_t i = 0; i < params.size(); ++i) {
    const double t = step(i);
    if (t != last_step) {
      bc = detail::adam_bias_correction(lr, beta1, beta2, t, keras_epsilon);
      last_step = t;
    }
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
  adam_apply_lists(
      params,
      grads,
      exp_avgs,
      exp_avg_sqs,
      max_exp_avg_sqs,
      [&](size_t i) { return static_cast<double>(steps[i]); },
      lr,
      beta1,
      beta2,
      eps,
      weight_decay,
      amsgrad,
      maximize,
      decoupled_weight_decay,
      keras_epsilon);
}

// Adds 1 to a one-element float32/float64 CPU tensor; returns the new value.
double advance_step(const at::Tensor& step) {
  if (step.scalar_type() == at::kDouble) {
    return ++*step.data_ptr<double>();
  }
  return ++*step.data_ptr<float>();
}

void adam_step_capturable_cpu(at::TensorList params,
                              at::TensorList grads,
                              at::TensorList exp_avgs,
                              at::TensorList exp_avg_sqs,
                              at::TensorList max_exp_avg_sqs,
                              at::TensorList state_steps,
                              double lr,
                              double beta1,
                              double beta2,
                              double eps,
                              double weight_decay,
                              bool amsgrad,
                              bool maximize,
                              bool decoupled_weight_decay,
                              bool keras_epsilon) {
  detail::check_adam_capturable_args(at::kCPU,
                                     params,
                                     grads,
                                     exp_avgs,
                                     exp_avg_sqs,
                                     max_exp_avg_sqs,
                                     state_steps,
                                     lr,
                                     beta1,
                                     beta2,
                                     eps,
                                     amsgrad);
  adam_apply_lists(
      params,
      grads,
      exp_avgs,
      exp_avg_sqs,
      max_exp_avg_sqs,
      [&](size_t i) { return advance_step(state_steps[i]); },
      lr,
      beta1,
      beta2,
      eps,
      weight_decay,
      amsgrad,
      maximize,
      decoupled_weight_decay,
      keras_epsilon);
}

}  // namespace

NORMOPT_LIBRARY_IMPL(CPU, m) {
  m.impl("adam_step_", &adam_step_cpu);
  m.impl("adam_step_capturable_", &adam_step_capturable_cpu);
}

}  // namespace normopt::ops
