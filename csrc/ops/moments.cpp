// Statistics ops. They are compositions of ATen ops, registered as
// CompositeImplicitAutograd: one implementation serves CPU, CUDA and Meta
// (fake tensors for torch.compile/torch.export), and autograd falls out of
// the composition. Only the optimizer steps need hand-written kernels.
#include <normopt/ops/moments.h>

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "../util/library.h"

#include <limits>

namespace normopt::ops {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> moments_impl(
    const at::Tensor& x, at::IntArrayRef dims) {
  TORCH_CHECK(at::isFloatingType(x.scalar_type()),
              "normopt::moments: expected a floating-point tensor, got ",
              x.scalar_type(),
              "; convert it first, e.g. x.to(torch::kFloat64)");
  if (dims.empty()) {
    // Nothing reduced: every element is its own feature, seen once. (ATen
    // would read an empty dim list as "reduce everything".)
    auto xd = x.to(at::kDouble);
    return {at::scalar_tensor(1, x.options().dtype(at::kLong)),
            xd,
            at::zeros_like(xd)};
  }
  int64_t n = 1;
  for (auto d : dims) {
    n *= x.size(d);  // size() wraps and range-checks d
  }
  TORCH_CHECK(n > 0,
              "normopt::moments: no samples to reduce over dims ",
              dims,
              " of a tensor of shape ",
              x.sizes());
  auto xd = x.to(at::kDouble);
  auto mean = at::mean(xd, dims, /*keepdim=*/true);
  auto m2 = at::sum(at::square(xd - mean), dims);
  auto count = at::scalar_tensor(n, x.options().dtype(at::kLong));
  return {count, mean.squeeze(dims), m2};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> merge_moments_impl(
    const at::Tensor& count_a,
    const at::Tensor& mean_a,
    const at::Tensor& m2_a,
    const at::Tensor& count_b,
    const at::Tensor& mean_b,
    const at::Tensor& m2_b) {
  TORCH_CHECK(
      mean_a.sizes() == mean_b.sizes(),
      "normopt::merge_moments: the two samples have different feature shapes ",
      mean_a.sizes(),
      " and ",
      mean_b.sizes());
  auto na = count_a.to(at::kDouble);
  auto nb = count_b.to(at::kDouble);
  auto n = na + nb;
  // With n == 0 both sides are empty; the clamp keeps 0/0 out of the result.
  auto safe_n = at::clamp_min(n, 1.0);
  auto delta = mean_b.to(at::kDouble) - mean_a.to(at::kDouble);
  auto mean = mean_a.to(at::kDouble) + delta * (nb / safe_n);
  auto m2 = m2_a.to(at::kDouble) + m2_b.to(at::kDouble) +
            at::square(delta) * (na * nb / safe_n);
  return {count_a + count_b, mean, m2};
}

at::Tensor scale_from_variance_impl(const at::Tensor& variance,
                                    const at::Tensor& mean,
                                    const at::Tensor& count,
                                    double min_scale) {
  constexpr double kEps = std::numeric_limits<double>::epsilon();
  auto var = variance.to(at::kDouble);
  // Bound on the rounding error of a float64 variance of `count` samples
  // around `mean`: anything below it is indistinguishable from a constant.
  auto n = count.to(at::kDouble);
  auto bound = n * kEps * var + at::square(n * kEps * mean.to(at::kDouble));
  auto constant = var <= bound;
  auto scale = at::clamp_min(at::sqrt(at::clamp_min(var, 0.0)), min_scale);
  return at::where(constant, at::ones_like(scale), scale)
      .to(variance.scalar_type());
}

at::Tensor standardize_impl(const at::Tensor& x,
                            const at::Tensor& mean,
                            const at::Tensor& scale) {
  auto dtype = at::promote_types(x.scalar_type(), mean.scalar_type());
  return ((x.to(dtype) - mean.to(dtype)) / scale.to(dtype)).to(x.scalar_type());
}

at::Tensor destandardize_impl(const at::Tensor& z,
                              const at::Tensor& mean,
                              const at::Tensor& scale) {
  auto dtype = at::promote_types(z.scalar_type(), mean.scalar_type());
  return (z.to(dtype) * scale.to(dtype) + mean.to(dtype)).to(z.scalar_type());
}

}  // namespace

NORMOPT_LIBRARY_IMPL(CompositeImplicitAutograd, m) {
  m.impl("moments", &moments_impl);
  m.impl("merge_moments", &merge_moments_impl);
  m.impl("scale_from_variance", &scale_from_variance_impl);
  m.impl("standardize", &standardize_impl);
  m.impl("destandardize", &destandardize_impl);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> moments(const at::Tensor& x,
                                                       at::IntArrayRef dims) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("normopt::moments", "")
                       .typed<decltype(moments_impl)>();
  return op.call(x, dims);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> merge_moments(
    const at::Tensor& count_a,
    const at::Tensor& mean_a,
    const at::Tensor& m2_a,
    const at::Tensor& count_b,
    const at::Tensor& mean_b,
    const at::Tensor& m2_b) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("normopt::merge_moments", "")
                       .typed<decltype(merge_moments_impl)>();
  return op.call(count_a, mean_a, m2_a, count_b, mean_b, m2_b);
}

at::Tensor scale_from_variance(const at::Tensor& variance,
                               const at::Tensor& mean,
                               const at::Tensor& count,
                               double min_scale) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("normopt::scale_from_variance", "")
                       .typed<decltype(scale_from_variance_impl)>();
  return op.call(variance, mean, count, min_scale);
}

at::Tensor standardize(const at::Tensor& x,
                       const at::Tensor& mean,
                       const at::Tensor& scale) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("normopt::standardize", "")
                       .typed<decltype(standardize_impl)>();
  return op.call(x, mean, scale);
}

at::Tensor destandardize(const at::Tensor& z,
                         const at::Tensor& mean,
                         const at::Tensor& scale) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("normopt::destandardize", "")
                       .typed<decltype(destandardize_impl)>();
  return op.call(z, mean, scale);
}

}  // namespace normopt::ops
