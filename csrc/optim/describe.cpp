#include <normopt/optim/describe.h>

#include "step_rules.h"

#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

namespace normopt::optim {

StepDescription describe(const torch::optim::Optimizer& optimizer) {
  // An optimizer without param groups has no settings to describe.
  StepDescription d;
  if (optimizer.param_groups().empty()) {
    return d;
  }
  if (const auto* own = dynamic_cast<const Describable*>(&optimizer)) {
    return own->describe();
  }
  // LibTorch's optimizers, which cannot implement Describable.
  const auto& group0 = optimizer.param_groups()[0].options();
  if (dynamic_cast<const torch::optim::SGD*>(&optimizer) != nullptr) {
    return detail::gradient_descent(
        static_cast<const torch::optim::SGDOptions&>(group0));
  }
  if (dynamic_cast<const torch::optim::Adam*>(&optimizer) != nullptr) {
    return detail::adaptive(
        static_cast<const torch::optim::AdamOptions&>(group0), false);
  }
  if (dynamic_cast<const torch::optim::AdamW*>(&optimizer) != nullptr) {
    return detail::adaptive(
        static_cast<const torch::optim::AdamWOptions&>(group0), true);
  }
  try {
    d.lr = group0.get_lr();
  } catch (const c10::Error&) {
    // OptimizerOptions::get_lr() throws unless a subclass implements it.
  }
  return d;
}

bool skips_nonfinite(const torch::optim::Optimizer& optimizer) {
  return describe(optimizer).skips_nonfinite;
}

}  // namespace normopt::optim
