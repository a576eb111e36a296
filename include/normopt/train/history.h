#pragma once

/// What a fit() run measured, epoch by epoch: `EpochLog`, the one table of
/// its fields (`kEpochLogFields`), and `History` with its CSV and JSON
/// writers.
///
/// \code
///   auto history = normopt::train::fit(model, adam, table, options);
///   history.write_csv("history.csv");
///   for (const auto& field : normopt::train::kEpochLogFields) {
///     std::printf("%s = %g\n", field.name,
///                 history.epochs.back().*field.member);
///   }
/// \endcode

#include <normopt/macros.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace normopt::train {

/// What one epoch of fit() measured. Losses are evaluated on the whole set
/// after the epoch's last step, without gradients and in eval() mode.
struct NORMOPT_API EpochLog {
  /// 1-based epoch number.
  int64_t epoch = 0;
  /// Training loss: MSE in standardized target units (what the optimizer
  /// minimizes), over the whole training set.
  double train_loss = 0;
  /// Training MSE in the targets' original units (e.g. dollars²):
  /// model->predict(x) against the raw targets.
  double train_mse = 0;
  /// Validation loss (standardized units); NaN without validation data.
  double val_loss = 0;
  /// Validation MSE in original units; NaN without validation data.
  double val_mse = 0;
  /// Learning rate of param group 0 during this epoch (before any scheduler
  /// step); NaN when the optimizer's options do not implement get_lr().
  double lr = 0;
  /// Seconds since fit() started, at the end of this epoch.
  double wall_seconds = 0;
};

/// How a measured field combines over the ranks of a distributed run.
enum class Combine {
  /// A mean over the training rows: the row-weighted mean of the ranks'.
  kTrainRows,
  /// A mean over the validation rows: the row-weighted mean of the ranks'.
  kValidationRows,
  /// The same on every rank (learning rate, time): kept as measured.
  kSame,
};

/// One measured field of EpochLog: its name (CSV column, JSON key) and
/// member.
struct EpochLogField {
  const char* name;
  double EpochLog::*member;
  Combine combine;
};

/// Every field of EpochLog after `epoch`, in column order. The CSV and JSON
/// writers, the checkpoint's History tensor and distributed::fit's
/// all-reduce are all driven by this table: a new column is one line here
/// (and its member above).
inline constexpr std::array<EpochLogField, 6> kEpochLogFields{{
    {"train_loss", &EpochLog::train_loss, Combine::kTrainRows},
    {"train_mse", &EpochLog::train_mse, Combine::kTrainRows},
    {"val_loss", &EpochLog::val_loss, Combine::kValidationRows},
    {"val_mse", &EpochLog::val_mse, Combine::kValidationRows},
    {"lr", &EpochLog::lr, Combine::kSame},
    {"wall_seconds", &EpochLog::wall_seconds, Combine::kSame},
}};

/// The per-epoch record of a fit() run.
struct NORMOPT_API History {
  /// One entry per completed epoch, in order.
  std::vector<EpochLog> epochs;
  /// FitOptions::optimum_mse of the run, if it was given.
  std::optional<double> optimum_mse;
  /// True when the run ended before the planned epochs because a callback
  /// asked it to (early stopping, or one of the caller's).
  bool stopped_early = false;

  /// train_mse of the last epoch minus the optimum; NaN when the optimum is
  /// unknown or there are no epochs.
  double gap_to_optimum() const;

  /// Last train_mse / optimum - 1 (0.01: 1% above the optimum); NaN when
  /// the optimum is unknown or there are no epochs. Meaningless when the
  /// optimum is 0 up to rounding (LeastSquares::exact): use
  /// gap_to_optimum() then.
  double relative_gap() const;

  /// Writes the epochs as CSV: the header `epoch` then kEpochLogFields'
  /// names (`epoch,train_loss,train_mse,val_loss,val_mse,lr,wall_seconds`),
  /// then one row per epoch, numbers with 17 significant digits (exact round
  /// trip, independent of the C locale), NaN as `nan`. The file is written
  /// to a new temporary file beside `path` and renamed over it, so an
  /// existing file is never left half-written, and concurrent writers never
  /// mix. Throws c10::Error naming the path and the OS reason when a step
  /// fails.
  void write_csv(const std::string& path) const;

  /// Writes `{"run": run_name, "optimum_mse": x|null, "stopped_early": bool,
  /// "epochs": [{"epoch": 1, "train_loss": ..., ...}, ...]}` with the CSV's
  /// keys; NaN and infinities become null. Same atomic replacement and
  /// errors as write_csv().
  void write_json(const std::string& path, const std::string& run_name) const;
};

}  // namespace normopt::train
