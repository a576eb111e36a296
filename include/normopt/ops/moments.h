#pragma once

/// Statistics ops shared by every normalization path (single batch, streamed
/// batches, and later distributed adapt), so each formula lives in one place.
///
/// Each function calls the registered op `normopt::<name>` through the
/// dispatcher; the same ops are reachable from Python as `torch.ops.normopt.*`.
///
/// \code
///   auto [n, mean, m2] = normopt::ops::moments(x, /*dims=*/{0});
///   auto variance = m2 / n;  // population variance per column
/// \endcode

#include <ATen/core/Tensor.h>
#include <normopt/macros.h>

#include <tuple>

namespace normopt::ops {

/// Sample count, mean and M2 (sum of squared deviations from the mean) of `x`
/// reduced over `dims`, the other dimensions being features. Computed in
/// float64 by two passes (mean, then deviations), so float32 data with a large
/// offset keep full precision. Returns (count: int64 0-dim, mean: float64,
/// m2: float64), mean and m2 shaped like `x` without `dims`.
NORMOPT_API std::tuple<at::Tensor, at::Tensor, at::Tensor> moments(
    const at::Tensor& x, at::IntArrayRef dims);

/// Merges the moments of two disjoint samples (Chan, Golub and LeVeque's
/// parallel formula). Either side may have count 0.
NORMOPT_API std::tuple<at::Tensor, at::Tensor, at::Tensor> merge_moments(
    const at::Tensor& count_a,
    const at::Tensor& mean_a,
    const at::Tensor& m2_a,
    const at::Tensor& count_b,
    const at::Tensor& mean_b,
    const at::Tensor& m2_b);

/// The divisor used to standardize: sqrt(variance), at least `min_scale`,
/// and exactly 1 for a feature whose variance is within float64 rounding of
/// zero given `count` and `mean` (scikit-learn's rule for constant features:
/// never divide by an epsilon). `count` may be 0 for statistics given by hand;
/// then only an exact zero variance counts as constant.
NORMOPT_API at::Tensor scale_from_variance(const at::Tensor& variance,
                                           const at::Tensor& mean,
                                           const at::Tensor& count,
                                           double min_scale);

/// (x - mean) / scale, computed in the wider of the two dtypes and returned
/// in x's dtype. `mean` and `scale` broadcast against `x`.
NORMOPT_API at::Tensor standardize(const at::Tensor& x,
                                   const at::Tensor& mean,
                                   const at::Tensor& scale);

/// z * scale + mean: the inverse of standardize, same dtype rules.
NORMOPT_API at::Tensor destandardize(const at::Tensor& z,
                                     const at::Tensor& mean,
                                     const at::Tensor& scale);

}  // namespace normopt::ops
