#include <normopt/train/callbacks.h>
#include <normopt/train/fit.h>

#include "callbacks.h"
#include "checkpoint.h"

#include <cstdio>
#include <limits>
#include <string>
#include <utility>

#if defined(_WIN32)
#include <io.h>
#else
#include <unistd.h>
#endif

namespace normopt::train {

void FitState::request_stop() {
  if (epoch < options.epochs()) {
    stop_ = true;
    history.stopped_early = true;
  }
}

void Callback::before_step(FitState& state, int64_t /*rows*/) {
  ++state.default_before_steps_;
}

namespace {

class EpochEndFunction final : public Callback {
 public:
  explicit EpochEndFunction(std::function<void(const EpochLog&)> function)
      : function_(std::move(function)) {}
  void on_epoch_end(FitState& /*state*/, const EpochLog& log) override {
    function_(log);
  }

 private:
  std::function<void(const EpochLog&)> function_;
};

bool stderr_is_terminal() {
#if defined(_WIN32)
  return _isatty(_fileno(stderr)) != 0;
#else
  return ::isatty(::fileno(stderr)) != 0;
#endif
}

// The loss early stopping and ReduceLROnPlateau watch: the validation loss
// when there is validation data, else the training loss.
double monitored_loss(const FitState& state, const EpochLog& log) {
  return state.options.validation() ? log.val_loss : log.train_loss;
}

// A one-line progress bar on stderr, ended with a newline however fit()
// leaves (the callback list is destroyed on every exit).
class ProgressBar final : public Callback {
 public:
  ProgressBar() = default;
  ~ProgressBar() override {
    if (drawn_) {
      std::fputc('\n', stderr);
      std::fflush(stderr);
    }
  }
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void on_epoch_end(FitState& state, const EpochLog& log) override {
    constexpr int64_t kWidth = 30;
    const int64_t epochs = state.options.epochs();
    const int64_t filled = kWidth * log.epoch / epochs;
    std::string bar(static_cast<size_t>(filled), '=');
    bar.resize(static_cast<size_t>(kWidth), ' ');
    std::fprintf(stderr,
                 "\repoch %lld/%lld [%s] loss %.4g",
                 static_cast<long long>(log.epoch),
                 static_cast<long long>(epochs),
                 bar.c_str(),
                 log.train_loss);
    if (state.options.validation()) {
      std::fprintf(stderr, " val_loss %.4g", log.val_loss);
    }
    std::fprintf(stderr, " lr %.3g %.1fs ", log.lr, log.wall_seconds);
    std::fflush(stderr);
    drawn_ = true;
  }

 private:
  bool drawn_ = false;
};

// Steps an LRScheduler once per epoch; replays the saved epochs on resume.
class SchedulerStep final : public Callback {
 public:
  explicit SchedulerStep(std::shared_ptr<torch::optim::LRScheduler> scheduler)
      : scheduler_(std::move(scheduler)) {}
  void on_resume_epoch(FitState& /*state*/, const EpochLog& /*log*/) override {
    scheduler_->step();
  }
  void on_epoch_end(FitState& /*state*/, const EpochLog& /*log*/) override {
    scheduler_->step();
  }

 private:
  std::shared_ptr<torch::optim::LRScheduler> scheduler_;
};

// Feeds ReduceLROnPlateau the monitored loss once per epoch.
class PlateauStep final : public Callback {
 public:
  explicit PlateauStep(
      std::shared_ptr<torch::optim::ReduceLROnPlateauScheduler> plateau)
      : plateau_(std::move(plateau)) {}
  void on_resume_epoch(FitState& state, const EpochLog& log) override {
    plateau_->step(static_cast<float>(monitored_loss(state, log)));
  }
  void on_epoch_end(FitState& state, const EpochLog& log) override {
    plateau_->step(static_cast<float>(monitored_loss(state, log)));
  }

 private:
  std::shared_ptr<torch::optim::ReduceLROnPlateauScheduler> plateau_;
};

// Stops when the monitored loss has not improved by more than min_delta for
// `patience` consecutive epochs.
class EarlyStopping final : public Callback {
 public:
  EarlyStopping(int64_t patience, double min_delta)
      : patience_(patience), min_delta_(min_delta) {}
  void on_resume_epoch(FitState& state, const EpochLog& log) override {
    update(monitored_loss(state, log));
  }
  void on_epoch_end(FitState& state, const EpochLog& log) override {
    if (update(monitored_loss(state, log))) {
      state.request_stop();
    }
  }

 private:
  // Records an epoch's monitored loss; true when patience ran out.
  bool update(double monitored) {
    if (monitored < best_ - min_delta_) {
      best_ = monitored;
      epochs_without_improvement_ = 0;
      return false;
    }
    return ++epochs_without_improvement_ >= patience_;
  }

  int64_t patience_;
  double min_delta_;
  double best_ = std::numeric_limits<double>::infinity();
  int64_t epochs_without_improvement_ = 0;
};

// Saves a checkpoint every `checkpoint_every` epochs, at the last epoch and
// when the run stops early.
class Checkpointing final : public Callback {
 public:
  void on_epoch_end(FitState& state, const EpochLog& log) override {
    const auto& options = state.options;
    if (state.stop_requested() || log.epoch == options.epochs() ||
        log.epoch % options.checkpoint_every() == 0) {
      detail::save_checkpoint(options.checkpoint_path(),
                              {state.model,
                               &state.optimizer,
                               &options,
                               &state.history,
                               options.validation().has_value()});
    }
  }
};

// Writes the History so far as CSV (and JSON).
class HistoryWriter final : public Callback {
 public:
  HistoryWriter(std::string csv_path,
                std::string json_path,
                std::string run_name,
                int64_t every)
      : csv_path_(std::move(csv_path)),
        json_path_(std::move(json_path)),
        run_name_(std::move(run_name)),
        every_(every) {}
  void on_epoch_end(FitState& state, const EpochLog& log) override {
    if (log.epoch % every_ == 0) {
      write(state.history);
    }
  }
  void on_train_end(FitState& state) override {
    write(state.history);
  }

 private:
  void write(const History& history) const {
    history.write_csv(csv_path_);
    if (!json_path_.empty()) {
      history.write_json(json_path_, run_name_);
    }
  }

  std::string csv_path_, json_path_, run_name_;
  int64_t every_;
};

}  // namespace

std::shared_ptr<Callback> write_history(std::string csv_path,
                                        std::string json_path,
                                        std::string run_name,
                                        int64_t every) {
  TORCH_CHECK(!csv_path.empty(),
              "train::write_history: csv_path is empty; give the file the "
              "History is written to");
  TORCH_CHECK(every >= 1,
              "train::write_history: every must be at least 1 (epochs "
              "between writes), got ",
              every);
  return std::make_shared<HistoryWriter>(
      std::move(csv_path), std::move(json_path), std::move(run_name), every);
}

std::shared_ptr<Callback> on_epoch_end(
    std::function<void(const EpochLog&)> function) {
  TORCH_CHECK(function != nullptr,
              "train::on_epoch_end: the function is empty; pass a callable");
  return std::make_shared<EpochEndFunction>(std::move(function));
}

namespace detail {

std::vector<std::shared_ptr<Callback>> fit_callbacks(
    const FitOptions& options) {
  std::vector<std::shared_ptr<Callback>> list;
  if (options.progress() == Progress::kOn ||
      (options.progress() == Progress::kAuto && stderr_is_terminal())) {
    list.push_back(std::make_shared<ProgressBar>());
  }
  for (const auto& callback : options.callbacks()) {
    TORCH_CHECK(callback != nullptr,
                "fit: FitOptions::callbacks holds a null callback; pass "
                "std::make_shared<YourCallback>(...)");
    list.push_back(callback);
  }
  if (options.scheduler()) {
    list.push_back(std::make_shared<SchedulerStep>(options.scheduler()));
  }
  if (options.plateau()) {
    list.push_back(std::make_shared<PlateauStep>(options.plateau()));
  }
  if (options.early_stopping_patience() > 0) {
    list.push_back(std::make_shared<EarlyStopping>(
        options.early_stopping_patience(), options.early_stopping_min_delta()));
  }
  if (!options.checkpoint_path().empty()) {
    list.push_back(std::make_shared<Checkpointing>());
  }
  return list;
}

}  // namespace detail
}  // namespace normopt::train
