// Serves an AOTInductor package from C++ (normopt::deploy::Predictor) and
// prints one prediction per row with 17 significant digits.
//   deploy_predict model.pt2 [--cols F] [v1 v2 ...]
// The values form an (N, F) tensor in the package's dtype, F = 2 by default
// (age, experience); without values a fixed (4, 2) input is used.
// The round trip: train in C++ (income_regression writes income_model.pt),
// package in Python (python -m normopt.export income_model.pt income.pt2),
// predict here.
#include "rows_io.h"

#include <normopt/deploy/predictor.h>

#include <ATen/ATen.h>
#include <CLI/CLI.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  RowsInput input;
  CLI::App app{
      "Serves an AOTInductor package (normopt::deploy::Predictor) "
      "and prints one prediction per row, with 17 significant "
      "digits.",
      "deploy_predict"};
  input.add_to(app, "package", "the .pt2 package");
  CLI11_PARSE(app, argc, argv);
  const at::Tensor rows = input.tensor("deploy_predict");
  if (!rows.defined()) {
    return 2;
  }
  try {
    normopt::deploy::Predictor predictor(input.path);
    // In the dtype the package was compiled for (its metadata says).
    const auto& meta = predictor.metadata();
    const auto dtype = meta.find(normopt::deploy::kMetadataInputDtype);
    const bool float32 = dtype != meta.end() && dtype->second == "float32";
    print_rows(predictor.predict(rows.to(float32 ? at::kFloat : at::kDouble)));
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "deploy_predict: %s\n", e.what_without_backtrace());
    return 1;
  }
  return 0;
}
