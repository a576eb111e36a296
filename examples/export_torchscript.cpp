// Trains a StandardizedRegressor on the built-in income data with normopt's
// Adam, exports it as one TorchScript file, and prints a few predictions.
// The file runs without normopt: see examples/python/predict.py and jit_load.
//   export_torchscript [output.pt]     (default: income_pipeline.pt)
// Output lines (numbers with 17 significant digits, so other programs can
// compare exactly):
//   row <i> <age> <experience> <income> <predicted income>
#include <normopt/jit/export.h>
#include <normopt/normopt.h>
#include <torch/torch.h>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  using namespace normopt;
  const std::string path = argc > 1 ? argv[1] : "income_pipeline.pt";
  try {
    auto table = data::synthetic_income(/*rows=*/200, /*seed=*/0);
    torch::manual_seed(0);
    nn::StandardizedRegressor model(nn::LinearRegressor(2));
    optim::Adam adam(model->parameters(), optim::AdamOptions(1e-2));
    auto history =
        train::fit(model,
                   adam,
                   table,
                   train::FitOptions().epochs(300).batch_size(0).progress(
                       train::Progress::kOff));
    std::printf("trained %zu epochs, training MSE %.6g dollars^2\n",
                history.epochs.size(),
                history.epochs.back().train_mse);

    jit::export_pipeline(model, path);
    std::printf("wrote %s\n", path.c_str());

    torch::NoGradGuard no_grad;
    auto rows = table.features.slice(0, 0, 5);
    auto predicted = model->predict(rows).to(torch::kFloat64);
    auto x = rows.to(torch::kFloat64);
    auto y = table.targets.slice(0, 0, 5).to(torch::kFloat64);
    for (int64_t i = 0; i < rows.size(0); ++i) {
      std::printf("row %lld %.17g %.17g %.17g %.17g\n",
                  static_cast<long long>(i),
                  x[i][0].item<double>(),
                  x[i][1].item<double>(),
                  y[i][0].item<double>(),
                  predicted[i][0].item<double>());
    }
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what_without_backtrace());
    return 1;
  }
  return 0;
}
