#pragma once
// Internal: the int64 row count that Normalization and TargetStandardizer
// keep beside their floating-point statistics.

#include <ATen/ATen.h>

namespace normopt::nn::detail {

/// Runs `cast` (a Module::to call, which converts every buffer to the new
/// dtype, the count too) and gives `count` back its exact int64 values on
/// the module's new device: cast through float32 a count past 2^24 would
/// round, through float16 past 2048, through bfloat16 past 256.
template <typename Cast>
void cast_keeping_count(at::Tensor& count, const Cast& cast) {
  const auto exact = count.detach();
  cast();
  count.set_data(exact.to(count.device()));
}

}  // namespace normopt::nn::detail
