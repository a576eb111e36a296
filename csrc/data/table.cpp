#include <normopt/data/table.h>

#include "../util/split_mix.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <utility>
#include <vector>

namespace normopt::data {

int64_t Table::size() const {
  return features.defined() ? features.size(0) : 0;
}

std::pair<Table, Table> train_validation_split(const Table& table,
                                               double validation_fraction,
                                               uint64_t seed) {
  TORCH_CHECK(
      validation_fraction >= 0.0 && validation_fraction < 1.0,
      "train_validation_split: validation_fraction must be in [0, 1), got ",
      validation_fraction,
      ". Pass e.g. 0.2 to hold out 20% of the rows.");
  TORCH_CHECK(
      table.features.defined() && table.targets.defined() &&
          table.features.dim() == 2 && table.targets.dim() == 2 &&
          table.targets.size(1) == 1 &&
          table.features.size(0) == table.targets.size(0),
      "train_validation_split: the table must have features (N, F) and "
      "targets (N, 1); got features ",
      (table.features.defined() ? table.features.sizes() : at::IntArrayRef{}),
      " and targets ",
      (table.targets.defined() ? table.targets.sizes() : at::IntArrayRef{}),
      ". Pass a Table from read_csv/parse_csv.");
  const int64_t n = table.size();
  const auto n_valid =
      static_cast<int64_t>(std::llround(validation_fraction * n));
  if (validation_fraction > 0.0) {
    TORCH_CHECK(n_valid >= 1 && n - n_valid >= 1,
                "train_validation_split: validation_fraction ",
                validation_fraction,
                " of ",
                n,
                " rows leaves ",
                n_valid,
                " validation and ",
                n - n_valid,
                " training rows; both must be non-empty. Use more rows or "
                "another fraction (or 0 for no validation set).");
  }

  std::vector<int64_t> perm(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    perm[static_cast<size_t>(i)] = i;
  }
  util::SplitMix64 rng{seed};
  for (int64_t i = n - 1; i > 0; --i) {  // Fisher-Yates
    const auto j =
        static_cast<int64_t>(rng.below(static_cast<uint64_t>(i) + 1));
    std::swap(perm[static_cast<size_t>(i)], perm[static_cast<size_t>(j)]);
  }
  const at::Tensor index =
      at::from_blob(perm.data(), {n}, at::TensorOptions().dtype(at::kLong))
          .to(table.features.device());

  const auto take = [&](int64_t begin, int64_t end) {
    const at::Tensor rows = index.slice(0, begin, end);
    Table part;
    part.features = table.features.index_select(0, rows).contiguous();
    part.targets = table.targets.index_select(0, rows).contiguous();
    part.feature_names = table.feature_names;
    part.target_name = table.target_name;
    return part;
  };
  Table validation = take(0, n_valid);
  Table train = take(n_valid, n);
  return {std::move(train), std::move(validation)};
}

}  // namespace normopt::data
