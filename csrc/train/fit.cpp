#include <normopt/nn/linear_regressor.h>
#include <normopt/optim/adam.h>
#include <normopt/optim/adamw.h>
#include <normopt/optim/sgd.h>
#include <normopt/train/fit.h>

#include "../nn/checks.h"
#include "../util/atomic_file.h"
#include "checkpoint.h"
#include "mode_guard.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <mutex>
#include <system_error>

#if defined(_WIN32)
#include <io.h>
#else
#include <unistd.h>
#endif

namespace normopt::train {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Rows evaluated per forward pass at the end of an epoch: bounds the memory
// of the evaluation on large tables without changing its result.
constexpr int64_t kEvalChunk = 65536;

bool stderr_is_terminal() {
#if defined(_WIN32)
  return _isatty(_fileno(stderr)) != 0;
#else
  return ::isatty(::fileno(stderr)) != 0;
#endif
}

double lr_of_group0(const torch::optim::Optimizer& optimizer) {
  if (optimizer.param_groups().empty()) {
    return kNaN;
  }
  try {
    return optimizer.param_groups()[0].options().get_lr();
  } catch (const c10::Error&) {
    // OptimizerOptions::get_lr() throws unless a subclass implements it.
    return kNaN;
  }
}

using detail::ModeGuard;

// A one-line progress bar on stderr, ended with a newline however fit()
// leaves.
class ProgressBar {
 public:
  explicit ProgressBar(bool enabled) : enabled_(enabled) {}
  ~ProgressBar() {
    if (enabled_ && drawn_) {
      std::fputc('\n', stderr);
      std::fflush(stderr);
    }
  }
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void draw(const EpochLog& log, int64_t epochs, bool has_validation) {
    if (!enabled_) {
      return;
    }
    constexpr int64_t kWidth = 30;
    const int64_t filled = kWidth * log.epoch / epochs;
    std::string bar(static_cast<size_t>(filled), '=');
    bar.resize(static_cast<size_t>(kWidth), ' ');
    std::fprintf(stderr,
                 "\repoch %lld/%lld [%s] loss %.4g",
                 static_cast<long long>(log.epoch),
                 static_cast<long long>(epochs),
                 bar.c_str(),
                 log.train_loss);
    if (has_validation) {
      std::fprintf(stderr, " val_loss %.4g", log.val_loss);
    }
    std::fprintf(stderr, " lr %.3g %.1fs ", log.lr, log.wall_seconds);
    std::fflush(stderr);
    drawn_ = true;
  }

 private:
  bool enabled_;
  bool drawn_ = false;
};

// The feature counts the model is known to accept: its LinearRegressor's
// in_features and its adapted Normalization's per-feature statistics.
void check_feature_count(const nn::StandardizedRegressorImpl& model,
                         int64_t features,
                         const char* where,
                         const char* what) {
  if (auto linear = std::dynamic_pointer_cast<nn::LinearRegressorImpl>(
          model.regressor_module())) {
    TORCH_CHECK(linear->options.in_features() == features,
                where,
                ": the ",
                what,
                " table has ",
                features,
                " feature column(s) but the model's LinearRegressor takes ",
                linear->options.in_features(),
                "; select the same features the model was built for");
  }
  const auto& norm = *model.normalization;
  const auto& axis = norm.options.axis();
  if (norm.is_adapted() && norm.mean.dim() == 1 && axis.size() == 1 &&
      (axis[0] == -1 || axis[0] == 1)) {
    TORCH_CHECK(norm.mean.size(0) == features,
                where,
                ": the ",
                what,
                " table has ",
                features,
                " feature column(s) but the model's Normalization holds "
                "statistics for ",
                norm.mean.size(0),
                "; select the same features it was adapted on");
  }
}

// Sum of squared errors, as float64 0-dim tensors, of the standardized
// predictions against `y_std` and of the original-unit predictions against
// `y_raw`.
// `x_norm` is the input already through the model's Normalization (see
// fit(): it is computed once, the statistics being fixed during training).
// The MSE in original units uses predict(x) - y = (z - y_std) * scale, the
// inverse transform being affine: one multiply instead of a second pass
// through the TargetStandardizer (equal up to float64 rounding).
std::pair<double, double> evaluate(nn::StandardizedRegressorImpl& model,
                                   const at::Tensor& x_norm,
                                   const at::Tensor& y_std,
                                   const at::Tensor& scale) {
  at::NoGradGuard no_grad;
  const int64_t n = x_norm.size(0);
  double loss_sum = 0, mse_sum = 0;
  for (int64_t start = 0; start < n; start += kEvalChunk) {
    const int64_t len = std::min(kEvalChunk, n - start);
    auto z =
        model.regressor.forward(x_norm.narrow(0, start, len)).to(at::kDouble);
    auto diff = (z - y_std.narrow(0, start, len)).reshape({-1});
    auto dollars = (diff.view_as(z) * scale).reshape({-1});
    loss_sum += at::dot(diff, diff).item<double>();
    mse_sum += at::dot(dollars, dollars).item<double>();
  }
  const double count = static_cast<double>(y_std.numel());
  return {loss_sum / count, mse_sum / count};
}

// The training step of a LinearRegressor under the MSE loss, with the
// gradient in closed form instead of an autograd graph:
//   loss = mean((x Wᵀ + b - y)²) over B·k entries,
//   dL/dW = c (pred - y)ᵀ x,  dL/db = c Σ_rows (pred - y),  c = 2 / (B·k).
// The gradients are written into the parameters' .grad() in place, so the
// optimizer sees exactly what backward() would have left there. Returns the
// batch loss (for the divergence check).
double linear_mse_step(nn::LinearRegressorImpl& linear,
                       const at::Tensor& xb,
                       const at::Tensor& yb) {
  at::NoGradGuard no_grad;
  auto prediction = at::linear(xb, linear.weight, linear.bias);
  auto diff = prediction - yb;
  const double loss = at::mse_loss(prediction, yb).item<double>();
  const double c = 2.0 / static_cast<double>(diff.numel());
  auto& grad_w = linear.weight.mutable_grad();
  if (!grad_w.defined()) {
    grad_w = at::zeros_like(linear.weight);
  }
  at::addmm_out(grad_w, grad_w, diff.t(), xb, /*beta=*/0, /*alpha=*/c);
  if (linear.bias.defined()) {
    auto& grad_b = linear.bias.mutable_grad();
    if (!grad_b.defined()) {
      grad_b = at::zeros_like(linear.bias);
    }
    at::sum_out(grad_b, diff, {0});
    grad_b.mul_(c);
  }
  return loss;
}

// Whether the optimizer skips steps with non-finite gradients itself
// (normopt::optim's skip_nonfinite option).
bool optimizer_skips_nonfinite(const torch::optim::Optimizer& optimizer) {
  const auto& d = optimizer.defaults();
  if (const auto* o = dynamic_cast<const optim::AdamOptions*>(&d)) {
    return o->skip_nonfinite();
  }
  if (const auto* o = dynamic_cast<const optim::AdamWOptions*>(&d)) {
    return o->skip_nonfinite();
  }
  if (const auto* o = dynamic_cast<const optim::SGDOptions*>(&d)) {
    return o->skip_nonfinite();
  }
  return false;
}

// The name of the first parameter whose gradient holds NaN or Inf, or
// nullopt when all are finite.
std::optional<std::string> first_nonfinite_gradient(
    const std::vector<std::pair<std::string, at::Tensor>>& named) {
  std::vector<at::Tensor> grads;
  std::vector<const std::string*> names;
  for (const auto& [name, p] : named) {
    if (p.grad().defined()) {
      grads.push_back(p.grad());
      names.push_back(&name);
    }
  }
  if (auto i = nn::detail::first_nonfinite_tensor(grads)) {
    return *names[*i];
  }
  return std::nullopt;
}

// Early stopping's state: the best monitored loss and the epochs since.
struct EarlyStopping {
  int64_t patience = 0;
  double min_delta = 0;
  double best = std::numeric_limits<double>::infinity();
  int64_t epochs_without_improvement = 0;

  // Records an epoch's monitored loss; true when patience ran out.
  bool update(double monitored) {
    if (patience == 0) {
      return false;
    }
    if (monitored < best - min_delta) {
      best = monitored;
      epochs_without_improvement = 0;
      return false;
    }
    return ++epochs_without_improvement >= patience;
  }
};

// Targets as (N, k).
at::Tensor as_matrix(const at::Tensor& y) {
  return y.dim() == 1 ? y.unsqueeze(1) : y;
}

// ---- History output -------------------------------------------------------

std::string format_number(double value) {
  if (std::isnan(value)) {
    return "nan";
  }
  char buffer[64];
  // Shortest form is not wanted: %.17g-style output round-trips and matches
  // what other tools print; to_chars keeps it locale-independent.
  auto result = std::to_chars(
      buffer, buffer + sizeof(buffer), value, std::chars_format::general, 17);
  return std::string(buffer, result.ptr);
}

}  // namespace

// ---- History
// -----------------------------------------------------------------

double History::gap_to_optimum() const {
  if (!optimum_mse || epochs.empty()) {
    return kNaN;
  }
  return epochs.back().train_mse - *optimum_mse;
}

double History::relative_gap() const {
  if (!optimum_mse || epochs.empty()) {
    return kNaN;
  }
  return epochs.back().train_mse / *optimum_mse - 1;
}

void History::write_csv(const std::string& path) const {
  std::string out =
      "epoch,train_loss,train_mse,val_loss,val_mse,lr,wall_seconds\n";
  for (const auto& e : epochs) {
    out += std::to_string(e.epoch);
    for (double v : {e.train_loss,
                     e.train_mse,
                     e.val_loss,
                     e.val_mse,
                     e.lr,
                     e.wall_seconds}) {
      out += ',';
      out += format_number(v);
    }
    out += '\n';
  }
  util::write_atomically(path, out, "History.write_csv");
}

void History::write_json(const std::string& path,
                         const std::string& run_name) const {
  // ordered_json keeps the keys in the order written; NaN and infinities
  // become null.
  nlohmann::ordered_json doc;
  doc["run"] = run_name;
  doc["optimum_mse"] =
      optimum_mse ? nlohmann::ordered_json(*optimum_mse) : nullptr;
  doc["stopped_early"] = stopped_early;
  auto& rows = doc["epochs"] = nlohmann::ordered_json::array();
  for (const auto& e : epochs) {
    rows.push_back({{"epoch", e.epoch},
                    {"train_loss", e.train_loss},
                    {"train_mse", e.train_mse},
                    {"val_loss", e.val_loss},
                    {"val_mse", e.val_mse},
                    {"lr", e.lr},
                    {"wall_seconds", e.wall_seconds}});
  }
  // A run name that is not valid UTF-8 gets U+FFFD, not an exception.
  util::write_atomically(
      path,
      doc.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) +
          "\n",
      "History.write_json");
}

// ---- fit
// ---------------------------------------------------------------------

namespace detail {

void check_table(const nn::StandardizedRegressor& model,
                 const data::Table& table,
                 const char* where,
                 const char* what) {
  const auto& x = table.features;
  const auto& y = table.targets;
  TORCH_CHECK(x.defined() && y.defined(),
              where,
              ": the ",
              what,
              " table has no ",
              x.defined() ? "targets" : "features",
              " (undefined tensor); build it with data::read_csv");
  TORCH_CHECK(x.dim() == 2,
              where,
              ": expected ",
              what,
              " features of shape (N, F), got ",
              x.sizes());
  TORCH_CHECK(y.dim() == 1 || y.dim() == 2,
              where,
              ": expected ",
              what,
              " targets of shape (N) or (N, k), got ",
              y.sizes());
  TORCH_CHECK(x.size(0) == y.size(0),
              where,
              ": the ",
              what,
              " table has ",
              x.size(0),
              " feature rows but ",
              y.size(0),
              " target rows; they must match");
  TORCH_CHECK(x.size(0) > 0,
              where,
              ": the ",
              what,
              " table is empty (0 rows); there is nothing to ",
              std::strcmp(what, "training") == 0 ? "train on" : "evaluate");
  TORCH_CHECK(y.numel() > 0,
              where,
              ": the ",
              what,
              " table has no target columns (shape ",
              y.sizes(),
              ")");
  if (auto index = nn::detail::first_nonfinite_index(x)) {
    TORCH_CHECK(false,
                where,
                ": ",
                what,
                " feature ",
                at::IntArrayRef(*index),
                " is NaN or Inf; remove or impute it first");
  }
  if (auto index = nn::detail::first_nonfinite_index(y)) {
    TORCH_CHECK(false,
                where,
                ": ",
                what,
                " target ",
                at::IntArrayRef(*index),
                " is NaN or Inf; remove or impute it first");
  }
  check_feature_count(*model, x.size(1), where, what);
}

}  // namespace detail

History fit(nn::StandardizedRegressor& model,
            torch::optim::Optimizer& optimizer,
            const data::Table& train,
            const FitOptions& options,
            const data::Table* validation) {
  TORCH_CHECK(options.epochs() >= 1,
              "fit: epochs must be at least 1, got ",
              options.epochs());
  TORCH_CHECK(options.batch_size() >= 0,
              "fit: batch_size must be >= 0 (0 = the full training set), got ",
              options.batch_size());
  TORCH_CHECK(options.checkpoint_every() >= 1,
              "fit: checkpoint_every must be at least 1, got ",
              options.checkpoint_every());
  if (!options.checkpoint_path().empty()) {
    // Before any training: a long run must not find out at its first save.
    const auto folder =
        std::filesystem::path(options.checkpoint_path()).parent_path();
    std::error_code ec;
    TORCH_CHECK(folder.empty() || std::filesystem::is_directory(folder, ec),
                "fit: cannot save checkpoints to '",
                options.checkpoint_path(),
                "': the folder '",
                folder.string(),
                "' does not exist; create it first (nothing was trained)");
  }
  TORCH_CHECK(options.early_stopping_patience() >= 0,
              "fit: early_stopping_patience must be >= 0 (0 = off), got ",
              options.early_stopping_patience());
  TORCH_CHECK(std::isfinite(options.early_stopping_min_delta()) &&
                  options.early_stopping_min_delta() >= 0,
              "fit: early_stopping_min_delta must be finite and >= 0, got ",
              options.early_stopping_min_delta());
  TORCH_CHECK(!options.optimum_mse() || std::isfinite(*options.optimum_mse()),
              "fit: optimum_mse must be finite, got ",
              options.optimum_mse().value_or(0));
  detail::check_table(model, train, "fit", "training");
  if (validation != nullptr) {
    detail::check_table(model, *validation, "fit", "validation");
    TORCH_CHECK(validation->features.size(1) == train.features.size(1) &&
                    as_matrix(validation->targets).size(1) ==
                        as_matrix(train.targets).size(1),
                "fit: the validation table has ",
                validation->features.size(1),
                " feature and ",
                as_matrix(validation->targets).size(1),
                " target column(s), the training table ",
                train.features.size(1),
                " and ",
                as_matrix(train.targets).size(1),
                "; split both from the same data");
  }
  const auto params = model->parameters();
  TORCH_CHECK(!params.empty(),
              "fit: the model has no parameters to train; wrap a regressor "
              "with parameters, e.g. LinearRegressor(n_features)");

  // An optimizer built on another module (e.g. on a model that was cloned
  // afterwards) would step tensors the loss does not depend on.
  bool shares_parameters = false;
  for (const auto& group : optimizer.param_groups()) {
    for (const auto& p : group.params()) {
      for (const auto& q : params) {
        shares_parameters = shares_parameters || p.is_same(q);
      }
    }
  }
  TORCH_CHECK(shares_parameters,
              "fit: the optimizer holds none of the model's parameters; "
              "build it on this model, e.g. Adam(model->parameters(), ...)");

  // Resuming loads the model (statistics included) before anything else;
  // read_checkpoint changes nothing unless the whole file matches this run.
  std::optional<detail::ResumePoint> resume;
  if (!options.resume_from().empty()) {
    resume = detail::read_checkpoint(options.resume_from(),
                                     model,
                                     optimizer,
                                     options,
                                     validation != nullptr);
  }

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

  const auto data_options = at::TensorOptions()
                                .dtype(params[0].scalar_type())
                                .device(params[0].device());
  const auto eval_options = data_options.dtype(at::kDouble);
  // The input Normalization's statistics stay fixed while the regressor
  // trains, so the inputs are normalized once here rather than per batch
  // and per evaluation: model->forward(x) == regressor(normalization(x)).
  const auto normalize = [&](const at::Tensor& features) {
    at::NoGradGuard no_grad;
    return model->normalization->forward(features.to(data_options));
  };
  const auto x = normalize(train.features);
  const auto y = as_matrix(train.targets).to(data_options);
  const auto y_std = model->transform_targets(y);
  const auto y_std64 =
      model->transform_targets(as_matrix(train.targets).to(eval_options));
  const auto target_scale64 = model->target->scale.to(eval_options);
  at::Tensor xv, yv_std64;
  if (validation != nullptr) {
    xv = normalize(validation->features);
    yv_std64 = model->transform_targets(
        as_matrix(validation->targets).to(eval_options));
  }

  // A LinearRegressor gets its MSE gradient in closed form (see
  // linear_mse_step); anything else goes through autograd.
  auto linear = options.analytic_gradients()
                    ? std::dynamic_pointer_cast<nn::LinearRegressorImpl>(
                          model->regressor.ptr())
                    : nullptr;

  const int64_t n = x.size(0);
  const int64_t batch =
      options.batch_size() == 0 ? n : std::min(options.batch_size(), n);
  const int64_t batches = (n + batch - 1) / batch;
  auto generator = at::make_generator<at::CPUGeneratorImpl>(options.seed());
  const bool optimizer_skips = optimizer_skips_nonfinite(optimizer);
  std::vector<std::pair<std::string, at::Tensor>> named_params;
  for (const auto& p : model->named_parameters()) {
    named_params.emplace_back(p.key(), p.value());
  }

  // Training needs autograd even when the caller holds a NoGradGuard.
  at::AutoGradMode enable_grad(true);
  ModeGuard mode_guard(*model);
  ProgressBar progress(
      options.progress() == Progress::kOn ||
      (options.progress() == Progress::kAuto && stderr_is_terminal()));
  History history;
  history.optimum_mse = options.optimum_mse();
  EarlyStopping early_stopping{options.early_stopping_patience(),
                               options.early_stopping_min_delta()};
  auto start_time = std::chrono::steady_clock::now();
  const auto monitored_loss = [&](const EpochLog& log) {
    return validation != nullptr ? log.val_loss : log.train_loss;
  };
  // Steps the schedulers and early stopping after an epoch; true: stop.
  const auto end_epoch = [&](const EpochLog& log) {
    if (options.scheduler()) {
      options.scheduler()->step();
    }
    if (options.plateau()) {
      options.plateau()->step(static_cast<float>(monitored_loss(log)));
    }
    return early_stopping.update(monitored_loss(log)) &&
           log.epoch < options.epochs();
  };

  if (resume) {
    // The schedulers and early stopping decide from the epochs' losses
    // alone: replaying the saved epochs restores their state. Their moves of
    // the learning rates are then overwritten by the optimizer's saved
    // options, which are the same values.
    for (const auto& log : resume->history.epochs) {
      end_epoch(log);
    }
    detail::restore(*resume, optimizer);
    history = std::move(resume->history);
    if (history.stopped_early ||
        history.epochs.back().epoch == options.epochs()) {
      return history;
    }
    start_time -=
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
            std::chrono::duration<double>(history.epochs.back().wall_seconds));
  }
  const int64_t first_epoch =
      history.epochs.empty() ? 1 : history.epochs.back().epoch + 1;

  for (int64_t epoch = first_epoch; epoch <= options.epochs(); ++epoch) {
    EpochLog log;
    log.epoch = epoch;
    log.lr = lr_of_group0(optimizer);
    model->train(true);
    at::Tensor order;
    // A single full batch is not permuted: the order cannot change the step.
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
      double value = 0;
      if (linear) {
        check_prediction({xb.size(0), linear->options.out_features()});
        value = linear_mse_step(*linear, xb, yb);
      } else {
        optimizer.zero_grad();
        auto prediction = model->regressor.forward(xb);
        check_prediction(prediction.sizes());
        auto loss = at::mse_loss(prediction, yb);
        value = loss.item<double>();
        loss.backward();
      }
      if (options.before_step()) {
        options.before_step()(len);
      }
      // A non-finite loss or gradient never reaches the parameters: fit()
      // stops here, or the optimizer skips the step when it is set to.
      if (!optimizer_skips) {
        TORCH_CHECK(std::isfinite(value),
                    "fit: the training loss is ",
                    std::isnan(value) ? "NaN" : "Inf",
                    " at epoch ",
                    epoch,
                    ", batch ",
                    b + 1,
                    " (of ",
                    batches,
                    "); the run diverged: lower the learning rate or "
                    "standardize the targets (TargetScaling::kZScore); the "
                    "step was not taken");
        if (auto name = first_nonfinite_gradient(named_params)) {
          TORCH_CHECK(false,
                      "fit: the gradient of parameter '",
                      *name,
                      "' holds NaN or Inf at epoch ",
                      epoch,
                      ", batch ",
                      b + 1,
                      " (of ",
                      batches,
                      ") while the loss is finite (",
                      value,
                      "); the step was not taken. Lower the learning rate, "
                      "check gradient hooks, or let the optimizer skip such "
                      "steps (skip_nonfinite)");
        }
      }
      optimizer.step();
    }

    model->eval();
    std::tie(log.train_loss, log.train_mse) =
        evaluate(*model, x, y_std64, target_scale64);
    TORCH_CHECK(std::isfinite(log.train_loss),
                "fit: the training loss evaluated after epoch ",
                epoch,
                " is ",
                std::isnan(log.train_loss) ? "NaN" : "Inf",
                "; the step of batch ",
                batches,
                " (the last) diverged: lower the learning rate or standardize "
                "the targets (TargetScaling::kZScore)");
    if (validation != nullptr) {
      std::tie(log.val_loss, log.val_mse) =
          evaluate(*model, xv, yv_std64, target_scale64);
    } else {
      log.val_loss = kNaN;
      log.val_mse = kNaN;
    }
    if (options.reduce_epoch_log()) {
      options.reduce_epoch_log()(log);
    }
    log.wall_seconds = std::chrono::duration<double>(
                           std::chrono::steady_clock::now() - start_time)
                           .count();
    history.epochs.push_back(log);
    progress.draw(log, options.epochs(), validation != nullptr);
    if (options.on_epoch_end()) {
      options.on_epoch_end()(log);
    }

    const bool stop = end_epoch(log);
    history.stopped_early = stop;
    if (!options.checkpoint_path().empty() &&
        (stop || epoch == options.epochs() ||
         epoch % options.checkpoint_every() == 0)) {
      detail::save_checkpoint(
          options.checkpoint_path(),
          {model, &optimizer, &options, &history, validation != nullptr});
    }
    if (stop) {
      break;
    }
  }
  return history;
}

}  // namespace normopt::train
