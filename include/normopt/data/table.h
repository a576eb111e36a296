#pragma once

/// `Table`, the numeric data normopt trains on (features, targets and their
/// names), and its seeded train/validation split. Read one from a CSV file
/// with <normopt/data/csv.h>, or build one from tensors.
///
/// \code
///   normopt::data::Table table;
///   table.features = at::rand({100, 2}, at::kDouble);
///   table.targets = table.features.sum(1, /*keepdim=*/true);
///   table.feature_names = {"a", "b"};
///   table.target_name = "y";
///   auto [train, valid] =
///       normopt::data::train_validation_split(table, 0.2, 42);
/// \endcode

#include <ATen/core/Tensor.h>
#include <normopt/macros.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace normopt::data {

/// A numeric table: what read_csv returns and what fit() trains on.
struct NORMOPT_API Table {
  /// (N, F) feature matrix, of the dtype from CsvOptions, CPU, contiguous.
  at::Tensor features;
  /// (N, 1) target column, same dtype, CPU, contiguous.
  at::Tensor targets;
  /// Names of the F feature columns, in tensor column order.
  std::vector<std::string> feature_names;
  /// Name of the target column.
  std::string target_name;

  /// Number of rows N (0 when `features` is undefined).
  int64_t size() const;
};

/// Splits the rows of `table` into (train, validation) with a permutation
/// drawn from `seed`. The validation part gets round(validation_fraction * N)
/// rows, the first ones of the permutation; the training part the rest. Both
/// parts are in permuted order (also when the fraction is 0, where validation
/// is empty with shape (0, F) / (0, 1)), keep the names and dtype, and are
/// contiguous copies.
///
/// Deterministic: the same seed gives the same split on every platform and
/// LibTorch version (own generator, not the global torch RNG). Throws
/// c10::Error when validation_fraction is outside [0, 1), when the table is
/// malformed, or when a fraction > 0 would leave either part empty.
NORMOPT_API std::pair<Table, Table> train_validation_split(
    const Table& table, double validation_fraction, uint64_t seed);

}  // namespace normopt::data
