// The shortest complete program: read a CSV, train a StandardizedRegressor
// with normopt's Adam, predict incomes in dollars.
//   income_regression data.csv [target-column]
#include <normopt/normopt.h>
#include <torch/torch.h>

#include <iostream>

int main(int argc, char** argv) {
  using namespace normopt;
  if (argc < 2) {
    std::cerr << "usage: income_regression data.csv [target-column]\n";
    return 2;
  }
  try {
    auto table = data::read_csv(
        argv[1], data::CsvOptions().target(argc > 2 ? argv[2] : ""));
    torch::manual_seed(0);
    nn::StandardizedRegressor model(
        nn::LinearRegressor(table.features.size(1)));
    optim::Adam adam(model->parameters(), optim::AdamOptions(1e-2));
    auto history = train::fit(
        model, adam, table, train::FitOptions().epochs(500).batch_size(0));
    torch::NoGradGuard no_grad;
    auto predictions = model->predict(table.features);
    std::cout << "final MSE: " << history.epochs.back().train_mse << "\n";
    for (int64_t i = 0; i < std::min<int64_t>(5, table.size()); ++i) {
      std::cout << table.target_name << " " << table.targets[i].item<float>()
                << ", predicted " << predictions[i].item<double>() << "\n";
    }
    torch::save(model, "income_model.pt");  // normalization + weights + targets
  } catch (const c10::Error& e) {
    std::cerr << "error: " << e.what_without_backtrace() << "\n";
    return 1;
  }
  return 0;
}
