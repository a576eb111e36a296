#include <normopt/nn/linear_regressor.h>

#include <normopt/nn/detail/serialize.h>

#include <ATen/ATen.h>
#include <torch/nn/init.h>

#include <cmath>

namespace normopt::nn {

LinearRegressorOptions::LinearRegressorOptions(int64_t in_features)
    : in_features_(in_features) {}

LinearRegressorImpl::LinearRegressorImpl(LinearRegressorOptions options_)
    : options(options_) {
  // NOLINTNEXTLINE(clang-analyzer-optin.cplusplus.VirtualCall)
  reset();
}

void LinearRegressorImpl::reset() {
  TORCH_CHECK(
      options.in_features() > 0 && options.out_features() > 0,
      "LinearRegressor: in_features and out_features must be positive, got ",
      options.in_features(),
      " and ",
      options.out_features());
  TORCH_CHECK(
      options.bias() || !options.bias_init().has_value(),
      "LinearRegressor: bias_init is set but bias is disabled; enable bias or "
      "drop bias_init");
  weight = register_parameter(
      "weight", at::empty({options.out_features(), options.in_features()}));
  if (options.bias()) {
    bias = register_parameter("bias", at::empty({options.out_features()}));
  } else {
    bias = register_parameter("bias", at::Tensor(), /*requires_grad=*/false);
  }
  reset_parameters();
}

void LinearRegressorImpl::reset_parameters() {
  at::NoGradGuard no_grad;
  const auto fan_in = static_cast<double>(options.in_features());
  const auto fan_out = static_cast<double>(options.out_features());
  switch (options.init()) {
    case Initializer::kTorch: {
      // Same draws, in the same order, as torch::nn::Linear::reset_parameters.
      torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
      if (bias.defined()) {
        const double bound = 1.0 / std::sqrt(fan_in);
        torch::nn::init::uniform_(bias, -bound, bound);
      }
      break;
    }
    case Initializer::kKeras: {
      const double limit = std::sqrt(6.0 / (fan_in + fan_out));
      torch::nn::init::uniform_(weight, -limit, limit);
      if (bias.defined()) {
        bias.zero_();
      }
      break;
    }
    case Initializer::kZeros:
      weight.zero_();
      if (bias.defined()) {
        bias.zero_();
      }
      break;
  }
  if (options.bias_init().has_value()) {
    bias.fill_(*options.bias_init());
  }
}

at::Tensor LinearRegressorImpl::forward(const at::Tensor& x) {
  TORCH_CHECK(x.dim() >= 1 && x.size(-1) == options.in_features(),
              "LinearRegressor: expected input with ",
              options.in_features(),
              " features in the last dimension, got shape ",
              x.sizes());
  TORCH_CHECK(x.scalar_type() == weight.scalar_type(),
              "LinearRegressor: input dtype ",
              x.scalar_type(),
              " differs from the parameters' ",
              weight.scalar_type(),
              "; convert the input or call model->to(dtype)");
  return at::linear(x, weight, bias);
}

void LinearRegressorImpl::load(torch::serialize::InputArchive& archive) {
  detail::load_checked(*this, archive);
}

void LinearRegressorImpl::pretty_print(std::ostream& stream) const {
  stream << "normopt::nn::LinearRegressor(in_features=" << options.in_features()
         << ", out_features=" << options.out_features()
         << ", bias=" << std::boolalpha << options.bias() << ")";
}

}  // namespace normopt::nn
