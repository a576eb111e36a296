#pragma once

/// The hyper-parameters of the fused optimizer steps (normopt/ops/optim_step.h),
/// in a header of their own without ATen, so the CPU kernels that are built
/// once per instruction set take them as they are.

#include <normopt/macros.h>

namespace normopt::ops {

/// Hyper-parameters of one Adam/AdamW step (PyTorch's names and meaning).
struct NORMOPT_API AdamStepOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;
  bool amsgrad = false;
  bool maximize = false;
  /// AdamW: decay the parameter (p *= 1 - lr * wd) instead of adding
  /// wd * p to the gradient.
  bool decoupled_weight_decay = false;
  /// Keras's formula: alpha = lr sqrt(1 - b2^t) / (1 - b1^t),
  /// p -= alpha m / (sqrt(v) + eps). PyTorch's (false): p -= lr / (1 - b1^t)
  /// m / (sqrt(v) / sqrt(1 - b2^t) + eps).
  bool keras_epsilon = false;
};

/// Hyper-parameters of one SGD step (PyTorch's names and meaning).
struct NORMOPT_API SgdStepOptions {
  double lr = 1e-3;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
  bool maximize = false;
  /// The momentum buffers are fresh: they are set to the (decayed) gradient
  /// rather than blended with it, as PyTorch does on the first step.
  bool is_first_step = false;
};

}  // namespace normopt::ops
