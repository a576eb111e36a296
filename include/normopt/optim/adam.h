#pragma once

/// Adam for torch::optim with a fused CPU kernel (normopt::adam_step_).
///
/// \code
///   normopt::optim::Adam opt(
///       model->parameters(),
///       normopt::optim::AdamOptions(1e-2).betas({0.9, 0.999}));
///   opt.zero_grad(); loss.backward(); opt.step();
///   torch::optim::StepLR sched(opt, /*step_size=*/10, /*gamma=*/0.5);
///   torch::save(opt, "opt.pt");
///   // Keras's Adam, e.g. to replay a Keras run:
///   normopt::optim::Adam keras(params, normopt::optim::AdamOptions(1e-3)
///       .epsilon_mode(normopt::optim::EpsilonMode::kKeras));
///   // Step counts on the device, so that forward, backward and step() can
///   // be captured in one at::cuda::CUDAGraph after a few eager steps
///   // (tests/cpp/cuda/test_capturable.cpp shows the whole loop):
///   normopt::optim::Adam cap(params,
///       normopt::optim::AdamOptions(1e-3).capturable(true));
/// \endcode

#include <normopt/macros.h>
#include <normopt/optim/describe.h>
#include <torch/arg.h>
#include <torch/optim/optimizer.h>
#include <torch/optim/serialize.h>

#include <optional>
#include <tuple>
#include <vector>

namespace normopt::optim {

/// Where Adam adds epsilon.
enum class EpsilonMode {
  /// PyTorch: p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
  kPyTorch,
  /// Keras: alpha = lr sqrt(1 - b2^t) / (1 - b1^t); p -= alpha m / (sqrt(v)
  /// + eps). Same as PyTorch's with eps scaled by sqrt(1 - b2^t).
  kKeras,
};

/// Options for `Adam` (AdamOptions) and `AdamW` (AdamWOptions): one set of
/// fields, PyTorch's names and defaults; they differ only in what
/// weight_decay means and its default. Per param group; changes take effect
/// at the next step().
template <bool DecoupledWeightDecay>
struct NORMOPT_API BasicAdamOptions
    : public torch::optim::OptimizerCloneableOptions<
          BasicAdamOptions<DecoupledWeightDecay>> {
  BasicAdamOptions(double lr = 1e-3);
  /// Learning rate.
  TORCH_ARG(double, lr) = 1e-3;

 public:
  typedef std::tuple<double, double> betas_t;
  /// Decay rates of the first and second moment averages.
  TORCH_ARG(betas_t, betas) = std::make_tuple(0.9, 0.999);
  /// Epsilon; unset means 1e-8 (kPyTorch) or 1e-7 (kKeras, Keras's default).
  TORCH_ARG(std::optional<double>, eps) = std::nullopt;
  /// Adam: an L2 penalty added to the gradient (wd * p), as
  /// torch::optim::Adam; default 0. AdamW: decoupled weight decay,
  /// p *= 1 - lr * wd before the Adam update; default 1e-2.
  TORCH_ARG(double, weight_decay) = DecoupledWeightDecay ? 1e-2 : 0;
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
  friend bool operator==(const BasicAdamOptions& a, const BasicAdamOptions& b) {
    return a.lr() == b.lr() && a.betas() == b.betas() && a.eps() == b.eps() &&
           a.weight_decay() == b.weight_decay() && a.amsgrad() == b.amsgrad() &&
           a.maximize() == b.maximize() &&
           a.epsilon_mode() == b.epsilon_mode() &&
           a.capturable() == b.capturable() &&
           a.skip_nonfinite() == b.skip_nonfinite();
  }
};

extern template struct BasicAdamOptions<false>;
extern template struct BasicAdamOptions<true>;

/// Options for `Adam`: weight_decay is an L2 penalty (default 0).
using AdamOptions = BasicAdamOptions<false>;
/// Options for `AdamW`: weight_decay is decoupled (default 1e-2).
using AdamWOptions = BasicAdamOptions<true>;

/// Per-parameter Adam state, created at a parameter's first step.
struct NORMOPT_API AdamParamState
    : public torch::optim::OptimizerCloneableParamState<AdamParamState> {
  /// Steps taken by this parameter (not advanced while step_tensor holds
  /// the count: read step_count()).
  TORCH_ARG(int64_t, step) = 0;
  /// With capturable: the step count, a 0-dim float64 tensor on the
  /// parameter's device that the fused op advances; undefined otherwise.
  TORCH_ARG(at::Tensor, step_tensor);
  /// First moment average m.
  TORCH_ARG(at::Tensor, exp_avg);
  /// Second moment average v.
  TORCH_ARG(at::Tensor, exp_avg_sq);
  /// Running max of v (amsgrad only).
  TORCH_ARG(at::Tensor, max_exp_avg_sq);

 public:
  /// Steps taken, wherever the count is held (from step_tensor a read of
  /// device memory, which waits for the device).
  int64_t step_count() const;
  /// Writes "step" (step_count()) and, when defined, "step_tensor"; a state
  /// saved either way loads under either setting of capturable.
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
};

namespace detail {

/// The one implementation of Adam and AdamW, a torch::optim::Optimizer over
/// the fused step kernel: `Options` chooses which (AdamWOptions: weight
/// decay decoupled). Use the classes Adam and AdamW.
template <typename Options>
class NORMOPT_API AdamFamily : public torch::optim::Optimizer,
                               public Describable {
 public:
  explicit AdamFamily(
      const std::vector<torch::optim::OptimizerParamGroup>& param_groups,
      Options defaults = {});
  explicit AdamFamily(std::vector<at::Tensor> params, Options defaults = {});

  at::Tensor step(LossClosure closure = nullptr) override;
  void save(torch::serialize::OutputArchive& archive) const override;
  /// Loads a saved optimizer; each param group keeps its own capturable
  /// (the saved step counts are converted at the next step()).
  void load(torch::serialize::InputArchive& archive) override;
  /// Rule kAdaptive, with param group 0's lr and skip_nonfinite.
  StepDescription describe() const override;

  /// Steps skipped because of non-finite gradients (skip_nonfinite); saved
  /// with the optimizer's state (torch::save) and restored by load.
  int64_t skipped_steps() const {
    return skipped_steps_;
  }

 private:
  int64_t skipped_steps_ = 0;
};

extern template class AdamFamily<AdamOptions>;

}  // namespace detail

/// Adam (Kingma & Ba) as a torch::optim::Optimizer: param groups, lazily
/// created state, schedulers (get_lr/set_lr), torch::save/torch::load.
/// One fused kernel call per param group and step.
///
/// Pass every param group to the constructor: a group added later with
/// add_param_group() gets the optimizer's default options, because LibTorch
/// 2.13 merges a group's own options only for its built-in optimizer types.
class NORMOPT_API Adam : public detail::AdamFamily<AdamOptions> {
 public:
  using AdamFamily::AdamFamily;
};

}  // namespace normopt::optim
