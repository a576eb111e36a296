#include <normopt/optim/adam.h>
#include <normopt/optim/adamw.h>

#include "adam_family.h"

#include <c10/util/Exception.h>

namespace normopt::optim {

// --- Options shared code paths (AdamOptions and AdamWOptions) ---------------

AdamOptions::AdamOptions(double lr) : lr_(lr) {}
double AdamOptions::effective_eps() const {
  return eps_.value_or(epsilon_mode_ == EpsilonMode::kKeras ? 1e-7 : 1e-8);
}
double AdamOptions::get_lr() const {
  return lr();
}
void AdamOptions::set_lr(const double lr) {
  this->lr(lr);
}
void AdamOptions::serialize(torch::serialize::OutputArchive& archive) const {
  detail::write_adam_options(*this, archive);
}
void AdamOptions::serialize(torch::serialize::InputArchive& archive) {
  detail::read_adam_options(*this, archive);
}

AdamWOptions::AdamWOptions(double lr) : lr_(lr) {}
double AdamWOptions::effective_eps() const {
  return eps_.value_or(epsilon_mode_ == EpsilonMode::kKeras ? 1e-7 : 1e-8);
}
double AdamWOptions::get_lr() const {
  return lr();
}
void AdamWOptions::set_lr(const double lr) {
  this->lr(lr);
}
void AdamWOptions::serialize(torch::serialize::OutputArchive& archive) const {
  detail::write_adam_options(*this, archive);
}
void AdamWOptions::serialize(torch::serialize::InputArchive& archive) {
  detail::read_adam_options(*this, archive);
}

template <typename Options>
bool same_adam_options(const Options& a, const Options& b) {
  return a.lr() == b.lr() && a.betas() == b.betas() && a.eps() == b.eps() &&
         a.weight_decay() == b.weight_decay() && a.amsgrad() == b.amsgrad() &&
         a.maximize() == b.maximize() &&
         a.epsilon_mode() == b.epsilon_mode() &&
         a.skip_nonfinite() == b.skip_nonfinite();
}

bool operator==(const AdamOptions& a, const AdamOptions& b) {
  return same_adam_options(a, b);
}
bool operator==(const AdamWOptions& a, const AdamWOptions& b) {
  return same_adam_options(a, b);
}

void AdamParamState::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(step);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg_sq);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(max_exp_avg_sq);
}
void AdamParamState::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(int64_t, step);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(at::Tensor, exp_avg);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(at::Tensor, exp_avg_sq);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(at::Tensor, max_exp_avg_sq);
}

// --- Adam --------------------------------------------------------------------

Adam::Adam(const std::vector<torch::optim::OptimizerParamGroup>& param_groups,
           AdamOptions defaults)
    : Optimizer(param_groups, std::make_unique<AdamOptions>(defaults)) {
  detail::keep_group_options(param_groups_, param_groups);
  detail::check_adam_options(defaults, "normopt::optim::Adam");
  for (const auto& g : param_groups_) {
    detail::check_adam_options(static_cast<const AdamOptions&>(g.options()),
                               "normopt::optim::Adam");
  }
}

Adam::Adam(std::vector<at::Tensor> params, AdamOptions defaults)
    : Adam({torch::optim::OptimizerParamGroup(std::move(params))},
           std::move(defaults)) {}

at::Tensor Adam::step(LossClosure closure) {
  at::Tensor loss;
  if (closure) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  const auto& d = static_cast<const AdamOptions&>(defaults());
  if (!detail::adam_family_step<AdamOptions>(
          "normopt::optim::Adam", param_groups_, state_, d, false)) {
    ++skipped_steps_;
    TORCH_WARN(
        "normopt::optim::Adam: skipped a step whose gradients hold NaN or Inf "
        "(skip_nonfinite is on); ",
        skipped_steps_,
        " step(s) skipped so far");
  }
  return loss;
}

void Adam::save(torch::serialize::OutputArchive& archive) const {
  serialize(*this, archive);
  detail::write_skipped_steps(archive, skipped_steps_);
}

void Adam::load(torch::serialize::InputArchive& archive) {
  const int64_t skipped =
      detail::read_skipped_steps(archive, "normopt::optim::Adam");
  serialize(*this, archive);
  skipped_steps_ = skipped;
}

// --- AdamW -------------------------------------------------------------------

AdamW::AdamW(const std::vector<torch::optim::OptimizerParamGroup>& param_groups,
             AdamWOptions defaults)
    : Optimizer(param_groups, std::make_unique<AdamWOptions>(defaults)) {
  detail::keep_group_options(param_groups_, param_groups);
  detail::check_adam_options(defaults, "normopt::optim::AdamW");
  for (const auto& g : param_groups_) {
    detail::check_adam_options(static_cast<const AdamWOptions&>(g.options()),
                               "normopt::optim::AdamW");
  }
}

AdamW::AdamW(std::vector<at::Tensor> params, AdamWOptions defaults)
    : AdamW({torch::optim::OptimizerParamGroup(std::move(params))},
            std::move(defaults)) {}

at::Tensor AdamW::step(LossClosure closure) {
  at::Tensor loss;
  if (closure) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  const auto& d = static_cast<const AdamWOptions&>(defaults());
  if (!detail::adam_family_step<AdamWOptions>(
          "normopt::optim::AdamW", param_groups_, state_, d, true)) {
    ++skipped_steps_;
    TORCH_WARN(
        "normopt::optim::AdamW: skipped a step whose gradients hold NaN or "
        "Inf (skip_nonfinite is on); ",
        skipped_steps_,
        " step(s) skipped so far");
  }
  return loss;
}

void AdamW::save(torch::serialize::OutputArchive& archive) const {
  serialize(*this, archive);
  detail::write_skipped_steps(archive, skipped_steps_);
}

void AdamW::load(torch::serialize::InputArchive& archive) {
  const int64_t skipped =
      detail::read_skipped_steps(archive, "normopt::optim::AdamW");
  serialize(*this, archive);
  skipped_steps_ = skipped;
}

}  // namespace normopt::optim
