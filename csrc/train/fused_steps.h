#pragma once
// Internal: fit()'s fused runs of steps. An affine regressor trained under
// the MSE by one of normopt's optimizers on the CPU, with nothing to run
// between two steps, takes a block's steps in one call of
// ops::affine_mse_steps_ instead of tens of ATen calls per step; the same
// History, optimizer state and checks as the per-step path.

#include "training_rows.h"

#include <normopt/nn/affine.h>
#include <normopt/train/callbacks.h>
#include <normopt/train/fit.h>

#include <torch/optim/optimizer.h>

#include <cstdint>

namespace normopt::train::detail {

/// fit()'s view of FitState's private count.
struct FitStateAccess {
  /// Calls that reached Callback::before_step's own body so far.
  static int64_t default_before_steps(const FitState& state) {
    return state.default_before_steps_;
  }
};

/// Below this many multiply-adds per batch (rows x features x targets) a
/// block's steps are fused; above it ATen's BLAS is faster per step and its
/// call overhead small in comparison (benchmarks/RESULTS.md).
constexpr int64_t kFuseMaxBatchWork = 1 << 14;

class FusedSteps {
 public:
  /// `affine` is the regressor when fit() computes its gradient in closed
  /// form (null otherwise: nothing is fused).
  FusedSteps(const nn::Affine* affine,
             torch::optim::Optimizer& optimizer,
             const FitOptions& options);

  /// Called after the callbacks' before_step calls of a per-step batch
  /// (`calls` of them, `defaults_before` the count before): fusing starts
  /// only once every callback left before_step to the base class.
  void after_before_step(const FitState& state,
                         size_t calls,
                         int64_t defaults_before);

  /// Takes the steps of `block` from batch `b` on, in one call when it can;
  /// returns the first batch not taken (`b` when none was: the per-step
  /// path takes it, e.g. to report a non-finite loss).
  int64_t run(const BatchBlock& block, int64_t b);

 private:
  const nn::Affine* affine_;
  torch::optim::Optimizer& optimizer_;
  bool callbacks_quiet_ = false;
};

}  // namespace normopt::train::detail
