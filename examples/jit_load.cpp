// Loads a TorchScript file with torch::jit::load and prints forward(x), one
// row per line, numbers with 17 significant digits (exact round trip).
//   jit_load model.pt [--float64] [--cols F] [v1 v2 ...]
// The values form an (N, F) tensor, F = 2 by default (age, experience);
// without values a fixed (4, 2) input is used. float32 unless --float64.
// Files holding torch.classes.normopt objects load too: this program links
// libnormopt, which registers them.
#include <normopt/jit/export.h>

#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  std::string path;
  bool float64 = false;
  int64_t cols = 2;
  std::vector<double> values;
  CLI::App app{
      "Loads a TorchScript file and prints forward(x), one row per "
      "line, with 17 significant digits.",
      "jit_load"};
  app.add_option("model", path, "TorchScript file")
      ->required()
      ->type_name("FILE");
  app.add_flag("--float64", float64, "float64 input (default float32)");
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
    std::fprintf(stderr,
                 "jit_load: %zu values do not fill rows of %lld columns\n",
                 values.size(),
                 static_cast<long long>(cols));
    return 2;
  }
  try {
    auto module = normopt::jit::load_pipeline(path);
    module.eval();
    auto x = torch::tensor(values, torch::kFloat64)
                 .reshape({-1, cols})
                 .to(float64 ? torch::kFloat64 : torch::kFloat32);
    torch::NoGradGuard no_grad;
    auto y = module.forward({x}).toTensor().to(torch::kFloat64);
    // One line per row: a vector prints as a column, higher ranks flatten.
    if (y.dim() == 0) {
      y = y.reshape({1, 1});
    } else if (y.dim() == 1) {
      y = y.unsqueeze(1);
    } else {
      y = y.reshape({y.size(0), -1});
    }
    for (int64_t i = 0; i < y.size(0); ++i) {
      for (int64_t j = 0; j < y.size(1); ++j) {
        std::printf(j == 0 ? "%.17g" : " %.17g", y[i][j].item<double>());
      }
      std::printf("\n");
    }
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what_without_backtrace());
    return 1;
  }
  return 0;
}
