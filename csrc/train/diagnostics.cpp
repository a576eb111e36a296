#include <normopt/nn/affine.h>
#include <normopt/train/diagnostics.h>
#include <normopt/train/fit.h>

#include "batches.h"
#include "checks.h"
#include "forecast/batch_moments.h"
#include "forecast/checks.h"
#include "forecast/problem.h"
#include "forecast/simulate.h"
#include "mode_guard.h"
#include "training_rows.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/modules/linear.h>

#include <algorithm>
#include <cmath>
#include <optional>

namespace normopt::train {
namespace {

using detail::Context;
using detail::Problem;

// Leaves torch's global CPU RNG as it found it (a side copy of a model
// draws its initial weights from it).
class RngGuard {
 public:
  RngGuard()
      : generator_(at::detail::getDefaultCPUGenerator()),
        state_(generator_.get_state()) {}
  ~RngGuard() {
    generator_.set_state(state_);
  }

 private:
  at::Generator generator_;
  at::Tensor state_;
};

// How far to look for steps_needed: ten times the plan on the full-batch
// quadratic, three times on minibatches (replaying the plan's epochs again;
// beyond that steps_needed is extrapolated), while the look-ahead stays
// within about 2e8 multiply-adds (a few tenths of a second) at the cost of
// a step over the batch's rows.
int64_t horizon_of(const Problem& p, int64_t steps, int64_t batch) {
  const bool minibatch = batch > 0 && p.has_rows();
  const double per_step =
      static_cast<double>(p.targets) * static_cast<double>(p.features + 1) *
      static_cast<double>(minibatch ? std::min(batch, p.rows) + p.features
                                    : p.features + 1);
  const double budget = 2e8 / std::max(per_step, 1.0);
  const int64_t ahead = minibatch ? 3 : 10;
  return std::max(
      steps, std::min<int64_t>(ahead * steps, static_cast<int64_t>(budget)));
}

void check_options(const DiagnoseOptions& options) {
  TORCH_CHECK(options.planned_steps() >= 1,
              "diagnose: planned_steps must be at least 1 (the optimizer "
              "steps the run will take: epochs × batches per epoch), got ",
              options.planned_steps());
  TORCH_CHECK(options.batch_size() >= 0,
              "diagnose: batch_size must be >= 0 (0 = full batch), got ",
              options.batch_size());
}

void check_parameters(const std::vector<at::Tensor>& params,
                      const torch::optim::Optimizer& optimizer,
                      const detail::OptimizerView& view) {
  TORCH_CHECK(!params.empty(),
              "diagnose: the model has no parameters; give it a module with "
              "parameters, e.g. LinearRegressor(n_features)");
  TORCH_CHECK(!optimizer.param_groups().empty(),
              "diagnose: the optimizer has no param groups; build it on the "
              "model's parameters()");
  const bool held = std::any_of(params.begin(), params.end(), [&](auto& p) {
    return !std::isnan(view.lr_of(p));
  });
  TORCH_CHECK(held,
              "diagnose: the optimizer holds none of the model's "
              "parameters; build it on the model's parameters()");
}

void check_prediction_shape(at::IntArrayRef predicted, const Problem& p) {
  TORCH_CHECK(predicted.size() == 2 && predicted[0] == p.rows &&
                  predicted[1] == p.targets,
              "diagnose: the model predicts shape ",
              predicted,
              " for targets of shape [",
              p.rows,
              ", ",
              p.targets,
              "]; make the model's output features match the number of "
              "target columns");
}

// The model's affine parameters: an nn::Affine or a torch::nn::Linear.
std::optional<std::pair<at::Tensor, at::Tensor>> affine_parameters(
    const torch::nn::Module& module) {
  if (const auto* affine = nn::as_affine(module)) {
    return std::make_pair(affine->affine_weight(), affine->affine_bias());
  }
  if (const auto* linear =
          dynamic_cast<const torch::nn::LinearImpl*>(&module)) {
    return std::make_pair(linear->weight, linear->bias);
  }
  return std::nullopt;
}

double lr_or(const detail::OptimizerView& view,
             const at::Tensor& param,
             double fallback) {
  const double lr = param.defined() ? view.lr_of(param) : fallback;
  return std::isnan(lr) ? fallback : lr;
}

detail::Plan plan_of(const Problem& problem, const DiagnoseOptions& options) {
  detail::Plan plan;
  plan.steps = options.planned_steps();
  plan.batch_size = problem.has_rows() ? options.batch_size() : 0;
  plan.shuffle = options.shuffle();
  plan.seed = options.seed();
  plan.horizon = horizon_of(problem, plan.steps, plan.batch_size);
  return plan;
}

// The start of an affine model, or of a linear surrogate from zeros for
// other models (their remedies are the surrogate's).
void set_affine(Context& c,
                const at::Tensor& weight,
                const at::Tensor& bias,
                double lr_weight,
                double lr_bias) {
  const auto& p = c.problem;
  const auto f64 = [](const at::Tensor& t) {
    return t.detach().to(at::kCPU, at::kDouble);
  };
  c.affine.weight = weight.defined()
                        ? f64(weight)
                        : at::zeros({p.targets, p.features}, at::kDouble);
  c.affine.bias = !weight.defined() ? at::zeros({p.targets}, at::kDouble)
                  : bias.defined()  ? f64(bias)
                                    : at::Tensor();
  c.affine.lr_weight = lr_weight;
  c.affine.lr_bias = lr_bias;
  if (!c.initial_prediction.defined()) {
    c.initial_prediction =
        at::matmul(p.mean_z, c.affine.weight.t()) +
        (c.affine.bias.defined() ? c.affine.bias : at::zeros({1}));
  }
}

bool forecastable(const Context& c) {
  const auto& step = c.optimizer.step;
  return step.rule != optim::StepRule::kUnknown && std::isfinite(step.lr);
}

// The remedies, every check and the Diagnosis, once c.run is set (or the
// optimizer is unknown).
Diagnosis report(Context& c) {
  if (forecastable(c)) {
    c.verdict = detail::verdict_of(c.run, c.problem.optimum_mse());
    detail::find_remedies(c);
  }
  Diagnosis d;
  d.verdict = c.verdict;
  d.planned_steps = c.plan.steps;
  d.optimum_mse = c.problem.optimum_mse();
  if (c.describable()) {
    d.initial_mse = c.run.initial_mse;
    d.forecast_mse = c.run.final_mse;
    d.forecast_ratio = c.ratio(c.run);
    d.steps_needed = c.run.steps_needed;
    d.steps_searched = c.run.steps_searched;
    d.method = c.run.method;
    d.trajectory = c.run.trajectory;
  }
  for (const auto check : detail::kChecks) {
    check(c, d.findings);
  }
  std::stable_partition(
      d.findings.begin(), d.findings.end(), [](const Finding& f) {
        return f.severity == Severity::kWarning;
      });
  if (!d.has_warning()) {
    d.findings.push_back(
        {Severity::kInfo,
         "ok",
         "no problems found by the checks that apply to this model, "
         "optimizer and data (the forecast, target and feature scales, "
         "Adam's reach, SGD stability, conditioning, learning rate, "
         "minibatch noise)."});
  }
  return d;
}

// The model's mean initial prediction per target column (loss units).
at::Tensor initial_prediction(const Problem& problem,
                              torch::nn::Module& module,
                              const detail::Forward& forward) {
  at::NoGradGuard no_grad;
  detail::ModeGuard mode(module);
  module.eval();
  const auto p0 = module.parameters()[0];
  const auto out = forward(problem.z.to(p0.device(), p0.scalar_type()))
                       .to(at::kCPU, at::kDouble);
  check_prediction_shape(out.sizes(), problem);
  return out.mean(0);
}

// diagnose() of a module given by its forward in loss units.
Diagnosis run_checks(const Problem& problem,
                     torch::nn::Module& module,
                     const detail::Forward& model_forward,
                     const torch::optim::Optimizer& optimizer,
                     const DiagnoseOptions& options) {
  // Predictions (N) for one target column count as (N, 1).
  const detail::Forward forward = [&](const at::Tensor& z) {
    auto out = model_forward(z);
    return out.dim() == 1 && problem.targets == 1 ? out.unsqueeze(1) : out;
  };
  const auto view = detail::view_optimizer(optimizer);
  const auto params = module.parameters();
  check_parameters(params, optimizer, view);
  const auto plan = plan_of(problem, options);
  Context c(problem, view, plan);
  if (problem.z.defined()) {
    c.initial_prediction = initial_prediction(problem, module, forward);
  }
  const auto found = affine_parameters(module);
  c.model_is_affine = found.has_value();
  if (found) {
    set_affine(c,
               found->first,
               found->second,
               lr_or(view, found->first, view.step.lr),
               lr_or(view, found->second, view.step.lr));
  } else {
    set_affine(c, at::Tensor(), at::Tensor(), view.step.lr, view.step.lr);
  }
  if (forecastable(c) && c.model_is_affine) {
    c.run = detail::forecast_affine(problem, c.affine, view.step, plan);
  } else if (forecastable(c)) {
    TORCH_CHECK(problem.z.defined(),
                "diagnose: a model that is not affine is forecast by "
                "replay, which needs the rows: pass a Table or tensors, "
                "not a stream");
    detail::ModuleStart start{forward, params, {}, &module};
    for (const auto& p : params) {
      start.lrs.push_back(lr_or(view, p, view.step.lr));
    }
    c.run = detail::forecast_module(problem, start, view.step, plan);
  }
  return report(c);
}

Diagnosis diagnose_regressor(nn::StandardizedRegressor& model,
                             const torch::optim::Optimizer& optimizer,
                             const Problem& problem,
                             const DiagnoseOptions& options) {
  auto regressor = model->regressor;
  return run_checks(
      problem,
      *model->regressor_module(),
      [&](const at::Tensor& z) { return regressor.forward(z); },
      optimizer,
      options);
}

}  // namespace

std::ostream& operator<<(std::ostream& stream, const Finding& finding) {
  return stream << (finding.severity == Severity::kWarning ? "[warning] "
                                                           : "[info] ")
                << finding.code << ": " << finding.message;
}

const char* verdict_name(Verdict verdict) {
  switch (verdict) {
    case Verdict::kConverges:
      return "converges";
    case Verdict::kStalls:
      return "stalls";
    case Verdict::kDiverges:
      return "diverges";
    case Verdict::kUnknown:
      return "unknown";
  }
  return "unknown";
}

const Finding* Diagnosis::find(const std::string& code) const {
  for (const auto& f : findings) {
    if (f.code == code) {
      return &f;
    }
  }
  return nullptr;
}

bool Diagnosis::has_warning() const {
  return std::any_of(findings.begin(), findings.end(), [](const Finding& f) {
    return f.severity == Severity::kWarning;
  });
}

double Diagnosis::mse_at(int64_t step) const {
  if (trajectory.empty() || step < trajectory.front().step ||
      step > trajectory.back().step) {
    return kNaN;
  }
  auto after = std::lower_bound(
      trajectory.begin(),
      trajectory.end(),
      step,
      [](const ForecastPoint& p, int64_t s) { return p.step < s; });
  if (after->step == step || after == trajectory.begin()) {
    return after->mse;
  }
  const auto before = after - 1;
  const double f = static_cast<double>(step - before->step) /
                   static_cast<double>(after->step - before->step);
  return std::exp((1 - f) * std::log(before->mse) + f * std::log(after->mse));
}

std::ostream& operator<<(std::ostream& stream, const Diagnosis& d) {
  stream << verdict_name(d.verdict);
  if (d.verdict != Verdict::kUnknown) {
    stream << ": forecast MSE " << detail::sci(d.forecast_mse) << ", "
           << detail::num(d.forecast_ratio) << "x the optimum "
           << detail::sci(d.optimum_mse) << " after " << d.planned_steps
           << " steps";
  }
  stream << "\n";
  for (const auto& f : d.findings) {
    stream << "  " << f << "\n";
  }
  return stream;
}

DiagnoseOptions DiagnoseOptions::for_fit(const FitOptions& options,
                                         int64_t rows) {
  return DiagnoseOptions()
      .planned_steps(std::max<int64_t>(
          1,
          options.epochs() *
              detail::batches_per_epoch(rows, options.batch_size())))
      .batch_size(options.batch_size())
      .shuffle(options.shuffle())
      .seed(options.seed());
}

Diagnosis diagnose(nn::StandardizedRegressor& model,
                   const torch::optim::Optimizer& optimizer,
                   const data::Table& train,
                   const DiagnoseOptions& options) {
  check_options(options);
  RngGuard rng;
  detail::check_table(model, train, "diagnose", "training");
  TORCH_CHECK(!model->parameters().empty(),
              "diagnose: the model has no parameters; wrap a regressor with "
              "parameters, e.g. LinearRegressor(n_features)");
  // The rows in loss units are kept only for a replay: of a model that is
  // not affine, or of an affine model's minibatches when they are not
  // summed from the raw rows (batch_moments.h).
  const int64_t rows = train.features.size(0);
  const int64_t batch = options.batch_size();
  const bool minibatch = batch > 0 && batch < rows;
  const bool sums =
      detail::per_column(*model->normalization) &&
      detail::batch_sums_pay(train.features.size(1),
                             detail::as_matrix(train.targets).size(1),
                             batch);
  const bool affine = affine_parameters(*model->regressor_module()).has_value();
  const auto keep = !affine || (minibatch && !sums)
                        ? detail::KeepRows::kLossUnits
                    : minibatch ? detail::KeepRows::kRaw
                                : detail::KeepRows::kNone;
  const auto problem = detail::problem_of(model, train, keep);
  return diagnose_regressor(model, optimizer, problem, options);
}

Diagnosis diagnose(nn::StandardizedRegressor& model,
                   const torch::optim::Optimizer& optimizer,
                   const at::Tensor& x,
                   const at::Tensor& y,
                   const DiagnoseOptions& options) {
  return diagnose(model, optimizer, data::Table{x, y, {}, ""}, options);
}

Diagnosis diagnose(nn::StandardizedRegressor& model,
                   const torch::optim::Optimizer& optimizer,
                   data::TableStream& train,
                   const DiagnoseOptions& options) {
  check_options(options);
  RngGuard rng;
  TORCH_CHECK(!model->parameters().empty(),
              "diagnose: the model has no parameters; wrap a regressor with "
              "parameters, e.g. LinearRegressor(n_features)");
  const auto problem = detail::problem_of(model, train);
  return diagnose_regressor(model, optimizer, problem, options);
}

Diagnosis diagnose(torch::nn::Module& module,
                   const std::function<at::Tensor(const at::Tensor&)>& forward,
                   const torch::optim::Optimizer& optimizer,
                   const at::Tensor& x,
                   const at::Tensor& y,
                   const DiagnoseOptions& options) {
  check_options(options);
  RngGuard rng;
  detail::check_data(data::Table{x, y, {}, ""}, "diagnose", "training");
  const auto problem = detail::problem_of(x, y);
  return run_checks(problem, module, forward, optimizer, options);
}

Diagnosis diagnose(const DescribedRun& run, const DiagnoseOptions& options) {
  check_options(options);
  detail::check_data(run.raw, "diagnose", "training");
  const auto problem =
      detail::problem_of(run.z, run.t, run.unit, run.raw, run.target_scaling);
  detail::OptimizerView view;
  view.step = run.step;
  const auto plan = plan_of(problem, options);
  Context c(problem, view, plan);
  c.model_is_affine = run.weight.defined();
  if (run.initial_prediction.defined()) {
    c.initial_prediction = run.initial_prediction.to(at::kCPU, at::kDouble);
  }
  const double lr = run.step.lr;
  set_affine(c,
             run.weight,
             run.bias,
             std::isnan(run.lr_weight) ? lr : run.lr_weight,
             std::isnan(run.lr_bias) ? lr : run.lr_bias);
  if (forecastable(c) && c.model_is_affine) {
    TORCH_CHECK(run.weight.dim() == 2 &&
                    run.weight.size(0) == problem.targets &&
                    run.weight.size(1) == problem.features,
                "diagnose: the weight has shape ",
                run.weight.sizes(),
                " for ",
                problem.features,
                " features and ",
                problem.targets,
                " target column(s); expected (targets, features)");
    c.run = detail::forecast_affine(problem, c.affine, view.step, plan);
  } else if (forecastable(c)) {
    TORCH_CHECK(run.replayed.defined(),
                "diagnose: a model without a weight needs its replayed run");
    c.run = detail::run_of(
        run.replayed, plan, problem.optimum_mse(), run.replay_method);
  }
  return report(c);
}

}  // namespace normopt::train
