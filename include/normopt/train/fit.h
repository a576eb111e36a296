#pragma once

/// A Keras-style `fit()` loop for a StandardizedRegressor and any
/// torch::optim::Optimizer, with a per-epoch History (history.h) and
/// callbacks (callbacks.h).
///
/// \code
///   using namespace normopt;
///   auto table = data::read_csv("income.csv", data::CsvOptions());
///   auto [train_part, valid_part] = data::train_validation_split(table, 0.2, 42);
///   nn::StandardizedRegressor model(nn::LinearRegressor(2));
///   optim::Adam adam(model->parameters(), optim::AdamOptions(1e-2));
///   auto optimum =
///       train::solve_least_squares(train_part.features, train_part.targets);
///   auto history = train::fit(model, adam, train_part,
///                             train::FitOptions()
///                                 .epochs(200)
///                                 .batch_size(0)  // full batch
///                                 .validation(valid_part)
///                                 .optimum_mse(optimum.mse));
///   history.write_csv("history.csv");
///   std::printf("%.2f%% above the optimum\n", 100 * history.relative_gap());
/// \endcode

#include <normopt/data/stream.h>
#include <normopt/data/table.h>
#include <normopt/macros.h>
#include <normopt/nn/standardized_regressor.h>
#include <normopt/train/callbacks.h>
#include <normopt/train/history.h>
#include <torch/arg.h>
#include <torch/optim/optimizer.h>
#include <torch/optim/schedulers/lr_scheduler.h>
#include <torch/optim/schedulers/reduce_on_plateau_scheduler.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace normopt::train {

/// Whether fit() draws a progress bar.
enum class Progress {
  /// A one-line progress bar on stderr when stderr is a terminal (isatty),
  /// nothing otherwise (logs, CI, tests).
  kAuto,
  /// Always draw the progress bar on stderr.
  kOn,
  /// Never draw it.
  kOff,
};

/// Options for `fit()`. docs/training.md explains how each behaves.
struct NORMOPT_API FitOptions {
  /// Number of passes over the training set (at least 1).
  TORCH_ARG(int64_t, epochs) = 100;
  /// Rows per optimizer step (0: the full training set); an epoch takes
  /// batches_per_epoch(N, batch_size) steps. See docs/training.md.
  TORCH_ARG(int64_t, batch_size) = 32;
  /// Whether to visit the rows in a new random order each epoch.
  TORCH_ARG(bool, shuffle) = true;
  /// Seed of the shuffling: epoch e's order comes from a private generator
  /// seeded with seed + e, never from the global torch RNG.
  TORCH_ARG(uint64_t, seed) = 0;
  /// Rows shuffled together by fit() from a TableStream (at least 1); see
  /// docs/training.md, "Streaming and the shuffle buffer".
  TORCH_ARG(int64_t, shuffle_buffer) = 1 << 20;
  /// Learning-rate scheduler on the same optimizer, stepped after each
  /// epoch; null: none. (StepLR's off-by-one: docs/training.md.)
  TORCH_ARG(std::shared_ptr<torch::optim::LRScheduler>, scheduler) = nullptr;
  /// ReduceLROnPlateau scheduler on the same optimizer, stepped after each
  /// epoch with the monitored loss; null: none.
  TORCH_ARG(std::shared_ptr<torch::optim::ReduceLROnPlateauScheduler>,
            plateau) = nullptr;
  /// Stop after this many epochs without improvement of the monitored loss
  /// (validation, else training); 0: never stop early.
  TORCH_ARG(int64_t, early_stopping_patience) = 0;
  /// Smallest decrease of the monitored loss that counts as an improvement
  /// (non-negative).
  TORCH_ARG(double, early_stopping_min_delta) = 0;
  /// Compute an affine regressor's (nn::Affine) MSE gradient in closed form
  /// instead of by autograd (same update, cheaper); see docs/training.md,
  /// "Fast paths".
  TORCH_ARG(bool, analytic_gradients) = true;
  /// Take such a model's small minibatch steps in fused runs, one call per
  /// epoch, where allowed; see docs/training.md, "Fast paths".
  TORCH_ARG(bool, fuse_steps) = true;
  /// The caller's callbacks, called in list order among fit()'s own (the
  /// order: <normopt/train/callbacks.h>).
  TORCH_ARG(std::vector<std::shared_ptr<Callback>>, callbacks) = {};
  /// Validation data, evaluated after each epoch (val_loss, val_mse) and
  /// monitored by early stopping and ReduceLROnPlateau; none: val_ is NaN.
  TORCH_ARG(std::optional<data::Table>, validation) = std::nullopt;
  /// Where to save checkpoints of the run (atomically; also a model file);
  /// empty: none. See docs/training.md, "Checkpoints and resume".
  TORCH_ARG(std::string, checkpoint_path) = "";
  /// Save a checkpoint every this many epochs (at least 1); the last epoch
  /// is always saved.
  TORCH_ARG(int64_t, checkpoint_every) = 1;
  /// Continue the run saved in this checkpoint, bit for bit; empty: start
  /// afresh. What must match: docs/training.md, "Checkpoints and resume".
  TORCH_ARG(std::string, resume_from) = "";
  /// Progress bar on stderr.
  TORCH_ARG(Progress, progress) = Progress::kAuto;
  /// The best achievable training MSE in original units (e.g.
  /// solve_least_squares(...).mse); stored in the History to report the gap.
  TORCH_ARG(std::optional<double>, optimum_mse) = std::nullopt;
};

/// Optimizer steps in an epoch of `rows` rows: ceil(rows / batch_size), the
/// last batch holding the rest; batch_size 0 (or above `rows`) is one full
/// batch, and no rows take no steps. Throws c10::Error for a negative value.
NORMOPT_API int64_t batches_per_epoch(int64_t rows, int64_t batch_size);

/// Trains `model` with `optimizer` on `train` by minibatch gradient descent
/// on torch::mse_loss(model->forward(xb), model->transform_targets(yb)) and
/// returns the per-epoch History.
///
/// - Statistics: when the model's input Normalization is not adapted, or its
///   TargetStandardizer not fitted, fit() first computes the missing ones
///   from the training table (model->fit_statistics(features, targets) when
///   both are missing). Statistics already present are kept, so a model
///   adapted on other data, or with fixed statistics, is trained as is.
/// - Data: features and targets are converted to the dtype and device of the
///   model's first parameter; targets of shape (N) are treated as (N, 1).
/// - Each epoch: a permutation of the rows (if `shuffle`), then for each
///   batch its gradient and step() (or a fused run of them, `fuse_steps`);
///   then the EpochLog is evaluated and recorded, and the callbacks run in
///   the order callbacks.h documents.
///   The model is in train() mode during the steps and eval() mode during
///   evaluation; its original mode is restored on return.
///
/// - Non-finite values: NaN or Inf in a batch loss or in a gradient stops
///   the run with c10::Error naming the epoch and the batch, before that
///   batch's step, so the parameters stay finite. When the optimizer skips
///   such steps itself (normopt::optim's `skip_nonfinite` option), fit()
///   lets it: the step is skipped with a warning and training goes on. A
///   non-finite statistic (input mean/variance, target mean/scale) or
///   end-of-epoch training loss also throws.
///
/// Throws c10::Error for epochs < 1, batch_size < 0, checkpoint_every < 1, a
/// negative patience or min_delta, an empty table, features and targets
/// with different row counts, a feature count the model does not take, a
/// model without parameters, an optimizer holding none of them, predictions
/// whose shape differs from the targets', NaN/Inf in the data, the
/// non-finite values above, a checkpoint that cannot be written (see
/// `checkpoint_path`) and one that cannot be resumed (see `resume_from`).
/// The validation table gets the same checks.
NORMOPT_API History fit(nn::StandardizedRegressor& model,
                        torch::optim::Optimizer& optimizer,
                        const data::Table& train,
                        const FitOptions& options = {});

/// fit() on data larger than memory: `train` (e.g. data::CsvReader) is read
/// again for every epoch, through a shuffle buffer of
/// options.shuffle_buffer() rows, and once more after each epoch for the
/// training loss over every row. Before the first epoch: missing statistics
/// take one pass (StandardizedRegressor::fit_statistics(stream)), and one
/// pass counts the rows. The same History
/// columns, callbacks, checkpoints and checks as fit(Table) (the data
/// checks on each part as it is read, the first one up front). With
/// shuffle_buffer >= N, the run equals fit() on the whole table, up to the
/// summation order of the losses (relative 1e-12). Memory: the buffer, one
/// part, the model and the validation table. batch_size must be >= 1 (a
/// full batch would hold every row).
NORMOPT_API History fit(nn::StandardizedRegressor& model,
                        torch::optim::Optimizer& optimizer,
                        data::TableStream& train,
                        const FitOptions& options = {});

}  // namespace normopt::train
