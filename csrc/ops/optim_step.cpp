// Thin wrappers: the C++ API of the optimizer-step ops calls through the
// dispatcher, which picks the CPU or CUDA kernel.
#include <normopt/ops/optim_step.h>

#include <torch/library.h>

#include "../util/library.h"
#include "optim_step_args.h"

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
                const AdamStepOptions& options) {
  detail::call_adam(
      {params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs}, steps, options);
}

void adam_step_capturable_(at::TensorList params,
                           at::TensorList grads,
                           at::TensorList exp_avgs,
                           at::TensorList exp_avg_sqs,
                           at::TensorList max_exp_avg_sqs,
                           at::TensorList state_steps,
                           const AdamStepOptions& options) {
  detail::call_adam({params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs},
                    state_steps,
                    options);
}

void sgd_step_(at::TensorList params,
               at::TensorList grads,
               at::TensorList momentum_buffers,
               const SgdStepOptions& options) {
  detail::call_sgd({params, grads, momentum_buffers}, options);
}

}  // namespace normopt::ops
