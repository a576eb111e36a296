#include <normopt/train/fit.h>

#include "../nn/checks.h"
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
#include <limits>
#include <mutex>

namespace normopt::train {

History fit(nn::StandardizedRegressor& model,
            torch::optim::Optimizer& optimizer,
            const data::Table& train,
            const FitOptions& options) {
  detail::check_fit_arguments(model, optimizer, train, options);
  const auto& validation = options.validation();

  // Resuming loads the model (statistics included) before anything else;
  // read_checkpoint changes nothing unless the whole file matches this run.
  std::optional<detail::ResumePoint> resume;
  if (!options.resume_from().empty()) {
    resume = detail::read_checkpoint(options.resume_from(),
                                     model,
                                     optimizer,
                                     options,
                                     validation.has_value());
  }

  // Missing statistics come from the training table; present ones are kept.
  const bool need_inputs = !model->normalization->is_adapted();
  const bool need_targets = !model->target->is_fitted();
  if (need_inputs && need_targets) {
    model->fit_statistics(train.features, train.targets);
  } else if (need_inputs) {
    model->normalization->adapt(train.features);
  } else if (need_targets) {
    model->target->fit(train.targets);
  }
  // Statistics overflow only on extreme data (variance beyond the dtype's
  // range) or when they were set by hand; either way nothing can train.
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

  // The data, on the model's dtype and device. The input Normalization's
  // statistics stay fixed while the regressor trains, so the inputs are
  // normalized once here: model->forward(x) == regressor(normalization(x)).
  // Losses are evaluated in float64.
  const auto params = model->parameters();
  const auto data_options = at::TensorOptions()
                                .dtype(params[0].scalar_type())
                                .device(params[0].device());
  const auto eval_options = data_options.dtype(at::kDouble);
  const auto normalize = [&](const at::Tensor& features) {
    at::NoGradGuard no_grad;
    return model->normalization->forward(features.to(data_options));
  };
  const auto standardize64 = [&](const at::Tensor& targets) {
    return model->transform_targets(
        detail::as_matrix(targets).to(eval_options));
  };
  const auto x = normalize(train.features);
  const auto y_std = model->transform_targets(
      detail::as_matrix(train.targets).to(data_options));
  const auto y_std64 = standardize64(train.targets);
  const auto target_scale64 = model->target->scale.to(eval_options);
  at::Tensor xv, yv_std64;
  if (validation) {
    xv = normalize(validation->features);
    yv_std64 = standardize64(validation->targets);
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

  const int64_t n = x.size(0);
  const int64_t batch =
      options.batch_size() == 0 ? n : std::min(options.batch_size(), n);
  const int64_t batches = (n + batch - 1) / batch;
  auto generator = at::make_generator<at::CPUGeneratorImpl>(options.seed());

  // Training needs autograd even when the caller holds a NoGradGuard.
  at::AutoGradMode enable_grad(true);
  detail::ModeGuard mode_guard(*model);
  const auto callbacks = detail::fit_callbacks(options);
  History history;
  history.optimum_mse = options.optimum_mse();
  FitState state(model, optimizer, options, history);
  state.batches = batches;
  state.train_rows = n;
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

    // The steps. Epoch e's order is drawn from seed + e; a single full batch
    // is not permuted: its order cannot change the step.
    model->train(true);
    at::Tensor order;
    if (options.shuffle() && batches > 1) {
      {
        std::lock_guard<std::mutex> lock(generator.mutex());
        generator.set_current_seed(options.seed() +
                                   static_cast<uint64_t>(epoch));
      }
      order = at::randperm(n, generator, at::TensorOptions().dtype(at::kLong))
                  .to(x.device());
    }
    for (int64_t b = 0; b < batches; ++b) {
      state.batch = b + 1;
      const int64_t start = b * batch;
      const int64_t len = std::min(batch, n - start);
      at::Tensor xb, yb;
      if (order.defined()) {
        auto rows = order.narrow(0, start, len);
        xb = x.index_select(0, rows);
        yb = y_std.index_select(0, rows);
      } else {
        xb = x.narrow(0, start, len);
        yb = y_std.narrow(0, start, len);
      }
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
        detail::check_step_finite(loss, named_params, epoch, b + 1, batches);
      }
      optimizer.step();
    }

    // The measurements: losses over the whole sets, then the callbacks.
    model->eval();
    std::tie(log.train_loss, log.train_mse) =
        detail::evaluate(*model, x, y_std64, target_scale64);
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

}  // namespace normopt::train
