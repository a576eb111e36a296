#include "fixtures.h"

#include <normopt/normopt.h>

#include <cstdio>
#include <limits>
#include <thread>

using namespace normopt::test::train;

// ---- diagnose() -------------------------------------------------------------

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

// Adam (lr 1e-2) on make_model(scaling), built after seeding torch with 0,
// and the income-like table.
struct AdamCase {
  explicit AdamCase(TargetScaling scaling = TargetScaling::kZScore)
      : model((torch::manual_seed(0), make_model(scaling))) {}

  std::vector<normopt::train::Finding> findings(
      const normopt::train::DiagnoseOptions& options = {}) {
    return normopt::train::diagnose(model, adam, table, options).findings;
  }

  Table table = income_like_table();
  StandardizedRegressor model;
  normopt::optim::Adam adam{model->parameters(),
                            normopt::optim::AdamOptions(1e-2)};
};

}  // namespace

TEST(Diagnose, AdamRawTargets_WarnsScaleStall) {
  AdamCase run(TargetScaling::kNone);
  const auto findings =
      run.findings(normopt::train::DiagnoseOptions().planned_steps(200));
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
  auto unplanned = run.findings();
  ASSERT_NE(find(unplanned, "adam_scale_stall"), nullptr);
  EXPECT_NE(find(unplanned, "adam_scale_stall")->message.find("10,000"),
            std::string::npos);
  // torch::optim::Adam gets the same check.
  torch::optim::Adam torch_adam(run.model->parameters(),
                                torch::optim::AdamOptions(1e-2));
  EXPECT_NE(
      find(normopt::train::diagnose(run.model, torch_adam, run.table).findings,
           "adam_scale_stall"),
      nullptr);
  std::ostringstream printed;
  printed << *stall;
  EXPECT_EQ(printed.str().rfind("[warning] adam_scale_stall: Adam moves", 0),
            0u);
}

TEST(Diagnose, AdamStandardized_NoWarning) {
  const auto findings =
      AdamCase().findings(normopt::train::DiagnoseOptions().planned_steps(200));
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
    return normopt::train::diagnose(model, sgd, table).findings;
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
  auto findings = normopt::train::diagnose(fixed, adam, table).findings;
  const auto* scale = find(findings, "feature_scale");
  ASSERT_NE(scale, nullptr);
  EXPECT_EQ(scale->severity, normopt::train::Severity::kWarning)
      << scale->message;
  EXPECT_NE(scale->message.find("(age)"), std::string::npos) << scale->message;
  auto adaptive = make_model();
  normopt::optim::Adam adam2(adaptive->parameters(),
                             normopt::optim::AdamOptions(1e-2));
  scale = nullptr;
  auto findings2 = normopt::train::diagnose(adaptive, adam2, table).findings;
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
    return normopt::train::diagnose(model, adam, t).findings;
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
  const auto unfitted = normopt::train::diagnose(model, adam, table).findings;
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
  const auto fitted = normopt::train::diagnose(model, adam, table).findings;
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
            normopt::train::DiagnoseOptions().planned_steps(0));
      },
      {"planned_steps must be at least 1", "got 0"});
  expect_error(
      [&] { normopt::train::diagnose(model, adam, rows(table, 0, 0)); },
      {"diagnose: the training table is empty"});
}
