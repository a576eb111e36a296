#pragma once
// Internal: the StepDescription of the two rule families, read from any
// options type with PyTorch's field names: normopt's SGD, Adam and AdamW
// (their describe()) and LibTorch's (optim::describe()) share them.

#include <normopt/optim/adam.h>
#include <normopt/optim/describe.h>

#include <type_traits>
#include <utility>

namespace normopt::optim::detail {

// normopt's Adam options resolve epsilon by mode (effective_eps());
// LibTorch's hold a number.
template <typename Options, typename = void>
struct HasEffectiveEps : std::false_type {};
template <typename Options>
struct HasEffectiveEps<
    Options,
    std::void_t<decltype(std::declval<Options>().effective_eps())>>
    : std::true_type {};

// LibTorch's SGDOptions have no maximize.
template <typename Options, typename = void>
struct HasMaximize : std::false_type {};
template <typename Options>
struct HasMaximize<Options,
                   std::void_t<decltype(std::declval<Options>().maximize())>>
    : std::true_type {};

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
  if constexpr (HasMaximize<Options>::value) {
    d.maximize = o.maximize();
  }
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
  d.decoupled_weight_decay = decoupled_weight_decay ? o.weight_decay() : 0;
  d.beta1 = std::get<0>(o.betas());
  d.beta2 = std::get<1>(o.betas());
  d.amsgrad = o.amsgrad();
  if constexpr (HasEffectiveEps<Options>::value) {
    d.eps = o.effective_eps();
    d.keras_epsilon = o.epsilon_mode() == EpsilonMode::kKeras;
  } else {
    d.eps = o.eps();
  }
  if constexpr (HasMaximize<Options>::value) {
    d.maximize = o.maximize();
  }
  return d;
}

}  // namespace normopt::optim::detail
