#pragma once
// Internal: the forecast trajectories. One optimizer rule (Stepper) on flat
// float64 parameters, driven by three gradient sources: the exact quadratic
// of an affine model (full batch), minibatch replay of an affine model on
// the rows, and replay of any module on a copy of its parameters.

#include "problem.h"

#include <normopt/optim/describe.h>
#include <normopt/train/diagnostics.h>

#include <cstdint>
#include <string>
#include <vector>

namespace normopt::train::detail {

/// The update rule of a StepDescription (PyTorch's SGD and Adam/AdamW,
/// Keras's epsilon, AMSGrad, weight decay, maximize) on flat float64
/// parameters with a fresh state: the formulas of normopt's fused steps
/// (Adam's bias corrections as factors taken once per step, so a result may
/// differ from the fused op's in the last bit).
class Stepper {
 public:
  /// `lrs[i]` is element i's learning rate.
  Stepper(const optim::StepDescription& step, std::vector<double> lrs);
  /// One step of theta given its gradient (modified: weight decay).
  void step(double* theta, double* grad);

 private:
  optim::StepDescription d_;
  std::vector<double> lrs_, m_, v_, vmax_;
  int64_t t_ = 0;
  double beta1_t_ = 1, beta2_t_ = 1;  // beta1^t, beta2^t
};

/// How the run is planned.
struct Plan {
  int64_t steps = 0;
  int64_t batch_size = 0;  // 0: full batch
  bool shuffle = true;
  uint64_t seed = 0;
  /// How many steps to look ahead for steps_needed (>= steps).
  int64_t horizon = 0;
};

/// One forecast trajectory and what it shows.
struct Run {
  std::vector<ForecastPoint> trajectory;  // original units
  double initial_mse = 0;
  double final_mse = 0;  // after plan.steps
  bool finite = true;
  int64_t steps_needed = -1;  // first step <= 1.2x optimum (maybe estimated)
  bool steps_needed_estimated = false;
  int64_t steps_searched = 0;
  std::string method;
};

/// Full-batch (or minibatch, when plan.batch_size selects batches and the
/// rows are there) forecast of an affine model.
Run forecast_affine(const Problem& problem,
                    const AffineStart& start,
                    const optim::StepDescription& step,
                    const Plan& plan);

/// Forecast of any module by replay on a copy of its parameters (the
/// caller's are restored); a full batch uses at most 1,024 of the rows.
Run forecast_module(const Problem& problem,
                    const ModuleStart& start,
                    const optim::StepDescription& step,
                    const Plan& plan);

/// A run replayed elsewhere: (m, 2) rows of (step, MSE in original
/// units).
Run run_of(const at::Tensor& replayed,
           const Plan& plan,
           double optimum_mse,
           std::string method);

/// The verdict of a run against the problem's optimum.
Verdict verdict_of(const Run& run, double optimum_mse);

}  // namespace normopt::train::detail
