#pragma once

/// Fused optimizer steps as dispatcher ops (`normopt::adam_step_`,
/// `normopt::adam_step_capturable_`, `normopt::sgd_step_`). Each updates a list
/// of parameters and their state in place in one pass: every element of param,
/// grad and state is read once and written once. normopt::optim::{Adam, AdamW,
/// SGD} call these; the same ops are reachable from Python as
/// `torch.ops.normopt.adam_step_`.
///
/// All lists are index-aligned; tensors at one index share shape, dtype and
/// device. Supported: float32 and float64 (vectorized), float16/bfloat16
/// (float math). Nothing is allocated unless a tensor is non-contiguous.

#include <ATen/core/Tensor.h>
#include <normopt/macros.h>
#include <normopt/ops/step_options.h>

namespace normopt::ops {

/// One Adam step. `steps[i]` is parameter i's step count including this
/// step (1 on the first). `max_exp_avg_sqs` is empty unless amsgrad.
NORMOPT_API void adam_step_(at::TensorList params,
                            at::TensorList grads,
                            at::TensorList exp_avgs,
                            at::TensorList exp_avg_sqs,
                            at::TensorList max_exp_avg_sqs,
                            at::IntArrayRef steps,
                            const AdamStepOptions& options);

/// One Adam step with the step counts in tensors (torch.optim's
/// `capturable=True`): `state_steps[i]` is parameter i's step count before
/// this step (0 before the first), a one-element float32 or float64 tensor
/// (one dtype for the list) on params[i]'s device. The op adds 1 to each on
/// the device and the kernel computes the bias corrections from the new
/// value, so nothing is read on the host: a CUDA graph can capture the step
/// and each replay advances the counts. The hyper-parameters are fixed per
/// call (a captured graph replays the lr it was captured with). Same update
/// as adam_step_: on CPU bit for bit; on CUDA to the ulps of the device's
/// pow(). The step counts are not validated (that would need a host read);
/// no two entries of `state_steps` may be the same tensor.
///
/// \code
///   std::vector<at::Tensor> steps;
///   for (const auto& p : params) {
///     steps.push_back(at::zeros({}, p.options().dtype(at::kFloat)));
///   }
///   normopt::ops::adam_step_capturable_(params, grads, m, v, {}, steps, o);
/// \endcode
NORMOPT_API void adam_step_capturable_(at::TensorList params,
                                       at::TensorList grads,
                                       at::TensorList exp_avgs,
                                       at::TensorList exp_avg_sqs,
                                       at::TensorList max_exp_avg_sqs,
                                       at::TensorList state_steps,
                                       const AdamStepOptions& options);

/// One SGD step. `momentum_buffers` is empty when momentum is 0.
NORMOPT_API void sgd_step_(at::TensorList params,
                           at::TensorList grads,
                           at::TensorList momentum_buffers,
                           const SgdStepOptions& options);

}  // namespace normopt::ops
