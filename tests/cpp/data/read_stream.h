#pragma once
// Shared by the CSV stream tests and the CSV fuzzer: a CsvReader's parts
// read into one Table, to compare with the whole-file parse.

#include <normopt/data/csv_reader.h>

#include <ATen/ATen.h>

#include <vector>

namespace normopt::test {

/// Every part `reader` still yields, concatenated; `on_part(part)` sees each
/// part first.
template <typename OnPart>
data::Table read_stream(data::CsvReader& reader, const OnPart& on_part) {
  std::vector<at::Tensor> features, targets;
  data::Table all;
  while (auto part = reader.next()) {
    on_part(*part);
    features.push_back(part->features);
    targets.push_back(part->targets);
    all.feature_names = part->feature_names;
    all.target_name = part->target_name;
  }
  all.features = at::cat(features);
  all.targets = at::cat(targets);
  return all;
}

}  // namespace normopt::test
