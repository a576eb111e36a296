#pragma once
// Internal: one call of an optimizer-step op as values (the tensor lists and
// the options struct), and the one place that converts between them and the
// dispatcher's flat argument list. The schema (register.cpp) fixes that list;
// `adam_entry`/`sgd_entry` spell it in C++ once and unpack it for a
// backend's kernel; `call_adam`/`call_sgd` pack it for the dispatcher.
// Every backend (CPU, CUDA, Meta, generic) writes its kernel as
//   void kernel(const AdamLists&, Steps, const AdamStepOptions&);
//   void kernel(const SgdLists&, const SgdStepOptions&);
// and registers `&adam_entry<Steps, &kernel>` / `&sgd_entry<&kernel>`.

#include <normopt/ops/step_options.h>

#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <type_traits>

namespace normopt::ops::detail {

/// The index-aligned tensor lists of an Adam step; `max_exp_avg_sqs` is
/// empty unless amsgrad.
struct AdamLists {
  at::TensorList params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs;
};

/// The index-aligned tensor lists of an SGD step; `momentum_buffers` is empty
/// without momentum.
struct SgdLists {
  at::TensorList params, grads, momentum_buffers;
};

template <typename Steps>
using AdamKernel = void (*)(const AdamLists&, Steps, const AdamStepOptions&);
using SgdKernel = void (*)(const SgdLists&, const SgdStepOptions&);

/// A backend's Adam kernel behind the dispatcher's flat signature of
/// normopt::adam_step_ (Steps = at::IntArrayRef, the counts including this
/// step) or adam_step_capturable_ (Steps = at::TensorList, the counts before
/// it, on the device): the lists, the step counts, then AdamStepOptions'
/// fields in their order, as the schema (register.cpp) has them.
template <typename Steps, AdamKernel<Steps> kernel>
void adam_entry(at::TensorList params,
                at::TensorList grads,
                at::TensorList exp_avgs,
                at::TensorList exp_avg_sqs,
                at::TensorList max_exp_avg_sqs,
                Steps steps,
                double lr,
                double beta1,
                double beta2,
                double eps,
                double weight_decay,
                bool amsgrad,
                bool maximize,
                bool decoupled_weight_decay,
                bool keras_epsilon) {
  kernel(AdamLists{params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs},
         steps,
         AdamStepOptions{lr,
                         beta1,
                         beta2,
                         eps,
                         weight_decay,
                         amsgrad,
                         maximize,
                         decoupled_weight_decay,
                         keras_epsilon});
}

/// A backend's SGD kernel behind the dispatcher's flat signature of
/// normopt::sgd_step_: the lists, then SgdStepOptions' fields in their order.
template <SgdKernel kernel>
void sgd_entry(at::TensorList params,
               at::TensorList grads,
               at::TensorList momentum_buffers,
               double lr,
               double momentum,
               double dampening,
               double weight_decay,
               bool nesterov,
               bool maximize,
               bool is_first_step) {
  kernel(SgdLists{params, grads, momentum_buffers},
         SgdStepOptions{lr,
                        momentum,
                        dampening,
                        weight_decay,
                        nesterov,
                        maximize,
                        is_first_step});
}

/// The dispatcher's signatures of the ops, as the entries spell them.
template <typename Steps>
using AdamSignature = decltype(adam_entry<Steps, nullptr>);
using SgdSignature = decltype(sgd_entry<nullptr>);

/// The Adam op whose step counts are of type Steps.
template <typename Steps>
constexpr const char* kAdamOp =
    std::is_same_v<Steps, at::IntArrayRef> ? "normopt::adam_step_"
                                           : "normopt::adam_step_capturable_";

/// Calls normopt::adam_step_ (Steps = at::IntArrayRef) or
/// adam_step_capturable_ (at::TensorList) through the dispatcher.
template <typename Steps>
void call_adam(const AdamLists& l, Steps steps, const AdamStepOptions& o) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow(kAdamOp<Steps>, "")
                             .template typed<AdamSignature<Steps>>();
  op.call(l.params,
          l.grads,
          l.exp_avgs,
          l.exp_avg_sqs,
          l.max_exp_avg_sqs,
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

/// Calls normopt::sgd_step_ through the dispatcher.
inline void call_sgd(const SgdLists& l, const SgdStepOptions& o) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("normopt::sgd_step_", "")
                             .typed<SgdSignature>();
  op.call(l.params,
          l.grads,
          l.momentum_buffers,
          o.lr,
          o.momentum,
          o.dampening,
          o.weight_decay,
          o.nesterov,
          o.maximize,
          o.is_first_step);
}

}  // namespace normopt::ops::detail
