#include <normopt/train/fit.h>

#include "../nn/checks.h"
#include "batches.h"
#include "builtin_callbacks.h"
#include "checkpoint.h"
#include "checks.h"
#include "mode_guard.h"
#include "objective.h"

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

// What the epoch loop trains on: the epoch's batches (normalized inputs and
// standardized targets, on the model's dtype and device), and the losses
// over every row. Two kinds: a Table in memory, and a TableStream.
class TrainingRows {
 public:
  virtual ~TrainingRows() = default;
  int64_t rows = 0;
  int64_t batches = 0;
  using Step = std::function<void(const at::Tensor& xb, const at::Tensor& yb)>;
  /// Calls step() on each batch of `epoch`, in order.
  virtual void for_each_batch(int64_t epoch, const Step& step) = 0;
  /// (loss, mse) over every row with the model as it is.
  virtual std::pair<double, double> evaluate() = 0;
};

// Fails on a non-finite statistic. Statistics overflow only on extreme data
// (variance beyond the dtype's range) or when they were set by hand; either
// way nothing can train.
void check_statistics(const nn::StandardizedRegressor& model) {
  if (auto bad = nn::detail::first_nonfinite_named(model->named_buffers())) {
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

at::TensorOptions data_options_of(const nn::StandardizedRegressor& model) {
  const auto params = model->parameters();
  return at::TensorOptions()
      .dtype(params[0].scalar_type())
      .device(params[0].device());
}

// A Table in memory. The input Normalization's statistics stay fixed while
// the regressor trains, so the inputs are normalized once here:
// model->forward(x) == regressor(normalization(x)). Losses are evaluated in
// float64.
class TableRows : public TrainingRows {
 public:
  TableRows(nn::StandardizedRegressor& model,
            const data::Table& train,
            const FitOptions& options)
      : model_(model),
        options_(options),
        generator_(at::make_generator<at::CPUGeneratorImpl>(options.seed())) {
    const auto data_options = data_options_of(model);
    at::NoGradGuard no_grad;
    x_ = model->normalization->forward(train.features.to(data_options));
    y_std_ = model->transform_targets(
        detail::as_matrix(train.targets).to(data_options));
    const auto eval_options = data_options.dtype(at::kDouble);
    y_std64_ = model->transform_targets(
        detail::as_matrix(train.targets).to(eval_options));
    scale64_ = model->target->scale.to(eval_options);
    rows = x_.size(0);
    batch_ = detail::batch_rows(rows, options.batch_size());
    batches = detail::batches_per_epoch(rows, options.batch_size());
  }

  void for_each_batch(int64_t epoch, const Step& step) override {
    // Epoch e's order is drawn from seed + e; a single full batch is not
    // permuted: its order cannot change the step.
    at::Tensor order;
    if (options_.shuffle() && batches > 1) {
      order = detail::epoch_permutation(
                  generator_, options_.seed(), epoch, rows, true)
                  .to(x_.device());
    }
    for (int64_t b = 0; b < batches; ++b) {
      const int64_t start = b * batch_;
      const int64_t len = std::min(batch_, rows - start);
      if (order.defined()) {
        auto picked = order.narrow(0, start, len);
        step(x_.index_select(0, picked), y_std_.index_select(0, picked));
      } else {
        step(x_.narrow(0, start, len), y_std_.narrow(0, start, len));
      }
    }
  }

  std::pair<double, double> evaluate() override {
    return detail::evaluate(*model_, x_, y_std64_, scale64_);
  }

 private:
  nn::StandardizedRegressor& model_;
  const FitOptions& options_;
  at::Generator generator_;
  at::Tensor x_, y_std_, y_std64_, scale64_;
  int64_t batch_ = 0;
};

// A TableStream, read again each epoch: rows go through a shuffle buffer of
// options.shuffle_buffer() rows (each filled buffer permuted with the
// epoch's generator; the rows of a last incomplete batch carried to the
// next buffer), then into batches of batch_size rows; the last batch of the
// epoch holds the rest. With a buffer of at least N rows this is the
// Table's order exactly.
class StreamRows : public TrainingRows {
 public:
  StreamRows(nn::StandardizedRegressor& model,
             data::TableStream& stream,
             int64_t n_rows,
             const FitOptions& options)
      : model_(model),
        stream_(stream),
        options_(options),
        generator_(at::make_generator<at::CPUGeneratorImpl>(options.seed())) {
    rows = n_rows;
    batch_ = detail::batch_rows(rows, options.batch_size());
    batches = detail::batches_per_epoch(rows, options.batch_size());
    buffer_rows_ = std::max(options.shuffle_buffer(), batch_);
  }

  void for_each_batch(int64_t epoch, const Step& step) override {
    const auto data_options = data_options_of(model_);
    const bool shuffle = options_.shuffle() && batches > 1;
    bool first_draw = true;
    // Held rows, normalized and standardized as they arrive.
    std::vector<at::Tensor> xs, ys;
    int64_t held = 0;
    // Steps through the held rows (permuted when shuffling); keeps the rows
    // of a last incomplete batch, unless `last`.
    const auto flush = [&](bool last) {
      if (held == 0) {
        return;
      }
      auto x = xs.size() == 1 ? xs[0] : at::cat(xs);
      auto y = ys.size() == 1 ? ys[0] : at::cat(ys);
      xs.clear();
      ys.clear();
      if (shuffle) {
        const auto order =
            detail::epoch_permutation(
                generator_, options_.seed(), epoch, held, first_draw)
                .to(x.device());
        first_draw = false;
        x = x.index_select(0, order);
        y = y.index_select(0, order);
      }
      int64_t start = 0;
      for (; start + batch_ <= held || (last && start < held);
           start += batch_) {
        const int64_t len = std::min(batch_, held - start);
        step(x.narrow(0, start, len), y.narrow(0, start, len));
      }
      if (start < held) {
        xs.push_back(x.narrow(0, start, held - start));
        ys.push_back(y.narrow(0, start, held - start));
      }
      held = std::max<int64_t>(held - start, 0);
    };
    stream_.rewind();
    while (auto part = stream_.next()) {
      detail::check_table(model_, *part, "fit", "training");
      {
        at::NoGradGuard no_grad;
        xs.push_back(
            model_->normalization->forward(part->features.to(data_options)));
        ys.push_back(model_->transform_targets(
            detail::as_matrix(part->targets).to(data_options)));
      }
      held += part->size();
      if (held >= buffer_rows_) {
        flush(false);
      }
    }
    flush(true);
  }

  std::pair<double, double> evaluate() override {
    const auto eval_options = data_options_of(model_).dtype(at::kDouble);
    const auto scale64 = model_->target->scale.to(eval_options);
    double loss_sum = 0, mse_sum = 0, count = 0;
    stream_.rewind();
    while (auto part = stream_.next()) {
      at::Tensor x, y64;
      {
        at::NoGradGuard no_grad;
        x = model_->normalization->forward(
            part->features.to(data_options_of(model_)));
        y64 = model_->transform_targets(
            detail::as_matrix(part->targets).to(eval_options));
      }
      const auto [loss, mse] = detail::evaluate(*model_, x, y64, scale64);
      const auto n = static_cast<double>(y64.numel());
      loss_sum += loss * n;
      mse_sum += mse * n;
      count += n;
    }
    return {loss_sum / count, mse_sum / count};
  }

 private:
  nn::StandardizedRegressor& model_;
  data::TableStream& stream_;
  const FitOptions& options_;
  at::Generator generator_;
  int64_t batch_ = 0;
  int64_t buffer_rows_ = 0;
};

History fit_rows(nn::StandardizedRegressor& model,
                 torch::optim::Optimizer& optimizer,
                 TrainingRows& data,
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
  TableRows rows(model, train, options);
  return fit_rows(model, optimizer, rows, options, std::move(resume));
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
  StreamRows rows(model, train, n, options);
  return fit_rows(model, optimizer, rows, options, std::move(resume));
}

namespace {

History fit_rows(nn::StandardizedRegressor& model,
                 torch::optim::Optimizer& optimizer,
                 TrainingRows& data,
                 const FitOptions& options,
                 std::optional<detail::ResumePoint> resume) {
  const auto& validation = options.validation();
  const auto params = model->parameters();
  const auto data_options = data_options_of(model);
  const auto eval_options = data_options.dtype(at::kDouble);
  at::Tensor xv, yv_std64;
  const auto target_scale64 = model->target->scale.to(eval_options);
  if (validation) {
    at::NoGradGuard no_grad;
    xv = model->normalization->forward(validation->features.to(data_options));
    yv_std64 = model->transform_targets(
        detail::as_matrix(validation->targets).to(eval_options));
  }

  // An affine regressor gets its MSE gradient in closed form; anything else
  // goes through autograd.
  const nn::Affine* linear = options.analytic_gradients()
                                 ? nn::as_affine(*model->regressor_module())
                                 : nullptr;
  // A non-finite loss or gradient never reaches the parameters: fit() stops
  // before the step, or lets an optimizer that skips such steps skip it.
  const bool optimizer_skips = optim::skips_nonfinite(optimizer);
  std::vector<std::pair<std::string, at::Tensor>> named_params;
  for (const auto& p : model->named_parameters()) {
    named_params.emplace_back(p.key(), p.value());
  }

  const int64_t batches = data.batches;

  // Training needs autograd even when the caller holds a NoGradGuard.
  at::AutoGradMode enable_grad(true);
  detail::ModeGuard mode_guard(*model);
  const auto callbacks = detail::fit_callbacks(options);
  History history;
  history.optimum_mse = options.optimum_mse();
  FitState state(model, optimizer, options, history);
  state.batches = batches;
  state.train_rows = data.rows;
  state.validation_rows = validation ? validation->features.size(0) : 0;
  auto start_time = std::chrono::steady_clock::now();

  if (resume) {
    // Callbacks whose state follows from the epochs' losses (schedulers,
    // early stopping) replay the saved epochs; the schedulers' moves of the
    // learning rates are then overwritten by the optimizer's saved options,
    // which hold the same values.
    for (const auto& log : resume->history.epochs) {
      state.epoch = log.epoch;
      for (const auto& callback : callbacks) {
        callback->on_resume_epoch(state, log);
      }
    }
    detail::restore(*resume, optimizer);
    history = std::move(resume->history);
    start_time -=
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
            std::chrono::duration<double>(history.epochs.back().wall_seconds));
  }
  for (const auto& callback : callbacks) {
    callback->on_train_begin(state);
  }
  const bool finished = !history.epochs.empty() &&
                        (history.stopped_early ||
                         history.epochs.back().epoch == options.epochs());
  const int64_t first_epoch =
      history.epochs.empty() ? 1 : history.epochs.back().epoch + 1;

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

    // The steps.
    model->train(true);
    int64_t b = 0;
    data.for_each_batch(epoch, [&](const at::Tensor& xb, const at::Tensor& yb) {
      state.batch = ++b;
      const int64_t len = xb.size(0);
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
      if (linear) {
        check_prediction({xb.size(0), linear->affine_weight().size(0)});
        loss = detail::linear_mse_gradient(*linear, xb, yb);
      } else {
        optimizer.zero_grad();
        auto prediction = model->regressor.forward(xb);
        check_prediction(prediction.sizes());
        auto loss_tensor = at::mse_loss(prediction, yb);
        loss = loss_tensor.item<double>();
        loss_tensor.backward();
      }
      for (const auto& callback : callbacks) {
        callback->before_step(state, len);
      }
      if (!optimizer_skips) {
        detail::check_step_finite(loss, named_params, epoch, b, batches);
      }
      optimizer.step();
    });

    // The measurements: losses over the whole sets, then the callbacks.
    model->eval();
    std::tie(log.train_loss, log.train_mse) = data.evaluate();
    TORCH_CHECK(std::isfinite(log.train_loss),
                "fit: the training loss evaluated after epoch ",
                epoch,
                " is ",
                std::isnan(log.train_loss) ? "NaN" : "Inf",
                "; the step of batch ",
                batches,
                " (the last) diverged: lower the learning rate or standardize "
                "the targets (TargetScaling::kZScore)");
    log.val_loss = log.val_mse = std::numeric_limits<double>::quiet_NaN();
    if (validation) {
      std::tie(log.val_loss, log.val_mse) =
          detail::evaluate(*model, xv, yv_std64, target_scale64);
    }
    for (const auto& callback : callbacks) {
      callback->on_epoch_measured(state, log);
    }
    log.wall_seconds = std::chrono::duration<double>(
                           std::chrono::steady_clock::now() - start_time)
                           .count();
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
