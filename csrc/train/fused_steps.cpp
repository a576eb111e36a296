#include "fused_steps.h"

#include <normopt/ops/detail/affine_steps.h>
#include <normopt/optim/detail/lend_state.h>

namespace normopt::train::detail {

FusedSteps::FusedSteps(const nn::Affine* affine,
                       torch::optim::Optimizer& optimizer,
                       const FitOptions& options)
    : affine_(options.fuse_steps() ? affine : nullptr), optimizer_(optimizer) {}

void FusedSteps::after_before_step(const FitState& state,
                                   size_t calls,
                                   int64_t defaults_before) {
  callbacks_quiet_ =
      FitStateAccess::default_before_steps(state) - defaults_before ==
      static_cast<int64_t>(calls);
}

int64_t FusedSteps::run(const BatchBlock& block, int64_t b) {
  if (!affine_ || !callbacks_quiet_ || b >= block.batches ||
      !block.x.device().is_cpu() || !block.x.is_contiguous() ||
      !block.y.is_contiguous()) {
    return b;
  }
  const auto& weight = affine_->affine_weight();
  const auto& bias = affine_->affine_bias();
  const auto dtype = weight.scalar_type();
  if (block.batch * weight.numel() > kFuseMaxBatchWork ||
      (dtype != at::kFloat && dtype != at::kDouble) ||
      block.x.scalar_type() != dtype || block.y.scalar_type() != dtype ||
      (bias.defined() && bias.scalar_type() != dtype) || weight.dim() != 2 ||
      block.x.size(1) != weight.size(1) || block.y.size(1) != weight.size(0)) {
    return b;
  }
  // A step of the optimizer moves every parameter it holds that has a
  // gradient; the fused steps move the weight and bias only.
  for (const auto& group : optimizer_.param_groups()) {
    for (const auto& p : group.params()) {
      if (!p.is_same(weight) && !p.is_same(bias) && p.grad().defined()) {
        return b;
      }
    }
  }
  auto w = optim::detail::lend_state(optimizer_, weight);
  std::optional<ops::AffineStepParam> lent_bias;
  if (bias.defined()) {
    lent_bias = optim::detail::lend_state(optimizer_, bias);
    if (!lent_bias) {
      return b;
    }
  }
  if (!w) {
    return b;
  }
  at::NoGradGuard no_grad;
  return ops::affine_mse_steps_(
      ops::AffineStepRows{block.x, block.y, block.order, block.batch},
      b,
      block.batches,
      *w,
      lent_bias ? &*lent_bias : nullptr);
}

}  // namespace normopt::train::detail
