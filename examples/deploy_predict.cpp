// Serves an AOTInductor package from C++ (normopt::deploy::Predictor) and
// prints one prediction per row with 17 significant digits.
//   deploy_predict model.pt2 [--cols F] [v1 v2 ...]
// The values form an (N, F) tensor in the package's dtype, F = 2 by default
// (age, experience); without values a fixed (4, 2) input is used.
// The round trip: train in C++ (income_regression writes income_model.pt),
// package in Python (python -m normopt.export income_model.pt income.pt2),
// predict here.
#include <normopt/deploy/predictor.h>

#include <ATen/ATen.h>
#include <CLI/CLI.hpp>

#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  std::string path;
  int64_t cols = 2;
  std::vector<double> values;
  CLI::App app{
      "Serves an AOTInductor package (normopt::deploy::Predictor) "
      "and prints one prediction per row, with 17 significant "
      "digits.",
      "deploy_predict"};
  app.add_option("package", path, "the .pt2 package")
      ->required()
      ->type_name("FILE");
  app.add_option("--cols", cols, "values per row")
      ->type_name("F")
      ->check(CLI::Range(int64_t{1}, std::numeric_limits<int64_t>::max()))
      ->capture_default_str();
  app.add_option("values",
                 values,
                 "the input, row by row (default: 25 1 32 5 47 12 58 20)");
  CLI11_PARSE(app, argc, argv);
  if (values.empty()) {
    values = {25, 1, 32, 5, 47, 12, 58, 20};
  }
  if (values.size() % static_cast<size_t>(cols) != 0) {
    std::fprintf(
        stderr,
        "deploy_predict: %zu values do not fill rows of %lld columns\n",
        values.size(),
        static_cast<long long>(cols));
    return 2;
  }
  try {
    normopt::deploy::Predictor predictor(path);
    // In the dtype the package was compiled for (its metadata says).
    const auto& meta = predictor.metadata();
    const auto dtype = meta.find("normopt.input_dtype");
    const bool float32 = dtype != meta.end() && dtype->second == "float32";
    const at::Tensor x = at::tensor(values, at::kDouble)
                             .reshape({-1, cols})
                             .to(float32 ? at::kFloat : at::kDouble);
    at::Tensor y = predictor.predict(x);
    y = y.to(at::kDouble).reshape({y.size(0), -1}).contiguous();
    for (int64_t r = 0; r < y.size(0); ++r) {
      for (int64_t c = 0; c < y.size(1); ++c) {
        std::printf(c ? " %.17g" : "%.17g", y[r][c].item<double>());
      }
      std::printf("\n");
    }
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "deploy_predict: %s\n", e.what_without_backtrace());
    return 1;
  }
  return 0;
}
