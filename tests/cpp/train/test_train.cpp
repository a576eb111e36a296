#include "../common.h"

#include <normopt/normopt.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace normopt::nn;
using normopt::data::Table;
using normopt::test::expect_error;
using normopt::test::quiet;
using normopt::test::snapshot;
using normopt::train::FitOptions;
using normopt::train::History;

namespace {

// ---- Independent references -------------------------------------------------

struct Reference {
  std::vector<double> coef;  // F weights, then the intercept
  double mse = 0;
};

// Least squares with intercept through the normal equations, summed and
// solved (Gaussian elimination with partial pivoting) in long double.
Reference normal_equations(const torch::Tensor& x2d, const torch::Tensor& y1d) {
  auto x = x2d.to(torch::kFloat64).contiguous();
  auto y = y1d.to(torch::kFloat64).reshape({-1}).contiguous();
  const int64_t n = x.size(0), f = x.size(1), m = f + 1;
  const double* px = x.data_ptr<double>();
  const double* py = y.data_ptr<double>();
  auto row = [&](int64_t i, int64_t j) -> long double {
    return j < f ? px[i * f + j] : 1.0L;
  };
  std::vector<std::vector<long double>> a(m, std::vector<long double>(m + 1));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t r = 0; r < m; ++r) {
      for (int64_t c = 0; c < m; ++c) {
        a[r][c] += row(i, r) * row(i, c);
      }
      a[r][m] += row(i, r) * py[i];
    }
  }
  for (int64_t col = 0; col < m; ++col) {
    int64_t pivot = col;
    for (int64_t r = col + 1; r < m; ++r) {
      if (std::fabs(a[r][col]) > std::fabs(a[pivot][col])) {
        pivot = r;
      }
    }
    std::swap(a[col], a[pivot]);
    for (int64_t r = 0; r < m; ++r) {
      if (r != col) {
        const long double factor = a[r][col] / a[col][col];
        for (int64_t c = col; c <= m; ++c) {
          a[r][c] -= factor * a[col][c];
        }
      }
    }
  }
  Reference ref;
  std::vector<long double> coef(m);
  for (int64_t r = 0; r < m; ++r) {
    coef[r] = a[r][m] / a[r][r];
    ref.coef.push_back(static_cast<double>(coef[r]));
  }
  long double sse = 0;
  for (int64_t i = 0; i < n; ++i) {
    long double pred = 0;
    for (int64_t j = 0; j < m; ++j) {
      pred += coef[j] * row(i, j);
    }
    sse += (pred - py[i]) * (pred - py[i]);
  }
  ref.mse = static_cast<double>(sse / n);
  return ref;
}

double rel(double a, double b) {
  return std::abs(a - b) / std::max(std::abs(b), 1e-300);
}

// ---- Data and models ------------------------------------------------------

// 20 deterministic income-like rows: age 22-60, experience 0-20,
// income = 25000 + 300 age + 1200 experience + noise (float32, as read_csv).
Table income_like_table() {
  std::vector<float> features, targets;
  for (int i = 0; i < 20; ++i) {
    const double age = 22 + (i * 7) % 39;
    const double experience = (i * 13) % 21;
    const double noise = ((i * 37) % 11 - 5) * 450.0;
    features.push_back(static_cast<float>(age));
    features.push_back(static_cast<float>(experience));
    targets.push_back(
        static_cast<float>(25000 + 300 * age + 1200 * experience + noise));
  }
  Table t;
  t.features = torch::tensor(features).reshape({20, 2});
  t.targets = torch::tensor(targets).reshape({20, 1});
  t.feature_names = {"age", "experience"};
  t.target_name = "income";
  return t;
}

Table rows(const Table& t, int64_t start, int64_t len) {
  Table part = t;
  part.features = t.features.narrow(0, start, len).clone();
  part.targets = t.targets.narrow(0, start, len).clone();
  return part;
}

StandardizedRegressor make_model(TargetScaling targets = TargetScaling::kZScore,
                                 int64_t features = 2) {
  return StandardizedRegressor(
      LinearRegressor(features),
      StandardizedRegressorOptions().targets(
          TargetStandardizerOptions().method(targets)));
}

bool same(const std::vector<torch::Tensor>& a,
          const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].sizes() != b[i].sizes() || !torch::equal(a[i], b[i])) {
      return false;
    }
  }
  return true;
}

// Counts optimizer steps.
class CountingSGD : public normopt::optim::SGD {
 public:
  using SGD::SGD;
  at::Tensor step(LossClosure closure = nullptr) override {
    ++steps;
    return SGD::step(std::move(closure));
  }
  int64_t steps = 0;
};

const normopt::train::Finding* find(
    const std::vector<normopt::train::Finding>& findings,
    const std::string& code) {
  for (const auto& f : findings) {
    if (f.code == code) {
      return &f;
    }
  }
  return nullptr;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

// ---- Closed form
// --------------------------------------------------------------

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
  EXPECT_TRUE(normopt::train::solve_least_squares(
                  x.narrow(0, 0, 1), torch::tensor({52000.0f}))
                  .exact);
  EXPECT_TRUE(normopt::train::solve_least_squares(
                  x, torch::tensor({52000.0f, 61000.0f}))
                  .exact);
  // A constant target on many rows.
  const auto table = income_like_table();
  const auto constant =
      normopt::train::solve_least_squares(table.features,
                                          torch::full({20}, 48000.0f));
  EXPECT_TRUE(constant.exact) << constant.mse;
  // Real data is not: its optimum is far above the bound.
  const auto real =
      normopt::train::solve_least_squares(table.features, table.targets);
  EXPECT_FALSE(real.exact);
  EXPECT_GT(real.mse,
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

// ---- The seed data set
// ---------------------------------------------------------

// The seed data set: skipped (with the reason) when NORMOPT_DATA_DIR does
// not hold it. Two suite names so the usual filters (ClosedForm*, Fit*)
// select them.
class IncomeData : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    const auto path = normopt::test::income_csv(&why);
    if (path.empty()) {
      GTEST_SKIP() << why;
    }
    table = normopt::data::read_csv(path);
    optimum =
        normopt::train::solve_least_squares(table.features, table.targets).mse;
  }

  History train(TargetScaling scaling,
                bool adam,
                double lr,
                int64_t epochs,
                FitOptions options = quiet()) {
    torch::manual_seed(0);
    auto model = make_model(scaling);
    std::unique_ptr<torch::optim::Optimizer> opt;
    if (adam) {
      opt = std::make_unique<normopt::optim::Adam>(
          model->parameters(), normopt::optim::AdamOptions(lr));
    } else {
      opt = std::make_unique<normopt::optim::SGD>(
          model->parameters(), normopt::optim::SGDOptions(lr));
    }
    return normopt::train::fit(
        model,
        *opt,
        table,
        options.epochs(epochs).batch_size(0).optimum_mse(optimum));
  }

  Table table;
  double optimum = 0;
};
class ClosedFormIncome : public IncomeData {};
class FitIncome : public IncomeData {};

TEST_F(ClosedFormIncome, MatchesLongDoubleReference) {
  auto ref = normal_equations(table.features, table.targets);
  auto ls = normopt::train::solve_least_squares(table.features, table.targets);
  EXPECT_LT(rel(ls.mse, ref.mse), 1e-9);
  EXPECT_LT(rel(ls.bias.item<double>(), ref.coef[2]), 1e-9);
  std::printf("[ measured ] closed-form optimum MSE on the seed data: %.10g\n",
              ls.mse);
}

TEST_F(FitIncome, AdamRawTargets_StallsAbove1p7e9) {
  auto h = train(TargetScaling::kNone, /*adam=*/true, 1e-2, 200);
  ASSERT_EQ(h.epochs.size(), 200u);
  std::printf("[ measured ] Adam 1e-2, raw targets, 200 epochs: MSE %.6g\n",
              h.epochs.back().train_mse);
  EXPECT_GT(h.epochs.back().train_mse, 1.7e9);
  // Raw targets: the loss is the MSE itself.
  EXPECT_EQ(h.epochs.back().train_loss, h.epochs.back().train_mse);
}

TEST_F(FitIncome, StandardizedTargets_AllOptimizersFarBelow) {
  struct Case {
    bool adam;
    double lr;
    double bound;  // what the run measurably meets, with a margin
  };
  // Measured (LibTorch 2.13, CPU): Adam 1e-2 1.5337e6 (the optimum),
  // SGD 1e-2 1.910e6, Adam 1e-3 2.291e7, SGD 1e-3 2.257e7. The lr 1e-3 runs
  // are far from converged after 200 steps (about 15x the optimum), yet
  // still 7x below the 1.7e8 bound.
  for (const Case c : {Case{true, 1e-2, 1.6e6},
                       Case{false, 1e-2, 2.2e6},
                       Case{true, 1e-3, 3e7},
                       Case{false, 1e-3, 3e7}}) {
    auto h = train(TargetScaling::kZScore, c.adam, c.lr, 200);
    const double mse = h.epochs.back().train_mse;
    std::printf(
        "[ measured ] %s %g, standardized, 200 epochs: MSE %.6g "
        "(%.3gx optimum)\n",
        c.adam ? "Adam" : "SGD",
        c.lr,
        mse,
        mse / optimum);
    EXPECT_LT(mse, 1.7e8) << (c.adam ? "Adam " : "SGD ") << c.lr;
    EXPECT_LT(mse, c.bound) << (c.adam ? "Adam " : "SGD ") << c.lr;
  }
}

TEST_F(FitIncome, AdamStandardized_Within1PercentOfOptimum) {
  int64_t first = 0;
  auto h = train(TargetScaling::kZScore,
                 /*adam=*/true,
                 1e-2,
                 2000,
                 quiet().on_epoch_end([&](const normopt::train::EpochLog& e) {
                   if (first == 0 && e.train_mse / optimum - 1 < 0.01) {
                     first = e.epoch;
                   }
                 }));
  std::printf(
      "[ measured ] Adam 1e-2 standardized: within 1%% of the "
      "optimum from epoch %lld; after 2000 epochs gap %.3g\n",
      static_cast<long long>(first),
      h.relative_gap());
  EXPECT_LT(h.relative_gap(), 0.01);
  EXPECT_GT(first, 0);
}

// ---- fit() mechanics
// -------------------------------------------------------------

TEST(Fit, SameSeed_BitIdenticalDifferentSeedDiffers) {
  const auto table = income_like_table();
  auto run = [&](uint64_t seed) {
    torch::manual_seed(0);
    auto model = make_model();
    normopt::optim::Adam adam(model->parameters(),
                              normopt::optim::AdamOptions(1e-2));
    auto h = normopt::train::fit(
        model, adam, table, quiet().epochs(5).batch_size(8).seed(seed));
    return std::make_pair(h, snapshot(*model));
  };
  auto [h1, p1] = run(7);
  auto [h2, p2] = run(7);
  auto [h3, p3] = run(8);
  ASSERT_EQ(h1.epochs.size(), h2.epochs.size());
  for (size_t i = 0; i < h1.epochs.size(); ++i) {
    EXPECT_EQ(h1.epochs[i].train_loss, h2.epochs[i].train_loss);
    EXPECT_EQ(h1.epochs[i].train_mse, h2.epochs[i].train_mse);
  }
  EXPECT_TRUE(same(p1, p2));
  EXPECT_FALSE(same(p1, p3));
  EXPECT_NE(h1.epochs.back().train_loss, h3.epochs.back().train_loss);
}

TEST(Fit, Shuffle_LeavesGlobalRngAlone) {
  const auto table = income_like_table();
  auto model = make_model();
  normopt::optim::SGD sgd(model->parameters(),
                          normopt::optim::SGDOptions(0.01));
  torch::manual_seed(123);
  normopt::train::fit(model, sgd, table, quiet().epochs(3).batch_size(4));
  auto after_fit = torch::rand({4});
  torch::manual_seed(123);
  EXPECT_TRUE(torch::equal(after_fit, torch::rand({4})));
}

TEST(Fit, BatchSize_StepsPerEpoch) {
  const auto table = income_like_table();  // N = 20
  for (auto [batch, per_epoch] : std::vector<std::pair<int64_t, int64_t>>{
           {8, 3}, {0, 1}, {32, 1}, {20, 1}, {1, 20}, {7, 3}}) {
    auto model = make_model();
    CountingSGD sgd(model->parameters(), normopt::optim::SGDOptions(1e-3));
    auto h = normopt::train::fit(
        model, sgd, table, quiet().epochs(2).batch_size(batch));
    EXPECT_EQ(sgd.steps, 2 * per_epoch) << "batch_size " << batch;
    EXPECT_EQ(h.epochs.size(), 2u);
  }
}

TEST(Fit, FullBatchSGD_MatchesHandComputedSteps) {
  const auto table = income_like_table();
  torch::manual_seed(0);
  auto model = make_model();
  model->to(torch::kFloat64);
  const auto w0 = model->parameters()[0].detach().clone();
  const auto b0 = model->parameters()[1].detach().clone();
  normopt::optim::SGD sgd(model->parameters(), normopt::optim::SGDOptions(0.1));
  normopt::train::fit(
      model, sgd, table, quiet().epochs(4).batch_size(0).shuffle(false));

  // Gradient descent by hand on the z-scored data, statistics in long
  // double (reference_stats), independent of normopt's modules.
  auto [mean, var] = normopt::test::reference_stats(table.features);
  auto [ymean, yvar] = normopt::test::reference_stats(table.targets);
  auto z =
      (table.features.to(torch::kFloat64) - normopt::test::as_tensor(mean)) /
      normopt::test::as_tensor(var).sqrt();
  auto yt = (table.targets.to(torch::kFloat64) - ymean[0]) / std::sqrt(yvar[0]);
  auto w = w0.clone(), b = b0.clone();
  for (int e = 0; e < 4; ++e) {
    auto r = torch::matmul(z, w.t()) + b - yt;  // (N, 1)
    auto gw = 2.0 / 20 * torch::matmul(r.t(), z);
    auto gb = 2.0 / 20 * r.sum(0);
    w = w - 0.1 * gw;
    b = b - 0.1 * gb;
  }
  EXPECT_LT(normopt::test::max_rel_error(model->parameters()[0], w), 1e-12);
  EXPECT_LT(normopt::test::max_rel_error(model->parameters()[1], b), 1e-12);
}

TEST(Fit, EarlyStopping_StopsAndSetsFlag) {
  const auto table = income_like_table();
  auto model = make_model();
  normopt::optim::SGD sgd(model->parameters(),
                          normopt::optim::SGDOptions(1e-3));
  // Nothing improves by 1e6: epoch 1 sets the best, 2-4 do not improve.
  auto h = normopt::train::fit(
      model,
      sgd,
      table,
      quiet().epochs(50).early_stopping_patience(3).early_stopping_min_delta(
          1e6));
  EXPECT_EQ(h.epochs.size(), 4u);
  EXPECT_TRUE(h.stopped_early);
  // A run that keeps improving goes the distance.
  auto h2 = normopt::train::fit(
      model, sgd, table, quiet().epochs(10).early_stopping_patience(3));
  EXPECT_EQ(h2.epochs.size(), 10u);
  EXPECT_FALSE(h2.stopped_early);
}

TEST(Fit, StepLR_HalvesLearningRate) {
  const auto table = income_like_table();
  auto model = make_model();
  normopt::optim::Adam adam(model->parameters(),
                            normopt::optim::AdamOptions(0.1));
  auto h = normopt::train::fit(
      model,
      adam,
      table,
      quiet().epochs(6).scheduler(
          std::make_shared<torch::optim::StepLR>(adam, 2, 0.5)));
  // LibTorch's StepLR counts its first step() as step 0 (Python's
  // constructor takes that step itself), so stepping once after each epoch
  // halves lr after epochs 3 and 5.
  const std::vector<double> expected = {0.1, 0.1, 0.1, 0.05, 0.05, 0.025};
  ASSERT_EQ(h.epochs.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_DOUBLE_EQ(h.epochs[i].lr, expected[i]) << "epoch " << i + 1;
  }
  EXPECT_DOUBLE_EQ(adam.param_groups()[0].options().get_lr(), 0.025);
}

TEST(Fit, Plateau_ReducesLearningRateOnStall) {
  const auto table = income_like_table();
  auto model = make_model();
  // lr so small that the loss moves by far less than the scheduler's
  // relative threshold (1e-4): every epoch after the first is a bad one, and
  // patience 0 halves lr after each. (LibTorch ignores changes of lr below
  // its eps, 1e-8, so lr itself must be larger than that.)
  normopt::optim::SGD sgd(model->parameters(),
                          normopt::optim::SGDOptions(1e-6));
  auto plateau = std::make_shared<torch::optim::ReduceLROnPlateauScheduler>(
      sgd, torch::optim::ReduceLROnPlateauScheduler::min, 0.5, 0);
  auto h = normopt::train::fit(
      model, sgd, table, quiet().epochs(4).plateau(plateau));
  ASSERT_EQ(h.epochs.size(), 4u);
  EXPECT_DOUBLE_EQ(h.epochs[0].lr, 1e-6);
  EXPECT_DOUBLE_EQ(h.epochs[1].lr, 1e-6);
  EXPECT_NEAR(h.epochs[2].lr, 5e-7, 1e-15);
  EXPECT_NEAR(h.epochs[3].lr, 2.5e-7, 1e-15);
}

TEST(Fit, OnEpochEnd_CalledOncePerEpochInOrder) {
  const auto table = income_like_table();
  auto model = make_model();
  normopt::optim::Adam adam(model->parameters(),
                            normopt::optim::AdamOptions(1e-2));
  std::vector<normopt::train::EpochLog> seen;
  auto h = normopt::train::fit(
      model,
      adam,
      table,
      quiet().epochs(7).on_epoch_end(
          [&](const normopt::train::EpochLog& e) { seen.push_back(e); }));
  ASSERT_EQ(seen.size(), 7u);
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].epoch, static_cast<int64_t>(i + 1));
    EXPECT_EQ(seen[i].train_loss, h.epochs[i].train_loss);
    EXPECT_DOUBLE_EQ(seen[i].lr, 1e-2);
    if (i > 0) {
      EXPECT_GE(seen[i].wall_seconds, seen[i - 1].wall_seconds);
    }
  }
}

TEST(Fit, Validation_ColumnsFilledOrNaN) {
  const auto table = income_like_table();
  const auto train_part = rows(table, 0, 15), valid_part = rows(table, 15, 5);
  torch::manual_seed(0);
  auto model = make_model();
  model->to(torch::kFloat64);
  normopt::optim::Adam adam(model->parameters(),
                            normopt::optim::AdamOptions(1e-2));
  auto h = normopt::train::fit(
      model, adam, train_part, quiet().epochs(3), &valid_part);
  torch::NoGradGuard no_grad;
  auto mse = [&](const Table& t) {
    return (model->predict(t.features.to(torch::kFloat64)) -
            t.targets.to(torch::kFloat64))
        .square()
        .mean()
        .item<double>();
  };
  auto loss = [&](const Table& t) {
    return (model->forward(t.features.to(torch::kFloat64)) -
            model->transform_targets(t.targets.to(torch::kFloat64)))
        .square()
        .mean()
        .item<double>();
  };
  const auto& last = h.epochs.back();
  EXPECT_LT(rel(last.val_mse, mse(valid_part)), 1e-12);
  EXPECT_LT(rel(last.val_loss, loss(valid_part)), 1e-12);
  EXPECT_LT(rel(last.train_mse, mse(train_part)), 1e-12);
  EXPECT_LT(rel(last.train_loss, loss(train_part)), 1e-12);
  // The model's statistics come from the training part only.
  auto [mean, var] = normopt::test::reference_stats(train_part.features);
  EXPECT_LT(normopt::test::max_rel_error(model->normalization->mean,
                                         normopt::test::as_tensor(mean)),
            1e-12);

  auto h2 = normopt::train::fit(model, adam, train_part, quiet().epochs(2));
  for (const auto& e : h2.epochs) {
    EXPECT_TRUE(std::isnan(e.val_loss));
    EXPECT_TRUE(std::isnan(e.val_mse));
    EXPECT_TRUE(std::isfinite(e.train_mse));
  }
}

TEST(Fit, AdaptedModel_KeepsItsStatistics) {
  const auto table = income_like_table();
  auto model = make_model();
  model->fit_statistics(table.features * 2, table.targets * 3);
  auto before = model->normalization->mean.clone();
  auto loc = model->target->loc.clone();
  normopt::optim::SGD sgd(model->parameters(),
                          normopt::optim::SGDOptions(1e-3));
  normopt::train::fit(model, sgd, table, quiet().epochs(1));
  EXPECT_TRUE(torch::equal(model->normalization->mean, before));
  EXPECT_TRUE(torch::equal(model->target->loc, loc));
}

TEST(Fit, Divergence_ErrorNamesEpochAndBatch) {
  const auto table = income_like_table();
  torch::manual_seed(0);
  auto model = make_model(TargetScaling::kNone);
  normopt::optim::SGD sgd(model->parameters(),
                          normopt::optim::SGDOptions(1e30));
  // Batch 1 (finite loss) steps the weights to ~1e35; batch 2's squared
  // errors overflow float32.
  expect_error(
      [&] {
        normopt::train::fit(model, sgd, table, quiet().epochs(3).batch_size(8));
      },
      {"training loss is Inf at epoch 1, batch 2 (of 3)",
       "lower the learning rate",
       "standardize the targets"});
}

TEST(Fit, BadInput_Errors) {
  const auto table = income_like_table();
  auto model = make_model();
  normopt::optim::SGD sgd(model->parameters(),
                          normopt::optim::SGDOptions(1e-3));
  auto fit = [&](const Table& t, FitOptions o, const Table* v = nullptr) {
    normopt::train::fit(model, sgd, t, o, v);
  };
  expect_error([&] { fit(table, quiet().epochs(0)); },
               {"epochs must be at least 1, got 0"});
  expect_error([&] { fit(table, quiet().batch_size(-2)); },
               {"batch_size must be >= 0", "got -2"});
  expect_error([&] { fit(table, quiet().early_stopping_patience(-1)); },
               {"early_stopping_patience must be >= 0"});
  Table mismatch = table;
  mismatch.targets = table.targets.narrow(0, 0, 19);
  expect_error([&] { fit(mismatch, quiet()); },
               {"20 feature rows but 19 target rows"});
  Table empty = rows(table, 0, 0);
  expect_error([&] { fit(empty, quiet()); }, {"training table is empty"});
  Table three = table;
  three.features =
      torch::cat({table.features, table.features.narrow(1, 0, 1)}, 1);
  expect_error([&] { fit(three, quiet()); },
               {"3 feature column(s)", "LinearRegressor takes 2"});
  expect_error([&] { fit(table, quiet(), &three); },
               {"validation table has 3 feature column(s)"});
  Table nan = table;
  nan.targets = table.targets.clone();
  nan.targets[4][0] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { fit(nan, quiet()); }, {"training target [4, 0]", "NaN"});
  auto other = make_model();
  normopt::optim::SGD other_sgd(other->parameters(),
                                normopt::optim::SGDOptions(1e-3));
  expect_error([&] { normopt::train::fit(model, other_sgd, table, quiet()); },
               {"the optimizer holds none of the model's parameters"});
  auto wide = StandardizedRegressor(
      LinearRegressor(LinearRegressorOptions(2).out_features(3)));
  normopt::optim::SGD wide_sgd(wide->parameters(),
                               normopt::optim::SGDOptions(1e-3));
  expect_error([&] { normopt::train::fit(wide, wide_sgd, table, quiet()); },
               {"predicts shape [20, 3]", "targets have shape [20, 1]"});
}

// ---- History
// --------------------------------------------------------------------

namespace {

History small_history(const Table* validation = nullptr) {
  const auto table = income_like_table();
  torch::manual_seed(0);
  auto model = make_model();
  normopt::optim::Adam adam(model->parameters(),
                            normopt::optim::AdamOptions(1e-2));
  return normopt::train::fit(
      model, adam, table, quiet().epochs(5).optimum_mse(1234.5), validation);
}

}  // namespace

TEST(FitHistory, WriteCsv_ExactHeaderRowsRoundTrip) {
  normopt::test::TempDir dir;
  const auto h = small_history();
  const auto path = dir.file("history.csv");
  h.write_csv(path);
  std::ifstream in(path);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  EXPECT_EQ(line,
            "epoch,train_loss,train_mse,val_loss,val_mse,lr,wall_seconds");
  size_t row = 0;
  while (std::getline(in, line)) {
    ASSERT_LT(row, h.epochs.size());
    std::vector<std::string> cells;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) {
      cells.push_back(cell);
    }
    ASSERT_EQ(cells.size(), 7u) << line;
    const auto& e = h.epochs[row];
    EXPECT_EQ(std::stoll(cells[0]), e.epoch);
    EXPECT_EQ(std::stod(cells[1]), e.train_loss);
    EXPECT_EQ(std::stod(cells[2]), e.train_mse);
    EXPECT_EQ(cells[3], "nan");
    EXPECT_EQ(cells[4], "nan");
    EXPECT_EQ(std::stod(cells[5]), e.lr);
    EXPECT_EQ(std::stod(cells[6]), e.wall_seconds);
    ++row;
  }
  EXPECT_EQ(row, h.epochs.size());
  EXPECT_EQ(normopt::test::files_in(dir.path),
            std::vector<std::string>{"history.csv"});
}

TEST(FitHistory, WriteJson_HasKeysAndNulls) {
  normopt::test::TempDir dir;
  auto h = small_history();
  const auto path = dir.file("history.json");
  h.write_json(path, "adam \"raw\"");
  const auto text = read_text(path);
  for (const char* needle : {"\"run\": \"adam \\\"raw\\\"\"",
                             "\"optimum_mse\": 1234.5",
                             "\"stopped_early\": false",
                             "\"epochs\": [",
                             "\"epoch\": 5,",
                             "\"train_loss\": ",
                             "\"train_mse\": ",
                             "\"val_loss\": null",
                             "\"val_mse\": null",
                             "\"lr\": 0.01",
                             "\"wall_seconds\": "}) {
    EXPECT_NE(text.find(needle), std::string::npos) << needle << "\n" << text;
  }
  size_t count = 0;
  for (auto pos = text.find("\"epoch\":"); pos != std::string::npos;
       pos = text.find("\"epoch\":", pos + 1)) {
    ++count;
  }
  EXPECT_EQ(count, 5u);
  h.optimum_mse.reset();
  h.write_json(path, "x");
  EXPECT_NE(read_text(path).find("\"optimum_mse\": null"), std::string::npos);
}

TEST(FitHistory, WriteToMissingFolder_ThrowsNamingPath) {
  normopt::test::TempDir dir;
  const auto h = small_history();
  const auto path = dir.file("no_such_folder/history.csv");
  expect_error([&] { h.write_csv(path); }, {path, "No such file or directory"});
  expect_error([&] { h.write_json(path, "run"); },
               {path, "No such file or directory"});
}

TEST(FitHistory, ExistingFile_ReplacedWholeOrKept) {
  normopt::test::TempDir dir;
  const auto h = small_history();
  const auto path = dir.file("history.csv");
  { std::ofstream(path) << "old content\n"; }
  h.write_csv(path);
  const auto text = read_text(path);
  EXPECT_EQ(text.rfind("epoch,train_loss", 0), 0u);
  EXPECT_EQ(text.find("old content"), std::string::npos);
  EXPECT_EQ(normopt::test::files_in(dir.path),
            std::vector<std::string>{"history.csv"});
#if defined(__linux__)
  // When the new file cannot be written whole, the old file stays intact
  // and no temporary file is left.
  { std::ofstream(path) << "old content\n"; }
  {
    normopt::test::FileSizeLimit limit(16);
    expect_error([&] { h.write_csv(path); },
                 {path, "File too large", "was left as it was"});
  }
  EXPECT_EQ(read_text(path), "old content\n");
  EXPECT_EQ(normopt::test::files_in(dir.path),
            std::vector<std::string>{"history.csv"});
#endif
}

// Writers of one path never share a temporary file: each rename puts one
// writer's whole file in place. (With one shared "path.tmp", a writer's
// rename finds its file already renamed by another, or a mix of two.)
TEST(FitHistory, ConcurrentWriters_FileIsOneWholeVersion) {
  normopt::test::TempDir dir;
  const auto path = dir.file("history.csv");
  constexpr int kWriters = 4, kWrites = 25;
  std::vector<History> versions(kWriters);
  std::vector<std::string> texts(kWriters);
  for (int w = 0; w < kWriters; ++w) {
    for (int e = 1; e <= 2000; ++e) {
      normopt::train::EpochLog log;
      log.epoch = e;
      log.train_loss = w;
      versions[w].epochs.push_back(log);
    }
    const auto own = dir.file("own" + std::to_string(w) + ".csv");
    versions[w].write_csv(own);
    texts[w] = read_text(own);
    std::filesystem::remove(own);
  }
  std::vector<std::string> errors(kWriters);
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      try {
        for (int i = 0; i < kWrites; ++i) {
          versions[w].write_csv(path);
        }
      } catch (const std::exception& e) {
        errors[w] = e.what();
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  for (const auto& error : errors) {
    EXPECT_EQ(error, "");
  }
  const auto text = read_text(path);
  EXPECT_NE(std::find(texts.begin(), texts.end(), text), texts.end())
      << "the file is no writer's whole version (" << text.size()
      << " bytes)";
  EXPECT_EQ(normopt::test::files_in(dir.path),
            std::vector<std::string>{"history.csv"});
}

TEST(FitHistory, Gaps_FromOptimum) {
  History h;
  EXPECT_TRUE(std::isnan(h.gap_to_optimum()));
  normopt::train::EpochLog e;
  e.train_mse = 110;
  h.epochs.push_back(e);
  EXPECT_TRUE(std::isnan(h.relative_gap()));
  h.optimum_mse = 100;
  EXPECT_DOUBLE_EQ(h.gap_to_optimum(), 10);
  EXPECT_NEAR(h.relative_gap(), 0.1, 1e-15);
}

// ---- diagnose()
// ------------------------------------------------------------------

namespace {

// Largest eigenvalue of 2 [z, 1]^T [z, 1] / N, z the z-scored features,
// by power iteration in long double.
double reference_lambda(const Table& t) {
  auto [mean, var] = normopt::test::reference_stats(t.features);
  auto x = t.features.to(torch::kFloat64).contiguous();
  const int64_t n = x.size(0), f = x.size(1), m = f + 1;
  std::vector<std::vector<long double>> g(m, std::vector<long double>(m));
  for (int64_t i = 0; i < n; ++i) {
    std::vector<long double> r(m, 1.0L);
    for (int64_t j = 0; j < f; ++j) {
      r[j] =
          (x[i][j].item<double>() - mean[j]) / std::sqrt((long double)var[j]);
    }
    for (int64_t a = 0; a < m; ++a) {
      for (int64_t b = 0; b < m; ++b) {
        g[a][b] += 2 * r[a] * r[b] / n;
      }
    }
  }
  std::vector<long double> v(m, 1.0L);
  long double lambda = 0;
  for (int it = 0; it < 2000; ++it) {
    std::vector<long double> w(m, 0.0L);
    long double norm = 0;
    for (int64_t a = 0; a < m; ++a) {
      for (int64_t b = 0; b < m; ++b) {
        w[a] += g[a][b] * v[b];
      }
      norm += w[a] * w[a];
    }
    norm = std::sqrt(norm);
    lambda = norm / std::sqrt([&] {
               long double s = 0;
               for (auto e : v)
                 s += e * e;
               return s;
             }());
    for (int64_t a = 0; a < m; ++a) {
      v[a] = w[a] / norm;
    }
  }
  return static_cast<double>(lambda);
}

}  // namespace

TEST(Diagnose, AdamRawTargets_WarnsScaleStall) {
  const auto table = income_like_table();
  torch::manual_seed(0);
  auto model = make_model(TargetScaling::kNone);
  normopt::optim::Adam adam(model->parameters(),
                            normopt::optim::AdamOptions(1e-2));
  auto findings = normopt::train::diagnose(
      model, adam, table, normopt::train::DiagnoseOptions().planned_steps(200));
  const auto* stall = find(findings, "adam_scale_stall");
  ASSERT_NE(stall, nullptr);
  EXPECT_EQ(stall->severity, normopt::train::Severity::kWarning);
  for (const char* needle :
       {"lr = 0.01", "200 are planned", "Standardize", "kZScore"}) {
    EXPECT_NE(stall->message.find(needle), std::string::npos) << needle << "\n"
                                                              << stall->message;
  }
  ASSERT_NE(find(findings, "target_scale"), nullptr);
  EXPECT_EQ(find(findings, "ok"), nullptr);
  // Without a plan, the 10,000-step budget still flags a 4e6-step journey.
  auto unplanned = normopt::train::diagnose(model, adam, table);
  ASSERT_NE(find(unplanned, "adam_scale_stall"), nullptr);
  EXPECT_NE(find(unplanned, "adam_scale_stall")->message.find("10,000"),
            std::string::npos);
  // torch::optim::Adam gets the same check.
  torch::optim::Adam torch_adam(model->parameters(),
                                torch::optim::AdamOptions(1e-2));
  EXPECT_NE(find(normopt::train::diagnose(model, torch_adam, table),
                 "adam_scale_stall"),
            nullptr);
  std::ostringstream printed;
  printed << *stall;
  EXPECT_EQ(printed.str().rfind("[warning] adam_scale_stall: Adam moves", 0),
            0u);
}

TEST(Diagnose, AdamStandardized_NoWarning) {
  const auto table = income_like_table();
  torch::manual_seed(0);
  auto model = make_model();
  normopt::optim::Adam adam(model->parameters(),
                            normopt::optim::AdamOptions(1e-2));
  auto findings = normopt::train::diagnose(
      model, adam, table, normopt::train::DiagnoseOptions().planned_steps(200));
  EXPECT_EQ(find(findings, "adam_scale_stall"), nullptr);
  EXPECT_EQ(find(findings, "target_scale"), nullptr);
  ASSERT_NE(find(findings, "ok"), nullptr);
  ASSERT_NE(find(findings, "feature_scale"), nullptr);
  EXPECT_EQ(find(findings, "feature_scale")->severity,
            normopt::train::Severity::kInfo);
}

TEST(Diagnose, SgdLr10_WarnsDivergenceAtTheExactBound) {
  const auto table = income_like_table();
  auto model = make_model();
  auto findings_at = [&](double lr) {
    normopt::optim::SGD sgd(model->parameters(),
                            normopt::optim::SGDOptions(lr));
    return normopt::train::diagnose(model, sgd, table);
  };
  const auto lr10 = findings_at(10);
  const auto* div = find(lr10, "sgd_divergence");
  ASSERT_NE(div, nullptr);
  EXPECT_NE(div->message.find("plain gradient descent diverges"),
            std::string::npos)
      << div->message;
  EXPECT_NE(div->message.find("Use lr below"), std::string::npos);
  // The bound 2 / lambda, lambda from an independent power iteration.
  const double stable = 2 / reference_lambda(table);
  EXPECT_EQ(find(findings_at(0.99 * stable), "sgd_divergence"), nullptr);
  EXPECT_NE(find(findings_at(1.01 * stable), "sgd_divergence"), nullptr);
  // And training agrees: just above the bound the loss grows, just below
  // it shrinks.
  auto final_loss = [&](double lr) {
    torch::manual_seed(0);
    auto m = make_model();
    normopt::optim::SGD sgd(m->parameters(), normopt::optim::SGDOptions(lr));
    auto h =
        normopt::train::fit(m, sgd, table, quiet().epochs(100).batch_size(0));
    return std::make_pair(h.epochs.front().train_loss,
                          h.epochs.back().train_loss);
  };
  auto [above_first, above_last] = final_loss(1.05 * stable);
  auto [below_first, below_last] = final_loss(0.95 * stable);
  EXPECT_GT(above_last, above_first);
  EXPECT_LT(below_last, below_first);
}

TEST(Diagnose, FeatureScale_WarnsOnlyWhenUnnormalized) {
  auto table = income_like_table();
  table.features =
      table.features * torch::tensor({1.0f, 1e4f});  // experience in 1e-4 units
  auto fixed = StandardizedRegressor(
      LinearRegressor(2),
      StandardizedRegressorOptions().inputs(
          NormalizationOptions()
              .mean(torch::zeros({2}, torch::kFloat64))
              .variance(torch::ones({2}, torch::kFloat64))));
  normopt::optim::Adam adam(fixed->parameters(),
                            normopt::optim::AdamOptions(1e-2));
  auto findings = normopt::train::diagnose(fixed, adam, table);
  const auto* scale = find(findings, "feature_scale");
  ASSERT_NE(scale, nullptr);
  EXPECT_EQ(scale->severity, normopt::train::Severity::kWarning)
      << scale->message;
  EXPECT_NE(scale->message.find("(age)"), std::string::npos) << scale->message;
  auto adaptive = make_model();
  normopt::optim::Adam adam2(adaptive->parameters(),
                             normopt::optim::AdamOptions(1e-2));
  scale = nullptr;
  auto findings2 = normopt::train::diagnose(adaptive, adam2, table);
  scale = find(findings2, "feature_scale");
  ASSERT_NE(scale, nullptr);
  EXPECT_EQ(scale->severity, normopt::train::Severity::kInfo);
}

TEST(Diagnose, DegenerateData_SaysWhyInsteadOfNumbers) {
  auto findings_for = [](const Table& t) {
    torch::manual_seed(0);
    auto model = make_model();
    normopt::optim::Adam adam(model->parameters(),
                              normopt::optim::AdamOptions(1e-2));
    return normopt::train::diagnose(model, adam, t);
  };
  auto expect_says = [&](const Table& t, const std::string& needle) {
    const auto findings = findings_for(t);
    const auto* f = find(findings, "degenerate_data");
    ASSERT_NE(f, nullptr) << needle;
    EXPECT_EQ(f->severity, normopt::train::Severity::kWarning);
    EXPECT_NE(f->message.find(needle), std::string::npos) << f->message;
    EXPECT_NE(f->message.find("compare differences"), std::string::npos);
    EXPECT_EQ(find(findings, "ok"), nullptr);
  };
  const auto table = income_like_table();
  expect_says(rows(table, 3, 1),
              "1 row(s) for 2 feature(s), fewer than features + 1");
  expect_says(rows(table, 3, 2), "2 row(s) for 2 feature(s)");
  auto constant_feature = table;
  constant_feature.features = table.features.clone();
  constant_feature.features.select(1, 0).fill_(30);
  expect_says(constant_feature, "constant feature(s) 'age' (always 30)");
  auto constant_target = table;
  constant_target.targets = torch::full({20, 1}, 48000.0f);
  expect_says(constant_target, "the target is constant (always 4.8e+04)");
  // Three rows for two features, none constant: nothing to say.
  EXPECT_EQ(find(findings_for(rows(table, 0, 3)), "degenerate_data"), nullptr);
  EXPECT_EQ(find(findings_for(table), "degenerate_data"), nullptr);
}

TEST(Diagnose, LeavesModelAndRngUntouched) {
  const auto table = income_like_table();
  torch::manual_seed(0);
  auto model = make_model(TargetScaling::kNone);
  model->train(true);
  normopt::optim::Adam adam(model->parameters(),
                            normopt::optim::AdamOptions(1e-2));
  const auto before = snapshot(*model);
  torch::manual_seed(5);
  const auto unfitted = normopt::train::diagnose(model, adam, table);
  const auto draw = torch::rand({3});
  EXPECT_TRUE(same(before, snapshot(*model)));
  EXPECT_FALSE(model->normalization->is_adapted());
  EXPECT_FALSE(model->target->is_fitted());
  EXPECT_TRUE(model->is_training());
  EXPECT_TRUE(model->regressor_module()->is_training());
  torch::manual_seed(5);
  EXPECT_TRUE(torch::equal(draw, torch::rand({3})));
  // The statistics computed on the side are those fit() would use.
  model->fit_statistics(table.features, table.targets);
  const auto adapted = snapshot(*model);
  const auto fitted = normopt::train::diagnose(model, adam, table);
  EXPECT_TRUE(same(adapted, snapshot(*model)));
  ASSERT_EQ(unfitted.size(), fitted.size());
  for (size_t i = 0; i < fitted.size(); ++i) {
    EXPECT_EQ(unfitted[i].code, fitted[i].code);
    EXPECT_EQ(unfitted[i].message, fitted[i].message);
  }
}

TEST(Diagnose, BadInput_Errors) {
  const auto table = income_like_table();
  auto model = make_model();
  normopt::optim::Adam adam(model->parameters(),
                            normopt::optim::AdamOptions(1e-2));
  expect_error(
      [&] {
        normopt::train::diagnose(
            model,
            adam,
            table,
            normopt::train::DiagnoseOptions().planned_steps(-1));
      },
      {"planned_steps must be >= 0", "got -1"});
  expect_error(
      [&] { normopt::train::diagnose(model, adam, rows(table, 0, 0)); },
      {"diagnose: the training table is empty"});
}

TEST(Fit, AnalyticGradients_MatchAutograd) {
  // fit()'s closed-form LinearRegressor gradient against the autograd path:
  // same History and parameters, minibatches with shuffling, three optimizers.
  const Table t = income_like_table();
  for (int which = 0; which < 3; ++which) {
    std::vector<History> histories;
    std::vector<std::vector<torch::Tensor>> params;
    for (bool analytic : {true, false}) {
      torch::manual_seed(5);
      StandardizedRegressor model(LinearRegressor(2));
      model->to(torch::kFloat64);
      std::unique_ptr<torch::optim::Optimizer> opt;
      if (which == 0) {
        opt = std::make_unique<normopt::optim::Adam>(
            model->parameters(), normopt::optim::AdamOptions(1e-2));
      } else if (which == 1) {
        opt = std::make_unique<normopt::optim::SGD>(
            model->parameters(),
            normopt::optim::SGDOptions(1e-2).momentum(0.9));
      } else {
        opt = std::make_unique<torch::optim::Adam>(
            model->parameters(), torch::optim::AdamOptions(1e-2));
      }
      histories.push_back(normopt::train::fit(
          model,
          *opt,
          t,
          quiet().epochs(30).batch_size(7).analytic_gradients(analytic)));
      params.push_back(snapshot(*model));
    }
    for (size_t e = 0; e < histories[0].epochs.size(); ++e) {
      EXPECT_LT(rel(histories[0].epochs[e].train_mse,
                    histories[1].epochs[e].train_mse),
                1e-12)
          << "optimizer " << which << " epoch " << e + 1;
    }
    for (size_t i = 0; i < params[0].size(); ++i) {
      EXPECT_LT((params[0][i] - params[1][i]).abs().max().item<double>(), 1e-12)
          << "optimizer " << which << " tensor " << i;
    }
  }
  // The gradient itself, one full batch: closed form == backward().
  for (bool analytic : {true, false}) {
    static torch::Tensor first_w, first_b;
    torch::manual_seed(6);
    StandardizedRegressor model(LinearRegressor(2));
    normopt::optim::SGD sgd(model->parameters(), normopt::optim::SGDOptions(0));
    normopt::train::fit(
        model,
        sgd,
        t,
        quiet().epochs(1).batch_size(0).analytic_gradients(analytic));
    auto lin = model->regressor.get<LinearRegressor>();
    if (analytic) {
      first_w = lin->weight.grad().clone();
      first_b = lin->bias.grad().clone();
      EXPECT_GT(first_w.abs().max().item<float>(), 0);
    } else {
      EXPECT_TRUE(torch::allclose(lin->weight.grad(), first_w, 1e-5, 1e-6));
      EXPECT_TRUE(torch::allclose(lin->bias.grad(), first_b, 1e-5, 1e-6));
    }
  }
}
