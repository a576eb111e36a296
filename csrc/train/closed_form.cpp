#include <normopt/train/closed_form.h>

#include "../util/finite.h"

#include <ATen/ATen.h>

#include <cmath>

namespace normopt::train {
namespace {

// Float64 CPU copy of a real tensor, after the checks every caller needs.
at::Tensor checked_double(const at::Tensor& t, const char* name) {
  TORCH_CHECK(!t.is_complex() && t.scalar_type() != at::kBool,
              "solve_least_squares: ",
              name,
              " must hold real numbers, got ",
              t.scalar_type());
  auto d = t.to(at::kCPU, at::kDouble);
  if (auto index = util::first_nonfinite_index(d)) {
    TORCH_CHECK(false,
                "solve_least_squares: ",
                name,
                at::IntArrayRef(*index),
                " is NaN or Inf; remove or impute it before solving");
  }
  return d;
}

}  // namespace

LeastSquares solve_least_squares(const at::Tensor& x,
                                 const at::Tensor& y,
                                 double ridge) {
  TORCH_CHECK(std::isfinite(ridge) && ridge >= 0,
              "solve_least_squares: ridge must be finite and >= 0, got ",
              ridge,
              "; pass 0 for ordinary least squares");
  TORCH_CHECK(x.defined() && y.defined(),
              "solve_least_squares: ",
              x.defined() ? "y" : "x",
              " is undefined");
  TORCH_CHECK(x.dim() == 2,
              "solve_least_squares: expected x of shape (N, F), got ",
              x.sizes());
  TORCH_CHECK(y.dim() == 1 || y.dim() == 2,
              "solve_least_squares: expected y of shape (N) or (N, k), got ",
              y.sizes());
  TORCH_CHECK(x.size(0) == y.size(0),
              "solve_least_squares: x has ",
              x.size(0),
              " rows but y has ",
              y.size(0),
              "; give one target row per feature row");
  TORCH_CHECK(x.size(0) > 0,
              "solve_least_squares: got no rows (x has shape ",
              x.sizes(),
              "); there is nothing to fit");
  TORCH_CHECK(y.dim() == 1 || y.size(1) > 0,
              "solve_least_squares: y has no target columns (shape ",
              y.sizes(),
              ")");
  const auto xd = checked_double(x, "x");
  const auto yd = checked_double(y.dim() == 1 ? y.unsqueeze(1) : y, "y");
  const int64_t n = xd.size(0);
  const int64_t f = xd.size(1);

  at::Tensor coef;  // (F, k)
  at::Tensor bias;  // (k)
  if (ridge == 0) {
    auto design = at::cat({xd, at::ones({n, 1}, xd.options())}, 1);
    auto solution = std::get<0>(at::linalg_lstsq(design, yd));
    coef = solution.narrow(0, 0, f);
    bias = solution[f];
  } else {
    // Centering removes the intercept from the system, so it stays
    // unpenalized; it also improves the conditioning of the Gram matrix.
    auto x_mean = xd.mean(0, /*keepdim=*/true);
    auto y_mean = yd.mean(0, /*keepdim=*/true);
    auto xc = xd - x_mean;
    auto gram = at::matmul(xc.t(), xc) + ridge * at::eye(f, xd.options());
    coef = at::linalg_solve(gram, at::matmul(xc.t(), yd - y_mean));
    bias = (y_mean - at::matmul(x_mean, coef)).squeeze(0);
  }
  LeastSquares result;
  result.weight = coef.t().contiguous();
  result.bias = bias.contiguous();
  auto residual = at::matmul(xd, coef) + bias - yd;
  result.mse = residual.square().mean().item<double>();
  result.exact =
      result.mse <= kExactFitTolerance * yd.square().mean().item<double>();
  return result;
}

}  // namespace normopt::train
