#pragma once

/// The exact least-squares fit of a linear model with intercept: the optimum
/// a gradient-based run can be measured against.
///
/// \code
///   auto ls = normopt::train::solve_least_squares(table.features,
///                                                 table.targets);
///   // ls.weight (1, F), ls.bias (1), ls.mse: the best MSE any linear model
///   // reaches on this data (in the targets' units squared).
///   auto history = normopt::train::fit(
///       model, optimizer, table,
///       normopt::train::FitOptions().optimum_mse(ls.mse));
///   history.relative_gap();  // how far the run ended from the optimum
/// \endcode

#include <ATen/core/Tensor.h>
#include <normopt/macros.h>

namespace normopt::train {

/// Coefficients of y ≈ x weightᵀ + bias minimizing the (optionally
/// ridge-penalized) squared error, in float64.
struct NORMOPT_API LeastSquares {
  /// (k, F) float64, CPU: one row of feature coefficients per target column.
  at::Tensor weight;
  /// (k) float64, CPU: the intercepts.
  at::Tensor bias;
  /// Mean squared error of the fit on the data it was solved on, in the
  /// targets' original units squared, averaged over all N*k entries (the
  /// unpenalized error, also when ridge > 0).
  double mse = 0;
  /// Whether mse is 0 up to rounding: at most kExactFitTolerance times the
  /// mean of y² (the data lies on a linear model, e.g. fewer rows than
  /// features + 1, or a constant target). A ratio to mse then means
  /// nothing; compare with the difference instead.
  bool exact = false;
};

/// LeastSquares::exact's bound on mse / mean(y²): float32 data on an exact
/// linear relation lands near 1e-14, real data far above.
constexpr double kExactFitTolerance = 1e-12;

/// Solves min over (w, b) of ||x wᵀ + b - y||² + ridge ||w||² in float64; the
/// intercept is never penalized.
///
/// `x` is (N, F), `y` is (N) or (N, k); any real dtype and device (the
/// solve runs on the CPU in float64; results are CPU tensors). With ridge == 0
/// the system [x, 1] is solved by at::linalg_lstsq (a rank-deficient system,
/// e.g. a duplicated feature or N <= F, gets LAPACK gelsy's minimum-norm
/// solution). With ridge > 0, x and y are centered, (xcᵀxc + ridge I) w = xcᵀyc
/// is solved with at::linalg_solve, and b = mean(y) - mean(x) w.
///
/// Throws c10::Error when a tensor is undefined, complex or of the wrong
/// rank, when the row counts differ, when there are no rows, when x or y
/// holds NaN/Inf (naming the first such element), or when ridge is negative
/// or not finite.
NORMOPT_API LeastSquares solve_least_squares(const at::Tensor& x,
                                             const at::Tensor& y,
                                             double ridge = 0);

}  // namespace normopt::train
