// Meta kernels of the optimizer-step ops: what FakeTensor (torch.compile,
// torch.export, torch.library.opcheck) runs instead of the arithmetic. The
// ops return nothing and only mutate their inputs in place, so a meta kernel
// has no output to shape: it runs the CPU kernel's argument checks
// (optim_step_checks.h) at trace time and does nothing else. With symbolic
// shapes the density and overlap tests are left to the real kernel.
#include "../optim_step_checks.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include "../../util/library.h"

namespace normopt::ops {
namespace {

void adam_step_meta(at::TensorList params,
                    at::TensorList grads,
                    at::TensorList exp_avgs,
                    at::TensorList exp_avg_sqs,
                    at::TensorList max_exp_avg_sqs,
                    at::IntArrayRef steps,
                    double lr,
                    double beta1,
                    double beta2,
                    double eps,
                    double /*weight_decay*/,
                    bool amsgrad,
                    bool /*maximize*/,
                    bool /*decoupled_weight_decay*/,
                    bool /*keras_epsilon*/) {
  detail::check_adam_step_args(at::kMeta,
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
}

void adam_step_capturable_meta(at::TensorList params,
                               at::TensorList grads,
                               at::TensorList exp_avgs,
                               at::TensorList exp_avg_sqs,
                               at::TensorList max_exp_avg_sqs,
                               at::TensorList state_steps,
                               double lr,
                               double beta1,
                               double beta2,
                               double eps,
                               double /*weight_decay*/,
                               bool amsgrad,
                               bool /*maximize*/,
                               bool /*decoupled_weight_decay*/,
                               bool /*keras_epsilon*/) {
  detail::check_adam_capturable_args(at::kMeta,
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
}

void sgd_step_meta(at::TensorList params,
                   at::TensorList grads,
                   at::TensorList momentum_buffers,
                   double lr,
                   double momentum,
                   double dampening,
                   double /*weight_decay*/,
                   bool nesterov,
                   bool /*maximize*/,
                   bool /*is_first_step*/) {
  detail::check_sgd_step_args(at::kMeta,
                              params,
                              grads,
                              momentum_buffers,
                              lr,
                              momentum,
                              dampening,
                              nesterov);
}

}  // namespace

NORMOPT_LIBRARY_IMPL(Meta, m) {
  m.impl("adam_step_", &adam_step_meta);
  m.impl("adam_step_capturable_", &adam_step_capturable_meta);
  m.impl("sgd_step_", &sgd_step_meta);
}

}  // namespace normopt::ops
