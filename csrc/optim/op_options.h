#pragma once
// Internal: the fused ops' settings (normopt::ops) from a param group's
// options, for step() and for the fused runs of steps fit() takes.

#include <normopt/ops/optim_step.h>
#include <normopt/optim/adam.h>
#include <normopt/optim/sgd.h>

#include <tuple>

namespace normopt::optim::detail {

/// adam_step_'s settings for Adam or AdamW options; AdamW's weight decay
/// is `decoupled`.
template <typename Options>
ops::AdamStepOptions adam_step_options(const Options& o, bool decoupled) {
  ops::AdamStepOptions so;
  so.lr = o.lr();
  so.beta1 = std::get<0>(o.betas());
  so.beta2 = std::get<1>(o.betas());
  so.eps = o.effective_eps();
  so.weight_decay = o.weight_decay();
  so.amsgrad = o.amsgrad();
  so.maximize = o.maximize();
  so.decoupled_weight_decay = decoupled;
  so.keras_epsilon = o.epsilon_mode() == EpsilonMode::kKeras;
  return so;
}

/// sgd_step_'s settings for SGD options (is_first_step false).
inline ops::SgdStepOptions sgd_step_options(const SGDOptions& o) {
  ops::SgdStepOptions so;
  so.lr = o.lr();
  so.momentum = o.momentum();
  so.dampening = o.dampening();
  so.weight_decay = o.weight_decay();
  so.nesterov = o.nesterov();
  so.maximize = o.maximize();
  return so;
}

}  // namespace normopt::optim::detail
