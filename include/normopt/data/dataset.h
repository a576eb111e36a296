#pragma once

/// A `torch::data` dataset over a `Table`, so LibTorch's own DataLoader can
/// shuffle and batch it.
///
/// \code
///   #include <torch/data.h>  // DataLoader, Stack (in the consumer only)
///
///   auto table = normopt::data::read_csv("data.csv");
///   auto loader = torch::data::make_data_loader(
///       normopt::data::TableDataset(table).map(
///           torch::data::transforms::Stack<>()),
///       torch::data::DataLoaderOptions(/*batch_size=*/64));
///   for (auto& batch : *loader) {
///     // batch.data: (B, F), batch.target: (B, 1)
///   }
/// \endcode

#include <normopt/data/csv.h>
#include <normopt/macros.h>
#include <torch/data/datasets/base.h>
#include <torch/data/example.h>

#include <cstddef>
#include <optional>

namespace normopt::data {

/// Random-access dataset whose example `i` is row `i` of a Table: data is the
/// feature row (F,), target the target row (1,). Both are views into the
/// table's tensors (no copy); `Stack<>` turns a batch of them into (B, F) and
/// (B, 1) tensors.
class NORMOPT_API TableDataset
    : public torch::data::datasets::Dataset<TableDataset> {
 public:
  /// Takes the table (tensors are shared, not copied). Throws c10::Error
  /// unless features is (N, F) and targets is (N, 1).
  explicit TableDataset(Table table);

  /// Row `index` as (features (F,), target (1,)); throws c10::Error when
  /// `index` >= size().
  torch::data::Example<> get(size_t index) override;

  /// The number of rows N (always known).
  std::optional<size_t> size() const override;

  /// The underlying table.
  const Table& table() const noexcept {
    return table_;
  }

 private:
  Table table_;
};

}  // namespace normopt::data
