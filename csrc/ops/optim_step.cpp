// Thin wrappers: the C++ API of the optimizer-step ops calls through the
// dispatcher, which picks the CPU or CUDA kernel.
#include <normopt/ops/optim_step.h>

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "../util/library.h"

// An optimizer step updates leaves in place under no_grad: there is nothing
// to differentiate. Falling through the Autograd key skips the boxed
// autograd fallback, which would otherwise box every list argument and cost
// more than the whole update of a small model.
NORMOPT_LIBRARY_IMPL(Autograd, m) {
  m.impl("adam_step_", torch::CppFunction::makeFallthrough());
  m.impl("adam_step_capturable_", torch::CppFunction::makeFallthrough());
  m.impl("sgd_step_", torch::CppFunction::makeFallthrough());
}

namespace normopt::ops {

void adam_step_(at::TensorList params,
                at::TensorList grads,
                at::TensorList exp_avgs,
                at::TensorList exp_avg_sqs,
                at::TensorList max_exp_avg_sqs,
                at::IntArrayRef steps,
                const AdamStepOptions& o) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("normopt::adam_step_", "")
                       .typed<void(at::TensorList,
                                   at::TensorList,
                                   at::TensorList,
                                   at::TensorList,
                                   at::TensorList,
                                   at::IntArrayRef,
                                   double,
                                   double,
                                   double,
                                   double,
                                   double,
                                   bool,
                                   bool,
                                   bool,
                                   bool)>();
  op.call(params,
          grads,
          exp_avgs,
          exp_avg_sqs,
          max_exp_avg_sqs,
          steps,
          o.lr,
          o.beta1,
          o.beta2,
          o.eps,
          o.weight_decay,
          o.amsgrad,
          o.maximize,
          o.decoupled_weight_decay,
          o.keras_epsilon);
}

void adam_step_capturable_(at::TensorList params,
                           at::TensorList grads,
                           at::TensorList exp_avgs,
                           at::TensorList exp_avg_sqs,
                           at::TensorList max_exp_avg_sqs,
                           at::TensorList state_steps,
                           const AdamStepOptions& o) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("normopt::adam_step_capturable_", "")
                       .typed<void(at::TensorList,
                                   at::TensorList,
                                   at::TensorList,
                                   at::TensorList,
                                   at::TensorList,
                                   at::TensorList,
                                   double,
                                   double,
                                   double,
                                   double,
                                   double,
                                   bool,
                                   bool,
                                   bool,
                                   bool)>();
  op.call(params,
          grads,
          exp_avgs,
          exp_avg_sqs,
          max_exp_avg_sqs,
          state_steps,
          o.lr,
          o.beta1,
          o.beta2,
          o.eps,
          o.weight_decay,
          o.amsgrad,
          o.maximize,
          o.decoupled_weight_decay,
          o.keras_epsilon);
}

void sgd_step_(at::TensorList params,
               at::TensorList grads,
               at::TensorList momentum_buffers,
               const SgdStepOptions& o) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("normopt::sgd_step_", "")
                       .typed<void(at::TensorList,
                                   at::TensorList,
                                   at::TensorList,
                                   double,
                                   double,
                                   double,
                                   double,
                                   bool,
                                   bool,
                                   bool)>();
  op.call(params,
          grads,
          momentum_buffers,
          o.lr,
          o.momentum,
          o.dampening,
          o.weight_decay,
          o.nesterov,
          o.maximize,
          o.is_first_step);
}

}  // namespace normopt::ops
