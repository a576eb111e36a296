#pragma once
// Internal: finiteness scans of tensors, shared by every module (data
// checks in nn and train, the non-finite guards of optim and fit()).

#include <ATen/ATen.h>

#include <cmath>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace normopt::util {

/// Whether every element of `x` is finite when `x` is a small contiguous
/// float32/float64 CPU tensor, scanned in place (nanoseconds, where a
/// reduction through the dispatcher costs microseconds); nullopt for any
/// other tensor.
inline std::optional<bool> scan_finite(const at::Tensor& x) {
  constexpr int64_t kScanLimit = 1 << 16;
  if (!x.is_cpu() || !x.is_contiguous() || x.numel() > kScanLimit) {
    return std::nullopt;
  }
  auto scan = [&](const auto* p) {
    bool ok = true;
    for (int64_t i = 0; i < x.numel(); ++i) {
      ok &= std::isfinite(p[i]);
    }
    return ok;
  };
  if (x.scalar_type() == at::kFloat) {
    return scan(x.const_data_ptr<float>());
  }
  if (x.scalar_type() == at::kDouble) {
    return scan(x.const_data_ptr<double>());
  }
  return std::nullopt;
}

/// The index of the first tensor in `tensors` holding NaN or Inf, or nullopt
/// when all are finite: what fit() checks on every step and the optimizers'
/// skip_nonfinite before theirs. Small CPU tensors (a linear model's
/// gradients) are scanned in place; the others are reduced together, one
/// max-abs norm each (NaN and Inf propagate into it) and one synchronization.
inline std::optional<size_t> first_nonfinite_tensor(
    const std::vector<at::Tensor>& tensors) {
  std::optional<size_t> first;
  std::vector<size_t> reduced_index;
  std::vector<at::Tensor> reduced;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (auto finite = scan_finite(tensors[i])) {
      if (!*finite && !first) {
        first = i;
      }
    } else {
      reduced_index.push_back(i);
      reduced.push_back(tensors[i]);
    }
  }
  if (reduced.empty()) {
    return first;
  }
  const auto finite =
      at::stack(at::_foreach_norm(reduced, INFINITY)).isfinite().cpu();
  const auto* ok = finite.const_data_ptr<bool>();
  for (size_t j = 0; j < reduced.size(); ++j) {
    if (!ok[j]) {
      return first && *first < reduced_index[j] ? *first : reduced_index[j];
    }
  }
  return first;
}

/// The multi-index of the first NaN/Inf element of `x` (row-major order), or
/// nullopt when every element is finite.
inline std::optional<std::vector<int64_t>> first_nonfinite_index(
    const at::Tensor& x) {
  // One reading pass for the common case: min and max are finite only when
  // every element is (NaN propagates through both).
  if (x.numel() == 0 || !at::isFloatingType(x.scalar_type())) {
    return std::nullopt;
  }
  const auto [lo, hi] = at::aminmax(x);
  if (std::isfinite(lo.item<double>()) && std::isfinite(hi.item<double>())) {
    return std::nullopt;
  }
  auto bad = at::logical_not(at::isfinite(x));
  // argmax returns the first maximal element: the first non-finite one.
  auto flat = bad.reshape({-1}).to(at::kByte).argmax().item<int64_t>();
  std::vector<int64_t> index(x.dim());
  for (int64_t d = x.dim() - 1; d >= 0; --d) {
    index[d] = flat % x.size(d);
    flat /= x.size(d);
  }
  return index;
}

/// The name and element index of the first NaN/Inf among the floating-point
/// tensors of `named` (e.g. module.named_buffers()), or nullopt.
template <typename NamedTensors>
std::optional<std::pair<std::string, std::vector<int64_t>>>
first_nonfinite_named(const NamedTensors& named) {
  for (const auto& item : named) {
    const auto& t = item.value();
    if (t.defined() && at::isFloatingType(t.scalar_type())) {
      if (auto index = first_nonfinite_index(t)) {
        return std::make_pair(item.key(), std::move(*index));
      }
    }
  }
  return std::nullopt;
}

}  // namespace normopt::util
