#include <normopt/data/dataset.h>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <utility>

namespace normopt::data {

TableDataset::TableDataset(Table table) : table_(std::move(table)) {
  const at::Tensor& x = table_.features;
  const at::Tensor& y = table_.targets;
  TORCH_CHECK(
      x.defined() && y.defined() && x.dim() == 2 && y.dim() == 2 &&
          y.size(1) == 1 && x.size(0) == y.size(0),
      "TableDataset: the table must have features (N, F) and targets (N, 1); "
      "got features ",
      (x.defined() ? x.sizes() : at::IntArrayRef{}),
      " and targets ",
      (y.defined() ? y.sizes() : at::IntArrayRef{}),
      ". Build it with normopt::data::read_csv or parse_csv.");
}

torch::data::Example<> TableDataset::get(size_t index) {
  const auto n = static_cast<size_t>(table_.size());
  TORCH_CHECK(index < n,
              "TableDataset::get: index ",
              index,
              " is out of range for a dataset of ",
              n,
              " rows.");
  const auto i = static_cast<int64_t>(index);
  return {table_.features[i], table_.targets[i]};
}

std::optional<size_t> TableDataset::size() const {
  return static_cast<size_t>(table_.size());
}

}  // namespace normopt::data
