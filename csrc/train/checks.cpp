#include "checks.h"

#include "../util/files.h"

#include "../util/finite.h"

#include <normopt/nn/affine.h>

#include <ATen/ATen.h>

#include <cmath>
#include <cstring>
#include <system_error>

namespace normopt::train::detail {
namespace {

// The feature counts the model is known to accept: its affine regressor's
// in_features and its adapted Normalization's per-feature statistics.
void check_feature_count(const nn::StandardizedRegressorImpl& model,
                         int64_t features,
                         const char* where,
                         const char* what) {
  if (const auto* affine = nn::as_affine(*model.regressor_module())) {
    const int64_t in_features = affine->affine_weight().size(1);
    TORCH_CHECK(in_features == features,
                where,
                ": the ",
                what,
                " table has ",
                features,
                " feature column(s) but the model's regressor takes ",
                in_features,
                "; select the same features the model was built for");
  }
  const auto& norm = *model.normalization;
  const auto& axis = norm.options.axis();
  if (norm.is_adapted() && norm.mean.dim() == 1 && axis.size() == 1 &&
      (axis[0] == -1 || axis[0] == 1)) {
    TORCH_CHECK(norm.mean.size(0) == features,
                where,
                ": the ",
                what,
                " table has ",
                features,
                " feature column(s) but the model's Normalization holds "
                "statistics for ",
                norm.mean.size(0),
                "; select the same features it was adapted on");
  }
}

}  // namespace

void check_table(const nn::StandardizedRegressor& model,
                 const data::Table& table,
                 const char* where,
                 const char* what) {
  check_data(table, where, what);
  check_feature_count(*model, table.features.size(1), where, what);
}

void check_data(const data::Table& table, const char* where, const char* what) {
  const auto& x = table.features;
  const auto& y = table.targets;
  TORCH_CHECK(x.defined() && y.defined(),
              where,
              ": the ",
              what,
              " table has no ",
              x.defined() ? "targets" : "features",
              " (undefined tensor); build it with data::read_csv");
  TORCH_CHECK(x.dim() == 2,
              where,
              ": expected ",
              what,
              " features of shape (N, F), got ",
              x.sizes());
  TORCH_CHECK(y.dim() == 1 || y.dim() == 2,
              where,
              ": expected ",
              what,
              " targets of shape (N) or (N, k), got ",
              y.sizes());
  TORCH_CHECK(x.size(0) == y.size(0),
              where,
              ": the ",
              what,
              " table has ",
              x.size(0),
              " feature rows but ",
              y.size(0),
              " target rows; they must match");
  TORCH_CHECK(x.size(0) > 0,
              where,
              ": the ",
              what,
              " table is empty (0 rows); there is nothing to ",
              std::strcmp(what, "training") == 0 ? "train on" : "evaluate");
  TORCH_CHECK(y.numel() > 0,
              where,
              ": the ",
              what,
              " table has no target columns (shape ",
              y.sizes(),
              ")");
  if (auto index = util::first_nonfinite_index(x)) {
    const auto column = static_cast<size_t>(index->back());
    TORCH_CHECK(false,
                where,
                ": ",
                what,
                " feature ",
                at::IntArrayRef(*index),
                column < table.feature_names.size()
                    ? " (column '" + table.feature_names[column] + "')"
                    : std::string(),
                " is NaN or Inf; remove or impute it first");
  }
  if (auto index = util::first_nonfinite_index(y)) {
    TORCH_CHECK(false,
                where,
                ": ",
                what,
                " target ",
                at::IntArrayRef(*index),
                " is NaN or Inf; remove or impute it first");
  }
}

void check_fit_arguments(const nn::StandardizedRegressor& model,
                         const torch::optim::Optimizer& optimizer,
                         const data::Table& train,
                         const FitOptions& options) {
  TORCH_CHECK(options.epochs() >= 1,
              "fit: epochs must be at least 1, got ",
              options.epochs());
  TORCH_CHECK(options.batch_size() >= 0,
              "fit: batch_size must be >= 0 (0 = the full training set), got ",
              options.batch_size());
  TORCH_CHECK(options.checkpoint_every() >= 1,
              "fit: checkpoint_every must be at least 1, got ",
              options.checkpoint_every());
  if (!options.checkpoint_path().empty()) {
    // Before any training: a long run must not find out at its first save.
    const std::string folder = util::parent_folder(options.checkpoint_path());
    TORCH_CHECK(
        folder.empty() || util::path_kind(folder) == util::PathKind::kDirectory,
        "fit: cannot save checkpoints to '",
        options.checkpoint_path(),
        "': the folder '",
        folder,
        "' does not exist; create it first (nothing was trained)");
  }
  TORCH_CHECK(options.early_stopping_patience() >= 0,
              "fit: early_stopping_patience must be >= 0 (0 = off), got ",
              options.early_stopping_patience());
  TORCH_CHECK(std::isfinite(options.early_stopping_min_delta()) &&
                  options.early_stopping_min_delta() >= 0,
              "fit: early_stopping_min_delta must be finite and >= 0, got ",
              options.early_stopping_min_delta());
  TORCH_CHECK(!options.optimum_mse() || std::isfinite(*options.optimum_mse()),
              "fit: optimum_mse must be finite, got ",
              options.optimum_mse().value_or(0));
  check_table(model, train, "fit", "training");
  if (const auto& validation = options.validation()) {
    check_table(model, *validation, "fit", "validation");
    TORCH_CHECK(validation->features.size(1) == train.features.size(1) &&
                    as_matrix(validation->targets).size(1) ==
                        as_matrix(train.targets).size(1),
                "fit: the validation table has ",
                validation->features.size(1),
                " feature and ",
                as_matrix(validation->targets).size(1),
                " target column(s), the training table ",
                train.features.size(1),
                " and ",
                as_matrix(train.targets).size(1),
                "; split both from the same data");
  }
  const auto params = model->parameters();
  TORCH_CHECK(!params.empty(),
              "fit: the model has no parameters to train; wrap a regressor "
              "with parameters, e.g. LinearRegressor(n_features)");

  // An optimizer built on another module (e.g. on a model that was cloned
  // afterwards) would step tensors the loss does not depend on.
  bool shares_parameters = false;
  for (const auto& group : optimizer.param_groups()) {
    for (const auto& p : group.params()) {
      for (const auto& q : params) {
        shares_parameters = shares_parameters || p.is_same(q);
      }
    }
  }
  TORCH_CHECK(shares_parameters,
              "fit: the optimizer holds none of the model's parameters; "
              "build it on this model, e.g. Adam(model->parameters(), ...)");
}

}  // namespace normopt::train::detail
