#include <normopt/nn/normalization.h>

#include <normopt/nn/detail/serialize.h>
#include <normopt/ops/moments.h>

#include "../util/finite.h"
#include "stream_statistics.h"

#include <ATen/ATen.h>

#include <algorithm>

namespace normopt::nn {
namespace {

at::Tensor placeholder() {
  return at::empty({0}, at::kDouble);
}

}  // namespace

NormalizationImpl::NormalizationImpl(NormalizationOptions options_)
    : options(std::move(options_)) {
  // NOLINTNEXTLINE(clang-analyzer-optin.cplusplus.VirtualCall)
  reset();
}

void NormalizationImpl::reset() {
  const auto& m = options.mean();
  const auto& v = options.variance();
  TORCH_CHECK(
      m.has_value() == v.has_value(),
      "Normalization: give both mean and variance in NormalizationOptions, or "
      "neither (then call adapt() on data)");
  if (m.has_value()) {
    TORCH_CHECK(m->sizes() == v->sizes(),
                "Normalization: fixed mean has shape ",
                m->sizes(),
                " but variance has shape ",
                v->sizes(),
                "; they must match");
    TORCH_CHECK(
        at::isFloatingType(m->scalar_type()) &&
            at::isFloatingType(v->scalar_type()),
        "Normalization: fixed mean and variance must be floating-point");
    TORCH_CHECK(
        at::isfinite(*m).all().item<bool>() &&
            at::isfinite(*v).all().item<bool>() && (*v >= 0).all().item<bool>(),
        "Normalization: fixed mean must be finite and variance finite and "
        "non-negative");
  }
  std::vector<int64_t> seen;
  for (auto a : options.axis()) {
    TORCH_CHECK(std::find(seen.begin(), seen.end(), a) == seen.end(),
                "Normalization: axis ",
                a,
                " is listed twice in NormalizationOptions::axis");
    seen.push_back(a);
  }
  mean =
      register_buffer("mean", m ? m->to(at::kDouble).clone() : placeholder());
  variance = register_buffer("variance",
                             v ? v->to(at::kDouble).clone() : placeholder());
  count = register_buffer("count", at::zeros({}, at::kLong));
}

void NormalizationImpl::reset_statistics() {
  at::NoGradGuard no_grad;
  const auto& m = options.mean();
  mean.set_(m ? m->to(mean.options()).clone()
              : placeholder().to(mean.options()));
  variance.set_(m ? options.variance()->to(variance.options()).clone()
                  : placeholder().to(variance.options()));
  count.zero_();
}

bool NormalizationImpl::is_adapted() const {
  // The un-adapted placeholder has shape [0]; scalar statistics have 1 element.
  return mean.numel() > 0;
}

std::vector<int64_t> NormalizationImpl::feature_dims(int64_t dim,
                                                     const char* where) const {
  std::vector<int64_t> dims;
  for (auto a : options.axis()) {
    TORCH_CHECK(a >= -dim && a < dim,
                "Normalization.",
                where,
                ": axis ",
                a,
                " is out of range for a ",
                dim,
                "-D input (valid: ",
                -dim,
                " to ",
                dim - 1,
                "); set NormalizationOptions::axis to the feature dimension");
    dims.push_back(a < 0 ? a + dim : a);
  }
  std::sort(dims.begin(), dims.end());
  TORCH_CHECK(std::adjacent_find(dims.begin(), dims.end()) == dims.end(),
              "Normalization.",
              where,
              ": axis ",
              options.axis(),
              " names the same dimension twice for a ",
              dim,
              "-D input");
  return dims;
}

void NormalizationImpl::check_adapt_input(const at::Tensor& x,
                                          const char* where) const {
  TORCH_CHECK(
      x.defined(), "Normalization.", where, ": got an undefined tensor");
  TORCH_CHECK(at::isFloatingType(x.scalar_type()),
              "Normalization.",
              where,
              ": expected floating-point data, got ",
              x.scalar_type(),
              "; convert it with x.to(torch::kFloat32) (or kFloat64)");
  TORCH_CHECK(x.numel() > 0,
              "Normalization.",
              where,
              ": got an empty tensor of shape ",
              x.sizes(),
              "; pass at least one sample");
  TORCH_CHECK(
      !options.mean().has_value(),
      "Normalization.",
      where,
      ": this layer was built with a fixed mean and variance, which adapting "
      "would overwrite; remove them from NormalizationOptions to learn the "
      "statistics from data");
  auto dims = feature_dims(x.dim(), where);
  if (auto index = util::first_nonfinite_index(x)) {
    std::vector<int64_t> feature;
    for (auto d : dims) {
      feature.push_back((*index)[d]);
    }
    TORCH_CHECK(false,
                "Normalization.",
                where,
                ": data holds a non-finite value (NaN or Inf) at index ",
                at::IntArrayRef(*index),
                ", feature ",
                at::IntArrayRef(feature),
                "; remove or impute those values before adapting");
  }
}

void NormalizationImpl::adapt(const at::Tensor& x) {
  // Moments first: bad input fails before the old statistics are dropped.
  auto [n, m, m2] = checked_moments(x, "adapt");
  reset_statistics();
  merge(n, m, m2);
}

void NormalizationImpl::adapt(const std::vector<at::Tensor>& batches) {
  TORCH_CHECK(!batches.empty(),
              "Normalization.adapt: got no batches; pass at least one");
  std::vector<std::tuple<at::Tensor, at::Tensor, at::Tensor>> moments;
  for (const auto& batch : batches) {
    moments.push_back(checked_moments(batch, "adapt"));
  }
  reset_statistics();
  for (const auto& [n, m, m2] : moments) {
    merge(n, m, m2);
  }
}

void NormalizationImpl::adapt(data::TableStream& stream) {
  stream.rewind();
  detail::RunningMoments running;
  while (auto part = stream.next()) {
    if (part->size() > 0) {
      running.add(checked_moments(part->features, "adapt"));
    }
  }
  TORCH_CHECK(!running.empty(),
              "Normalization.adapt(stream): the stream yielded no rows; pass "
              "a stream over the training data");
  reset_statistics();
  merge(running.n, running.mean, running.m2);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> NormalizationImpl::moments_of(
    const at::Tensor& batch) const {
  return checked_moments(batch, "moments_of");
}

std::tuple<at::Tensor, at::Tensor, at::Tensor>
NormalizationImpl::checked_moments(const at::Tensor& batch,
                                   const char* where) const {
  check_adapt_input(batch, where);
  auto fdims = feature_dims(batch.dim(), where);
  std::vector<int64_t> reduce;
  for (int64_t d = 0; d < batch.dim(); ++d) {
    if (!std::binary_search(fdims.begin(), fdims.end(), d)) {
      reduce.push_back(d);
    }
  }
  at::NoGradGuard no_grad;
  return ops::moments(batch, reduce);
}

void NormalizationImpl::merge(const at::Tensor& n_b,
                              const at::Tensor& mean_b,
                              const at::Tensor& m2_b) {
  TORCH_CHECK(!options.mean().has_value(),
              "Normalization.merge: this layer was built with a fixed mean and "
              "variance, which merging would overwrite");
  TORCH_CHECK(
      n_b.defined() && n_b.numel() == 1 && mean_b.defined() && m2_b.defined() &&
          mean_b.sizes() == m2_b.sizes(),
      "Normalization.merge: expected a scalar count and a mean and M2 of one "
      "shape, got ",
      n_b.defined() ? n_b.sizes() : at::IntArrayRef{},
      ", ",
      mean_b.defined() ? mean_b.sizes() : at::IntArrayRef{},
      " and ",
      m2_b.defined() ? m2_b.sizes() : at::IntArrayRef{});
  at::NoGradGuard no_grad;
  if (n_b.item<int64_t>() == 0) {
    return;  // an empty shard adds nothing
  }
  auto stats_options = mean.options();
  auto n_local = n_b.to(count.device()).to(at::kLong).reshape({});
  auto mean_local = mean_b.to(stats_options.device(), at::kDouble);
  auto m2_local = m2_b.to(stats_options.device(), at::kDouble);
  if (count.item<int64_t>() == 0) {
    mean.set_(mean_local.to(stats_options));
    variance.set_((m2_local / n_local.to(at::kDouble)).to(stats_options));
    count.copy_(n_local);
    return;
  }
  TORCH_CHECK(mean_local.sizes() == mean.sizes(),
              "Normalization.update: batch has feature shape ",
              mean_local.sizes(),
              " along axis ",
              options.axis(),
              " but the statistics were adapted on ",
              mean.sizes(),
              "; pass batches with the same features");
  auto m2_a = variance.to(at::kDouble) * count.to(at::kDouble);
  auto [n, new_mean, m2] = ops::merge_moments(
      count, mean.to(at::kDouble), m2_a, n_local, mean_local, m2_local);
  mean.set_(new_mean.to(stats_options));
  variance.set_((m2 / n.to(at::kDouble)).to(stats_options));
  count.copy_(n);
}

void NormalizationImpl::update(const at::Tensor& batch) {
  auto [n, mean_b, m2_b] = checked_moments(batch, "update");
  merge(n, mean_b, m2_b);
}

at::Tensor NormalizationImpl::scale() const {
  TORCH_CHECK(
      is_adapted(),
      "Normalization: no statistics yet; call adapt(x) on training data first "
      "(or pass mean and variance in NormalizationOptions)");
  return ops::scale_from_variance(variance, mean, count, options.eps());
}

std::pair<at::Tensor, at::Tensor> NormalizationImpl::broadcast_stats(
    const at::Tensor& x, const char* where) const {
  TORCH_CHECK(
      is_adapted(),
      "Normalization.",
      where,
      ": called before the statistics were set; call adapt(x) on training "
      "data first (or pass mean and variance in NormalizationOptions)");
  TORCH_CHECK(
      x.defined(), "Normalization.", where, ": got an undefined tensor");
  TORCH_CHECK(at::isFloatingType(x.scalar_type()),
              "Normalization.",
              where,
              ": expected a floating-point tensor, got ",
              x.scalar_type(),
              "; convert it with x.to(torch::kFloat32)");
  auto fdims = feature_dims(x.dim(), where);
  std::vector<int64_t> fsizes;
  std::vector<int64_t> view(x.dim(), 1);
  for (auto d : fdims) {
    fsizes.push_back(x.size(d));
    view[d] = x.size(d);
  }
  TORCH_CHECK(at::IntArrayRef(fsizes) == mean.sizes(),
              "Normalization.",
              where,
              ": input has feature shape ",
              at::IntArrayRef(fsizes),
              " along axis ",
              options.axis(),
              " but the statistics have shape ",
              mean.sizes(),
              "; pass inputs with the features the layer was adapted on");
  auto s = scale();
  if (fdims.empty()) {
    return {mean, s};
  }
  return {mean.reshape(view), s.reshape(view)};
}

at::Tensor NormalizationImpl::forward(const at::Tensor& x) {
  auto [m, s] = broadcast_stats(x, "forward");
  return options.invert() ? ops::destandardize(x, m, s)
                          : ops::standardize(x, m, s);
}

at::Tensor NormalizationImpl::inverse(const at::Tensor& x) {
  auto [m, s] = broadcast_stats(x, "inverse");
  return options.invert() ? ops::standardize(x, m, s)
                          : ops::destandardize(x, m, s);
}

void NormalizationImpl::load(torch::serialize::InputArchive& archive) {
  detail::load_checked(*this, archive);
}

void NormalizationImpl::pretty_print(std::ostream& stream) const {
  stream << "normopt::nn::Normalization(axis="
         << at::IntArrayRef(options.axis()) << ", eps=" << options.eps()
         << ", invert=" << std::boolalpha << options.invert() << ", features=";
  if (is_adapted()) {
    stream << mean.sizes();
  } else {
    stream << "not adapted";
  }
  stream << ")";
}

}  // namespace normopt::nn
