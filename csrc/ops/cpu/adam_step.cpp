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
#include <c10/util/SmallVector.h>
#include <torch/library.h>

#include "../../util/library.h"

namespace normopt::ops {
namespace {

// Tensor i's step count including this step: read from the list, or (the
// capturable op) advanced in its one-element float32/float64 CPU tensor.
double step_count(at::IntArrayRef steps, size_t i) {
  return static_cast<double>(steps[i]);
}

double step_count(at::TensorList state_steps, size_t i) {
  const at::Tensor& step = state_steps[i];
  if (step.scalar_type() == at::kDouble) {
    return ++*step.data_ptr<double>();
  }
  return ++*step.data_ptr<float>();
}

template <typename Steps>
void adam_cpu(const detail::AdamLists& l,
              Steps steps,
              const AdamStepOptions& o) {
  detail::check_adam_args(at::kCPU, l, steps, o);
  // On the stack up to 8 tensors: a step of a small model allocates nothing.
  c10::SmallVector<cpu::AdamTensor, 8> tensors(l.params.size());
  // Tensors usually share their step count: its constants are computed
  // once (two pow() calls) and reused while it repeats.
  double last_step = -1;
  detail::AdamBiasCorrection bc{};
  for (size_t i = 0; i < l.params.size(); ++i) {
    const double t = step_count(steps, i);
    if (t != last_step) {
      bc = detail::adam_bias_correction(
          o.lr, o.beta1, o.beta2, t, o.keras_epsilon);
      last_step = t;
    }
    tensors[i] =
        cpu::AdamTensor{l.params[i].scalar_type(),
                        l.params[i].numel(),
                        l.params[i].data_ptr(),
                        l.grads[i].const_data_ptr(),
                        l.exp_avgs[i].data_ptr(),
                        l.exp_avg_sqs[i].data_ptr(),
                        o.amsgrad ? l.max_exp_avg_sqs[i].data_ptr() : nullptr,
                        bc.step_size,
                        bc.bc2_sqrt};
  }
  cpu::adam_apply(tensors, o);
}

}  // namespace

NORMOPT_LIBRARY_IMPL(CPU, m) {
  using detail::adam_entry;
  m.impl("adam_step_",
         &adam_entry<at::IntArrayRef, &adam_cpu<at::IntArrayRef>>);
  m.impl("adam_step_capturable_",
         &adam_entry<at::TensorList, &adam_cpu<at::TensorList>>);
}

}  // namespace normopt::ops
