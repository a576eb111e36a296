#include <normopt/nn/affine.h>
#include <normopt/ops/moments.h>
#include <normopt/optim/describe.h>
#include <normopt/train/diagnostics.h>

#include <normopt/train/fit.h>
#include "checks.h"
#include "mode_guard.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace normopt::train {
namespace {

constexpr double kLargeTargetScale = 100;
constexpr double kLargeFeatureRatio = 1e3;
constexpr int64_t kDefaultSteps = 10000;

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

const char* scaling_name(nn::TargetScaling method) {
  switch (method) {
    case nn::TargetScaling::kZScore:
      return "TargetScaling::kZScore";
    case nn::TargetScaling::kMinMax:
      return "TargetScaling::kMinMax";
    case nn::TargetScaling::kNone:
      return "TargetScaling::kNone, raw units";
  }
  return "?";
}

// Per-column population standard deviations and means, float64.
std::pair<at::Tensor, at::Tensor> column_stats(const at::Tensor& x) {
  auto [n, mean, m2] = ops::moments(x, {0});
  return {mean, (m2 / n.to(at::kDouble)).sqrt()};
}

using detail::ModeGuard;

}  // namespace

std::ostream& operator<<(std::ostream& stream, const Finding& finding) {
  return stream << (finding.severity == Severity::kWarning ? "[warning] "
                                                           : "[info] ")
                << finding.code << ": " << finding.message;
}

std::vector<Finding> diagnose(nn::StandardizedRegressor& model,
                              const torch::optim::Optimizer& optimizer,
                              const data::Table& train,
                              const DiagnoseOptions& options) {
  TORCH_CHECK(options.planned_steps() >= 0,
              "diagnose: planned_steps must be >= 0 (0 = unknown), got ",
              options.planned_steps());
  detail::check_table(model, train, "diagnose", "training");
  const auto params = model->parameters();
  TORCH_CHECK(!params.empty(),
              "diagnose: the model has no parameters; wrap a regressor with "
              "parameters, e.g. LinearRegressor(n_features)");
  TORCH_CHECK(!optimizer.param_groups().empty(),
              "diagnose: the optimizer has no param groups; build it on "
              "model->parameters()");
  at::NoGradGuard no_grad;
  const auto device = params[0].device();
  const auto x = train.features.to(device, params[0].scalar_type());
  const auto y_raw =
      train.targets.dim() == 1 ? train.targets.unsqueeze(1) : train.targets;
  const auto y64 = y_raw.to(device, at::kDouble);

  // What the regressor and the loss see, with the model's statistics or,
  // when missing, those fit() would compute, kept on the side.
  at::Tensor z;
  if (model->normalization->is_adapted()) {
    z = model->normalization->forward(x);
  } else {
    nn::Normalization side(model->normalization->options);
    side->adapt(train.features);
    side->to(device);
    z = side->forward(x);
  }
  at::Tensor y_loss;
  const auto method = model->target->options.method();
  if (model->target->is_fitted()) {
    y_loss = model->transform_targets(y64);
  } else {
    nn::TargetStandardizer side(model->target->options);
    side->fit(train.targets);
    side->to(device);
    y_loss = side->transform(y64);
  }
  at::Tensor initial;
  {
    ModeGuard mode(*model->regressor_module());
    model->regressor_module()->eval();
    initial = model->regressor.forward(z).to(at::kDouble);
  }
  TORCH_CHECK(initial.sizes() == y_loss.sizes(),
              "diagnose: the model predicts shape ",
              initial.sizes(),
              " for targets of shape ",
              y_loss.sizes(),
              "; make the regressor's out_features match the number of "
              "target columns");

  std::vector<Finding> findings;
  auto warn = [&](const char* code, std::string message) {
    findings.push_back({Severity::kWarning, code, std::move(message)});
  };
  auto info = [&](const char* code, std::string message) {
    findings.push_back({Severity::kInfo, code, std::move(message)});
  };
  const int64_t k = y_loss.size(1);
  auto column = [&](int64_t j) {
    return k == 1 ? std::string()
                  : " (target column " + std::to_string(j) + ")";
  };
  const auto& names = train.feature_names;
  auto feature_name = [&](int64_t j) {
    return j < static_cast<int64_t>(names.size())
               ? "'" + names[static_cast<size_t>(j)] + "'"
               : "feature " + std::to_string(j);
  };

  // 0) Data on which the optimum is not unique or there is nothing to
  // learn: every later number would describe the data, not the run.
  {
    std::vector<std::string> problems;
    const int64_t rows = train.features.size(0);
    const int64_t features = train.features.size(1);
    if (rows < features + 1) {
      problems.push_back(
          std::to_string(rows) + " row(s) for " + std::to_string(features) +
          " feature(s), fewer than features + 1: a linear model fits them "
          "exactly (MSE 0) in many ways, so the optimum is not unique and "
          "says nothing about new data; add rows or drop features");
    }
    const auto raw = column_stats(train.features.to(at::kDouble));
    std::string constant;
    for (int64_t j = 0; j < features; ++j) {
      if (!(raw.second[j].item<double>() > 0)) {
        constant += (constant.empty() ? "" : ", ") + feature_name(j) +
                    " (always " + num(raw.first[j].item<double>()) + ")";
      }
    }
    if (!constant.empty() && rows > 1) {
      problems.push_back(
          "constant feature(s) " + constant +
          ": they carry no information and their weights are not "
          "identifiable; drop them");
    }
    const auto target = column_stats(y64);
    for (int64_t j = 0; j < target.second.size(0); ++j) {
      if (rows > 1 && !(target.second[j].item<double>() > 0)) {
        problems.push_back(
            "the target" + column(j) + " is constant (always " +
            num(target.first[j].item<double>()) +
            "): predicting that value is exact, so there is nothing to "
            "learn and the optimum MSE is 0");
      }
    }
    if (!problems.empty()) {
      std::string message;
      for (const auto& p : problems) {
        message += (message.empty() ? "" : "; ") + p;
      }
      warn("degenerate_data",
           message +
               ". Ratios to the optimum MSE mean nothing when it is 0; "
               "compare differences.");
    }
  }

  // a) Targets on a scale the loss should not see.
  {
    const double initial_loss =
        (initial - y_loss).square().mean().item<double>();
    auto [mean, sd] = column_stats(y_loss);
    const int64_t j = (mean.abs() + sd).argmax().item<int64_t>();
    const double m = mean[j].item<double>();
    const double s = sd[j].item<double>();
    if (std::abs(m) > kLargeTargetScale || s > kLargeTargetScale) {
      warn("target_scale",
           "the loss sees targets with mean " + sci(m) +
               " and standard deviation " + sci(s) + column(j) + " (" +
               scaling_name(method) + "); the initial MSE is " +
               sci(initial_loss) + ". " +
               (m * m > s * s
                    ? "Most of it is the offset the bias must learn: Adam "
                      "moves each parameter by about lr per step whatever "
                      "the gradient, and full-batch SGD shrinks the offset "
                      "only by a factor of about (1 - 2 lr) per step. "
                    : "Adam moves each parameter by about lr per step, "
                      "little next to that spread. ") +
               "Standardize the targets (StandardizedRegressor with "
               "TargetScaling::kZScore) so the loss sees mean 0 and "
               "standard deviation 1.");
    }
  }

  const int64_t steps =
      options.planned_steps() > 0 ? options.planned_steps() : kDefaultSteps;
  const std::string steps_text =
      options.planned_steps() > 0
          ? std::to_string(steps) + " are planned"
          : "a run of unknown length gets about 10,000 (pass "
            "DiagnoseOptions().planned_steps(epochs * batches) for a sharper "
            "check)";

  // b) Adam's step size is about lr whatever the gradient's size, so the
  // distance the mean prediction must travel fixes the number of steps.
  const auto step = optim::describe(optimizer);
  if (step.rule == optim::StepRule::kAdaptive) {
    const double lr = step.lr;
    auto distance = (y_loss.mean(0) - initial.mean(0)).abs();
    const int64_t j = distance.argmax().item<int64_t>();
    const double d = distance[j].item<double>();
    const double needed = d / lr;
    if (needed > static_cast<double>(steps)) {
      std::string advice =
          method == nn::TargetScaling::kZScore
              ? "Raise lr to about " + sci(d / static_cast<double>(steps)) +
                    " or plan more steps."
              : "Standardize the targets (StandardizedRegressor with "
                "TargetScaling::kZScore) or raise lr to about " +
                    sci(d / static_cast<double>(steps)) + ".";
      warn("adam_scale_stall",
           "Adam moves each parameter by about lr = " + num(lr) +
               " per step; the predictions must move " + sci(d) +
               " (target mean " + sci(y_loss.mean(0)[j].item<double>()) +
               ", initial prediction mean " +
               sci(initial.mean(0)[j].item<double>()) + column(j) +
               "), which needs about " + sci(needed) + " steps, but " +
               steps_text + ". " + advice);
    }
  }

  // c) Full-batch gradient descent on a quadratic diverges once lr exceeds
  // the stability bound divided by the Hessian's largest eigenvalue.
  const auto* linear = nn::as_affine(*model->regressor_module());
  const auto* sgd =
      step.rule == optim::StepRule::kGradientDescent ? &step : nullptr;
  if (sgd != nullptr && linear) {
    auto design = z.to(at::kDouble);
    if (linear->affine_bias().defined()) {
      design =
          at::cat({design, at::ones({design.size(0), 1}, design.options())}, 1);
    }
    const double n = static_cast<double>(design.size(0));
    const double lambda =
        2 *
            at::linalg_eigvalsh(at::matmul(design.t(), design) / n)
                .max()
                .item<double>() /
            static_cast<double>(k) +
        sgd->weight_decay;
    double bound = 2;
    std::string who = "plain gradient descent";
    std::string bound_text = "2";
    if (sgd->momentum > 0) {
      const double b = sgd->momentum;
      who = std::string("SGD with ") + (sgd->nesterov ? "Nesterov " : "") +
            "momentum " + num(b);
      if (sgd->nesterov) {
        bound = 2 * (1 + b) / (1 + 2 * b);
        bound_text = "2(1 + momentum)/(1 + 2 momentum) = " + num(bound);
      } else {
        bound = 2 * (1 + b) / std::max(1 - sgd->dampening, 1e-300);
        bound_text = "2(1 + momentum)/(1 - dampening) = " + num(bound);
      }
    }
    if (sgd->lr * lambda > bound) {
      warn("sgd_divergence",
           who + " diverges on this loss: lr = " + num(sgd->lr) +
               " times the largest eigenvalue of the MSE's Hessian, "
               "lambda = " +
               num(lambda) +
               " (2 lambda_max(X^T X / N) on the normalized features with "
               "a bias column" +
               (sgd->weight_decay > 0 ? ", plus weight_decay" : "") + "), is " +
               num(sgd->lr * lambda) + ", above " + bound_text +
               ", so every full-batch step overshoots and the error grows. "
               "Use lr below " +
               num(bound) + "/lambda = " + sci(bound / lambda) + " (e.g. " +
               sci(bound / lambda / 2) + "); minibatches need a little less.");
    }
  }

  // d) Spread of the feature scales, raw and as the regressor sees them.
  {
    auto raw_sd = column_stats(train.features).second;
    auto seen_sd = column_stats(z).second;
    auto name = [&](int64_t j) {
      return j < static_cast<int64_t>(names.size())
                 ? names[static_cast<size_t>(j)]
                 : "feature " + std::to_string(j);
    };
    int64_t lo = -1, hi = -1, constant = 0;
    for (int64_t j = 0; j < raw_sd.size(0); ++j) {
      const double s = raw_sd[j].item<double>();
      if (!(s > 0)) {
        ++constant;
        continue;
      }
      if (lo < 0 || s < raw_sd[lo].item<double>()) {
        lo = j;
      }
      if (hi < 0 || s > raw_sd[hi].item<double>()) {
        hi = j;
      }
    }
    if (lo >= 0 && lo != hi) {
      const double raw_ratio =
          raw_sd[hi].item<double>() / raw_sd[lo].item<double>();
      double seen_max = 0, seen_min = 0;
      for (int64_t j = 0; j < seen_sd.size(0); ++j) {
        const double s = seen_sd[j].item<double>();
        if (raw_sd[j].item<double>() > 0) {
          seen_max = std::max(seen_max, s);
          seen_min = seen_min == 0 ? s : std::min(seen_min, s);
        }
      }
      const double seen_ratio = seen_min > 0
                                    ? seen_max / seen_min
                                    : std::numeric_limits<double>::infinity();
      std::string message = "raw feature standard deviations range from " +
                            num(raw_sd[lo].item<double>()) + " (" + name(lo) +
                            ") to " + num(raw_sd[hi].item<double>()) + " (" +
                            name(hi) + "), a ratio of " + sci(raw_ratio) +
                            (constant > 0 ? " (" + std::to_string(constant) +
                                                " constant feature(s) left out)"
                                          : std::string()) +
                            "; after the model's Normalization the ratio is " +
                            sci(seen_ratio);
      if (seen_ratio > kLargeFeatureRatio) {
        warn("feature_scale",
             message +
                 ", so one learning rate cannot suit every weight. Let the "
                 "model's Normalization adapt to the data (leave mean and "
                 "variance out of NormalizationOptions).");
      } else {
        info("feature_scale", message + ".");
      }
    }
  }

  const bool any_warning =
      std::any_of(findings.begin(), findings.end(), [](const Finding& f) {
        return f.severity == Severity::kWarning;
      });
  if (!any_warning) {
    info("ok",
         "no problems found by the checks that apply to this model, "
         "optimizer and data (target scale, Adam's reach in " +
             std::string(options.planned_steps() > 0
                             ? std::to_string(steps) + " planned steps"
                             : "about 10,000 steps") +
             ", SGD stability, feature scales).");
  }
  return findings;
}

}  // namespace normopt::train
