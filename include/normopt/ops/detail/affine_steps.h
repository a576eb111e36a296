#pragma once
// Internal (namespace detail, not normopt's API: it may change in any
// release). One module's interface for another inside the library, kept
// in include/normopt/<module>/detail/ so that no file reaches into another
// module's csrc/ folder.
//
// Many optimizer steps of an affine model under the MSE in one
// call, for fit()'s minibatch loop. Per step it does what fit()'s per-step
// path does with ATen calls (the closed-form gradient of the batch, the
// finiteness check, the fused optimizer update), on raw pointers: a step of
// a small model costs what its arithmetic costs, not tens of ATen calls.
// The ops module's interface for train/fused_steps.cpp and
// optim/detail/lend_state.h (which lends an optimizer's state as an
// AffineStepParam); not an op, so not in ops' public optim_step.h.

#include <normopt/ops/optim_step.h>

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace normopt::ops {

/// One parameter of the affine model (weight (k, p) or bias (k)) and the
/// optimizer state its steps advance: Adam's (exp_avg defined) or SGD's.
struct AffineStepParam {
  /// The parameter and its gradient: contiguous CPU tensors of one shape
  /// and dtype (float32 or float64). `grad` is the working buffer: it holds
  /// the last computed batch gradient on return.
  at::Tensor param;
  at::Tensor grad;
  /// Adam and AdamW: the moments, AMSGrad's maximum (undefined without
  /// amsgrad) and the step count, advanced once per step.
  at::Tensor exp_avg;
  at::Tensor exp_avg_sq;
  at::Tensor max_exp_avg_sq;
  int64_t* step = nullptr;
  AdamStepOptions adam;
  /// SGD: the momentum buffer (undefined without momentum); sgd's
  /// is_first_step applies to the first step taken, then is cleared.
  at::Tensor momentum_buffer;
  SgdStepOptions sgd;
};

/// The rows the steps train on: inputs (N, p) and targets (N, k), both
/// contiguous CPU tensors of the parameters' dtype, the order of the rows
/// (int64 (N), or undefined for 0 .. N-1) and the rows per batch (the last
/// batch holds the rest).
struct AffineStepRows {
  at::Tensor x;
  at::Tensor y;
  at::Tensor order;
  int64_t batch = 0;
};

/// Takes the optimizer steps of batches [first, end) of `rows` for the
/// affine model x Wᵀ + b under the mean squared error, in order: the batch
/// gradient (dL/dW = 2/(B k) (x Wᵀ + b - y)ᵀ x, dL/db its column sums), then
/// the update of normopt::ops::adam_step_ or sgd_step_ (the same arithmetic,
/// bit for bit, given the same gradient). Stops before a batch whose loss
/// or gradient holds NaN or Inf, without taking its step. Returns the first
/// batch not stepped: `end` when every step was taken. `bias` may be null.
int64_t affine_mse_steps_(const AffineStepRows& rows,
                          int64_t first,
                          int64_t end,
                          AffineStepParam& weight,
                          AffineStepParam* bias);

/// The MSE gradient of one batch of the affine model, on raw row-major
/// arrays: rows order[start .. start + len) of x (n, p) and y (n, k)
/// (`order` holds n row indices; null: rows start .. start + len; the rows
/// after the batch in that order are fetched ahead), weight w (k, p) and
/// bias b (k, or null). Writes dL/dW into gw (k, p) and dL/db into gb (k;
/// written also without a bias). Returns whether the batch's loss and every
/// gradient element are finite. T is float or double. The gradient of
/// affine_mse_steps_ and of diagnose()'s minibatch replay (float64).
template <typename T>
bool affine_mse_gradient(const T* x,
                         const T* y,
                         int64_t n,
                         const int64_t* order,
                         int64_t start,
                         int64_t len,
                         int64_t p,
                         int64_t k,
                         const T* w,
                         const T* b,
                         T* gw,
                         T* gb);

}  // namespace normopt::ops
