#include "checks.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>

namespace normopt::train::detail {
namespace {

constexpr double kLargeTargetScale = 100;
constexpr double kLargeFeatureRatio = 1e3;
constexpr double kIllConditioned = 1e4;
// The lr factors the remedy tries, in order, in the direction that helps.
constexpr double kLrFactors[] = {
    0.31622776601683794, 0.1, 0.031622776601683794, 0.01, 1e-3, 1e-4};

void warn(Findings& out, const char* code, std::string message) {
  out.push_back({Severity::kWarning, code, std::move(message)});
}
void info(Findings& out, const char* code, std::string message) {
  out.push_back({Severity::kInfo, code, std::move(message)});
}

// "12,345"
std::string count(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) {
      out += ',';
    }
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string ratio_text(double r) {
  return std::isfinite(r) ? num(r) + "x" : "inf";
}

std::string column(const Problem& p, int64_t j) {
  return p.targets == 1 ? std::string()
                        : " (target column " + std::to_string(j) + ")";
}

std::string feature_name(const Problem& p, int64_t j) {
  return j < static_cast<int64_t>(p.feature_names.size())
             ? "'" + p.feature_names[static_cast<size_t>(j)] + "'"
             : "feature " + std::to_string(j);
}

// "reaches 1.2x of the optimum after about N steps" or why it does not.
std::string reach_text(const Run& run) {
  if (!run.finite) {
    return "diverges (the MSE overflows)";
  }
  if (run.steps_needed < 0) {
    return "does not reach 1.2x of the optimum at this lr (not in " +
           count(run.steps_searched) +
           " steps, and it no longer approaches it), so more steps do not help";
  }
  return std::string("reaches 1.2x of the optimum after ") +
         (run.steps_needed_estimated ? "about " : "") +
         count(run.steps_needed) + " steps";
}

std::string standardize_fix(const Context& c) {
  if (!c.standardized) {
    return "";
  }
  const auto& s = *c.standardized;
  return "Standardize the targets (and features): wrap the model in "
         "nn::StandardizedRegressor (TargetScaling::kZScore); the same "
         "optimizer then ends at " +
         ratio_text(c.ratio(s)) + " the optimum (" + reach_text(s) + ").";
}

std::string lr_fix(const Context& c) {
  if (!c.other_lr) {
    return "";
  }
  return "Use lr = " + sci(c.other_lr->lr) + ": the forecast then ends at " +
         ratio_text(c.ratio(c.other_lr->run)) + " the optimum (" +
         reach_text(c.other_lr->run) + ").";
}

// Runs `plan` again with another lr (all groups scaled alike).
Run rerun(const Context& c,
          const Problem& p,
          double factor,
          const Plan& plan,
          int64_t batch) {
  AffineStart start = c.affine;
  start.lr_weight *= factor;
  start.lr_bias *= factor;
  auto step = c.optimizer.step;
  step.lr *= factor;
  Plan q = plan;
  q.batch_size = batch;
  q.horizon = plan.steps;
  return forecast_affine(p, start, step, q);
}

// ---- The checks -------------------------------------------------------------

void check_forecast(const Context& c, Findings& out) {
  if (!c.describable()) {
    return;
  }
  const auto& r = c.run;
  std::string message =
      std::string(verdict_name(c.verdict)) + ": after " + count(c.plan.steps) +
      " steps the forecast training MSE is " + sci(r.final_mse) +
      " (original units), " + ratio_text(c.ratio(r)) +
      " the closed-form optimum " + sci(c.problem.optimum_mse()) +
      " (initial " + sci(r.initial_mse) + "); the run " + reach_text(r) +
      ". Forecast by " + r.method +
      (c.model_is_affine ? "" : ", an approximation for this model") + ".";
  if (!c.fails()) {
    info(out, "forecast", message);
    return;
  }
  for (const auto& fix : {standardize_fix(c), lr_fix(c)}) {
    if (!fix.empty()) {
      message += " " + fix;
    }
  }
  warn(out, "forecast", message);
}

void check_degenerate_data(const Context& c, Findings& out) {
  const auto& p = c.problem;
  std::vector<std::string> problems;
  if (p.rows < p.features + 1) {
    problems.push_back(
        std::to_string(p.rows) + " row(s) for " + std::to_string(p.features) +
        " feature(s), fewer than features + 1: a linear model fits them "
        "exactly (MSE 0) in many ways, so the optimum is not unique and "
        "says nothing about new data; add rows or drop features");
  }
  std::string constant;
  for (int64_t j = 0; j < p.raw_sd.size(0); ++j) {
    if (!(p.raw_sd[j].item<double>() > 0)) {
      constant += (constant.empty() ? "" : ", ") + feature_name(p, j) +
                  " (always " + num(p.raw_mean[j].item<double>()) + ")";
    }
  }
  if (!constant.empty() && p.rows > 1) {
    problems.push_back("constant feature(s) " + constant +
                       ": they carry no information and their weights are "
                       "not identifiable; drop them");
  }
  for (int64_t j = 0; j < p.target_sd.size(0); ++j) {
    if (p.rows > 1 && !(p.target_sd[j].item<double>() > 0)) {
      problems.push_back(
          "the target" + column(p, j) + " is constant (always " +
          num(p.target_mean[j].item<double>()) +
          "): predicting that value is exact, so there is nothing to "
          "learn and the optimum MSE is 0");
    }
  }
  if (problems.empty()) {
    return;
  }
  std::string message;
  for (const auto& problem : problems) {
    message += (message.empty() ? "" : "; ") + problem;
  }
  warn(out,
       "degenerate_data",
       message +
           ". Ratios to the optimum MSE mean nothing when it is 0; compare "
           "differences.");
}

void check_target_scale(const Context& c, Findings& out) {
  const auto& p = c.problem;
  const auto size = p.mean_t.abs() + p.var_t.sqrt();
  const int64_t j = size.argmax().item<int64_t>();
  const double m = p.mean_t[j].item<double>();
  const double s = std::sqrt(p.var_t[j].item<double>());
  if (std::abs(m) <= kLargeTargetScale && s <= kLargeTargetScale) {
    return;
  }
  std::string fix = standardize_fix(c);
  if (fix.empty()) {
    fix =
        "Standardize the targets (nn::StandardizedRegressor with "
        "TargetScaling::kZScore) so the loss sees mean 0 and standard "
        "deviation 1.";
  }
  warn(out,
       "target_scale",
       "the loss sees targets with mean " + sci(m) +
           " and standard "
           "deviation " +
           sci(s) + column(p, j) + " (" + p.target_scaling +
           "); the initial MSE is " + sci(c.run.initial_mse) + ". " +
           (m * m > s * s
                ? "Most of it is the offset the bias must learn: Adam moves "
                  "each parameter by about lr per step whatever the "
                  "gradient, and full-batch SGD shrinks the offset only by a "
                  "factor of about (1 - 2 lr) per step. "
                : "Adam moves each parameter by about lr per step, little "
                  "next to that spread. ") +
           fix);
}

void check_adam_reach(const Context& c, Findings& out) {
  const auto& step = c.optimizer.step;
  if (step.rule != optim::StepRule::kAdaptive ||
      !c.initial_prediction.defined()) {
    return;
  }
  const auto distance = (c.problem.mean_t - c.initial_prediction).abs();
  const int64_t j = distance.argmax().item<int64_t>();
  const double d = distance[j].item<double>();
  const double needed = d / step.lr;
  const double steps = static_cast<double>(c.plan.steps);
  if (needed <= steps) {
    return;
  }
  const std::string advice =
      c.problem.targets_standardized
          ? "Raise lr to about " + sci(d / steps) + " or plan more steps."
          : "Standardize the targets (StandardizedRegressor with "
            "TargetScaling::kZScore) or raise lr to about " +
                sci(d / steps) + ".";
  warn(out,
       "adam_scale_stall",
       "Adam moves each parameter by about lr = " + num(step.lr) +
           " per step; the predictions must move " + sci(d) + " (target mean " +
           sci(c.problem.mean_t[j].item<double>()) +
           ", initial prediction mean " +
           sci(c.initial_prediction[j].item<double>()) + column(c.problem, j) +
           "), which needs about " + sci(needed) + " steps, but " +
           count(c.plan.steps) + " are planned. " + advice);
}

// Largest eigenvalue of the MSE's Hessian in (W, b): 2 λmax([z, 1]ᵀ[z, 1] /
// N) / k, plus the weight decay.
double hessian_top(const Context& c) {
  const auto& p = c.problem;
  auto m = p.gram + p.mean_z.unsqueeze(1) * p.mean_z.unsqueeze(0);
  if (c.affine.bias.defined()) {
    auto top = at::cat({m, p.mean_z.unsqueeze(1)}, 1);
    auto bottom = at::cat({p.mean_z, at::ones({1}, at::kDouble)}).unsqueeze(0);
    m = at::cat({top, bottom}, 0);
  }
  return 2 * at::linalg_eigvalsh(m).max().item<double>() /
             static_cast<double>(p.targets) +
         c.optimizer.step.weight_decay;
}

void check_sgd_stability(const Context& c, Findings& out) {
  const auto& sgd = c.optimizer.step;
  if (sgd.rule != optim::StepRule::kGradientDescent || !c.model_is_affine) {
    return;
  }
  const double lambda = hessian_top(c);
  double bound = 2;
  std::string who = "plain gradient descent", bound_text = "2";
  if (sgd.momentum > 0) {
    const double b = sgd.momentum;
    who = std::string("SGD with ") + (sgd.nesterov ? "Nesterov " : "") +
          "momentum " + num(b);
    bound = sgd.nesterov ? 2 * (1 + b) / (1 + 2 * b)
                         : 2 * (1 + b) / std::max(1 - sgd.dampening, 1e-300);
    bound_text = (sgd.nesterov ? "2(1 + momentum)/(1 + 2 momentum) = "
                               : "2(1 + momentum)/(1 - dampening) = ") +
                 num(bound);
  }
  if (sgd.lr * lambda <= bound) {
    return;
  }
  warn(out,
       "sgd_divergence",
       who + " diverges on this loss: lr = " + num(sgd.lr) +
           " times the largest eigenvalue of the MSE's Hessian, lambda = " +
           num(lambda) +
           " (2 lambda_max(X^T X / N) on the features the model sees with "
           "a bias column" +
           (sgd.weight_decay > 0 ? ", plus weight_decay" : "") + "), is " +
           num(sgd.lr * lambda) + ", above " + bound_text +
           ", so every full-batch step overshoots and the error grows. Use "
           "lr below " +
           num(bound) + "/lambda = " + sci(bound / lambda) + " (e.g. " +
           sci(bound / lambda / 2) + "); minibatches need a little less.");
}

void check_learning_rate(const Context& c, Findings& out) {
  if (!c.fails() || !c.other_lr) {
    return;
  }
  const double lr = c.optimizer.step.lr;
  if (c.other_lr->lr < lr) {
    warn(out,
         "lr_too_large",
         "lr = " + num(lr) + " is too large for this loss: the forecast " +
             (c.run.finite ? "rattles around the optimum and ends at " +
                                 ratio_text(c.ratio(c.run)) + " it"
                           : "diverges") +
             ". " + lr_fix(c));
    return;
  }
  std::string more;
  if (c.run.finite && c.run.steps_needed > c.plan.steps) {
    more = "; it needs " +
           std::string(c.run.steps_needed_estimated ? "about " : "") +
           count(c.run.steps_needed) + " steps at this lr";
  }
  warn(out,
       "lr_too_small",
       "lr = " + num(lr) + " is too small for " + count(c.plan.steps) +
           " steps: the forecast is still descending at the end, at " +
           ratio_text(c.ratio(c.run)) + " the optimum" + more + ". " +
           lr_fix(c));
}

void check_conditioning(const Context& c, Findings& out) {
  const auto& p = c.problem;
  if (p.features < 2) {
    return;
  }
  const auto d = p.gram.diagonal();
  const auto keep = (d > 0).nonzero().reshape(-1);
  if (keep.numel() < 2) {
    return;
  }
  const auto g = p.gram.index_select(0, keep).index_select(1, keep);
  const auto s = g.diagonal().rsqrt();
  const auto values = at::linalg_eigvalsh(g * s.unsqueeze(1) * s.unsqueeze(0));
  const double top = values.max().item<double>();
  const double cond = top / std::max(values.min().item<double>(), 1e-300);
  if (!(cond > kIllConditioned)) {
    return;
  }
  // A ridge term bringing the condition number to about 1e3.
  const double alpha = top / 1e3;
  const auto w = at::linalg_solve(
      p.gram + alpha * at::eye(p.features, at::kDouble), p.cross);
  const auto dw = w - p.w_opt;
  const auto excess = (dw * at::matmul(p.gram, dw)).sum(0);
  const auto ridge_mse = (p.mse_opt + excess).contiguous();
  const double ridge_ratio =
      p.original_mse(ridge_mse.data_ptr<double>()) / p.optimum_mse();
  std::string message =
      "the features the model sees are nearly collinear: their correlation "
      "matrix has condition number " +
      sci(cond) +
      ", so gradient steps crawl along the flat directions. Solve it in "
      "closed form (train::solve_least_squares) or add a ridge term: "
      "ridge = " +
      sci(alpha * static_cast<double>(p.rows)) +
      " on the features the model sees (solve_least_squares(..., ridge)) "
      "ends at " +
      ratio_text(ridge_ratio) +
      " the optimum; or drop one of each collinear "
      "pair.";
  if (c.fails()) {
    warn(out, "ill_conditioned", message);
  } else {
    info(out, "ill_conditioned", message);
  }
}

void check_minibatch_noise(const Context& c, Findings& out) {
  if (!c.fails() || !c.full_batch || !c.run.finite) {
    return;
  }
  const double full = c.ratio(*c.full_batch);
  if (!(full <= kConvergedRatio)) {
    return;
  }
  warn(out,
       "minibatch_noise",
       "the full-batch forecast with the same lr converges (" +
           ratio_text(full) + " the optimum), but the noise of batches of " +
           count(c.plan.batch_size) + " rows holds the run at " +
           ratio_text(c.ratio(c.run)) +
           ": use larger batches, a smaller lr late in the run (a scheduler) "
           "or " +
           (c.other_lr ? lr_fix(c) : "a smaller lr."));
}

void check_feature_scale(const Context& c, Findings& out) {
  const auto& p = c.problem;
  const auto& raw = p.raw_sd;
  const auto seen = p.gram.diagonal().sqrt();
  int64_t lo = -1, hi = -1, constant = 0;
  for (int64_t j = 0; j < raw.size(0); ++j) {
    const double s = raw[j].item<double>();
    if (!(s > 0)) {
      ++constant;
      continue;
    }
    lo = lo < 0 || s < raw[lo].item<double>() ? j : lo;
    hi = hi < 0 || s > raw[hi].item<double>() ? j : hi;
  }
  if (lo < 0 || lo == hi || seen.size(0) != raw.size(0)) {
    return;
  }
  double seen_max = 0, seen_min = 0;
  for (int64_t j = 0; j < seen.size(0); ++j) {
    if (raw[j].item<double>() > 0) {
      const double s = seen[j].item<double>();
      seen_max = std::max(seen_max, s);
      seen_min = seen_min == 0 ? s : std::min(seen_min, s);
    }
  }
  const double seen_ratio = seen_min > 0
                                ? seen_max / seen_min
                                : std::numeric_limits<double>::infinity();
  auto name = [&](int64_t j) {
    auto n = feature_name(p, j);
    return n.front() == '\'' ? n.substr(1, n.size() - 2) : n;
  };
  const std::string message =
      "raw feature standard deviations range from " +
      num(raw[lo].item<double>()) + " (" + name(lo) + ") to " +
      num(raw[hi].item<double>()) + " (" + name(hi) + "), a ratio of " +
      sci(raw[hi].item<double>() / raw[lo].item<double>()) +
      (constant > 0
           ? " (" + std::to_string(constant) + " constant feature(s) left out)"
           : std::string()) +
      "; as the model sees them the ratio is " + sci(seen_ratio);
  if (seen_ratio > kLargeFeatureRatio) {
    warn(out,
         "feature_scale",
         message +
             ", so one learning rate cannot suit every weight. Normalize the "
             "features (a StandardizedRegressor's Normalization adapted to "
             "the data: leave mean and variance out of "
             "NormalizationOptions).");
  } else {
    info(out, "feature_scale", message + ".");
  }
}

void check_optimizer(const Context& c, Findings& out) {
  if (!c.describable()) {
    info(out,
         "unknown_optimizer",
         "the optimizer is not one normopt can describe (normopt's or "
         "LibTorch's Adam, AdamW, SGD, or an optim::Describable), so there "
         "is no forecast and no optimizer check; only the data was "
         "checked.");
  }
  if (!c.optimizer.groups_note.empty()) {
    info(out, "param_groups", c.optimizer.groups_note + ".");
  }
}

}  // namespace

std::string sci(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.1e", value);
  return buffer;
}

std::string num(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.3g", value);
  return buffer;
}

void find_remedies(Context& c) {
  if (!c.fails()) {
    return;
  }
  const auto& p = c.problem;
  const int64_t batch = c.plan.batch_size;
  if (!p.targets_standardized || !p.features_normalized) {
    c.standardized = rerun(c, p.standardized(), 1, c.plan, batch);
  }
  const bool minibatch = p.has_rows() && batch > 0 && batch < p.rows;
  if (minibatch) {
    c.full_batch = rerun(c, p, 1, c.plan, 0);
  }
  // Smaller lrs for a run that diverges, rattles (its MSE rose on the way)
  // or is noisy; larger ones for a run still descending, however slowly.
  double lowest = c.run.initial_mse;
  for (const auto& point : c.run.trajectory) {
    lowest = std::min(lowest, point.mse);
  }
  const bool smaller = !c.run.finite || c.run.final_mse > 1.001 * lowest ||
                       (c.full_batch && c.ratio(*c.full_batch) <= 1.2);
  for (double f : kLrFactors) {
    const double factor = smaller ? f : 1 / f;
    // A minibatch plan's candidates are screened on the exact full-batch
    // quadratic first (no rows: a small share of a replay's cost); only one
    // that reaches 1.2x there is replayed on the batches.
    if (minibatch) {
      const auto screen = rerun(c, p, factor, c.plan, 0);
      if (!(screen.finite && c.ratio(screen) <= kConvergedRatio)) {
        continue;
      }
    }
    auto run = rerun(c, p, factor, c.plan, batch);
    // A remedy reaches 1.2x, not only the verdict's middle of the band.
    if (run.finite && c.ratio(run) <= kConvergedRatio) {
      c.other_lr = LrRemedy{c.optimizer.step.lr * factor, std::move(run)};
      return;
    }
  }
}

const std::vector<Check> kChecks = {
    check_forecast,
    check_degenerate_data,
    check_target_scale,
    check_adam_reach,
    check_sgd_stability,
    check_learning_rate,
    check_conditioning,
    check_minibatch_noise,
    check_feature_scale,
    check_optimizer,
};

}  // namespace normopt::train::detail
