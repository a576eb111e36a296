#include <normopt/nn/target_standardizer.h>

#include <normopt/nn/detail/serialize.h>

#include <normopt/ops/moments.h>
#include <algorithm>
#include <iterator>

#include "../util/finite.h"
#include "stream_statistics.h"

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

namespace detail {

void check_targets(const at::Tensor& y, const char* where) {
  TORCH_CHECK(y.defined(), where, ": got an undefined tensor");
  TORCH_CHECK(at::isFloatingType(y.scalar_type()),
              where,
              ": expected floating-point targets, got ",
              y.scalar_type(),
              "; convert them with y.to(torch::kFloat32)");
  TORCH_CHECK(y.dim() == 1 || y.dim() == 2,
              where,
              ": expected targets of shape (N) or (N, k), got ",
              y.sizes());
  TORCH_CHECK(y.size(0) > 0 && y.numel() > 0,
              where,
              ": got no targets (shape ",
              y.sizes(),
              ")");
  if (auto index = util::first_nonfinite_index(y)) {
    TORCH_CHECK(false,
                where,
                ": target ",
                at::IntArrayRef(*index),
                " is NaN or Inf; remove or impute it before fitting");
  }
}

void RunningTargets::add(const at::Tensor& y, const char* where) {
  check_targets(y, where);
  at::NoGradGuard no_grad;
  if (!empty()) {
    TORCH_CHECK(y.sizes().slice(1) == moments_.mean.sizes(),
                where,
                ": a part of the targets has shape ",
                y.sizes(),
                " where the earlier parts had ",
                moments_.mean.sizes(),
                " per row; every part must have the same columns");
  }
  moments_.add(ops::moments(y, {0}));
  if (minmax_) {
    auto yd = y.to(at::kDouble);
    auto lo = std::get<0>(at::min(yd, 0));
    auto hi = std::get<0>(at::max(yd, 0));
    min_ = min_.defined() ? at::minimum(min_, lo) : lo;
    max_ = max_.defined() ? at::maximum(max_, hi) : hi;
  }
}

void RunningTargets::fit(TargetStandardizerImpl& target) const {
  if (minmax_) {
    target.fit_range(moments_.n, min_, max_);
  } else {
    target.fit_moments(moments_.n, moments_.mean, moments_.m2);
  }
}

}  // namespace detail

void TargetStandardizerImpl::fit(const at::Tensor& y) {
  detail::RunningTargets running(options.method());
  running.add(y, "TargetStandardizer.fit");
  running.fit(*this);
}

void TargetStandardizerImpl::fit(data::TableStream& stream) {
  stream.rewind();
  detail::RunningTargets running(options.method());
  while (auto part = stream.next()) {
    if (part->size() > 0) {
      running.add(part->targets, "TargetStandardizer.fit(stream)");
    }
  }
  TORCH_CHECK(!running.empty(),
              "TargetStandardizer.fit(stream): the stream yielded no rows; "
              "pass a stream over the training data");
  running.fit(*this);
}

void TargetStandardizerImpl::fit_moments(const at::Tensor& n,
                                         const at::Tensor& mean,
                                         const at::Tensor& m2) {
  TORCH_CHECK(options.method() != TargetScaling::kMinMax,
              "TargetStandardizer.fit_moments: min-max scaling needs the "
              "range; use fit_range(count, min, max)");
  TORCH_CHECK(n.item<int64_t>() > 0, "TargetStandardizer: got no targets");
  at::NoGradGuard no_grad;
  auto mean64 = mean.to(at::kDouble);
  if (options.method() == TargetScaling::kZScore) {
    set(mean64,
        ops::scale_from_variance(
            m2.to(at::kDouble) / n.to(at::kDouble), mean64, n, options.eps()),
        n);
  } else {
    set(at::zeros_like(mean64), at::ones_like(mean64), n);
  }
}

void TargetStandardizerImpl::fit_range(const at::Tensor& n,
                                       const at::Tensor& lo,
                                       const at::Tensor& hi) {
  TORCH_CHECK(options.method() == TargetScaling::kMinMax,
              "TargetStandardizer.fit_range: only min-max scaling is fitted "
              "from a range; use fit_moments(count, mean, m2)");
  TORCH_CHECK(n.item<int64_t>() > 0, "TargetStandardizer: got no targets");
  at::NoGradGuard no_grad;
  auto range = hi.to(at::kDouble) - lo.to(at::kDouble);
  set(lo.to(at::kDouble),
      at::where(
          range > 0, at::clamp_min(range, options.eps()), at::ones_like(range)),
      n);
}

void TargetStandardizerImpl::set(const at::Tensor& new_loc,
                                 const at::Tensor& new_scale,
                                 const at::Tensor& n) {
  loc.set_(new_loc.to(loc.device(), loc.scalar_type()));
  scale.set_(new_scale.to(scale.device(), scale.scalar_type()));
  count.copy_(n.reshape({}));
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
         << method_name(options.method()) << ", "
         << (is_fitted() ? "fitted" : "not fitted") << ")";
}

const char* method_name(TargetScaling method) {
  switch (method) {
    case TargetScaling::kZScore:
      return "zscore";
    case TargetScaling::kMinMax:
      return "minmax";
    case TargetScaling::kNone:
      return "none";
  }
  return "none";
}

TargetScaling method_from_name(const std::string& name, const char* where) {
  const TargetScaling methods[] = {
      TargetScaling::kZScore, TargetScaling::kMinMax, TargetScaling::kNone};
  const auto* found = std::find_if(
      std::begin(methods), std::end(methods), [&](TargetScaling m) {
        return name == method_name(m);
      });
  TORCH_CHECK(found != std::end(methods),
              where,
              ": unknown method '",
              name,
              "'; use \"zscore\", \"minmax\" or \"none\"");
  return *found;
}

}  // namespace normopt::nn
