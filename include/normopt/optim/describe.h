#pragma once

/// What other parts of normopt (fit()'s non-finite guard, diagnose()'s
/// checks) need to know about an optimizer, asked through one query instead
/// of casts to concrete types: a new optimizer implements `Describable` and
/// nothing in normopt::train changes.
///
/// \code
///   auto d = normopt::optim::describe(optimizer);
///   if (d.rule == normopt::optim::StepRule::kAdaptive) {
///     // each step moves a parameter by about d.lr
///   }
/// \endcode

#include <normopt/macros.h>
#include <torch/optim/optimizer.h>

#include <limits>

namespace normopt::optim {

/// The family of an optimizer's update rule.
enum class StepRule {
  /// Not known to normopt: no rule-specific diagnostics.
  kUnknown,
  /// p -= lr * (gradient, with momentum): SGD. The step scales with the
  /// gradient.
  kGradientDescent,
  /// A step of about lr per parameter whatever the gradient's scale: Adam,
  /// AdamW and their kin.
  kAdaptive,
};

/// An optimizer's update rule and settings (of param group 0): everything
/// train::diagnose() needs to replay its steps.
struct StepDescription {
  StepRule rule = StepRule::kUnknown;
  /// Learning rate; NaN when unknown.
  double lr = std::numeric_limits<double>::quiet_NaN();
  /// SGD's momentum, dampening and Nesterov flag (0, 0, false otherwise).
  double momentum = 0;
  double dampening = 0;
  bool nesterov = false;
  /// The L2 penalty added to the gradient (coupled weight decay: SGD's and
  /// Adam's weight_decay; 0 for AdamW's decoupled decay).
  double weight_decay = 0;
  /// AdamW's decoupled decay: p *= 1 - lr * decoupled_weight_decay.
  double decoupled_weight_decay = 0;
  /// Adam's moment decay rates and epsilon (0 for SGD).
  double beta1 = 0;
  double beta2 = 0;
  double eps = 0;
  /// Adam with Keras's epsilon placement (normopt's EpsilonMode::kKeras).
  bool keras_epsilon = false;
  /// AMSGrad's running maximum of the second moment.
  bool amsgrad = false;
  /// The optimizer climbs the objective instead of descending it.
  bool maximize = false;
  /// Whether the optimizer itself skips steps whose gradients hold NaN or
  /// Inf (normopt's skip_nonfinite), so a caller may let it.
  bool skips_nonfinite = false;
};

/// Implemented by optimizers that describe themselves (normopt's Adam,
/// AdamW and SGD; a new optimizer implements it too).
class NORMOPT_API Describable {
 public:
  virtual ~Describable() = default;
  /// The optimizer's rule and the settings of its param group 0.
  virtual StepDescription describe() const = 0;
};

/// The description of `optimizer` (rule kUnknown, lr NaN when it has no
/// param group): its own when it is Describable;
/// LibTorch's SGD, Adam and AdamW (which cannot implement the interface)
/// are read from their options; any other optimizer gets rule kUnknown.
NORMOPT_API StepDescription describe(const torch::optim::Optimizer& optimizer);

/// describe(optimizer).skips_nonfinite.
NORMOPT_API bool skips_nonfinite(const torch::optim::Optimizer& optimizer);

}  // namespace normopt::optim
