#pragma once
// Internal: the per-tensor constants of an Adam step, shared by every
// backend's kernel (CPU, CUDA, the ATen fallback) so they cannot drift.

#include <cmath>
#include <cstdint>

namespace normopt::ops::detail {

/// p += -step_size * m / (sqrt(v) / bc2_sqrt + eps) for a tensor at `step`.
struct AdamBiasCorrection {
  double step_size;
  double bc2_sqrt;
};

/// PyTorch's formula: step_size = lr / (1 - b1^t), bc2_sqrt =
/// sqrt(1 - b2^t). Keras's (eps added to the uncorrected sqrt(v)):
/// step_size = lr sqrt(1 - b2^t) / (1 - b1^t), bc2_sqrt = 1.
inline AdamBiasCorrection adam_bias_correction(
    double lr, double beta1, double beta2, int64_t step, bool keras_epsilon) {
  const double bc1 = 1 - std::pow(beta1, static_cast<double>(step));
  const double bc2 = 1 - std::pow(beta2, static_cast<double>(step));
  if (keras_epsilon) {
    return {lr * std::sqrt(bc2) / bc1, 1.0};
  }
  return {lr / bc1, std::sqrt(bc2)};
}

}  // namespace normopt::ops::detail
