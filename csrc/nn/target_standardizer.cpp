#include <normopt/nn/target_standardizer.h>
#include <normopt/ops/moments.h>

#include "checks.h"
#include "serialize.h"

#include <ATen/ATen.h>

namespace normopt::nn {

TargetStandardizerImpl::TargetStandardizerImpl(
    TargetStandardizerOptions options_)
    : options(options_) {
  // NOLINTNEXTLINE(clang-analyzer-optin.cplusplus.VirtualCall)
  reset();
}

void TargetStandardizerImpl::reset() {
  loc = register_buffer("loc", at::empty({0}, at::kDouble));
  scale = register_buffer("scale", at::empty({0}, at::kDouble));
  count = register_buffer("count", at::zeros({}, at::kLong));
}

bool TargetStandardizerImpl::is_fitted() const {
  return loc.numel() > 0;
}

void TargetStandardizerImpl::fit(const at::Tensor& y) {
  TORCH_CHECK(y.defined(), "TargetStandardizer.fit: got an undefined tensor");
  TORCH_CHECK(at::isFloatingType(y.scalar_type()),
              "TargetStandardizer.fit: expected floating-point targets, got ",
              y.scalar_type(),
              "; convert them with y.to(torch::kFloat32)");
  TORCH_CHECK(
      y.dim() == 1 || y.dim() == 2,
      "TargetStandardizer.fit: expected targets of shape (N) or (N, k), got ",
      y.sizes());
  TORCH_CHECK(y.size(0) > 0 && y.numel() > 0,
              "TargetStandardizer.fit: got no targets (shape ",
              y.sizes(),
              ")");
  if (auto index = detail::first_nonfinite_index(y)) {
    TORCH_CHECK(false,
                "TargetStandardizer.fit: target ",
                at::IntArrayRef(*index),
                " is NaN or Inf; remove or impute it before fitting");
  }
  at::NoGradGuard no_grad;
  auto dtype = loc.scalar_type();
  auto device = loc.device();
  auto [n, mean, m2] = ops::moments(y, {0});
  at::Tensor new_loc;
  at::Tensor new_scale;
  if (options.method() == TargetScaling::kZScore) {
    new_loc = mean;
    new_scale = ops::scale_from_variance(
        m2 / n.to(at::kDouble), mean, n, options.eps());
  } else if (options.method() == TargetScaling::kNone) {
    new_loc = at::zeros_like(mean);
    new_scale = at::ones_like(mean);
  } else {
    auto yd = y.to(at::kDouble);
    auto lo = std::get<0>(at::min(yd, 0));
    auto hi = std::get<0>(at::max(yd, 0));
    auto range = hi - lo;
    new_loc = lo;
    new_scale = at::where(
        range > 0, at::clamp_min(range, options.eps()), at::ones_like(range));
  }
  loc.set_(new_loc.to(device, dtype));
  scale.set_(new_scale.to(device, dtype));
  count.copy_(n);
}

void TargetStandardizerImpl::check_ready(const at::Tensor& t,
                                         const char* where) const {
  TORCH_CHECK(is_fitted(),
              "TargetStandardizer.",
              where,
              ": called before fit(); call fit(y_train) first");
  TORCH_CHECK(t.defined(), "TargetStandardizer.", where, ": undefined tensor");
  TORCH_CHECK(at::isFloatingType(t.scalar_type()),
              "TargetStandardizer.",
              where,
              ": expected a floating-point tensor, got ",
              t.scalar_type());
  const int64_t k = loc.dim() == 0 ? 1 : loc.size(0);
  const int64_t cols = t.dim() <= 1 ? 1 : t.size(-1);
  TORCH_CHECK(t.dim() <= 2 && (cols == k || loc.dim() == 0),
              "TargetStandardizer.",
              where,
              ": got shape ",
              t.sizes(),
              " but the statistics were fitted on ",
              k,
              " target column(s); pass (N) or (N, ",
              k,
              ")");
}

at::Tensor TargetStandardizerImpl::transform(const at::Tensor& y) const {
  check_ready(y, "transform");
  return ops::standardize(y, loc, scale);
}

at::Tensor TargetStandardizerImpl::inverse_transform(
    const at::Tensor& z) const {
  check_ready(z, "inverse_transform");
  return ops::destandardize(z, loc, scale);
}

at::Tensor TargetStandardizerImpl::forward(const at::Tensor& y) {
  return transform(y);
}

void TargetStandardizerImpl::load(torch::serialize::InputArchive& archive) {
  detail::load_checked(*this, archive);
}

void TargetStandardizerImpl::pretty_print(std::ostream& stream) const {
  stream << "normopt::nn::TargetStandardizer(method="
         << (options.method() == TargetScaling::kZScore   ? "zscore"
             : options.method() == TargetScaling::kMinMax ? "minmax"
                                                          : "none")
         << ", " << (is_fitted() ? "fitted" : "not fitted") << ")";
}

void TargetStandardizerImpl::to(torch::Device device,
                                torch::Dtype dtype,
                                bool non_blocking) {
  torch::nn::Module::to(device, dtype, non_blocking);
  count.set_data(count.to(at::kLong));
}

void TargetStandardizerImpl::to(torch::Dtype dtype, bool non_blocking) {
  torch::nn::Module::to(dtype, non_blocking);
  count.set_data(count.to(at::kLong));
}

}  // namespace normopt::nn
