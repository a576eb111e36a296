#include <normopt/train/fit.h>

#include "../util/finite.h"
#include "batches.h"
#include "callbacks.h"
#include "checkpoint.h"
#include "checks.h"
#include "fused_steps.h"
#include "mode_guard.h"
#include "objective.h"
#include "training_rows.h"

#include <normopt/nn/affine.h>
#include <normopt/optim/describe.h>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <utility>

namespace normopt::train {

namespace {

// Fails on a non-finite statistic. Statistics overflow only on extreme data
// (variance beyond the dtype's range) or when they were set by hand; either
// way nothing can train.
void check_statistics(const nn::StandardizedRegressor& model) {
  if (auto bad = util::first_nonfinite_named(model->named_buffers())) {
    TORCH_CHECK(false,
                "fit: the model's statistic '",
                bad->first,
                "' element ",
                at::IntArrayRef(bad->second),
                " is NaN or Inf; the data's values are too large for its "
                "dtype (convert it to float64 or rescale it) or the statistic "
                "was set by hand");
  }
}

History fit_rows(nn::StandardizedRegressor& model,
                 torch::optim::Optimizer& optimizer,
                 detail::TrainingRows& data,
                 const FitOptions& options,
                 std::optional<detail::ResumePoint> resume);

}  // namespace

namespace {

// The two kinds of training data, for prepare(): the whole statistics, the
// inputs' and the targets'.
void fit_statistics(nn::StandardizedRegressor& model, const data::Table& t) {
  model->fit_statistics(t.features, t.targets);
}
void fit_statistics(nn::StandardizedRegressor& model, data::TableStream& s) {
  model->fit_statistics(s);
}
const at::Tensor& inputs_of(const data::Table& t) {
  return t.features;
}
const at::Tensor& targets_of(const data::Table& t) {
  return t.targets;
}
data::TableStream& inputs_of(data::TableStream& s) {
  return s;
}
data::TableStream& targets_of(data::TableStream& s) {
  return s;
}

// What both fit()s do before training: the resume point (resuming loads the
// model, statistics included, before anything else; read_checkpoint
// changes nothing unless the whole file matches this run), then the
// missing statistics from the training data (present ones are kept).
template <typename Train>
std::optional<detail::ResumePoint> prepare(nn::StandardizedRegressor& model,
                                           torch::optim::Optimizer& optimizer,
                                           Train& train,
                                           const FitOptions& options) {
  std::optional<detail::ResumePoint> resume;
  if (!options.resume_from().empty()) {
    resume = detail::read_checkpoint(options.resume_from(),
                                     model,
                                     optimizer,
                                     options,
                                     options.validation().has_value());
  }
  const bool need_inputs = !model->normalization->is_adapted();
  const bool need_targets = !model->target->is_fitted();
  if (need_inputs && need_targets) {
    fit_statistics(model, train);
  } else if (need_inputs) {
    model->normalization->adapt(inputs_of(train));
  } else if (need_targets) {
    model->target->fit(targets_of(train));
  }
  check_statistics(model);
  return resume;
}

}  // namespace

History fit(nn::StandardizedRegressor& model,
            torch::optim::Optimizer& optimizer,
            const data::Table& train,
            const FitOptions& options) {
  detail::check_fit_arguments(model, optimizer, train, options);
  auto resume = prepare(model, optimizer, train, options);
  auto rows = detail::table_rows(model, train, options);
  return fit_rows(model, optimizer, *rows, options, std::move(resume));
}

History fit(nn::StandardizedRegressor& model,
            torch::optim::Optimizer& optimizer,
            data::TableStream& train,
            const FitOptions& options) {
  TORCH_CHECK(options.batch_size() >= 1,
              "fit: training from a stream needs batch_size >= 1, got ",
              options.batch_size(),
              " (0, the full batch, would hold every row in memory); pass "
              "FitOptions().batch_size(B), or read the data whole with "
              "data::read_csv");
  TORCH_CHECK(options.shuffle_buffer() >= 1,
              "fit: shuffle_buffer must be at least 1 row, got ",
              options.shuffle_buffer());
  // The checks of fit(Table) on the first part.
  train.rewind();
  auto first = train.next();
  TORCH_CHECK(first.has_value(),
              "fit: the training stream yielded no rows; pass a stream over "
              "the training data");
  detail::check_fit_arguments(model, optimizer, *first, options);
  first.reset();
  auto resume = prepare(model, optimizer, train, options);
  // The row count, for the batches per epoch (one pass; the statistics'
  // counts may be those of other data when the model brought them).
  int64_t n = 0;
  train.rewind();
  while (auto part = train.next()) {
    n += part->size();
  }
  auto rows = detail::stream_rows(model, train, n, options);
  return fit_rows(model, optimizer, *rows, options, std::move(resume));
}

namespace {

// One epoch's steps: each block's batches one at a time (gradient,
// before_step callbacks, finiteness check, optimizer.step()) or, once
// nothing runs between two steps, in fused runs.
class EpochSteps {
 public:
  EpochSteps(nn::StandardizedRegressor& model,
             torch::optim::Optimizer& optimizer,
             const FitOptions& options,
             const std::vector<std::shared_ptr<Callback>>& callbacks,
             FitState& state)
      : model_(model),
        optimizer_(optimizer),
        callbacks_(callbacks),
        state_(state),
        // An affine regressor gets its MSE gradient in closed form;
        // anything else goes through autograd.
        linear_(options.analytic_gradients()
                    ? nn::as_affine(*model->regressor_module())
                    : nullptr),
        // A non-finite loss or gradient never reaches the parameters: fit()
        // stops before the step, or lets an optimizer that skips such steps
        // skip it.
        optimizer_skips_(optim::skips_nonfinite(optimizer)),
        fused_(linear_, optimizer, options) {
    for (const auto& p : model->named_parameters()) {
      named_params_.emplace_back(p.key(), p.value());
    }
  }

  void block(const detail::BatchBlock& block) {
    for (int64_t b = 0; b < block.batches;) {
      const int64_t next = fused_.run(block, b);
      state_.batch += next - b;
      b = next;
      if (b < block.batches) {
        step(block, b++);
      }
    }
  }

 private:
  void step(const detail::BatchBlock& block, int64_t b) {
    const auto [xb, yb] = block.batch_at(b);
    const int64_t batch = ++state_.batch;
    const auto check_prediction = [&](at::IntArrayRef predicted) {
      TORCH_CHECK(predicted == yb.sizes(),
                  "fit: the model predicts shape ",
                  predicted,
                  " for a batch whose targets have shape ",
                  yb.sizes(),
                  "; make the regressor's out_features match the number of "
                  "target columns");
    };
    double loss = 0;
    if (linear_) {
      check_prediction({xb.size(0), linear_->affine_weight().size(0)});
      loss = detail::linear_mse_gradient(*linear_, xb, yb);
    } else {
      optimizer_.zero_grad();
      auto prediction = model_->regressor.forward(xb);
      check_prediction(prediction.sizes());
      auto loss_tensor = at::mse_loss(prediction, yb);
      loss = loss_tensor.item<double>();
      loss_tensor.backward();
    }
    const auto defaults_before =
        detail::FitStateAccess::default_before_steps(state_);
    for (const auto& callback : callbacks_) {
      callback->before_step(state_, xb.size(0));
    }
    fused_.after_before_step(state_, callbacks_.size(), defaults_before);
    if (!optimizer_skips_) {
      detail::check_step_finite(
          loss, named_params_, state_.epoch, batch, state_.batches);
    }
    optimizer_.step();
  }

  nn::StandardizedRegressor& model_;
  torch::optim::Optimizer& optimizer_;
  const std::vector<std::shared_ptr<Callback>>& callbacks_;
  FitState& state_;
  const nn::Affine* linear_;
  bool optimizer_skips_;
  detail::FusedSteps fused_;
  std::vector<std::pair<std::string, at::Tensor>> named_params_;
};

// The validation table prepared once: inputs through the Normalization,
// float64 standardized targets.
struct Validation {
  at::Tensor x, y_std64, scale64;
};

Validation prepare_validation(nn::StandardizedRegressor& model,
                              const FitOptions& options) {
  const auto data_options = detail::data_options_of(model);
  const auto eval_options = data_options.dtype(at::kDouble);
  Validation v;
  v.scale64 = model->target->scale.to(eval_options);
  if (const auto& validation = options.validation()) {
    v.x = detail::prepared_inputs(model, validation->features, data_options);
    v.y_std64 =
        detail::prepared_targets(model, validation->targets, eval_options);
  }
  return v;
}

// The epoch's losses over the whole sets (the model in eval() mode).
void measure(nn::StandardizedRegressor& model,
             detail::TrainingRows& data,
             const Validation& validation,
             EpochLog& log) {
  model->eval();
  std::tie(log.train_loss, log.train_mse) = data.evaluate();
  TORCH_CHECK(std::isfinite(log.train_loss),
              "fit: the training loss evaluated after epoch ",
              log.epoch,
              " is ",
              std::isnan(log.train_loss) ? "NaN" : "Inf",
              "; the step of batch ",
              data.batches,
              " (the last) diverged: lower the learning rate or standardize "
              "the targets (TargetScaling::kZScore)");
  log.val_loss = log.val_mse = std::numeric_limits<double>::quiet_NaN();
  if (validation.x.defined()) {
    std::tie(log.val_loss, log.val_mse) = detail::evaluate(
        *model, validation.x, validation.y_std64, validation.scale64);
  }
}

// A resumed run: the callbacks whose state follows from the epochs' losses
// (schedulers, early stopping) replay the saved epochs; the schedulers'
// moves of the learning rates are then overwritten by the optimizer's saved
// options, which hold the same values. Returns the saved wall time.
double resume_run(detail::ResumePoint& resume,
                  torch::optim::Optimizer& optimizer,
                  const std::vector<std::shared_ptr<Callback>>& callbacks,
                  FitState& state,
                  History& history) {
  for (const auto& log : resume.history.epochs) {
    state.epoch = log.epoch;
    for (const auto& callback : callbacks) {
      callback->on_resume_epoch(state, log);
    }
  }
  detail::restore(resume, optimizer);
  history = std::move(resume.history);
  return history.epochs.back().wall_seconds;
}

History fit_rows(nn::StandardizedRegressor& model,
                 torch::optim::Optimizer& optimizer,
                 detail::TrainingRows& data,
                 const FitOptions& options,
                 std::optional<detail::ResumePoint> resume) {
  const auto validation = prepare_validation(model, options);
  // Training needs autograd even when the caller holds a NoGradGuard.
  at::AutoGradMode enable_grad(true);
  detail::ModeGuard mode_guard(*model);
  const auto callbacks = detail::fit_callbacks(options);
  History history;
  history.optimum_mse = options.optimum_mse();
  FitState state(model, optimizer, options, history);
  state.batches = data.batches;
  state.train_rows = data.rows;
  state.validation_rows =
      validation.x.defined() ? validation.x.size(0) : int64_t{0};
  using Clock = std::chrono::steady_clock;
  auto start_time = Clock::now();
  if (resume) {
    start_time -= std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(
            resume_run(*resume, optimizer, callbacks, state, history)));
  }
  for (const auto& callback : callbacks) {
    callback->on_train_begin(state);
  }
  const bool finished = !history.epochs.empty() &&
                        (history.stopped_early ||
                         history.epochs.back().epoch == options.epochs());
  const int64_t first_epoch =
      history.epochs.empty() ? 1 : history.epochs.back().epoch + 1;
  EpochSteps steps(model, optimizer, options, callbacks, state);
  for (int64_t epoch = first_epoch; !finished && epoch <= options.epochs();
       ++epoch) {
    state.epoch = epoch;
    state.batch = 0;
    EpochLog log;
    log.epoch = epoch;
    log.lr = optim::describe(optimizer).lr;
    for (const auto& callback : callbacks) {
      callback->on_epoch_begin(state);
    }
    model->train(true);
    data.for_each_block(
        epoch, [&](const detail::BatchBlock& block) { steps.block(block); });
    measure(model, data, validation, log);
    for (const auto& callback : callbacks) {
      callback->on_epoch_measured(state, log);
    }
    log.wall_seconds =
        std::chrono::duration<double>(Clock::now() - start_time).count();
    history.epochs.push_back(log);
    for (const auto& callback : callbacks) {
      callback->on_epoch_end(state, log);
    }
    if (state.stop_requested()) {
      break;
    }
  }
  for (const auto& callback : callbacks) {
    callback->on_train_end(state);
  }
  return history;
}

}  // namespace

}  // namespace normopt::train
