#pragma once
// Internal: input checks shared by the normopt modules.

#include <ATen/ATen.h>

#include <cmath>
#include <optional>
#include <vector>

namespace normopt::nn::detail {

/// Whether every element of `x` is finite. Small contiguous CPU tensors
/// (the common case: a linear model's gradients, checked every step) are
/// scanned in place, which costs nanoseconds where a reduction through the
/// dispatcher costs microseconds; anything else is reduced with ATen.
inline bool all_finite(const at::Tensor& x) {
  constexpr int64_t kScanLimit = 1 << 16;
  if (x.is_cpu() && x.is_contiguous() && x.numel() <= kScanLimit) {
    if (x.scalar_type() == at::kFloat) {
      const float* p = x.const_data_ptr<float>();
      bool ok = true;
      for (int64_t i = 0; i < x.numel(); ++i) {
        ok &= std::isfinite(p[i]);
      }
      return ok;
    }
    if (x.scalar_type() == at::kDouble) {
      const double* p = x.const_data_ptr<double>();
      bool ok = true;
      for (int64_t i = 0; i < x.numel(); ++i) {
        ok &= std::isfinite(p[i]);
      }
      return ok;
    }
  }
  return at::isfinite(x).all().item<bool>();
}

/// The multi-index of the first NaN/Inf element of `x` (row-major order), or
/// nullopt when every element is finite.
inline std::optional<std::vector<int64_t>> first_nonfinite_index(
    const at::Tensor& x) {
  auto bad = at::logical_not(at::isfinite(x));
  if (!bad.any().item<bool>()) {
    return std::nullopt;
  }
  // argmax returns the first maximal element: the first non-finite one.
  auto flat = bad.reshape({-1}).to(at::kByte).argmax().item<int64_t>();
  std::vector<int64_t> index(x.dim());
  for (int64_t d = x.dim() - 1; d >= 0; --d) {
    index[d] = flat % x.size(d);
    flat /= x.size(d);
  }
  return index;
}

}  // namespace normopt::nn::detail
