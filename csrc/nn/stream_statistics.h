#pragma once
// Internal: statistics accumulated part by part, so that one pass over a
// data::TableStream gives those of the whole data (Chan et al.'s merge, in
// float64). Normalization::adapt, TargetStandardizer::fit and
// StandardizedRegressor::fit_statistics use them for tensors (one part) and
// for streams alike.

#include <normopt/nn/target_standardizer.h>
#include <normopt/ops/moments.h>

#include <ATen/ATen.h>

#include <tuple>

namespace normopt::nn::detail {

/// Count, mean and M2 of every part added so far.
struct RunningMoments {
  at::Tensor n, mean, m2;

  bool empty() const {
    return !n.defined();
  }

  void add(const std::tuple<at::Tensor, at::Tensor, at::Tensor>& part) {
    const auto& [n_b, mean_b, m2_b] = part;
    if (empty()) {
      n = n_b;
      mean = mean_b.to(at::kDouble);
      m2 = m2_b.to(at::kDouble);
    } else {
      std::tie(n, mean, m2) =
          ops::merge_moments(n, mean, m2, n_b, mean_b, m2_b);
    }
  }
};

/// Checks `y` as TargetStandardizer::fit does (`where` names the caller):
/// defined, floating point, (N) or (N, k), non-empty, finite.
void check_targets(const at::Tensor& y, const char* where);

/// What TargetStandardizer fits from: the targets' moments and, for
/// min-max scaling, their per-column range.
class RunningTargets {
 public:
  explicit RunningTargets(TargetScaling method)
      : minmax_(method == TargetScaling::kMinMax) {}

  /// Adds a part of the targets, checked with check_targets.
  void add(const at::Tensor& y, const char* where);

  bool empty() const {
    return moments_.empty();
  }

  /// Fits `target` to everything added (fit_moments or fit_range).
  void fit(TargetStandardizerImpl& target) const;

 private:
  bool minmax_;
  RunningMoments moments_;
  at::Tensor min_, max_;
};

}  // namespace normopt::nn::detail
