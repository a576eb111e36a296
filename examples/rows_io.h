#pragma once
// What the two serving examples (jit_load, deploy_predict) share: the file
// to serve and the input given on the command line as values, row by row,
// with --cols per row, and
// the output printed one row per line with 17 significant digits (an exact
// round trip).

#include <ATen/ATen.h>
#include <CLI/CLI.hpp>

#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

struct RowsInput {
  std::string path;
  int64_t cols = 2;
  std::vector<double> values;

  /// Adds the file (a required positional argument named `file`), --cols
  /// and the values to `app`.
  void add_to(CLI::App& app, const char* file, const char* file_help) {
    app.add_option(file, path, file_help)->required()->type_name("FILE");
    app.add_option("--cols", cols, "values per row")
        ->type_name("F")
        ->check(CLI::Range(int64_t{1}, std::numeric_limits<int64_t>::max()))
        ->capture_default_str();
    app.add_option("values",
                   values,
                   "the input, row by row (default: 25 1 32 5 47 12 58 20)");
  }

  /// The parsed values as an (N, cols) float64 tensor (a fixed (4, 2) input
  /// when none were given); undefined, after a message that names
  /// `program`, when they do not fill whole rows.
  at::Tensor tensor(const char* program) {
    if (values.empty()) {
      values = {25, 1, 32, 5, 47, 12, 58, 20};
    }
    if (values.size() % static_cast<size_t>(cols) != 0) {
      std::fprintf(stderr,
                   "%s: %zu values do not fill rows of %lld columns\n",
                   program,
                   values.size(),
                   static_cast<long long>(cols));
      return {};
    }
    return at::tensor(values, at::kDouble).reshape({-1, cols});
  }
};

/// Prints `y` one row per line: a vector prints as a column, a scalar as
/// one row, higher ranks flatten after the first dimension.
inline void print_rows(at::Tensor y) {
  y = y.to(at::kDouble);
  if (y.dim() == 0) {
    y = y.reshape({1, 1});
  } else {
    y = y.reshape({y.size(0), -1});
  }
  for (int64_t i = 0; i < y.size(0); ++i) {
    for (int64_t j = 0; j < y.size(1); ++j) {
      std::printf(j == 0 ? "%.17g" : " %.17g", y[i][j].item<double>());
    }
    std::printf("\n");
  }
}
