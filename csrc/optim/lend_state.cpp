#include <normopt/optim/detail/lend_state.h>

#include <normopt/optim/adam.h>
#include <normopt/optim/adamw.h>
#include <normopt/optim/sgd.h>

#include "op_options.h"

#include <typeinfo>

namespace normopt::optim::detail {
namespace {

bool cpu_contiguous(const at::Tensor& t) {
  return t.defined() && t.device().is_cpu() && t.is_contiguous();
}

// The options of the group holding `param`, or null.
template <typename Options>
const Options* options_of(const torch::optim::Optimizer& optimizer,
                          const at::Tensor& param) {
  for (const auto& group : optimizer.param_groups()) {
    for (const auto& p : group.params()) {
      if (p.is_same(param)) {
        return &static_cast<const Options&>(group.options());
      }
    }
  }
  return nullptr;
}

template <typename State>
State* state_of(torch::optim::Optimizer& optimizer, const at::Tensor& param) {
  auto& states = optimizer.state();
  const auto it = states.find(param.unsafeGetTensorImpl());
  return it == states.end() ? nullptr : static_cast<State*>(it->second.get());
}

template <typename Options>
std::optional<ops::AffineStepParam> lend_adam(
    torch::optim::Optimizer& optimizer,
    const at::Tensor& param,
    bool decoupled) {
  const auto* o = options_of<Options>(optimizer, param);
  auto* s = state_of<AdamParamState>(optimizer, param);
  if (!o || o->capturable() || !s || s->step_tensor().defined() ||
      !cpu_contiguous(s->exp_avg()) || !cpu_contiguous(s->exp_avg_sq()) ||
      (o->amsgrad() && !cpu_contiguous(s->max_exp_avg_sq()))) {
    return std::nullopt;
  }
  ops::AffineStepParam lent;
  lent.param = param;
  lent.grad = param.grad();
  lent.exp_avg = s->exp_avg();
  lent.exp_avg_sq = s->exp_avg_sq();
  if (o->amsgrad()) {
    lent.max_exp_avg_sq = s->max_exp_avg_sq();
  }
  lent.step = &s->step();
  lent.adam = adam_step_options(*o, decoupled);
  return lent;
}

std::optional<ops::AffineStepParam> lend_sgd(torch::optim::Optimizer& optimizer,
                                             const at::Tensor& param) {
  const auto* o = options_of<SGDOptions>(optimizer, param);
  if (!o) {
    return std::nullopt;
  }
  ops::AffineStepParam lent;
  lent.param = param;
  lent.grad = param.grad();
  lent.sgd = sgd_step_options(*o);
  if (o->momentum() != 0) {
    auto* s = state_of<SGDParamState>(optimizer, param);
    if (!s || !cpu_contiguous(s->momentum_buffer())) {
      return std::nullopt;
    }
    lent.momentum_buffer = s->momentum_buffer();
  }
  return lent;
}

}  // namespace

std::optional<ops::AffineStepParam> lend_state(
    torch::optim::Optimizer& optimizer, const at::Tensor& param) {
  if (!cpu_contiguous(param) || !cpu_contiguous(param.grad())) {
    return std::nullopt;
  }
  if (typeid(optimizer) == typeid(Adam)) {
    return lend_adam<AdamOptions>(optimizer, param, false);
  }
  if (typeid(optimizer) == typeid(AdamW)) {
    return lend_adam<AdamWOptions>(optimizer, param, true);
  }
  if (typeid(optimizer) == typeid(SGD)) {
    return lend_sgd(optimizer, param);
  }
  return std::nullopt;
}

}  // namespace normopt::optim::detail
