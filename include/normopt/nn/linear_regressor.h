#pragma once

/// The linear model of the income example: y = x W^T + b.
///
/// \code
///   normopt::nn::LinearRegressor model(
///       normopt::nn::LinearRegressorOptions(2).init(
///           normopt::nn::Initializer::kKeras));
///   auto y_hat = model(x);  // x: (N, 2) -> (N, 1)
/// \endcode

#include <normopt/macros.h>
#include <normopt/nn/affine.h>
#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <optional>
#include <ostream>

namespace normopt::nn {

/// How LinearRegressor initialises its weights and bias.
enum class Initializer {
  /// torch::nn::Linear's: weight and bias ~ U(-1/sqrt(in), 1/sqrt(in)).
  kTorch,
  /// Keras Dense's: glorot-uniform weight, zero bias.
  kKeras,
  /// All zeros (the closed-form-friendly start of textbook gradient descent).
  kZeros,
};

/// Options for `LinearRegressor`. Read by reset(); changing them afterwards
/// takes effect at the next reset().
struct NORMOPT_API LinearRegressorOptions {
  /* implicit */ LinearRegressorOptions(int64_t in_features);
  /// Number of input features.
  TORCH_ARG(int64_t, in_features);
  /// Number of outputs (targets).
  TORCH_ARG(int64_t, out_features) = 1;
  /// Whether the model has a bias.
  TORCH_ARG(bool, bias) = true;
  /// Weight/bias initialisation scheme.
  TORCH_ARG(Initializer, init) = Initializer::kTorch;
  /// If set, the bias starts at this value (e.g. the target mean), whatever
  /// `init` says; requires `bias`.
  TORCH_ARG(std::optional<double>, bias_init) = std::nullopt;
};

/// A linear layer with regression-oriented initialisers.
class NORMOPT_API LinearRegressorImpl
    : public torch::nn::Cloneable<LinearRegressorImpl>,
      public Affine {
 public:
  explicit LinearRegressorImpl(LinearRegressorOptions options_);

  void reset() override;

  /// Re-draws the parameters according to `options`.
  void reset_parameters();

  /// x: (..., in_features) -> (..., out_features).
  at::Tensor forward(const at::Tensor& x);

  /// Checks shapes against the checkpoint before loading.
  void load(torch::serialize::InputArchive& archive) override;

  void pretty_print(std::ostream& stream) const override;

  /// Affine: `weight` and `bias`.
  const at::Tensor& affine_weight() const override {
    return weight;
  }
  const at::Tensor& affine_bias() const override {
    return bias;
  }

  /// The options this module was built with.
  LinearRegressorOptions options;
  /// (out_features, in_features).
  at::Tensor weight;
  /// (out_features), undefined without bias.
  at::Tensor bias;
};

/// A ModuleHolder for LinearRegressorImpl.
TORCH_MODULE(LinearRegressor);

}  // namespace normopt::nn
