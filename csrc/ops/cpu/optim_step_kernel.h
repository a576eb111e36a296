#pragma once
// Internal: the arithmetic of the fused optimizer steps on raw pointers.
// optim_step_kernel.cpp is compiled once per CPU capability (DEFAULT, AVX2,
// AVX512 on x86-64, as ATen does for its own kernels) so at::vec::Vectorized
// uses the widest instructions the machine has; the op files validate
// tensors, gather pointers and call the entry points below, which pick the
// build for this CPU once (ATEN_CPU_CAPABILITY=default|avx2|avx512 caps it).

#include <c10/core/ScalarType.h>
#include <c10/util/ArrayRef.h>
#include <normopt/ops/step_options.h>

#include <cstdint>

namespace normopt::ops::cpu {

/// One tensor of an Adam step: pointers, size and its bias-corrected
/// constants (they depend on the tensor's own step count).
struct AdamTensor {
  c10::ScalarType dtype;
  int64_t numel;
  void* param;
  const void* grad;
  void* exp_avg;
  void* exp_avg_sq;
  void* max_exp_avg_sq;  // nullptr unless amsgrad
  double step_size;      // lr / (1 - b1^t), or Keras's alpha
  double bc2_sqrt;       // sqrt(1 - b2^t); 1 in Keras mode
};

struct SgdTensor {
  c10::ScalarType dtype;
  int64_t numel;
  void* param;
  const void* grad;
  void* momentum_buffer;  // nullptr without momentum
};

/// The update of every tensor; `o.keras_epsilon` is already in each tensor's
/// constants.
void adam_apply(c10::ArrayRef<AdamTensor> tensors, const AdamStepOptions& o);
void sgd_apply(c10::ArrayRef<SgdTensor> tensors, const SgdStepOptions& o);

/// The capability the entry points use: 0 DEFAULT, 1 AVX2, 2 AVX512.
int cpu_capability();

}  // namespace normopt::ops::cpu
