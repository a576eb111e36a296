#pragma once
// Internal: the device-generic kernels of normopt::adam_step_,
// adam_step_capturable_ and sgd_step_, built from ATen's _foreach_ ops. They
// are registered for CompositeExplicitAutograd, so they serve every device
// that has no normopt kernel of its own (CUDA when built without the CUDA
// kernels, MPS, XPU, ...); CPU, CUDA (with the kernels) and Meta keep their
// own. Exported so that the tests can run them on CPU tensors against the
// CPU kernel.
//
// Same arguments, checks and update as the fused kernels, operation for
// operation in at::opmath_type; float16/bfloat16 tensors are updated in a
// float copy and rounded back once. Results agree with the CPU kernel to a
// few ulp, not bit for bit: ATen may divide by a scalar as a multiplication
// by its reciprocal. Each step allocates temporaries and makes several
// passes over memory: the fallback is for reach, not for speed.

#include "../optim_step_args.h"

#include <normopt/macros.h>

namespace normopt::ops::detail {

/// normopt::adam_step_ on any device, from ATen ops.
NORMOPT_API void adam_step_generic(const AdamLists& lists,
                                   at::IntArrayRef steps,
                                   const AdamStepOptions& options);

/// normopt::adam_step_capturable_ on any device, from ATen ops: the step
/// counts advanced and the bias corrections computed by tensor ops on the
/// device, in the step counts' dtype.
NORMOPT_API void adam_step_generic(const AdamLists& lists,
                                   at::TensorList state_steps,
                                   const AdamStepOptions& options);

/// normopt::sgd_step_ on any device, from ATen ops.
NORMOPT_API void sgd_step_generic(const SgdLists& lists,
                                  const SgdStepOptions& options);

}  // namespace normopt::ops::detail
