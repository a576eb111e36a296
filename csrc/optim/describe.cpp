#include <normopt/optim/describe.h>

#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

namespace normopt::optim {

StepDescription describe(const torch::optim::Optimizer& optimizer) {
  if (const auto* own = dynamic_cast<const Describable*>(&optimizer)) {
    return own->describe();
  }
  StepDescription d;
  if (optimizer.param_groups().empty()) {
    return d;
  }
  // LibTorch's optimizers, which cannot implement Describable.
  const auto& group0 = optimizer.param_groups()[0].options();
  if (dynamic_cast<const torch::optim::SGD*>(&optimizer) != nullptr) {
    const auto& o = static_cast<const torch::optim::SGDOptions&>(group0);
    d.rule = StepRule::kGradientDescent;
    d.lr = o.lr();
    d.momentum = o.momentum();
    d.dampening = o.dampening();
    d.nesterov = o.nesterov();
    d.weight_decay = o.weight_decay();
  } else if (dynamic_cast<const torch::optim::Adam*>(&optimizer) != nullptr) {
    const auto& o = static_cast<const torch::optim::AdamOptions&>(group0);
    d.rule = StepRule::kAdaptive;
    d.lr = o.lr();
    d.weight_decay = o.weight_decay();
  } else if (dynamic_cast<const torch::optim::AdamW*>(&optimizer) != nullptr) {
    const auto& o = static_cast<const torch::optim::AdamWOptions&>(group0);
    d.rule = StepRule::kAdaptive;
    d.lr = o.lr();
  } else {
    try {
      d.lr = group0.get_lr();
    } catch (const c10::Error&) {
      // OptimizerOptions::get_lr() throws unless a subclass implements it.
    }
  }
  return d;
}

bool skips_nonfinite(const torch::optim::Optimizer& optimizer) {
  return describe(optimizer).skips_nonfinite;
}

}  // namespace normopt::optim
