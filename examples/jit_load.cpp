// Loads a TorchScript file with torch::jit::load and prints forward(x), one
// row per line, numbers with 17 significant digits (exact round trip).
//   jit_load model.pt [--float64] [--cols F] [v1 v2 ...]
// The values form an (N, F) tensor, F = 2 by default (age, experience);
// without values a fixed (4, 2) input is used. float32 unless --float64.
// Files holding torch.classes.normopt objects load too: this program links
// libnormopt, which registers them.
#include "rows_io.h"

#include <normopt/jit/export.h>

#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  bool float64 = false;
  RowsInput input;
  CLI::App app{
      "Loads a TorchScript file and prints forward(x), one row per "
      "line, with 17 significant digits.",
      "jit_load"};
  app.add_flag("--float64", float64, "float64 input (default float32)");
  input.add_to(app, "model", "TorchScript file");
  CLI11_PARSE(app, argc, argv);
  const at::Tensor rows = input.tensor("jit_load");
  if (!rows.defined()) {
    return 2;
  }
  try {
    auto module = normopt::jit::load_pipeline(input.path);
    module.eval();
    auto x = rows.to(float64 ? torch::kFloat64 : torch::kFloat32);
    torch::NoGradGuard no_grad;
    print_rows(module.forward({x}).toTensor());
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what_without_backtrace());
    return 1;
  }
  return 0;
}
