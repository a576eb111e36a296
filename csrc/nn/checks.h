#pragma once
// Internal: input checks shared by the normopt modules.

#include <ATen/ATen.h>

#include <optional>
#include <vector>

namespace normopt::nn::detail {

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
