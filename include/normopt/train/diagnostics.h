#pragma once

/// A forecast of a training run before its first step: will it converge,
/// stall or diverge in the planned number of steps, and if not, what to do.
///
/// For an affine model (LinearRegressor, torch::nn::Linear, any nn::Affine)
/// under the MSE, the full-batch loss is a quadratic known from the centered
/// moments of the data (one float64 pass), so the optimizer's trajectory is
/// run on it exactly, O(p²) per step, without touching the data again;
/// minibatch runs are replayed batch by batch in float64, in fit()'s order:
/// from each batch's sums, O(p²) a step (an epoch's batches are summed once
/// and kept, up to 64 MiB, for the next forecasts of the same unchanged
/// table), or, where a batch's sums would be larger than its rows or with a
/// scaling that is not per column, on a float64 copy of the rows. Any other
/// model is replayed on a copy of its parameters (at most
/// 1,024 rows for a full batch). Nothing of the caller's changes.
///
/// \code
///   using namespace normopt;
///   nn::StandardizedRegressor model(nn::LinearRegressor(2), raw_targets);
///   optim::Adam adam(model->parameters(), optim::AdamOptions(1e-2));
///   auto d = train::diagnose(model, adam, table,
///                            train::DiagnoseOptions().planned_steps(200));
///   std::cout << d;  // stalls: forecast MSE 1.6e+09, 1,900x the optimum ...
///   // A plain module in a plain loop:
///   torch::nn::Linear linear(2, 1);
///   torch::optim::SGD sgd(linear->parameters(), 1e-3);
///   auto d2 = train::diagnose(linear, sgd, x, y,
///                             train::DiagnoseOptions().planned_steps(5000));
/// \endcode

#include <normopt/data/stream.h>
#include <normopt/data/table.h>
#include <normopt/macros.h>
#include <normopt/nn/standardized_regressor.h>
#include <normopt/optim/describe.h>
#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/optim/optimizer.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace normopt::train {

struct FitOptions;

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
  /// Stable identifier; diagnose() lists them all.
  std::string code;
  /// What was found, with the numbers, and what to do about it.
  std::string message;
};

/// Prints `[warning] code: message` (or `[info] ...`).
NORMOPT_API std::ostream& operator<<(std::ostream& stream,
                                     const Finding& finding);

/// The forecast outcome of a run.
enum class Verdict {
  /// The training MSE after the planned steps is within 1.2x of the optimum
  /// (reported up to about 1.55x, the geometric middle of 1.2x and 2x).
  kConverges,
  /// Finite, but 2x the optimum or more (reported from about 1.55x).
  kStalls,
  /// Not finite, or worse than at the start.
  kDiverges,
  /// No forecast: the optimizer is not one normopt can describe.
  kUnknown,
};

/// "converges", "stalls", "diverges" or "unknown".
NORMOPT_API const char* verdict_name(Verdict verdict);

/// A ratio to the optimum MSE within which a run counts as converged.
constexpr double kConvergedRatio = 1.2;
/// A ratio from which a run counts as stalled.
constexpr double kStalledRatio = 2.0;

/// The forecast MSE (original units) after `step` optimizer steps.
struct ForecastPoint {
  int64_t step = 0;
  double mse = 0;
};

/// What diagnose() returns.
struct NORMOPT_API Diagnosis {
  static constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  /// The forecast outcome of the planned steps.
  Verdict verdict = Verdict::kUnknown;
  /// Training MSE in the targets' original units: at the start, forecast
  /// after the planned steps, and the closed-form least-squares optimum of
  /// a linear model with an intercept on the same features.
  double initial_mse = kNaN;
  double forecast_mse = kNaN;
  double optimum_mse = kNaN;
  /// forecast_mse / optimum_mse.
  double forecast_ratio = kNaN;
  /// The planned steps the forecast covers.
  int64_t planned_steps = 0;
  /// The first step at which the forecast MSE is within 1.2x of the
  /// optimum (for minibatches, the first epoch end); beyond
  /// `steps_searched`, extrapolated from the rate at which the excess over
  /// the optimum shrank in the second half of the search. -1: never at this
  /// lr (the forecast diverges or levels off above 1.2x).
  int64_t steps_needed = -1;
  /// How far the forecast simulated (at least planned_steps; while it is
  /// cheap, up to ten times that on the full-batch quadratic and three
  /// times that for a minibatch replay, which beyond the plan replays the
  /// plan's epochs again: a longer run's orders would be as random).
  int64_t steps_searched = 0;
  /// How the trajectory was forecast, e.g. "exact full-batch quadratic".
  std::string method;
  /// The forecast MSE at step 0 and after each epoch (thinned to at most
  /// about 5,000 points), for plots beside a History.
  std::vector<ForecastPoint> trajectory;
  /// What was found, warnings first; each failure's fix with its numbers.
  std::vector<Finding> findings;

  /// The finding with `code`, or nullptr.
  const Finding* find(const std::string& code) const;
  /// Whether any finding is a warning.
  bool has_warning() const;
  /// forecast_mse's prediction for step `step` (linear in log MSE between
  /// trajectory points; NaN outside it).
  double mse_at(int64_t step) const;
};

/// One line with the verdict and its numbers, then one line per finding.
NORMOPT_API std::ostream& operator<<(std::ostream& stream,
                                     const Diagnosis& diagnosis);

/// Options for `diagnose()`.
struct NORMOPT_API DiagnoseOptions {
  /// The run fit(options) makes on `rows` rows: planned_steps = epochs ×
  /// batches,
  /// and its batch size, shuffle and seed.
  static DiagnoseOptions for_fit(const FitOptions& options, int64_t rows);
  /// Optimizer steps the run will take (epochs × batches per epoch), at
  /// least 1.
  TORCH_ARG(int64_t, planned_steps) = 10000;
  /// Rows per step; 0: the full data set (as FitOptions::batch_size).
  TORCH_ARG(int64_t, batch_size) = 0;
  /// Minibatch order, as fit(): epoch e's permutation from seed + e, or the
  /// rows in order when shuffle is false.
  TORCH_ARG(bool, shuffle) = true;
  TORCH_ARG(uint64_t, seed) = 0;
};

/// Forecasts the run of `optimizer` on `model` over `train` and checks the
/// setup, without training and without changing anything (parameters,
/// optimizer state, statistics, train/eval mode, the global RNG). The
/// forecast starts from the current parameters with a fresh optimizer
/// state; when the model's Normalization is not adapted or its
/// TargetStandardizer not fitted, the statistics fit() would compute are
/// used on the side.
///
/// Findings (code, severity):
/// - `forecast` (warning unless it converges): the verdict and its numbers.
/// - `degenerate_data` (warning): fewer rows than features + 1, constant
///   features or a constant target: the optimum is not unique or its MSE is
///   0, so ratios to it mean nothing.
/// - `target_scale` (warning): the loss sees targets with |mean| or
///   standard deviation above 100; the fix: standardize the targets, with
///   the forecast of that run.
/// - `adam_scale_stall` (warning): Adam moves each parameter by about lr per
///   step, and the mean prediction must move farther than lr × steps.
/// - `sgd_divergence` (warning): lr × the MSE Hessian's largest eigenvalue
///   exceeds gradient descent's stability bound (momentum and Nesterov
///   included); the message gives the largest stable lr.
/// - `lr_too_large` (warning): the forecast diverges or rattles above the
///   optimum while a smaller lr (given) converges.
/// - `lr_too_small` (warning): the forecast still descends at the last step
///   and needs more steps (given) or a larger lr (given).
/// - `ill_conditioned` (warning when the forecast fails): the features as the
///   model sees them are nearly collinear (condition number given); the fix
///   is the closed form (solve_least_squares) or a ridge term (given, with
///   its MSE).
/// - `minibatch_noise` (warning): the minibatch forecast fails where the
///   full-batch one converges; the fix is a larger batch or a smaller lr.
/// - `feature_scale` (info, or warning): the spread of the raw and the
///   normalized feature scales.
/// - `unknown_optimizer` (info): the optimizer is not one normopt can
///   describe; only the checks of the data are made.
/// - `param_groups` (info): the groups' learning rates used per parameter.
/// - `ok` (info): no warning was raised.
///
/// Throws c10::Error, saying what to do, for no rows, NaN or Inf in the
/// data (naming the column), a model without parameters, an optimizer that
/// holds none of them, predictions whose shape differs from the targets',
/// planned_steps < 1 and batch_size < 0.
NORMOPT_API Diagnosis diagnose(nn::StandardizedRegressor& model,
                               const torch::optim::Optimizer& optimizer,
                               const data::Table& train,
                               const DiagnoseOptions& options = {});

/// diagnose() from tensors: features `x` (N, F) and targets `y` (N) or
/// (N, k).
NORMOPT_API Diagnosis diagnose(nn::StandardizedRegressor& model,
                               const torch::optim::Optimizer& optimizer,
                               const at::Tensor& x,
                               const at::Tensor& y,
                               const DiagnoseOptions& options = {});

/// diagnose() from a stream in one pass (rewound first): the full-batch
/// forecast; a minibatch run is forecast as the full batch and says so.
NORMOPT_API Diagnosis diagnose(nn::StandardizedRegressor& model,
                               const torch::optim::Optimizer& optimizer,
                               data::TableStream& train,
                               const DiagnoseOptions& options = {});

/// diagnose() for any module: `forward` maps features (N, F) to
/// predictions (N) or (N, k), trained on torch::mse_loss against `y`.
NORMOPT_API Diagnosis
diagnose(torch::nn::Module& module,
         const std::function<at::Tensor(const at::Tensor&)>& forward,
         const torch::optim::Optimizer& optimizer,
         const at::Tensor& x,
         const at::Tensor& y,
         const DiagnoseOptions& options = {});

/// The same for a module holder whose forward(Tensor) returns a Tensor
/// (torch::nn::Linear, Sequential, a user's TORCH_MODULE), e.g. in the
/// caller's own loop.
template <typename ModuleType>
Diagnosis diagnose(const torch::nn::ModuleHolder<ModuleType>& model,
                   const torch::optim::Optimizer& optimizer,
                   const at::Tensor& x,
                   const at::Tensor& y,
                   const DiagnoseOptions& options = {}) {
  auto impl = model.ptr();
  return diagnose(
      *impl,
      [impl](const at::Tensor& z) -> at::Tensor { return impl->forward(z); },
      optimizer,
      x,
      y,
      options);
}

/// A run given as numbers rather than objects, for bindings: Python's
/// normopt.diagnose() calls diagnose(DescribedRun) through the op
/// normopt::diagnose, so both languages get the same numbers.
struct NORMOPT_API DescribedRun {
  /// Features and targets as the loss sees them, (N, p) and (N, k), and one
  /// loss unit of each target column in original units (k).
  at::Tensor z, t, unit;
  /// The raw features and targets, for the findings about the data.
  data::Table raw;
  /// The model's target scaling; none for a plain module on raw targets.
  std::optional<nn::TargetScaling> target_scaling;
  /// The optimizer (its param group 0).
  optim::StepDescription step;
  /// An affine model: W (k, p), b (k) or undefined, and their lrs.
  at::Tensor weight, bias;
  double lr_weight = Diagnosis::kNaN, lr_bias = Diagnosis::kNaN;
  /// Any other model (weight undefined): its run replayed by the caller,
  /// (m, 2) rows of (step, MSE in original units) from step 0 to the
  /// planned steps, its mean initial prediction per column (k, loss
  /// units), and how it was replayed.
  at::Tensor replayed, initial_prediction;
  std::string replay_method;
};

/// diagnose() of a DescribedRun; `options.batch_size` and the order apply
/// to an affine model's replay.
NORMOPT_API Diagnosis diagnose(const DescribedRun& run,
                               const DiagnoseOptions& options = {});

}  // namespace normopt::train
