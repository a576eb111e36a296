#include <normopt/nn/standardized_regressor.h>

#include <normopt/nn/detail/serialize.h>

#include "stream_statistics.h"

#include <ATen/ATen.h>

namespace normopt::nn {

StandardizedRegressorImpl::StandardizedRegressorImpl(
    torch::nn::AnyModule regressor_, StandardizedRegressorOptions options_)
    : options(std::move(options_)), regressor(std::move(regressor_)) {
  TORCH_CHECK(
      !regressor.is_empty(),
      "StandardizedRegressor: the regressor module is empty; pass a module, "
      "e.g. LinearRegressor(n_features)");
  normalization =
      register_module("normalization", Normalization(options.inputs()));
  register_module("regressor", regressor.ptr());
  target = register_module("target", TargetStandardizer(options.targets()));
}

void StandardizedRegressorImpl::fit_statistics(const at::Tensor& x,
                                               const at::Tensor& y) {
  TORCH_CHECK(
      x.defined() && y.defined() && x.dim() >= 1 && y.dim() >= 1 &&
          x.size(0) == y.size(0),
      "StandardizedRegressor.fit_statistics: x and y must have the same "
      "number of rows, got shapes ",
      x.sizes(),
      " and ",
      y.sizes());
  normalization->adapt(x);
  target->fit(y);
}

void StandardizedRegressorImpl::fit_statistics(data::TableStream& stream) {
  stream.rewind();
  detail::RunningMoments inputs;
  detail::RunningTargets targets(target->options.method());
  while (auto part = stream.next()) {
    if (part->size() > 0) {
      inputs.add(normalization->moments_of(part->features));
      targets.add(part->targets,
                  "StandardizedRegressor.fit_statistics(stream)");
    }
  }
  TORCH_CHECK(!inputs.empty(),
              "StandardizedRegressor.fit_statistics(stream): the stream "
              "yielded no rows; pass a stream over the training data");
  normalization->reset_statistics();
  normalization->merge(inputs.n, inputs.mean, inputs.m2);
  targets.fit(*target);
}

at::Tensor StandardizedRegressorImpl::forward(const at::Tensor& x) {
  auto z = normalization->forward(x);
  return regressor.forward(z);
}

at::Tensor StandardizedRegressorImpl::predict(const at::Tensor& x) {
  return target->inverse_transform(forward(x));
}

at::Tensor StandardizedRegressorImpl::transform_targets(
    const at::Tensor& y) const {
  return target->transform(y);
}

std::shared_ptr<torch::nn::Module> StandardizedRegressorImpl::regressor_module()
    const {
  return regressor.ptr();
}

std::shared_ptr<torch::nn::Module> StandardizedRegressorImpl::clone(
    const std::optional<at::Device>& device) const {
  auto copy = std::make_shared<StandardizedRegressorImpl>(
      regressor.clone(device), options);
  copy->normalization = copy->replace_module(
      "normalization",
      Normalization(std::dynamic_pointer_cast<NormalizationImpl>(
          normalization->clone(device))));
  copy->target = copy->replace_module(
      "target",
      TargetStandardizer(std::dynamic_pointer_cast<TargetStandardizerImpl>(
          target->clone(device))));
  copy->train(is_training());
  return copy;
}

void StandardizedRegressorImpl::load(torch::serialize::InputArchive& archive) {
  detail::load_checked(*this, archive);
}

void StandardizedRegressorImpl::pretty_print(std::ostream& stream) const {
  stream << "normopt::nn::StandardizedRegressor";
}

}  // namespace normopt::nn
