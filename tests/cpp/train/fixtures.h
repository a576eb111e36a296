#pragma once
// Shared by the normopt::train tests: independent references, small data
// sets and models, and the seed data set's fixture.

#include "../common.h"

#include <normopt/normopt.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace normopt::test::train {

// The names every train test uses: a test file's
// `using namespace normopt::test::train;` brings them all.
using namespace normopt::nn;
using normopt::data::Table;
using normopt::test::expect_error;
using normopt::test::quiet;
using normopt::test::snapshot;
using normopt::test::TempDir;
using normopt::train::FitOptions;
using normopt::train::History;

// ---- Independent references -------------------------------------------------

struct Reference {
  std::vector<double> coef;  // F weights, then the intercept
  double mse = 0;
};

// Least squares with intercept through the normal equations, summed and
// solved (Gaussian elimination with partial pivoting) in long double.
inline Reference normal_equations(const torch::Tensor& x2d,
                                  const torch::Tensor& y1d) {
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

inline double rel(double a, double b) {
  return std::abs(a - b) / std::max(std::abs(b), 1e-300);
}

// ---- Data and models ------------------------------------------------------

// 20 deterministic income-like rows: age 22-60, experience 0-20,
// income = 25000 + 300 age + 1200 experience + noise (float32, as read_csv).
inline Table income_like_table() {
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

inline Table rows(const Table& t, int64_t start, int64_t len) {
  Table part = t;
  part.features = t.features.narrow(0, start, len).clone();
  part.targets = t.targets.narrow(0, start, len).clone();
  return part;
}

inline StandardizedRegressor make_model(
    TargetScaling targets = TargetScaling::kZScore, int64_t features = 2) {
  return StandardizedRegressor(
      LinearRegressor(features),
      StandardizedRegressorOptions().targets(
          TargetStandardizerOptions().method(targets)));
}

// normopt's Adam (adam) or plain SGD at `lr` on `params`.
inline std::unique_ptr<torch::optim::Optimizer> make_optimizer(
    bool adam, std::vector<torch::Tensor> params, double lr) {
  if (adam) {
    return std::make_unique<normopt::optim::Adam>(
        std::move(params), normopt::optim::AdamOptions(lr));
  }
  return std::make_unique<normopt::optim::SGD>(std::move(params),
                                               normopt::optim::SGDOptions(lr));
}

inline bool same(const std::vector<torch::Tensor>& a,
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

inline const normopt::train::Finding* find(
    const std::vector<normopt::train::Finding>& findings,
    const std::string& code) {
  for (const auto& f : findings) {
    if (f.code == code) {
      return &f;
    }
  }
  return nullptr;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ---- The seed data set ------------------------------------------------------

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
    auto opt = make_optimizer(adam, model->parameters(), lr);
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

}  // namespace normopt::test::train
