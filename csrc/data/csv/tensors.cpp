#include "parts.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstring>
#include <type_traits>

namespace normopt::data::csv {

namespace {

template <typename T>
void copy_values(const double* from, size_t n, T* to) {
  if (n == 0) {
    return;  // an empty part: `from` may be null (memcpy must not see it)
  }
  if constexpr (std::is_same_v<T, double>) {
    std::memcpy(to, from, n * sizeof(double));
  } else {
    for (size_t i = 0; i < n; ++i) {
      to[i] = static_cast<T>(from[i]);
    }
  }
}

// Copies each range in parallel to its place in the table.
template <typename T>
void fill(const std::vector<RowRange>& ranges, Table& table) {
  const size_t n_features = static_cast<size_t>(table.features.size(1));
  std::vector<size_t> first_row(ranges.size() + 1, 0);
  for (size_t k = 0; k < ranges.size(); ++k) {
    first_row[k + 1] = first_row[k] + (ranges[k].end - ranges[k].begin);
  }
  T* features = table.features.data_ptr<T>();
  T* targets = table.targets.data_ptr<T>();
  at::parallel_for(
      0, static_cast<int64_t>(ranges.size()), 1, [&](int64_t from, int64_t to) {
        for (int64_t b = from; b < to; ++b) {
          const RowRange& r = ranges[static_cast<size_t>(b)];
          const size_t rows = r.end - r.begin;
          copy_values(
              r.values->features.data() + r.begin * n_features,
              rows * n_features,
              features + first_row[static_cast<size_t>(b)] * n_features);
          copy_values(r.values->targets.data() + r.begin,
                      rows,
                      targets + first_row[static_cast<size_t>(b)]);
        }
      });
}

}  // namespace

Table make_table(const std::vector<RowRange>& ranges,
                 const Header& header,
                 const Columns& columns,
                 c10::ScalarType dtype) {
  size_t n_rows = 0;
  for (const auto& r : ranges) {
    n_rows += r.end - r.begin;
  }
  const size_t n_features = columns.features.size();
  const auto tensor_options = at::TensorOptions().dtype(dtype);
  Table table;
  table.features = at::empty(
      {static_cast<int64_t>(n_rows), static_cast<int64_t>(n_features)},
      tensor_options);
  table.targets = at::empty({static_cast<int64_t>(n_rows), 1}, tensor_options);
  if (dtype == at::kFloat) {
    fill<float>(ranges, table);
  } else {
    fill<double>(ranges, table);
  }
  table.feature_names.reserve(n_features);
  for (size_t c : columns.features) {
    table.feature_names.push_back(header.names[c]);
  }
  table.target_name = header.names[columns.target];
  return table;
}

Table make_table(const std::vector<Values>& parts,
                 const Header& header,
                 const Columns& columns,
                 c10::ScalarType dtype) {
  std::vector<RowRange> ranges;
  ranges.reserve(parts.size());
  for (const auto& part : parts) {
    ranges.push_back({&part, 0, part.rows()});
  }
  return make_table(ranges, header, columns, dtype);
}

}  // namespace normopt::data::csv
