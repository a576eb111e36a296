// Trains a StandardizedRegressor on built-in synthetic income data and prints
// predictions in dollars: the smallest end-to-end use of normopt's modules.
#include <normopt/normopt.h>
#include <torch/torch.h>

#include <cstdio>

int main() {
  using namespace normopt::nn;
  torch::manual_seed(0);
  // 200 people: age 22-60, experience 0-20 years, income in dollars.
  auto age = 22 + 38 * torch::rand({200, 1});
  auto exp = 20 * torch::rand({200, 1});
  auto x = torch::cat({age, exp}, 1);
  auto y = 25000 + 200 * age + 1500 * exp + 2000 * torch::randn({200, 1});

  StandardizedRegressor model(LinearRegressor(2));
  model->fit_statistics(x, y);
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(1e-2));
  auto target = model->transform_targets(y);
  for (int epoch = 1; epoch <= 300; ++epoch) {
    opt.zero_grad();
    auto loss = torch::mse_loss(model(x), target);
    loss.backward();
    opt.step();
    if (epoch % 100 == 0) {
      torch::NoGradGuard no_grad;
      auto mse = torch::mse_loss(model->predict(x), y).item<double>();
      std::printf("epoch %3d  MSE %.4g dollars^2\n", epoch, mse);
    }
  }
  torch::NoGradGuard no_grad;
  auto people = torch::tensor({{25.0f, 1.0f}, {40.0f, 10.0f}, {58.0f, 17.0f}});
  auto pred = model->predict(people);
  for (int64_t i = 0; i < people.size(0); ++i) {
    std::printf("age %2.0f, %2.0f years: predicted income $%.0f\n",
                people[i][0].item<float>(),
                people[i][1].item<float>(),
                pred[i][0].item<double>());
  }
  return 0;
}
