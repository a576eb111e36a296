#pragma once
// Internal: the pieces of fit()'s objective and step: evaluation of the
// losses, the closed-form gradient of a linear model under MSE, and the
// guard that keeps non-finite values out of the parameters.

#include <normopt/nn/affine.h>
#include <normopt/nn/standardized_regressor.h>

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace normopt::train::detail {

/// Mean squared errors over the whole set, float64: of the standardized
/// predictions against `y_std` (the loss) and of the original-unit
/// predictions (y_std's rows times `scale`) against the raw targets (the
/// MSE). `x_norm` is the input already through the model's Normalization.
/// Evaluated in chunks of rows, without gradients.
std::pair<double, double> evaluate(nn::StandardizedRegressorImpl& model,
                                   const at::Tensor& x_norm,
                                   const at::Tensor& y_std,
                                   const at::Tensor& scale);

/// The training step's gradient of an affine regressor under the MSE loss,
/// in closed form instead of an autograd graph, written into the
/// parameters' .grad(); returns the batch loss.
double linear_mse_gradient(const nn::Affine& linear,
                           const at::Tensor& xb,
                           const at::Tensor& yb);

/// Throws c10::Error, naming the epoch and batch, when the batch loss
/// `loss` or a parameter's gradient holds NaN or Inf: the step must not be
/// taken.
void check_step_finite(
    double loss,
    const std::vector<std::pair<std::string, at::Tensor>>& named_params,
    int64_t epoch,
    int64_t batch,
    int64_t batches);

}  // namespace normopt::train::detail
