#pragma once
// Internal: the per-tensor constants of an Adam step, shared by every
// backend's kernel (CPU, CUDA, the ATen fallback) so they cannot drift. The
// capturable step's CUDA kernel calls it on the device, with the step count
// it reads from device memory: hence C10_HOST_DEVICE and ::pow / ::sqrt,
// which CUDA's math headers declare for both sides.

#include <c10/macros/Macros.h>

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
/// step_size = lr sqrt(1 - b2^t) / (1 - b1^t), bc2_sqrt = 1. `step` is a
/// whole number >= 1 (a double: the capturable op reads it from a float32 or
/// float64 tensor).
C10_HOST_DEVICE inline AdamBiasCorrection adam_bias_correction(
    double lr, double beta1, double beta2, double step, bool keras_epsilon) {
  const double bc1 = 1 - ::pow(beta1, step);
  const double bc2 = 1 - ::pow(beta2, step);
  if (keras_epsilon) {
    return {lr * ::sqrt(bc2) / bc1, 1.0};
  }
  return {lr / bc1, ::sqrt(bc2)};
}

}  // namespace normopt::ops::detail
