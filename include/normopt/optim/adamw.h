#pragma once

/// AdamW (Adam with decoupled weight decay) for torch::optim, same fused
/// kernel as normopt::optim::Adam.
///
/// \code
///   normopt::optim::AdamW opt(
///       model->parameters(),
///       normopt::optim::AdamWOptions(1e-3).weight_decay(1e-2));
/// \endcode

#include <normopt/macros.h>
#include <normopt/optim/adam.h>
#include <torch/arg.h>
#include <torch/optim/optimizer.h>
#include <torch/optim/serialize.h>

#include <optional>
#include <tuple>
#include <vector>

namespace normopt::optim {

/// Options for `AdamW` (PyTorch's names and defaults). Per param group;
/// changes take effect at the next step().
struct NORMOPT_API AdamWOptions
    : public torch::optim::OptimizerCloneableOptions<AdamWOptions> {
  AdamWOptions(double lr = 1e-3);
  /// Learning rate.
  TORCH_ARG(double, lr) = 1e-3;

 public:
  typedef std::tuple<double, double> betas_t;
  /// Decay rates of the first and second moment averages.
  TORCH_ARG(betas_t, betas) = std::make_tuple(0.9, 0.999);
  /// Epsilon; unset means 1e-8 (kPyTorch) or 1e-7 (kKeras, Keras's default).
  TORCH_ARG(std::optional<double>, eps) = std::nullopt;
  /// Decoupled weight decay: p *= 1 - lr * wd before the Adam update.
  TORCH_ARG(double, weight_decay) = 1e-2;
  /// Use the running maximum of the second moment (AMSGrad).
  TORCH_ARG(bool, amsgrad) = false;
  /// Maximize the objective instead of minimizing it.
  TORCH_ARG(bool, maximize) = false;
  /// PyTorch's or Keras's epsilon placement.
  TORCH_ARG(EpsilonMode, epsilon_mode) = EpsilonMode::kPyTorch;
  /// Keep each parameter's step count in a tensor on its device
  /// (AdamParamState::step_tensor, float64), advanced by the fused op
  /// (normopt::ops::adam_step_capturable_), so that step() reads nothing on
  /// the host and can be captured in a CUDA graph with the forward and
  /// backward (torch.optim's capturable). Switching it on or off between
  /// steps converts the state at the next step(). A captured graph replays
  /// the hyper-parameters it was captured with (a scheduler's new lr needs a
  /// new capture); skip_nonfinite, which decides on the host, cannot be
  /// combined with it.
  TORCH_ARG(bool, capturable) = false;
  /// Skip (and report) a step whose gradients hold NaN or Inf instead of
  /// applying it; read from the optimizer's defaults. Off: PyTorch's
  /// behaviour (the NaN reaches the parameters).
  TORCH_ARG(bool, skip_nonfinite) = false;

 public:
  /// The epsilon actually used: eps() or the mode's default.
  double effective_eps() const;
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  double get_lr() const override;
  void set_lr(const double lr) override;
  /// Every field equal (as LibTorch's options compare).
  NORMOPT_API friend bool operator==(const AdamWOptions& a,
                                     const AdamWOptions& b);
};

/// Per-parameter AdamW state: the same moments as Adam's.
using AdamWParamState = AdamParamState;

namespace detail {
extern template class AdamFamily<AdamWOptions>;
}  // namespace detail

/// AdamW (Loshchilov & Hutter) as a torch::optim::Optimizer: Adam's
/// implementation with decoupled weight decay.
class NORMOPT_API AdamW : public detail::AdamFamily<AdamWOptions> {
 public:
  using AdamFamily::AdamFamily;
};

}  // namespace normopt::optim
