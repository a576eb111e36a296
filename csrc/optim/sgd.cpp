#include <normopt/ops/optim_step.h>
#include <normopt/optim/sgd.h>

#include "adam_family.h"
#include "op_options.h"
#include "step_lists.h"
#include "step_rules.h"

#include <ATen/ATen.h>

namespace normopt::optim {

SGDOptions::SGDOptions(double lr) : lr_(lr) {}
double SGDOptions::get_lr() const {
  return lr();
}
void SGDOptions::set_lr(const double lr) {
  this->lr(lr);
}
void SGDOptions::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(lr);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(momentum);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(dampening);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(weight_decay);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(nesterov);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(maximize);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(skip_nonfinite);
}
void SGDOptions::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, lr);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, momentum);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, dampening);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, weight_decay);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(bool, nesterov);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(bool, maximize);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(bool, skip_nonfinite);
}

bool operator==(const SGDOptions& a, const SGDOptions& b) {
  return a.lr() == b.lr() && a.momentum() == b.momentum() &&
         a.dampening() == b.dampening() &&
         a.weight_decay() == b.weight_decay() && a.nesterov() == b.nesterov() &&
         a.maximize() == b.maximize() &&
         a.skip_nonfinite() == b.skip_nonfinite();
}

void SGDParamState::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(momentum_buffer);
}
void SGDParamState::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(at::Tensor, momentum_buffer);
}

namespace {
void check_sgd_options(const SGDOptions& o) {
  constexpr const char* name = "normopt::optim::SGD";
  TORCH_CHECK(o.lr() >= 0, name, ": invalid learning rate ", o.lr());
  TORCH_CHECK(o.momentum() >= 0, name, ": invalid momentum ", o.momentum());
  TORCH_CHECK(
      o.weight_decay() >= 0, name, ": invalid weight_decay ", o.weight_decay());
  TORCH_CHECK(!o.nesterov() || (o.momentum() > 0 && o.dampening() == 0),
              name,
              ": Nesterov momentum requires a momentum and zero dampening, got "
              "momentum ",
              o.momentum(),
              " and dampening ",
              o.dampening());
}
}  // namespace

SGD::SGD(const std::vector<torch::optim::OptimizerParamGroup>& param_groups,
         SGDOptions defaults)
    : Optimizer(param_groups, std::make_unique<SGDOptions>(defaults)) {
  detail::keep_group_options(param_groups_, param_groups);
  check_sgd_options(defaults);
  for (const auto& g : param_groups_) {
    check_sgd_options(static_cast<const SGDOptions&>(g.options()));
  }
}

SGD::SGD(std::vector<at::Tensor> params, SGDOptions defaults)
    : SGD({torch::optim::OptimizerParamGroup(std::move(params))},
          std::move(defaults)) {}

at::Tensor SGD::step(LossClosure closure) {
  at::Tensor loss;
  if (closure) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  at::NoGradGuard no_grad;
  const auto& d = static_cast<const SGDOptions&>(defaults());
  if (d.skip_nonfinite() && !detail::all_grads_finite(param_groups_)) {
    ++skipped_steps_;
    TORCH_WARN(
        "normopt::optim::SGD: skipped a step whose gradients hold NaN or Inf "
        "(skip_nonfinite is on); ",
        skipped_steps_,
        " step(s) skipped so far");
    return loss;
  }
  // Parameters whose momentum buffer is new take PyTorch's first-step rule;
  // they go in a separate call.
  detail::StepLists<6> lists;
  constexpr size_t kParams = 0, kGrads = 2, kBufs = 4;  // + k, below
  for (auto& group : param_groups_) {
    const auto& o = static_cast<const SGDOptions&>(group.options());
    lists.clear();
    auto& params = group.params();  // an out-of-line call: once a group
    for (size_t i = 0; i < params.size(); ++i) {
      auto& p = params[i];
      const auto& grad = detail::grad_of(p);
      if (!detail::has_dense_grad("normopt::optim::SGD", i, grad)) {
        continue;
      }
      size_t k = 0;
      if (o.momentum() != 0) {
        auto& slot = state_[p.unsafeGetTensorImpl()];
        if (!slot) {
          slot = std::make_unique<SGDParamState>();
        }
        auto& s = static_cast<SGDParamState&>(*slot);
        if (!s.momentum_buffer().defined()) {
          s.momentum_buffer(at::empty_like(p, at::MemoryFormat::Preserve));
          k = 1;
        }
        lists.add(kBufs + k, s.momentum_buffer());
      }
      lists.add(kParams + k, p);
      detail::add_grad(lists, kGrads + k, p, grad);
    }
    auto so = detail::sgd_step_options(o);
    for (size_t k = 0; k < 2; ++k) {
      if (!lists[kParams + k].empty()) {
        so.is_first_step = k == 1;
        ops::sgd_step_(
            lists[kParams + k], lists[kGrads + k], lists[kBufs + k], so);
      }
    }
  }
  return loss;
}

void SGD::save(torch::serialize::OutputArchive& archive) const {
  serialize(*this, archive);
  detail::write_skipped_steps(archive, skipped_steps_);
}

void SGD::load(torch::serialize::InputArchive& archive) {
  const int64_t skipped =
      detail::read_skipped_steps(archive, "normopt::optim::SGD");
  serialize(*this, archive);
  skipped_steps_ = skipped;
}

StepDescription SGD::describe() const {
  StepDescription d =
      param_groups_.empty()
          ? StepDescription{}
          : detail::gradient_descent(
                static_cast<const SGDOptions&>(param_groups_[0].options()));
  d.skips_nonfinite =
      static_cast<const SGDOptions&>(defaults()).skip_nonfinite();
  return d;
}

}  // namespace normopt::optim
