// diagnose()'s forecast against the runs it forecasts: fit() and plain
// LibTorch loops in float64 are the reference.
#include "fixtures.h"

#include <normopt/normopt.h>

using namespace normopt::test::train;
using normopt::train::DiagnoseOptions;
using normopt::train::Verdict;

namespace {

Table as_double(Table t) {
  t.features = t.features.to(torch::kFloat64);
  t.targets = t.targets.to(torch::kFloat64);
  return t;
}

StandardizedRegressor double_model(TargetScaling scaling) {
  torch::manual_seed(0);
  auto model = make_model(scaling);
  model->to(torch::kFloat64);
  return model;
}

// The outcome of a finished run as the verdict names it (clear cases only:
// ratio <= 1.2 or >= 2 or diverged; Verdict::kUnknown in between).
Verdict outcome(double final_mse, double initial_mse, double optimum) {
  const double r = final_mse / optimum;
  if (!std::isfinite(final_mse) || (final_mse > initial_mse && r >= 2)) {
    return Verdict::kDiverges;
  }
  if (r <= 1.2) {
    return Verdict::kConverges;
  }
  return r >= 2 ? Verdict::kStalls : Verdict::kUnknown;
}

// One hidden tanh layer.
struct MlpImpl : torch::nn::Module {
  MlpImpl(int64_t in, int64_t hidden)
      : hidden(register_module("hidden", torch::nn::Linear(in, hidden))),
        out(register_module("out", torch::nn::Linear(hidden, 1))) {}
  torch::Tensor forward(const torch::Tensor& x) {
    return out(torch::tanh(hidden(x)));
  }
  torch::nn::Linear hidden, out;
};
TORCH_MODULE(Mlp);

// Trains `model` by hand for `steps` full-batch steps of `optimizer` on
// (x, y), as a user's own loop would; returns the final MSE.
template <typename Model>
double hand_trained_mse(Model& model,
                        torch::optim::Optimizer& optimizer,
                        const torch::Tensor& x,
                        const torch::Tensor& y,
                        int steps) {
  for (int step = 0; step < steps; ++step) {
    optimizer.zero_grad();
    torch::mse_loss(model->forward(x), y).backward();
    optimizer.step();
  }
  return torch::mse_loss(model->forward(x), y).template item<double>();
}

}  // namespace

TEST(Forecast, FullBatchAdam_EqualsFitHistoryEpochByEpoch) {
  const auto table = as_double(income_like_table());
  for (auto scaling : {TargetScaling::kNone, TargetScaling::kZScore}) {
    auto model = double_model(scaling);
    normopt::optim::Adam adam(model->parameters(),
                              normopt::optim::AdamOptions(0.05));
    const auto options = quiet().epochs(60).batch_size(0);
    const auto d = normopt::train::diagnose(
        model,
        adam,
        table,
        DiagnoseOptions::for_fit(options, table.features.size(0)));
    EXPECT_EQ(d.planned_steps, 60);
    EXPECT_EQ(d.method, "exact full-batch quadratic (float64)");
    const auto history = normopt::train::fit(model, adam, table, options);
    ASSERT_EQ(d.trajectory.size(), 61u);
    for (const auto& log : history.epochs) {
      EXPECT_LT(rel(d.mse_at(log.epoch), log.train_mse), 1e-9)
          << "epoch " << log.epoch;
    }
    EXPECT_LT(rel(d.forecast_mse, history.epochs.back().train_mse), 1e-9);
    const auto optimum =
        normopt::train::solve_least_squares(table.features, table.targets);
    EXPECT_LT(rel(d.optimum_mse, optimum.mse), 1e-9);
  }
}

TEST(Forecast, MinibatchSgdMomentum_ReplaysFitsOrder) {
  const auto table = as_double(income_like_table());
  auto model = double_model(TargetScaling::kZScore);
  normopt::optim::SGD sgd(
      model->parameters(),
      normopt::optim::SGDOptions(0.02).momentum(0.9).nesterov(true));
  const auto options = quiet().epochs(7).batch_size(6).seed(3);
  const auto d = normopt::train::diagnose(
      model, sgd, table, DiagnoseOptions::for_fit(options, 20));
  EXPECT_EQ(d.planned_steps, 28);  // 7 epochs × ceil(20 / 6)
  const auto history = normopt::train::fit(model, sgd, table, options);
  for (const auto& log : history.epochs) {
    EXPECT_LT(rel(d.mse_at(log.epoch * 4), log.train_mse), 1e-9)
        << "epoch " << log.epoch;
  }
}

TEST(Forecast, PlainLinearInOwnLoop_EqualsTheLoop) {
  const auto table = as_double(income_like_table());
  torch::manual_seed(1);
  torch::nn::Linear linear(2, 1);
  linear->to(torch::kFloat64);
  torch::optim::SGD sgd(linear->parameters(), torch::optim::SGDOptions(1e-4));
  const auto d = normopt::train::diagnose(linear,
                                          sgd,
                                          table.features,
                                          table.targets,
                                          DiagnoseOptions().planned_steps(300));
  const double mse =
      hand_trained_mse(linear, sgd, table.features, table.targets, 300);
  EXPECT_LT(rel(d.forecast_mse, mse), 1e-9);
}

TEST(Forecast, SeedJob_VerdictAgreesWithEveryClearOutcome) {
  const auto table = income_like_table();
  const auto optimum =
      normopt::train::solve_least_squares(table.features, table.targets).mse;
  int clear = 0;
  for (auto scaling : {TargetScaling::kNone, TargetScaling::kZScore}) {
    for (bool adam : {true, false}) {
      for (double lr : {0.1, 0.01, 0.001}) {
        for (int64_t epochs : {200, 2000}) {
          torch::manual_seed(0);
          auto model = make_model(scaling);
          auto opt = make_optimizer(adam, model->parameters(), lr);
          const auto options = quiet().epochs(epochs).batch_size(0);
          const auto d = normopt::train::diagnose(
              model, *opt, table, DiagnoseOptions::for_fit(options, 20));
          Verdict actual = Verdict::kDiverges;
          try {
            const auto h = normopt::train::fit(model, *opt, table, options);
            actual = outcome(
                h.epochs.back().train_mse, h.epochs.front().train_mse, optimum);
          } catch (const c10::Error&) {
            // fit() stops a run whose loss overflows.
          }
          if (actual == Verdict::kUnknown) {
            continue;
          }
          ++clear;
          EXPECT_EQ(d.verdict, actual)
              << (adam ? "adam" : "sgd") << " lr " << lr << " epochs " << epochs
              << " scaling " << static_cast<int>(scaling) << "\n"
              << d;
        }
      }
    }
  }
  EXPECT_GE(clear, 20);
}

TEST(Forecast, SgdLrTooSmall_SaysHowManyStepsAndWhichLr) {
  const auto table = income_like_table();
  torch::manual_seed(0);
  auto model = make_model(TargetScaling::kZScore);
  normopt::optim::SGD sgd(model->parameters(),
                          normopt::optim::SGDOptions(1e-3));
  const auto d = normopt::train::diagnose(
      model, sgd, table, DiagnoseOptions().planned_steps(200));
  EXPECT_EQ(d.verdict, Verdict::kStalls) << d;
  const auto* small = d.find("lr_too_small");
  ASSERT_NE(small, nullptr) << d;
  EXPECT_NE(small->message.find("Use lr = "), std::string::npos);
  EXPECT_GT(d.steps_needed, 200);
  // The lr it proposes converges when trained.
  const auto pos = small->message.find("Use lr = ") + 9;
  const double lr = std::stod(small->message.substr(pos));
  torch::manual_seed(0);
  auto again = make_model(TargetScaling::kZScore);
  normopt::optim::SGD better(again->parameters(),
                             normopt::optim::SGDOptions(lr));
  const auto h = normopt::train::fit(
      again, better, table, quiet().epochs(200).batch_size(0));
  const double optimum =
      normopt::train::solve_least_squares(table.features, table.targets).mse;
  EXPECT_LE(h.epochs.back().train_mse, 1.2 * optimum);
}

TEST(Forecast, RawTargetsAdam_StallsAndStandardizingFixesIt) {
  const auto table = income_like_table();
  torch::manual_seed(0);
  auto model = make_model(TargetScaling::kNone);
  normopt::optim::Adam adam(model->parameters(),
                            normopt::optim::AdamOptions(1e-2));
  const auto d = normopt::train::diagnose(
      model, adam, table, DiagnoseOptions().planned_steps(200));
  EXPECT_EQ(d.verdict, Verdict::kStalls);
  EXPECT_GT(d.forecast_ratio, 100);
  const auto* f = d.find("forecast");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->severity, normopt::train::Severity::kWarning);
  EXPECT_NE(f->message.find("wrap the model in nn::StandardizedRegressor"),
            std::string::npos)
      << f->message;
}

TEST(Forecast, CollinearFeatures_IllConditionedWithARidge) {
  auto table = as_double(income_like_table());
  const auto age = table.features.select(1, 0);
  const auto wobble = torch::arange(20, torch::kFloat64).remainder(3) - 1;
  table.features = torch::stack({age, age + 1e-3 * wobble}, 1);
  torch::manual_seed(0);
  auto model = make_model(TargetScaling::kZScore);
  model->to(torch::kFloat64);
  normopt::optim::Adam adam(model->parameters(),
                            normopt::optim::AdamOptions(1e-2));
  const auto d = normopt::train::diagnose(
      model, adam, table, DiagnoseOptions().planned_steps(500));
  const auto* f = d.find("ill_conditioned");
  ASSERT_NE(f, nullptr) << d;
  EXPECT_NE(f->message.find("ridge = "), std::string::npos);
  EXPECT_NE(f->message.find("solve_least_squares"), std::string::npos);
}

TEST(Forecast, Mlp_ReplayedOnACopy_AgreesAndChangesNothing) {
  const auto table = income_like_table();
  torch::manual_seed(0);
  auto model = StandardizedRegressor(Mlp(2, 16));
  normopt::optim::Adam adam(model->parameters(),
                            normopt::optim::AdamOptions(1e-2));
  model->fit_statistics(table.features, table.targets);
  const auto before = normopt::test::snapshot(*model);
  torch::manual_seed(7);
  const auto options = quiet().epochs(300).batch_size(0);
  const auto d = normopt::train::diagnose(
      model, adam, table, DiagnoseOptions::for_fit(options, 20));
  const auto draw = torch::rand({2});
  torch::manual_seed(7);
  EXPECT_TRUE(torch::equal(draw, torch::rand({2})));
  EXPECT_TRUE(same(before, normopt::test::snapshot(*model)));
  EXPECT_NE(d.method.find("replay of the model"), std::string::npos);
  const auto h = normopt::train::fit(model, adam, table, options);
  EXPECT_LT(rel(d.forecast_mse, h.epochs.back().train_mse), 1e-3) << d;
}

TEST(Forecast, ParamGroupsWithTheirOwnLrs_EqualsTheLoop) {
  const auto table = as_double(income_like_table());
  torch::manual_seed(2);
  torch::nn::Linear linear(2, 1);
  linear->to(torch::kFloat64);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>{linear->weight},
                      std::make_unique<torch::optim::AdamOptions>(0.5));
  groups.emplace_back(std::vector<torch::Tensor>{linear->bias},
                      std::make_unique<torch::optim::AdamOptions>(50.0));
  torch::optim::Adam adam(std::move(groups));
  const auto d = normopt::train::diagnose(linear,
                                          adam,
                                          table.features,
                                          table.targets,
                                          DiagnoseOptions().planned_steps(100));
  const auto* note = d.find("param_groups");
  ASSERT_NE(note, nullptr);
  EXPECT_NE(note->message.find("2 param groups"), std::string::npos);
  const double mse =
      hand_trained_mse(linear, adam, table.features, table.targets, 100);
  EXPECT_LT(rel(d.forecast_mse, mse), 1e-9);
}

TEST(Forecast, UnknownOptimizer_ChecksTheDataAndSaysSo) {
  const auto table = income_like_table();
  auto model = make_model(TargetScaling::kNone);
  torch::optim::RMSprop rms(model->parameters(),
                            torch::optim::RMSpropOptions(1e-2));
  const auto d = normopt::train::diagnose(model, rms, table);
  EXPECT_EQ(d.verdict, Verdict::kUnknown);
  EXPECT_TRUE(std::isnan(d.forecast_mse));
  ASSERT_NE(d.find("unknown_optimizer"), nullptr);
  ASSERT_NE(d.find("target_scale"), nullptr);  // the data's checks still run
  EXPECT_EQ(d.find("forecast"), nullptr);
}

TEST(Forecast, SequentialInOwnLoop_IsReplayed) {
  const auto table = as_double(income_like_table());
  torch::manual_seed(0);
  torch::nn::Sequential net(
      torch::nn::Linear(2, 4), torch::nn::Tanh(), torch::nn::Linear(4, 1));
  net->to(torch::kFloat64);
  torch::optim::SGD sgd(net->parameters(), torch::optim::SGDOptions(1e-3));
  const auto x = (table.features - 40) / 10;
  const auto y = (table.targets - 48000) / 1000;
  const auto d = normopt::train::diagnose(
      net, sgd, x, y, DiagnoseOptions().planned_steps(50));
  const double mse = hand_trained_mse(net, sgd, x, y, 50);
  EXPECT_LT(rel(d.forecast_mse, mse), 1e-9) << d;
}

TEST(Forecast, Stream_EqualsTableFullBatch) {
  const auto table = income_like_table();
  auto model = make_model(TargetScaling::kNone);
  normopt::optim::SGD sgd(model->parameters(),
                          normopt::optim::SGDOptions(1e-3));
  struct Parts : normopt::data::TableStream {
    const Table& t;
    int64_t at = 0;
    explicit Parts(const Table& table) : t(table) {}
    std::optional<Table> next() override {
      if (at >= 20) {
        return std::nullopt;
      }
      at += 7;
      return rows(t, at - 7, std::min<int64_t>(7, 20 - (at - 7)));
    }
    void rewind() override {
      at = 0;
    }
  } stream(table);
  const auto options = DiagnoseOptions().planned_steps(100);
  const auto a = normopt::train::diagnose(model, sgd, table, options);
  const auto b = normopt::train::diagnose(model, sgd, stream, options);
  EXPECT_LT(rel(a.forecast_mse, b.forecast_mse), 1e-9);
  EXPECT_LT(rel(a.optimum_mse, b.optimum_mse), 1e-9);
  EXPECT_EQ(a.verdict, b.verdict);
}

TEST(Forecast, DescribedRun_SameNumbersAsTheModelCall) {
  // What Python's normopt.diagnose sends through the op normopt::diagnose.
  const auto table = income_like_table();
  torch::manual_seed(0);
  auto model = make_model(TargetScaling::kNone);
  model->fit_statistics(table.features, table.targets);
  normopt::optim::Adam adam(model->parameters(),
                            normopt::optim::AdamOptions(1e-2));
  const auto options = DiagnoseOptions().planned_steps(200).batch_size(6);
  const auto a = normopt::train::diagnose(model, adam, table, options);
  normopt::train::DescribedRun run;
  run.z = model->normalization->forward(table.features.to(torch::kFloat64));
  run.t = table.targets.to(torch::kFloat64);
  run.unit = torch::ones({1}, torch::kFloat64);
  run.raw = table;
  run.target_scaling = TargetScaling::kNone;
  run.step = normopt::optim::describe(adam);
  const auto* affine = normopt::nn::as_affine(*model->regressor_module());
  run.weight = affine->affine_weight();
  run.bias = affine->affine_bias();
  const auto b = normopt::train::diagnose(run, options);
  // The model call takes the moments from the raw table's blocks, the
  // described run from its rows: the same numbers up to rounding.
  EXPECT_EQ(a.verdict, b.verdict);
  EXPECT_LT(rel(a.forecast_mse, b.forecast_mse), 1e-12);
  EXPECT_LT(rel(a.optimum_mse, b.optimum_mse), 1e-12);
  EXPECT_EQ(a.steps_needed, b.steps_needed);
  ASSERT_EQ(a.findings.size(), b.findings.size());
  for (size_t i = 0; i < a.findings.size(); ++i) {
    EXPECT_EQ(a.findings[i].message, b.findings[i].message);
  }
}

TEST(ForecastWatch, WarnsOnceWhenFitFallsBehind) {
  const auto table = income_like_table();
  const auto options = quiet().epochs(1000).batch_size(0);
  torch::manual_seed(0);
  auto model = make_model();
  normopt::optim::SGD sgd(model->parameters(),
                          normopt::optim::SGDOptions(1e-2));
  const auto forecast = normopt::train::diagnose(
      model, sgd, table, DiagnoseOptions::for_fit(options, 20));
  // The run that was forecast keeps up.
  auto watch = std::make_shared<normopt::train::ForecastWatch>(forecast);
  auto on_time = options;
  normopt::train::fit(model, sgd, table, on_time.callbacks({watch}));
  EXPECT_FALSE(watch->warned());
  // A run with a 100x smaller lr falls behind: one warning, with the fix.
  torch::manual_seed(0);
  auto slow_model = make_model();
  normopt::optim::SGD slow(slow_model->parameters(),
                           normopt::optim::SGDOptions(1e-4));
  auto slow_watch = std::make_shared<normopt::train::ForecastWatch>(forecast);
  auto behind = options;
  normopt::train::fit(slow_model, slow, table, behind.callbacks({slow_watch}));
  ASSERT_TRUE(slow_watch->warned());
  EXPECT_NE(slow_watch->warning().find("after 200 steps"), std::string::npos)
      << slow_watch->warning();
  // Plain loop: observe() compares at 200, 400, 800, ... only.
  normopt::train::ForecastWatch plain(forecast);
  EXPECT_FALSE(plain.observe(199, 1e30));
  EXPECT_TRUE(plain.observe(200, 1e30));
  EXPECT_FALSE(plain.observe(400, 1e30));  // once
}

TEST(Forecast, BadInput_ClearErrors) {
  const auto table = income_like_table();
  torch::nn::Linear wrong(2, 3);
  torch::optim::SGD sgd(wrong->parameters(), torch::optim::SGDOptions(0.1));
  expect_error(
      [&] {
        normopt::train::diagnose(wrong, sgd, table.features, table.targets);
      },
      {"diagnose: the model predicts shape [20, 3]", "output features"});
  torch::nn::Linear other(2, 1);
  expect_error(
      [&] {
        normopt::train::diagnose(other, sgd, table.features, table.targets);
      },
      {"holds none of the model's parameters"});
  auto bad = table.features.clone();
  bad[4][1] = std::nan("");
  torch::optim::SGD sgd2(other->parameters(), torch::optim::SGDOptions(0.1));
  expect_error(
      [&] { normopt::train::diagnose(other, sgd2, bad, table.targets); },
      {"training feature [4, 1] is NaN or Inf"});
  auto model = make_model();
  normopt::optim::Adam adam(model->parameters());
  auto named = table;
  named.features = bad;
  expect_error([&] { normopt::train::diagnose(model, adam, named); },
               {"(column 'experience')"});
  expect_error(
      [&] {
        normopt::train::diagnose(
            model, adam, table, DiagnoseOptions().batch_size(-1));
      },
      {"batch_size must be >= 0"});
}

// A minibatch replay of an affine model sums each batch's rows about the
// table's means (batch_moments.h) instead of gathering them: against the
// replay over the rows in loss units (a DescribedRun), on a feature with an
// offset of 1e6 and a standard deviation of 1: sums of x xᵀ about 0 would
// lose about 12 of their 16 digits (errors near 1e-4).
TEST(Forecast, MinibatchSums_EqualTheRowReplay_OnLargeOffsets) {
  torch::manual_seed(4);
  const int64_t n = 200;
  const auto time = 1e6 + torch::randn({n}, torch::kFloat64);
  const auto other = torch::randn({n}, torch::kFloat64);
  Table table;
  table.features = torch::stack({time, other}, 1);
  table.targets = 3 * (time - 1e6) - 2 * other + 5e4 +
                  0.1 * torch::randn({n}, torch::kFloat64);
  table.feature_names = {"time", "other"};
  for (auto scaling : {TargetScaling::kNone, TargetScaling::kZScore}) {
    auto model = double_model(scaling);
    model->fit_statistics(table.features, table.targets);
    normopt::optim::Adam adam(model->parameters(),
                              normopt::optim::AdamOptions(0.05));
    const auto options =
        DiagnoseOptions().planned_steps(300).batch_size(16).seed(7);
    const auto sums = normopt::train::diagnose(model, adam, table, options);
    normopt::train::DescribedRun run;
    run.z = model->normalization->forward(table.features);
    run.t = model->transform_targets(table.targets);
    run.unit = model->target->scale.reshape(-1).to(torch::kFloat64);
    run.raw = table;
    run.target_scaling = scaling;
    run.step = normopt::optim::describe(adam);
    const auto* affine = normopt::nn::as_affine(*model->regressor_module());
    run.weight = affine->affine_weight();
    run.bias = affine->affine_bias();
    const auto rows = normopt::train::diagnose(run, options);
    ASSERT_EQ(sums.trajectory.size(), rows.trajectory.size());
    for (size_t i = 0; i < rows.trajectory.size(); ++i) {
      EXPECT_LT(rel(sums.trajectory[i].mse, rows.trajectory[i].mse), 1e-7)
          << "step " << rows.trajectory[i].step;
    }
    EXPECT_EQ(sums.verdict, rows.verdict);
  }
}

// The batch sums and the table's moments are kept for the next forecast of
// the same table; a table changed in place is summed again.
TEST(Forecast, KeptSums_FollowATableChangedInPlace) {
  auto table = as_double(income_like_table());
  const auto options =
      DiagnoseOptions().planned_steps(120).batch_size(6).seed(2);
  const auto forecast = [&](const Table& t) {
    auto model = double_model(TargetScaling::kZScore);
    normopt::optim::SGD sgd(model->parameters(),
                            normopt::optim::SGDOptions(0.05));
    return normopt::train::diagnose(model, sgd, t, options);
  };
  const auto before = forecast(table);
  table.targets.mul_(1.5).add_(1000);  // in place: same tensor, new version
  const auto after = forecast(table);
  Table copy = table;
  copy.features = table.features.clone();
  copy.targets = table.targets.clone();
  const auto fresh = forecast(copy);
  EXPECT_EQ(after.forecast_mse, fresh.forecast_mse);
  EXPECT_EQ(after.optimum_mse, fresh.optimum_mse);
  EXPECT_NE(after.forecast_mse, before.forecast_mse);
  EXPECT_EQ(after.trajectory.size(), fresh.trajectory.size());
}

// Features and targets of different dtypes are summed in float64: float32
// values convert exactly, so the forecast equals that of the float64 table.
TEST(Forecast, MinibatchSums_MixedDtypes_EqualTheFloat64Table) {
  const auto table = income_like_table();
  ASSERT_EQ(table.features.scalar_type(), torch::kFloat32);
  Table mixed = table;
  // Targets that float32 would round.
  mixed.targets = table.targets.to(torch::kFloat64) * (1 + 1e-9);
  Table wide = mixed;
  wide.features = table.features.to(torch::kFloat64);
  const auto options =
      DiagnoseOptions().planned_steps(80).batch_size(6).seed(5);
  const auto forecast = [&](const Table& t) {
    auto model = double_model(TargetScaling::kZScore);
    normopt::optim::Adam adam(model->parameters(),
                              normopt::optim::AdamOptions(0.05));
    return normopt::train::diagnose(model, adam, t, options);
  };
  const auto a = forecast(mixed);
  const auto b = forecast(wide);
  ASSERT_EQ(a.trajectory.size(), b.trajectory.size());
  for (size_t i = 0; i < a.trajectory.size(); ++i) {
    EXPECT_EQ(a.trajectory[i].mse, b.trajectory[i].mse) << "point " << i;
  }
}
