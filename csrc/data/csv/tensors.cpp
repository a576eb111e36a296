#include "parts.h"

#include <ATen/ATen.h>

#include <cstring>

namespace normopt::data::csv {

Table make_table(const Values& values,
                 const Header& header,
                 const Columns& columns,
                 c10::ScalarType dtype) {
  const size_t n_rows = values.targets.size();
  const size_t n_features = columns.features.size();
  const bool to_float = dtype == at::kFloat;
  const auto tensor_options = at::TensorOptions().dtype(dtype);
  Table table;
  table.features = at::empty(
      {static_cast<int64_t>(n_rows), static_cast<int64_t>(n_features)},
      tensor_options);
  table.targets = at::empty({static_cast<int64_t>(n_rows), 1}, tensor_options);
  if (to_float) {
    float* fd = table.features.data_ptr<float>();
    for (size_t i = 0; i < values.features.size(); ++i) {
      fd[i] = static_cast<float>(values.features[i]);
    }
    float* td = table.targets.data_ptr<float>();
    for (size_t i = 0; i < n_rows; ++i) {
      td[i] = static_cast<float>(values.targets[i]);
    }
  } else {
    std::memcpy(table.features.data_ptr<double>(),
                values.features.data(),
                values.features.size() * sizeof(double));
    std::memcpy(table.targets.data_ptr<double>(),
                values.targets.data(),
                n_rows * sizeof(double));
  }
  table.feature_names.reserve(n_features);
  for (size_t c : columns.features) {
    table.feature_names.push_back(header.names[c]);
  }
  table.target_name = header.names[columns.target];
  return table;
}

}  // namespace normopt::data::csv
