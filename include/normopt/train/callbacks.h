#pragma once

/// Callbacks: code that fit() runs at fixed points of training, the way
/// Keras's callbacks do. fit()'s own features (progress bar, schedulers,
/// early stopping, checkpoints) are callbacks too, and
/// normopt::distributed::fit adds its all-reduces as callbacks, so a
/// caller's callbacks compose with all of them.
///
/// \code
///   // Stop once the training MSE is below a target, and log every epoch.
///   struct StopBelow : normopt::train::Callback {
///     double target;
///     explicit StopBelow(double t) : target(t) {}
///     void on_epoch_end(normopt::train::FitState& state,
///                       const normopt::train::EpochLog& log) override {
///       if (log.train_mse < target) {
///         state.request_stop();
///       }
///     }
///   };
///   auto options = normopt::train::FitOptions().epochs(500).callbacks(
///       {std::make_shared<StopBelow>(1e6),
///        normopt::train::on_epoch_end([](const normopt::train::EpochLog& e) {
///          std::printf("%lld %g\n", static_cast<long long>(e.epoch),
///                      e.train_mse);
///        })});
/// \endcode
///
/// Order of the calls in one fit():
///
///     on_train_begin
///     for each epoch:
///       on_epoch_begin
///       for each batch: (gradients computed) before_step, optimizer.step()
///       (losses evaluated) on_epoch_measured, (History records it)
///       on_epoch_end   (a callback may request_stop() here)
///     on_train_end     (not when fit() throws)
///
/// When fit() resumes a checkpoint, on_resume_epoch is called for each saved
/// epoch, in order, before on_train_begin: callbacks whose state follows
/// from the epochs' losses (schedulers, early stopping) rebuild it there.
/// fit() calls its progress bar first, then the caller's callbacks in list
/// order, then the learning-rate schedulers, early stopping and the
/// checkpoint (which therefore sees whether the run stops, and the
/// schedulers' new learning rates). Exceptions from a callback propagate
/// out of fit().

#include <normopt/macros.h>
#include <normopt/nn/standardized_regressor.h>
#include <normopt/train/history.h>
#include <torch/optim/optimizer.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace normopt::train {

struct FitOptions;
namespace detail {
struct FitStateAccess;
}

/// What a callback sees of the run in progress.
struct NORMOPT_API FitState {
  FitState(nn::StandardizedRegressor& model,
           torch::optim::Optimizer& optimizer,
           const FitOptions& options,
           History& history)
      : model(model),
        optimizer(optimizer),
        options(options),
        history(history) {}

  /// The model being trained.
  nn::StandardizedRegressor& model;
  /// Its optimizer.
  torch::optim::Optimizer& optimizer;
  /// The options fit() was called with.
  const FitOptions& options;
  /// The epochs so far (in on_epoch_end: the current one included).
  History& history;
  /// The epoch in progress (1-based); in on_resume_epoch, the saved one.
  int64_t epoch = 0;
  /// The batch in progress (1-based; 0 before an epoch's first step) and
  /// the batches per epoch.
  int64_t batch = 0;
  int64_t batches = 0;
  /// Rows of the training table on this process, and of the validation
  /// table (0 without one).
  int64_t train_rows = 0;
  int64_t validation_rows = 0;

  /// Asks fit() to end after the current epoch (from on_epoch_end). Ignored
  /// at the last planned epoch; otherwise History::stopped_early becomes
  /// true.
  void request_stop();
  /// Whether a callback asked to stop after this epoch.
  bool stop_requested() const {
    return stop_;
  }

 private:
  friend class Callback;
  friend struct detail::FitStateAccess;
  bool stop_ = false;
  // How many calls reached Callback::before_step's own (empty) body.
  int64_t default_before_steps_ = 0;
};

/// Base class of fit()'s callbacks; every hook does nothing by default.
class NORMOPT_API Callback {
 public:
  virtual ~Callback() = default;

  /// Once a resumed run has replayed its saved epochs (and before the first
  /// epoch of a new one).
  virtual void on_train_begin(FitState& /*state*/) {}
  /// For each epoch of the History a resumed run starts from, in order.
  virtual void on_resume_epoch(FitState& /*state*/, const EpochLog& /*log*/) {}
  /// At the start of each epoch, before its first batch.
  virtual void on_epoch_begin(FitState& /*state*/) {}
  /// For each batch, once its gradients are in .grad() and before
  /// optimizer.step(); `rows` is the batch's row count. The place to
  /// combine gradients across processes or clip them. While no callback
  /// overrides it, fit() may take an affine model's steps in fused runs
  /// (FitOptions::fuse_steps), without calling it; an override must not
  /// call this base version, which is how fit() tells.
  virtual void before_step(FitState& state, int64_t rows);
  /// After each epoch's losses are evaluated, before the History records
  /// the log; the log may be changed (distributed::fit makes its losses the
  /// union's here, so everything after sees the same numbers on every
  /// rank).
  virtual void on_epoch_measured(FitState& /*state*/, EpochLog& /*log*/) {}
  /// After the History recorded the epoch.
  virtual void on_epoch_end(FitState& /*state*/, const EpochLog& /*log*/) {}
  /// When training ends normally (also after early stopping).
  virtual void on_train_end(FitState& /*state*/) {}
};

/// A callback that calls `function` with each epoch's log in on_epoch_end.
NORMOPT_API std::shared_ptr<Callback> on_epoch_end(
    std::function<void(const EpochLog&)> function);

/// A callback that writes the History so far every `every` epochs and when
/// training ends: as CSV to `csv_path` and, unless empty, as JSON to
/// `json_path` (named `run_name`), each replaced atomically
/// (History::write_csv, write_json), so a long run can be watched, or
/// plotted, while it trains. Throws c10::Error for an empty `csv_path` or
/// `every` < 1; a failed write throws out of fit().
NORMOPT_API std::shared_ptr<Callback> write_history(std::string csv_path,
                                                    std::string json_path = "",
                                                    std::string run_name = "",
                                                    int64_t every = 1);

}  // namespace normopt::train
