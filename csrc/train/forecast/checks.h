#pragma once
// Internal: diagnose()'s checks. Each is one function of the Context (the
// problem, the optimizer, the forecast and its remedies, gathered once)
// that appends its findings; kChecks lists them in the order they report.

#include "problem.h"
#include "simulate.h"

#include <normopt/train/diagnostics.h>

#include <optional>
#include <vector>

namespace normopt::train::detail {

/// A forecast with another learning rate (lr × factor).
struct LrRemedy {
  double lr = 0;
  Run run;
};

/// Everything the checks read.
struct Context {
  Context(const Problem& p, const OptimizerView& o, const Plan& q)
      : problem(p), optimizer(o), plan(q) {}
  const Problem& problem;
  const OptimizerView& optimizer;
  const Plan& plan;
  /// The model's affine start, or a linear surrogate's (zeros) for other
  /// models (used for the remedies and the stability bound).
  AffineStart affine;
  bool model_is_affine = false;
  /// The model's mean initial prediction per target column (loss units).
  at::Tensor initial_prediction;
  /// The forecast and its verdict (kUnknown: no forecast).
  Run run;
  Verdict verdict = Verdict::kUnknown;
  /// Remedies, computed once when the forecast fails: the same run on
  /// standardized data, at another lr, and (for minibatches) full batch.
  std::optional<Run> standardized;
  std::optional<LrRemedy> other_lr;
  std::optional<Run> full_batch;

  bool describable() const {
    return verdict != Verdict::kUnknown;
  }
  bool fails() const {
    return verdict == Verdict::kStalls || verdict == Verdict::kDiverges;
  }
  double ratio(const Run& r) const {
    return r.final_mse / problem.optimum_mse();
  }
};

/// Computes the remedies of a failing forecast.
void find_remedies(Context& context);

using Findings = std::vector<Finding>;
using Check = void (*)(const Context&, Findings&);

/// Every check, in report order.
extern const std::vector<Check> kChecks;

/// "1.2e+04" and "0.0123"-style numbers for messages.
std::string sci(double value);
std::string num(double value);

}  // namespace normopt::train::detail
