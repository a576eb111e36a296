#include "objective.h"

#include "../util/finite.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <optional>

namespace normopt::train::detail {
namespace {

// Rows evaluated per forward pass at the end of an epoch: bounds the memory
// of the evaluation on large tables without changing its result.
constexpr int64_t kEvalChunk = 65536;

// The name of the first parameter whose gradient holds NaN or Inf, or
// nullopt when all are finite.
std::optional<std::string> first_nonfinite_gradient(
    const std::vector<std::pair<std::string, at::Tensor>>& named) {
  std::vector<at::Tensor> grads;
  std::vector<const std::string*> names;
  for (const auto& [name, p] : named) {
    if (p.grad().defined()) {
      grads.push_back(p.grad());
      names.push_back(&name);
    }
  }
  if (auto i = util::first_nonfinite_tensor(grads)) {
    return *names[*i];
  }
  return std::nullopt;
}

}  // namespace

// Mean squared errors of the standardized predictions against `y_std` and
// of the original-unit predictions against the raw targets.
// `x_norm` is the input already through the model's Normalization (see
// fit(): it is computed once, the statistics being fixed during training).
// The MSE in original units uses predict(x) - y = (z - y_std) * scale, the
// inverse transform being affine: one multiply instead of a second pass
// through the TargetStandardizer (equal up to float64 rounding).
std::pair<double, double> evaluate(nn::StandardizedRegressorImpl& model,
                                   const at::Tensor& x_norm,
                                   const at::Tensor& y_std,
                                   const at::Tensor& scale) {
  at::NoGradGuard no_grad;
  const int64_t n = x_norm.size(0);
  double loss_sum = 0, mse_sum = 0;
  for (int64_t start = 0; start < n; start += kEvalChunk) {
    const int64_t len = std::min(kEvalChunk, n - start);
    auto z =
        model.regressor.forward(x_norm.narrow(0, start, len)).to(at::kDouble);
    auto diff = (z - y_std.narrow(0, start, len)).reshape({-1});
    auto dollars = (diff.view_as(z) * scale).reshape({-1});
    loss_sum += at::dot(diff, diff).item<double>();
    mse_sum += at::dot(dollars, dollars).item<double>();
  }
  const double count = static_cast<double>(y_std.numel());
  return {loss_sum / count, mse_sum / count};
}

// The training step of an affine regressor (nn::Affine: LinearRegressor or
// any other) under the MSE loss, with the gradient in closed form instead of
// an autograd graph:
//   loss = mean((x Wᵀ + b - y)²) over B·k entries,
//   dL/dW = c (pred - y)ᵀ x,  dL/db = c Σ_rows (pred - y),  c = 2 / (B·k).
// The gradients are written into the parameters' .grad() in place, so the
// optimizer sees exactly what backward() would have left there. Returns the
// batch loss (for the divergence check).
double linear_mse_gradient(const nn::Affine& linear,
                           const at::Tensor& xb,
                           const at::Tensor& yb) {
  at::NoGradGuard no_grad;
  const auto& weight = linear.affine_weight();
  const auto& bias = linear.affine_bias();
  auto prediction = at::linear(xb, weight, bias);
  auto diff = prediction - yb;
  const double loss = at::mse_loss(prediction, yb).item<double>();
  const double c = 2.0 / static_cast<double>(diff.numel());
  auto& grad_w = weight.mutable_grad();
  if (!grad_w.defined()) {
    grad_w = at::zeros_like(weight);
  }
  at::addmm_out(grad_w, grad_w, diff.t(), xb, /*beta=*/0, /*alpha=*/c);
  if (bias.defined()) {
    auto& grad_b = bias.mutable_grad();
    if (!grad_b.defined()) {
      grad_b = at::zeros_like(bias);
    }
    at::sum_out(grad_b, diff, {0});
    grad_b.mul_(c);
  }
  return loss;
}

void check_step_finite(
    double loss,
    const std::vector<std::pair<std::string, at::Tensor>>& named_params,
    int64_t epoch,
    int64_t batch,
    int64_t batches) {
  TORCH_CHECK(std::isfinite(loss),
              "fit: the training loss is ",
              std::isnan(loss) ? "NaN" : "Inf",
              " at epoch ",
              epoch,
              ", batch ",
              batch,
              " (of ",
              batches,
              "); the run diverged: lower the learning rate or "
              "standardize the targets (TargetScaling::kZScore); the "
              "step was not taken");
  if (auto name = first_nonfinite_gradient(named_params)) {
    TORCH_CHECK(false,
                "fit: the gradient of parameter '",
                *name,
                "' holds NaN or Inf at epoch ",
                epoch,
                ", batch ",
                batch,
                " (of ",
                batches,
                ") while the loss is finite (",
                loss,
                "); the step was not taken. Lower the learning rate, "
                "check gradient hooks, or let the optimizer skip such "
                "steps (skip_nonfinite)");
  }
}

}  // namespace normopt::train::detail
