// The op normopt::diagnose: train::diagnose(DescribedRun) for bindings, so
// Python's normopt.diagnose() gets the numbers of the one C++
// implementation. Python (python/normopt/diagnose.py) reads the model and
// optimizer into these arguments.

#include <normopt/train/diagnostics.h>

#include "../util/library.h"

#include <ATen/ATen.h>

#include <string>
#include <tuple>
#include <vector>

namespace normopt::jit {
namespace {

// target_scaling: the model's TargetStandardizer method ("zscore", "minmax",
// "none"), empty for a plain module. settings: lr, momentum, dampening,
// nesterov, weight_decay, decoupled_weight_decay, beta1, beta2, eps,
// keras_epsilon, amsgrad, maximize (flags as 0/1).
constexpr size_t kSettings = 12;

optim::StepDescription step_of(const std::string& rule,
                               const std::vector<double>& s) {
  TORCH_CHECK(s.size() == kSettings,
              "normopt::diagnose: expected ",
              kSettings,
              " optimizer settings, got ",
              s.size());
  optim::StepDescription d;
  d.rule = rule == "sgd"    ? optim::StepRule::kGradientDescent
           : rule == "adam" ? optim::StepRule::kAdaptive
                            : optim::StepRule::kUnknown;
  d.lr = s[0], d.momentum = s[1], d.dampening = s[2], d.nesterov = s[3] != 0;
  d.weight_decay = s[4], d.decoupled_weight_decay = s[5];
  d.beta1 = s[6], d.beta2 = s[7], d.eps = s[8];
  d.keras_epsilon = s[9] != 0, d.amsgrad = s[10] != 0, d.maximize = s[11] != 0;
  return d;
}

using Result = std::tuple<std::string,
                          std::vector<double>,
                          std::vector<int64_t>,
                          at::Tensor,
                          std::string,
                          std::vector<std::string>,
                          std::vector<std::string>,
                          std::vector<std::string>>;

Result diagnose_op(const at::Tensor& z,
                   const at::Tensor& t,
                   const at::Tensor& unit,
                   const at::Tensor& raw_x,
                   const at::Tensor& raw_y,
                   std::vector<std::string> feature_names,
                   std::string target_scaling,
                   std::string rule,
                   std::vector<double> settings,
                   const std::optional<at::Tensor>& weight,
                   const std::optional<at::Tensor>& bias,
                   double lr_weight,
                   double lr_bias,
                   const std::optional<at::Tensor>& replayed,
                   const std::optional<at::Tensor>& initial_prediction,
                   std::string replay_method,
                   int64_t steps,
                   int64_t batch_size,
                   bool shuffle,
                   int64_t seed) {
  train::DescribedRun run;
  run.z = z, run.t = t, run.unit = unit;
  run.raw.features = raw_x;
  run.raw.targets = raw_y;
  run.raw.feature_names = std::move(feature_names);
  if (!target_scaling.empty()) {
    run.target_scaling =
        nn::method_from_name(target_scaling, "normopt::diagnose");
  }
  run.step = step_of(rule, settings);
  run.weight = weight.value_or(at::Tensor());
  run.bias = bias.value_or(at::Tensor());
  run.lr_weight = lr_weight, run.lr_bias = lr_bias;
  run.replayed = replayed.value_or(at::Tensor());
  run.initial_prediction = initial_prediction.value_or(at::Tensor());
  run.replay_method = std::move(replay_method);
  const auto d = train::diagnose(run,
                                 train::DiagnoseOptions()
                                     .planned_steps(steps)
                                     .batch_size(batch_size)
                                     .shuffle(shuffle)
                                     .seed(static_cast<uint64_t>(seed)));
  auto trajectory =
      at::empty({static_cast<int64_t>(d.trajectory.size()), 2}, at::kDouble);
  for (size_t i = 0; i < d.trajectory.size(); ++i) {
    trajectory[static_cast<int64_t>(i)][0] =
        static_cast<double>(d.trajectory[i].step);
    trajectory[static_cast<int64_t>(i)][1] = d.trajectory[i].mse;
  }
  std::vector<std::string> severities, codes, messages;
  for (const auto& f : d.findings) {
    severities.push_back(f.severity == train::Severity::kWarning ? "warning"
                                                                 : "info");
    codes.push_back(f.code);
    messages.push_back(f.message);
  }
  return {train::verdict_name(d.verdict),
          {d.initial_mse, d.forecast_mse, d.optimum_mse, d.forecast_ratio},
          {d.planned_steps, d.steps_needed, d.steps_searched},
          trajectory,
          d.method,
          severities,
          codes,
          messages};
}

}  // namespace

NORMOPT_LIBRARY_FRAGMENT(m) {
  m.def("diagnose", &diagnose_op);
}

}  // namespace normopt::jit
