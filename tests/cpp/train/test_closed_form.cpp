#include "fixtures.h"

#include <normopt/normopt.h>

#include <cstdio>
#include <limits>
#include <thread>

using namespace normopt::test::train;

// ---- Closed form ------------------------------------------------------------

TEST(ClosedForm, NoiseFree_RecoversExactCoefficients) {
  torch::manual_seed(0);
  auto x = torch::randn({50, 3}, torch::kFloat64) *
           torch::tensor({10.0, 1.0, 100.0}, torch::kFloat64);
  auto w =
      torch::tensor({{2.0, -3.0, 0.5}, {-1.0, 0.25, 4.0}}, torch::kFloat64);
  auto b = torch::tensor({7.0, -40000.0}, torch::kFloat64);
  auto y = torch::matmul(x, w.t()) + b;
  auto ls = normopt::train::solve_least_squares(x, y);
  ASSERT_EQ(ls.weight.sizes(), (std::vector<int64_t>{2, 3}));
  ASSERT_EQ(ls.bias.sizes(), (std::vector<int64_t>{2}));
  EXPECT_EQ(ls.weight.scalar_type(), torch::kFloat64);
  EXPECT_LT(normopt::test::max_rel_error(ls.weight, w), 1e-9);
  EXPECT_LT(normopt::test::max_rel_error(ls.bias, b), 1e-9);
  EXPECT_LT(ls.mse, 1e-16);
  EXPECT_TRUE(ls.exact);
  // A 1-D target gives k = 1.
  auto one = normopt::train::solve_least_squares(x, y.select(1, 0));
  EXPECT_EQ(one.weight.sizes(), (std::vector<int64_t>{1, 3}));
  EXPECT_LT(normopt::test::max_rel_error(one.weight[0], w[0]), 1e-9);
}

TEST(ClosedForm, Noisy_MatchesLongDoubleNormalEquations) {
  torch::manual_seed(1);
  auto x = torch::stack({22 + 38 * torch::rand({40}, torch::kFloat64),
                         20 * torch::rand({40}, torch::kFloat64)},
                        1);
  auto y = 25000 + 300 * x.select(1, 0) + 1200 * x.select(1, 1) +
           3000 * torch::randn({40}, torch::kFloat64);
  auto ref = normal_equations(x, y);
  auto ls = normopt::train::solve_least_squares(x, y.unsqueeze(1));
  for (int j = 0; j < 2; ++j) {
    EXPECT_LT(rel(ls.weight[0][j].item<double>(), ref.coef[j]), 1e-9) << j;
  }
  EXPECT_LT(rel(ls.bias[0].item<double>(), ref.coef[2]), 1e-9);
  EXPECT_LT(rel(ls.mse, ref.mse), 1e-9);
  EXPECT_GT(ls.mse, 1e6);  // the noise is really there
  EXPECT_FALSE(ls.exact);
}

// Data a linear model fits exactly: the optimum MSE is rounding noise (it
// once made compare_optimizers print "4.43e+30x"), and exact says so.
TEST(ClosedForm, ExactFit_FlaggedOnDegenerateData) {
  const auto x = torch::tensor({{30.0, 5.0}, {41.0, 9.0}}, torch::kFloat32);
  // Fewer rows than features + 1.
  EXPECT_TRUE(normopt::train::solve_least_squares(x.narrow(0, 0, 1),
                                                  torch::tensor({52000.0f}))
                  .exact);
  EXPECT_TRUE(normopt::train::solve_least_squares(
                  x, torch::tensor({52000.0f, 61000.0f}))
                  .exact);
  // A constant target on many rows.
  const auto table = income_like_table();
  const auto constant = normopt::train::solve_least_squares(
      table.features, torch::full({20}, 48000.0f));
  EXPECT_TRUE(constant.exact) << constant.mse;
  // Real data is not: its optimum is far above the bound.
  const auto real =
      normopt::train::solve_least_squares(table.features, table.targets);
  EXPECT_FALSE(real.exact);
  EXPECT_GT(
      real.mse,
      1e6 * normopt::train::kExactFitTolerance *
          table.targets.to(torch::kFloat64).square().mean().item<double>());
}

TEST(ClosedForm, Ridge_MatchesOneFeatureFormula) {
  const std::vector<double> xs = {1, 2, 4, 7, 11}, ys = {3, 2, 8, 9, 20};
  const double ridge = 2.5;
  // w = Sxy / (Sxx + ridge), b = ybar - w xbar, by hand in long double.
  long double xbar = 0, ybar = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    xbar += xs[i];
    ybar += ys[i];
  }
  xbar /= xs.size();
  ybar /= ys.size();
  long double sxx = 0, sxy = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    sxx += (xs[i] - xbar) * (xs[i] - xbar);
    sxy += (xs[i] - xbar) * (ys[i] - ybar);
  }
  const long double w = sxy / (sxx + ridge), b = ybar - w * xbar;
  long double sse = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    sse += (w * xs[i] + b - ys[i]) * (w * xs[i] + b - ys[i]);
  }
  auto x = normopt::test::as_tensor(xs).unsqueeze(1);
  auto y = normopt::test::as_tensor(ys);
  auto ls = normopt::train::solve_least_squares(x, y, ridge);
  EXPECT_LT(rel(ls.weight.item<double>(), static_cast<double>(w)), 1e-12);
  EXPECT_LT(rel(ls.bias.item<double>(), static_cast<double>(b)), 1e-12);
  EXPECT_LT(rel(ls.mse, static_cast<double>(sse / xs.size())), 1e-12);
  // The penalty shrinks the slope below the least-squares one.
  auto ols = normopt::train::solve_least_squares(x, y);
  EXPECT_LT(ls.weight.item<double>(), ols.weight.item<double>());
  EXPECT_GT(ls.mse, ols.mse);
}

TEST(ClosedForm, BadInput_Errors) {
  auto x = torch::ones({4, 2});
  auto y = torch::ones({4});
  expect_error(
      [&] { normopt::train::solve_least_squares(x, torch::ones({3})); },
      {"x has 4 rows but y has 3"});
  expect_error(
      [&] {
        normopt::train::solve_least_squares(torch::ones({0, 2}),
                                            torch::ones({0}));
      },
      {"no rows"});
  auto bad = torch::ones({4, 2});
  bad[2][1] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { normopt::train::solve_least_squares(bad, y); },
               {"x[2, 1]", "NaN or Inf"});
  expect_error([&] { normopt::train::solve_least_squares(x, y, -1); },
               {"ridge must be finite and >= 0, got -1"});
  expect_error(
      [&] {
        normopt::train::solve_least_squares(torch::ones({4, 2, 1}), y);
      },
      {"(N, F)"});
  expect_error([&] { normopt::train::solve_least_squares(x, torch::Tensor()); },
               {"y is undefined"});
}

TEST_F(ClosedFormIncome, MatchesLongDoubleReference) {
  auto ref = normal_equations(table.features, table.targets);
  auto ls = normopt::train::solve_least_squares(table.features, table.targets);
  EXPECT_LT(rel(ls.mse, ref.mse), 1e-9);
  EXPECT_LT(rel(ls.bias.item<double>(), ref.coef[2]), 1e-9);
  std::printf("[ measured ] closed-form optimum MSE on the seed data: %.10g\n",
              ls.mse);
}
