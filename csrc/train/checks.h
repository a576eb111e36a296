#pragma once
// Internal: the argument checks of fit() and diagnose(), so that both refuse
// the same bad input with the same messages.

#include <normopt/data/table.h>
#include <normopt/nn/standardized_regressor.h>
#include <normopt/train/fit.h>

#include <torch/optim/optimizer.h>

namespace normopt::train::detail {

/// Targets as (N, k).
inline at::Tensor as_matrix(const at::Tensor& y) {
  return y.dim() == 1 ? y.unsqueeze(1) : y;
}

/// Checks that `table` is a well-formed training table for `model`:
/// defined 2-D features, targets (N) or (N, k) with the same N > 0, only
/// finite values, and a feature count the model accepts (from its regressor's
/// in_features or its adapted Normalization). `where` names the caller and
/// `what` the table in messages.
void check_table(const nn::StandardizedRegressor& model,
                 const data::Table& table,
                 const char* where,
                 const char* what);

/// The checks of check_table() that do not depend on a model.
void check_data(const data::Table& table, const char* where, const char* what);

/// Checks fit()'s options (ranges, the checkpoint folder), both tables and
/// that the optimizer holds the model's parameters; throws c10::Error
/// saying what is wrong before anything is trained.
void check_fit_arguments(const nn::StandardizedRegressor& model,
                         const torch::optim::Optimizer& optimizer,
                         const data::Table& train,
                         const FitOptions& options);

}  // namespace normopt::train::detail
