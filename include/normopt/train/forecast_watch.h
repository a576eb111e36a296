#pragma once

/// Watches a run against diagnose()'s forecast and warns once, with the
/// fix, when it falls behind: a Callback for fit(), or observe() in a plain
/// loop. It compares at steps 200, 400, 800, ... (doubling), so a run of
/// any length costs it a few comparisons.
///
/// \code
///   auto forecast = train::diagnose(model, adam, table,
///                                   train::DiagnoseOptions::for_fit(o, n));
///   auto watch = std::make_shared<train::ForecastWatch>(forecast);
///   train::fit(model, adam, table, o.callbacks({watch}));
///   // or, in a plain loop, after each step (mse in original units, when
///   // it is cheap to have):
///   watch->observe(step, mse);
/// \endcode

#include <normopt/macros.h>
#include <normopt/train/callbacks.h>
#include <normopt/train/diagnostics.h>

#include <cstdint>
#include <string>

namespace normopt::train {

/// Warns (TORCH_WARN, once) when the observed training MSE is more than
/// `kBehind` times the forecast at the same step.
class NORMOPT_API ForecastWatch : public Callback {
 public:
  static constexpr double kBehind = 2.0;
  /// `forecast` from diagnose(); the first comparison at `first_check`.
  explicit ForecastWatch(Diagnosis forecast, int64_t first_check = 200);

  /// The training MSE (original units) after `step` optimizer steps;
  /// compares it when a check is due. Returns true when it warns now.
  bool observe(int64_t step, double mse);
  /// Whether it has warned.
  bool warned() const {
    return !warning_.empty();
  }
  /// The warning's text (empty until it warns).
  const std::string& warning() const {
    return warning_;
  }

  /// fit(): compares the epoch's train_mse at step epoch × batches.
  void on_epoch_end(FitState& state, const EpochLog& log) override;

 private:
  Diagnosis forecast_;
  int64_t next_check_;
  std::string warning_;
};

}  // namespace normopt::train
