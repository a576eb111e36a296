#pragma once

/// SGD with momentum for torch::optim with a fused CPU kernel
/// (normopt::sgd_step_).
///
/// \code
///   normopt::optim::SGD opt(model->parameters(),
///                           normopt::optim::SGDOptions(1e-2).momentum(0.9));
/// \endcode

#include <normopt/macros.h>
#include <normopt/optim/describe.h>
#include <torch/arg.h>
#include <torch/optim/optimizer.h>
#include <torch/optim/serialize.h>

#include <vector>

namespace normopt::optim {

/// Options for `SGD` (PyTorch's names and defaults). Per param group.
struct NORMOPT_API SGDOptions
    : public torch::optim::OptimizerCloneableOptions<SGDOptions> {
  SGDOptions(double lr);
  /// Learning rate.
  TORCH_ARG(double, lr);
  /// Momentum factor (0: plain gradient descent, no buffer).
  TORCH_ARG(double, momentum) = 0;
  /// Dampening of the momentum (the gradient's weight is 1 - dampening).
  TORCH_ARG(double, dampening) = 0;
  /// L2 penalty added to the gradient (wd * p).
  TORCH_ARG(double, weight_decay) = 0;
  /// Nesterov momentum (needs momentum > 0 and dampening 0).
  TORCH_ARG(bool, nesterov) = false;
  /// Maximize the objective instead of minimizing it.
  TORCH_ARG(bool, maximize) = false;
  /// Skip (and report) a step whose gradients hold NaN or Inf; read from the
  /// optimizer's defaults.
  TORCH_ARG(bool, skip_nonfinite) = false;

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  double get_lr() const override;
  void set_lr(const double lr) override;
  /// Every field equal (as LibTorch's options compare).
  NORMOPT_API friend bool operator==(const SGDOptions& a, const SGDOptions& b);
};

/// Per-parameter SGD state: the momentum buffer, created at the first step.
struct NORMOPT_API SGDParamState
    : public torch::optim::OptimizerCloneableParamState<SGDParamState> {
  /// Momentum buffer (undefined without momentum).
  TORCH_ARG(at::Tensor, momentum_buffer);

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
};

/// Stochastic gradient descent as a torch::optim::Optimizer. Pass every
/// param group to the constructor (see normopt::optim::Adam).
class NORMOPT_API SGD : public torch::optim::Optimizer, public Describable {
 public:
  explicit SGD(
      const std::vector<torch::optim::OptimizerParamGroup>& param_groups,
      SGDOptions defaults);
  explicit SGD(std::vector<at::Tensor> params, SGDOptions defaults);

  at::Tensor step(LossClosure closure = nullptr) override;
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;
  /// Rule kGradientDescent with param group 0's settings.
  StepDescription describe() const override;

  /// Steps skipped because of non-finite gradients (skip_nonfinite); saved
  /// with the optimizer's state (torch::save) and restored by load.
  int64_t skipped_steps() const {
    return skipped_steps_;
  }

 private:
  template <typename Self, typename Archive>
  static void serialize(Self& self, Archive& archive) {
    _TORCH_OPTIM_SERIALIZE_WITH_TEMPLATE_ARG(SGD);
  }
  int64_t skipped_steps_ = 0;
};

}  // namespace normopt::optim
