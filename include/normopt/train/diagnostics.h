#pragma once

/// Checks a training setup before training: is the optimizer able to reach
/// the optimum in the planned number of steps, with the targets and features
/// on the scale the loss sees them?
///
/// \code
///   using namespace normopt;
///   nn::StandardizedRegressor model(
///       nn::LinearRegressor(2),
///       nn::StandardizedRegressorOptions().targets(
///           nn::TargetStandardizerOptions().method(nn::TargetScaling::kNone)));
///   optim::Adam adam(model->parameters(), optim::AdamOptions(1e-2));
///   auto findings = train::diagnose(
///       model, adam, table, train::DiagnoseOptions().planned_steps(200));
///   for (const auto& finding : findings) {
///     std::cerr << finding << "\n";
///     // [warning] adam_scale_stall: Adam moves each parameter by about
///     // lr = 0.01 per step; the predictions must move 4.1e+04 ...
///   }
/// \endcode

#include <normopt/data/table.h>
#include <normopt/macros.h>
#include <normopt/nn/standardized_regressor.h>
#include <torch/arg.h>
#include <torch/optim/optimizer.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace normopt::train {

/// How serious a Finding is.
enum class Severity {
  /// A fact worth knowing; training can go ahead.
  kInfo,
  /// A problem that will make the run diverge or stall.
  kWarning,
};

/// One result of diagnose().
struct NORMOPT_API Finding {
  /// kInfo or kWarning.
  Severity severity = Severity::kInfo;
  /// Stable identifier: "degenerate_data", "target_scale",
  /// "adam_scale_stall", "sgd_divergence", "feature_scale" or "ok".
  std::string code;
  /// What was found, with the numbers, and what to do about it.
  std::string message;
};

/// Prints `[warning] code: message` (or `[info] ...`).
NORMOPT_API std::ostream& operator<<(std::ostream& stream,
                                     const Finding& finding);

/// Options for `diagnose()`.
struct NORMOPT_API DiagnoseOptions {
  /// Optimizer steps the run will take (epochs × batches per epoch); 0 means
  /// unknown, and the checks then assume 10,000.
  TORCH_ARG(int64_t, planned_steps) = 0;
};

/// Inspects `model`, `optimizer` and the training table without training and
/// without changing anything (parameters, statistics, train/eval mode, the
/// global RNG). When the model's Normalization is not adapted or its
/// TargetStandardizer not fitted, the statistics fit() would compute are
/// computed on the side from `train` with the model's options.
///
/// Findings, in this order:
/// - `degenerate_data` (warning): fewer rows than features + 1, constant
///   features, or a constant target (with more than one row): the optimum
///   is not unique or its MSE is 0, so ratios to it mean nothing.
/// - `target_scale` (warning): the targets as the loss sees them
///   (model->transform_targets(y)) have |mean| or standard deviation above
///   100.
/// - `adam_scale_stall` (warning), for normopt::optim::Adam/AdamW and
///   torch::optim::Adam/AdamW: Adam moves each parameter by about lr per
///   step, so closing the distance between the mean target and the mean
///   initial prediction (in loss units) takes about distance / lr steps;
///   warns when that exceeds planned_steps (10,000 when unknown).
/// - `sgd_divergence` (warning), for normopt::optim::SGD and
///   torch::optim::SGD on a LinearRegressor: full-batch gradient descent on
///   the MSE diverges when lr × λ exceeds 2, λ = 2 λmax(XᵀX / N) / k the
///   largest Hessian eigenvalue (X the normalized features with a bias
///   column, k the target columns; weight decay adds to λ). With momentum β
///   the bound is 2 (1 + β) / (1 - dampening), with Nesterov
///   2 (1 + β) / (1 + 2 β). The message gives the largest stable lr.
/// - `feature_scale` (info, or warning): the ratio of the largest to the
///   smallest standard deviation of the raw (non-constant) features; a
///   warning when the features the regressor sees (after the model's
///   Normalization; a fixed mean 0 / variance 1 Normalization leaves them
///   raw) still have a ratio above 1e3.
/// - `ok` (info): no warning was raised.
///
/// Throws c10::Error for a malformed table (as fit() does), a model without
/// parameters, and planned_steps < 0.
NORMOPT_API std::vector<Finding> diagnose(
    nn::StandardizedRegressor& model,
    const torch::optim::Optimizer& optimizer,
    const data::Table& train,
    const DiagnoseOptions& options = {});

}  // namespace normopt::train
