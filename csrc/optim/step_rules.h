#pragma once
// Internal: the StepDescription of the two rule families, read from any
// options type with PyTorch's field names: normopt's SGD, Adam and AdamW
// (their describe()) and LibTorch's (optim::describe()) share them.

#include <normopt/optim/describe.h>

namespace normopt::optim::detail {

/// SGD's rule and settings from SGD-style options.
template <typename Options>
StepDescription gradient_descent(const Options& o) {
  StepDescription d;
  d.rule = StepRule::kGradientDescent;
  d.lr = o.lr();
  d.momentum = o.momentum();
  d.dampening = o.dampening();
  d.nesterov = o.nesterov();
  d.weight_decay = o.weight_decay();
  return d;
}

/// Adam's rule and settings from Adam-style options; AdamW's weight decay
/// is decoupled, so no L2 term enters the gradient.
template <typename Options>
StepDescription adaptive(const Options& o, bool decoupled_weight_decay) {
  StepDescription d;
  d.rule = StepRule::kAdaptive;
  d.lr = o.lr();
  d.weight_decay = decoupled_weight_decay ? 0 : o.weight_decay();
  return d;
}

}  // namespace normopt::optim::detail
