#pragma once

/// `Affine`: what normopt needs to know about a regressor that computes
/// y = x Wᵀ + b. normopt::train uses it for the MSE gradient in closed form,
/// the feature-count check and diagnose()'s stability bound, and
/// export_pipeline to write the pipeline; LinearRegressor implements it, and
/// a new affine model that implements it gets all of that with no change
/// elsewhere.
///
/// \code
///   const auto* affine = normopt::nn::as_affine(*model->regressor_module());
///   if (affine) {
///     std::cout << affine->affine_weight().sizes() << "\n";  // [out, in]
///   }
/// \endcode

#include <ATen/core/Tensor.h>
#include <normopt/macros.h>
#include <torch/nn/module.h>

namespace normopt::nn {

/// A module computing y = x Wᵀ + b on inputs (..., in_features).
class NORMOPT_API Affine {
 public:
  virtual ~Affine() = default;
  /// The (out_features, in_features) weight W, a parameter of the module.
  virtual const at::Tensor& affine_weight() const = 0;
  /// The (out_features) bias b, a parameter; undefined without a bias.
  virtual const at::Tensor& affine_bias() const = 0;
};

/// `module` as an Affine, or nullptr when it is not one.
inline const Affine* as_affine(const torch::nn::Module& module) {
  return dynamic_cast<const Affine*>(&module);
}

}  // namespace normopt::nn
