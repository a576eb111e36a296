#include <normopt/optim/adam.h>
#include <normopt/optim/adamw.h>

#include "adam_family.h"
#include "step_rules.h"

#include <c10/util/Exception.h>

namespace normopt::optim {

// --- Options (AdamOptions and AdamWOptions) --------------------------------

template <bool D>
BasicAdamOptions<D>::BasicAdamOptions(double lr) : lr_(lr) {}
template <bool D>
double BasicAdamOptions<D>::effective_eps() const {
  return eps_.value_or(epsilon_mode_ == EpsilonMode::kKeras ? 1e-7 : 1e-8);
}
template <bool D>
double BasicAdamOptions<D>::get_lr() const {
  return lr();
}
template <bool D>
void BasicAdamOptions<D>::set_lr(const double lr) {
  this->lr(lr);
}
template <bool D>
void BasicAdamOptions<D>::serialize(
    torch::serialize::OutputArchive& archive) const {
  detail::write_adam_options(*this, archive);
}
template <bool D>
void BasicAdamOptions<D>::serialize(torch::serialize::InputArchive& archive) {
  detail::read_adam_options(*this, archive);
}

template struct BasicAdamOptions<false>;
template struct BasicAdamOptions<true>;

int64_t AdamParamState::step_count() const {
  if (!step_tensor_.defined()) {
    return step_;
  }
  return static_cast<int64_t>(step_tensor_.item<double>());
}

void AdamParamState::serialize(torch::serialize::OutputArchive& archive) const {
  archive.write("step", c10::IValue(step_count()));
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(step_tensor);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg_sq);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(max_exp_avg_sq);
}
void AdamParamState::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(int64_t, step);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(at::Tensor, step_tensor);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(at::Tensor, exp_avg);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(at::Tensor, exp_avg_sq);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(at::Tensor, max_exp_avg_sq);
}

// --- Adam and AdamW ----------------------------------------------------------

namespace {

template <typename Options>
struct Family;
template <>
struct Family<AdamOptions> {
  static constexpr const char* kName = "normopt::optim::Adam";
  static constexpr bool kDecoupledWeightDecay = false;
};
template <>
struct Family<AdamWOptions> {
  static constexpr const char* kName = "normopt::optim::AdamW";
  static constexpr bool kDecoupledWeightDecay = true;
};

}  // namespace

namespace detail {

template <typename Options>
AdamFamily<Options>::AdamFamily(
    const std::vector<torch::optim::OptimizerParamGroup>& param_groups,
    Options defaults)
    : Optimizer(param_groups, std::make_unique<Options>(defaults)) {
  keep_group_options(param_groups_, param_groups);
  check_adam_options(defaults, Family<Options>::kName);
  for (const auto& g : param_groups_) {
    check_adam_options(static_cast<const Options&>(g.options()),
                       Family<Options>::kName);
  }
}

template <typename Options>
AdamFamily<Options>::AdamFamily(std::vector<at::Tensor> params,
                                Options defaults)
    : AdamFamily({torch::optim::OptimizerParamGroup(std::move(params))},
                 std::move(defaults)) {}

template <typename Options>
at::Tensor AdamFamily<Options>::step(LossClosure closure) {
  at::Tensor loss;
  if (closure) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  const auto& d = static_cast<const Options&>(defaults());
  if (!adam_family_step<Options>(Family<Options>::kName,
                                 param_groups_,
                                 state_,
                                 d,
                                 Family<Options>::kDecoupledWeightDecay)) {
    ++skipped_steps_;
    TORCH_WARN(Family<Options>::kName,
               ": skipped a step whose gradients hold NaN or Inf "
               "(skip_nonfinite is on); ",
               skipped_steps_,
               " step(s) skipped so far");
  }
  return loss;
}

template <typename Options>
void AdamFamily<Options>::save(torch::serialize::OutputArchive& archive) const {
  torch::optim::serialize<AdamParamState, Options>(archive, *this);
  write_skipped_steps(archive, skipped_steps_);
}

template <typename Options>
void AdamFamily<Options>::load(torch::serialize::InputArchive& archive) {
  const int64_t skipped = read_skipped_steps(archive, Family<Options>::kName);
  // capturable says how this program runs the step (like the device), not
  // what was learned: each group keeps its own, and the next step() moves
  // the loaded step counts to where it wants them (place_step_count).
  std::vector<bool> capturable;
  for (const auto& g : param_groups_) {
    capturable.push_back(static_cast<const Options&>(g.options()).capturable());
  }
  torch::optim::serialize<AdamParamState, Options>(archive, *this);
  for (size_t i = 0; i < param_groups_.size() && i < capturable.size(); ++i) {
    static_cast<Options&>(param_groups_[i].options()).capturable(capturable[i]);
  }
  skipped_steps_ = skipped;
}

template <typename Options>
StepDescription AdamFamily<Options>::describe() const {
  StepDescription d =
      param_groups_.empty()
          ? StepDescription{}
          : adaptive(static_cast<const Options&>(param_groups_[0].options()),
                     Family<Options>::kDecoupledWeightDecay);
  d.skips_nonfinite = static_cast<const Options&>(defaults()).skip_nonfinite();
  return d;
}

template class AdamFamily<AdamOptions>;
template class AdamFamily<AdamWOptions>;

}  // namespace detail
}  // namespace normopt::optim
