#pragma once
// Internal: a training run as diagnose() sees it, gathered once: the data in
// the loss's units (float64), its centered moments (the MSE of an affine
// model is a quadratic in them), the closed-form optimum, and what the
// findings say about the model and the data.

#include <normopt/data/stream.h>
#include <normopt/data/table.h>
#include <normopt/nn/standardized_regressor.h>
#include <normopt/optim/describe.h>

#include <ATen/core/Tensor.h>
#include <torch/nn/modules/container/any.h>
#include <torch/optim/optimizer.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace normopt::train::detail {

/// The data as the loss sees it and its moments, float64 on the CPU.
struct Problem {
  int64_t rows = 0;      // N
  int64_t features = 0;  // p: what the regressor sees
  int64_t targets = 0;   // k
  /// The rows (N, p) and (N, k), contiguous; undefined from a stream, and
  /// when a minibatch replay sums its batches from the raw rows instead.
  at::Tensor z, t;
  /// The raw table (x, y as given) and its per-column map to loss units,
  /// z = (x - x_shift) / x_scale and t = (y - y_shift) / y_scale (float64,
  /// (p) and (k)): what a minibatch replay of an affine model sums its
  /// batches from (batch_moments.h). Undefined unless the rows are kept
  /// this way (KeepRows::kRaw).
  at::Tensor raw_x, raw_y, x_shift, x_scale, y_shift, y_scale;
  /// Means (p), (k); Zcᵀ Zc / N (p, p); Zcᵀ Tc / N (p, k); Tc² / N (k), with
  /// Zc, Tc the centered z and t.
  at::Tensor mean_z, mean_t, gram, cross, var_t;
  /// One loss unit of target column j is unit[j] original units.
  at::Tensor unit;
  /// The least-squares optimum with an intercept in loss units: w (p, k),
  /// b (k), the MSE per column (k).
  at::Tensor w_opt, b_opt, mse_opt;
  /// Raw (before the model's scaling) feature and target moments.
  at::Tensor raw_mean, raw_sd, target_mean, target_sd;
  std::vector<std::string> feature_names;
  /// Whether the loss sees z-scored targets and normalized features, and the
  /// target scaling's name for messages.
  bool targets_standardized = false;
  bool features_normalized = false;
  std::string target_scaling;

  /// Whether the rows are there to replay minibatches: z and t, or the raw
  /// table and its map.
  bool has_rows() const {
    return z.defined() || raw_x.defined();
  }
  /// MSE in original units from per-column loss-unit MSEs (k).
  double original_mse(const double* per_column) const;
  /// The optimum in original units.
  double optimum_mse() const;
  /// Whether the optimum MSE is 0 up to rounding.
  bool optimum_exact() const;
  /// The same problem with z-scored features and targets (what a
  /// StandardizedRegressor around the model would train on).
  Problem standardized() const;
};

/// The model's starting point when it is affine: W (k, p) and b (k), float64,
/// and which param group's lr each takes.
struct AffineStart {
  at::Tensor weight, bias;  // bias undefined without one
  double lr_weight = 0, lr_bias = 0;
};

using Forward = std::function<at::Tensor(const at::Tensor&)>;

/// A model that is not affine: its forward in loss units on the rows of z,
/// and its parameters with their learning rates.
struct ModuleStart {
  Forward forward;
  std::vector<at::Tensor> parameters;
  std::vector<double> lrs;
  torch::nn::Module* module = nullptr;  // for train()/eval() and the RNG
};

/// What the optimizer is and the lr of each parameter, by param group.
struct OptimizerView {
  optim::StepDescription step;
  /// Messages about param groups (several lrs).
  std::string groups_note;
  /// lr of `parameter` (its group's), NaN when no group holds it.
  std::function<double(const at::Tensor&)> lr_of;
};

OptimizerView view_optimizer(const torch::optim::Optimizer& optimizer);

/// Which rows a Problem keeps, for which replay.
enum class KeepRows {
  kNone,       // none: no replay (the full batch is the moments' quadratic)
  kLossUnits,  // z and t: a module's replay, or minibatches over the rows
  kRaw,        // the raw table and its map: minibatches from batch sums
};

/// The problem of a StandardizedRegressor on a table (its statistics, or
/// those fit() would compute when missing), with the rows `keep` asks for
/// (kRaw needs per-column scaling; without it z and t are kept). The
/// moments come from float64 blocks of the table either way (per-column
/// scaling).
Problem problem_of(nn::StandardizedRegressor& model,
                   const data::Table& train,
                   KeepRows keep);
/// The same in one pass over a stream (no rows kept).
Problem problem_of(nn::StandardizedRegressor& model, data::TableStream& train);
/// The problem of a plain module on raw tensors (loss units = original).
Problem problem_of(const at::Tensor& x, const at::Tensor& y);

/// The problem of data already in loss units (z, t, unit) with the raw
/// table for the findings.
Problem problem_of(const at::Tensor& z,
                   const at::Tensor& t,
                   const at::Tensor& unit,
                   const data::Table& raw,
                   std::optional<nn::TargetScaling> target_scaling);

/// Moments and optimum from z and t (N, p), (N, k) float64.
void compute_moments(Problem& problem);

}  // namespace normopt::train::detail
