#include "../common.h"

#include <normopt/normopt.h>

using namespace normopt::nn;
using normopt::test::expect_error;

TEST(TargetStandardizer, ZScore_ExactAndRoundTrip) {
  auto y = torch::tensor({30450.0, 35670.0, 31580.0, 40130.0}, torch::kFloat64);
  TargetStandardizer ts;
  ts->fit(y);
  const double mean = (30450.0 + 35670.0 + 31580.0 + 40130.0) / 4;
  double ss = 0;
  for (double v : {30450.0, 35670.0, 31580.0, 40130.0}) {
    ss += (v - mean) * (v - mean);
  }
  EXPECT_DOUBLE_EQ(ts->loc.item<double>(), mean);
  EXPECT_DOUBLE_EQ(ts->scale.item<double>(), std::sqrt(ss / 4));
  auto z = ts->transform(y);
  EXPECT_LT((ts->inverse_transform(z) - y).abs().max().item<double>(), 1e-10);
  EXPECT_LT(z.mean().abs().item<double>(), 1e-12);
}

// As for Normalization: the count stays an exact int64 through .to(dtype).
TEST(TargetStandardizer, ToDtype_KeepsTheCountExact) {
  for (auto dtype : {torch::kFloat32, torch::kFloat16, torch::kBFloat16}) {
    SCOPED_TRACE(c10::toString(dtype));
    TargetStandardizer ts;
    ts->fit_moments(torch::tensor(int64_t{100000001}),
                    torch::tensor({5.0}, torch::kFloat64),
                    torch::tensor({2e8}, torch::kFloat64));
    ts->to(dtype);
    EXPECT_EQ(ts->loc.scalar_type(), dtype);
    EXPECT_EQ(ts->count.scalar_type(), torch::kLong);
    EXPECT_EQ(ts->count.item<int64_t>(), 100000001);
  }
}

TEST(TargetStandardizer, MinMax_MapsToUnitInterval) {
  auto y =
      torch::tensor({{2.0, -1.0}, {4.0, 1.0}, {10.0, 0.0}}, torch::kFloat64);
  TargetStandardizer ts(
      TargetStandardizerOptions().method(TargetScaling::kMinMax));
  ts->fit(y);
  auto expected =
      torch::tensor({{0.0, 0.0}, {0.25, 1.0}, {1.0, 0.5}}, torch::kFloat64);
  EXPECT_LT((ts->transform(y) - expected).abs().max().item<double>(), 1e-15);
  EXPECT_LT((ts->inverse_transform(expected) - y).abs().max().item<double>(),
            1e-14);
}

TEST(TargetStandardizer, ConstantTarget_ScaleOne) {
  TargetStandardizer ts;
  ts->fit(torch::full({4, 1}, 5.0, torch::kFloat32));
  EXPECT_EQ(ts->scale.item<double>(), 1.0);
  EXPECT_TRUE(torch::equal(ts->transform(torch::full({2, 1}, 5.0)),
                           torch::zeros({2, 1})));
}

TEST(TargetStandardizer, Float32Targets_StatsInFloat64) {
  torch::manual_seed(0);
  auto y =
      (4e4 + 5 * torch::randn({50000, 1}, torch::kFloat64)).to(torch::kFloat32);
  TargetStandardizer ts;
  ts->fit(y);
  auto [mean, var] = normopt::test::reference_stats(y);
  EXPECT_EQ(ts->loc.scalar_type(), torch::kFloat64);
  EXPECT_LT(std::abs(ts->loc.item<double>() - mean[0]) / mean[0], 1e-12);
  EXPECT_LT(std::abs(ts->scale.item<double>() - std::sqrt(var[0])) /
                std::sqrt(var[0]),
            1e-9);
}

TEST(TargetStandardizer, BadInput_Errors) {
  TargetStandardizer ts;
  expect_error([&] { ts->transform(torch::ones({3})); }, {"before fit()"});
  auto y = torch::ones({3, 1});
  y[1][0] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { ts->fit(y); }, {"target [1, 0]", "NaN"});
  expect_error([&] { ts->fit(torch::ones({2, 2, 2})); }, {"(N) or (N, k)"});
  expect_error([&] { ts->fit(torch::ones({0})); }, {"no targets"});
  ts->fit(torch::randn({5, 2}));
  expect_error(
      [&] {
        ts->transform(torch::ones({5, 3}));
      },
      {"2 target column(s)"});
}

TEST(LinearRegressor, TorchInit_MatchesTorchLinearDraws) {
  torch::manual_seed(42);
  LinearRegressor ours(LinearRegressorOptions(3).out_features(2));
  torch::manual_seed(42);
  torch::nn::Linear theirs(torch::nn::LinearOptions(3, 2));
  EXPECT_TRUE(torch::equal(ours->weight, theirs->weight));
  EXPECT_TRUE(torch::equal(ours->bias, theirs->bias));
  auto x = torch::randn({4, 3});
  EXPECT_TRUE(torch::allclose(ours(x), theirs(x)));
}

TEST(LinearRegressor, KerasInit_GlorotUniformZeroBias) {
  torch::manual_seed(0);
  LinearRegressor m(
      LinearRegressorOptions(100).out_features(50).init(Initializer::kKeras));
  const double limit = std::sqrt(6.0 / 150.0);
  EXPECT_LE(m->weight.abs().max().item<double>(), limit);
  // A uniform draw of 5000 values comes close to both ends of the range.
  EXPECT_GT(m->weight.abs().max().item<double>(), 0.99 * limit);
  EXPECT_TRUE(torch::equal(m->bias, torch::zeros({50})));
}

TEST(LinearRegressor, ZerosAndBiasInit) {
  LinearRegressor m(
      LinearRegressorOptions(2).init(Initializer::kZeros).bias_init(40000.0));
  EXPECT_TRUE(torch::equal(m->weight, torch::zeros({1, 2})));
  EXPECT_EQ(m->bias.item<float>(), 40000.0f);
  expect_error(
      [] {
        LinearRegressor(LinearRegressorOptions(2).bias(false).bias_init(1.0));
      },
      {"bias_init"});
}

TEST(LinearRegressor, Forward_IsAffine) {
  LinearRegressor m(LinearRegressorOptions(2).init(Initializer::kZeros));
  {
    torch::NoGradGuard g;
    m->weight.copy_(torch::tensor({{2.0, -1.0}}));
    m->bias.fill_(0.5);
  }
  auto y = m(torch::tensor({{1.0, 1.0}, {3.0, 2.0}}));
  EXPECT_TRUE(torch::equal(y, torch::tensor({{1.5}, {4.5}})));
  expect_error([&] { m(torch::ones({2, 3})); }, {"2 features", "[2, 3]"});
}

namespace {

StandardizedRegressor fitted_model(torch::Tensor* x, torch::Tensor* y) {
  torch::manual_seed(3);
  *x = torch::stack({22 + 38 * torch::rand({40}), 20 * torch::rand({40})}, 1);
  *y = (25000 + 300 * x->select(1, 0) + 1200 * x->select(1, 1)).unsqueeze(1);
  StandardizedRegressor model(LinearRegressor(2));
  model->fit_statistics(*x, *y);
  return model;
}

}  // namespace

TEST(StandardizedRegressor, Predict_IsInverseOfStandardizedForward) {
  torch::Tensor x, y;
  auto model = fitted_model(&x, &y);
  auto lin = model->regressor.get<LinearRegressor>();
  auto z_x = (x.to(torch::kFloat64) - model->normalization->mean) /
             model->normalization->variance.sqrt();
  auto z_hat = lin(z_x.to(torch::kFloat32));
  auto expected =
      z_hat.to(torch::kFloat64) * model->target->scale + model->target->loc;
  EXPECT_LT(normopt::test::max_rel_error(model->predict(x), expected), 1e-6);
  EXPECT_TRUE(torch::allclose(model(x), z_hat, 1e-5, 1e-6));
}

TEST(StandardizedRegressor, TrainsInStandardizedSpaceToExactFit) {
  torch::Tensor x, y;
  auto model = fitted_model(&x, &y);
  torch::optim::SGD opt(model->parameters(), torch::optim::SGDOptions(0.1));
  auto target = model->transform_targets(y);
  for (int i = 0; i < 500; ++i) {
    opt.zero_grad();
    auto loss = torch::mse_loss(model(x), target);
    loss.backward();
    opt.step();
  }
  // The data are exactly linear: predictions in dollars match to float32.
  EXPECT_LT(normopt::test::max_rel_error(model->predict(x), y), 1e-4);
}

// fitted_model(), saved to dir/model.pt; `x` gets its inputs.
StandardizedRegressor saved_model(const normopt::test::TempDir& dir,
                                  torch::Tensor* x) {
  torch::Tensor y;
  auto model = fitted_model(x, &y);
  torch::save(model, dir.file("model.pt"));
  return model;
}

TEST(StandardizedRegressor, SaveLoad_FreshInstancePredictsSame) {
  normopt::test::TempDir dir;
  torch::Tensor x;
  auto model = saved_model(dir, &x);
  StandardizedRegressor fresh(LinearRegressor(2));
  EXPECT_FALSE(fresh->normalization->is_adapted());
  torch::load(fresh, dir.file("model.pt"));
  EXPECT_TRUE(torch::equal(fresh->predict(x), model->predict(x)));
}

TEST(StandardizedRegressor, LoadDifferentShapes_ErrorsAndKeepsParameters) {
  normopt::test::TempDir dir;
  torch::Tensor x;
  saved_model(dir, &x);
  StandardizedRegressor other(LinearRegressor(5));
  auto before = other->regressor.get<LinearRegressor>()->weight.clone();
  expect_error([&] { torch::load(other, dir.file("model.pt")); },
               {"regressor.weight", "[1, 2]", "[1, 5]"});
  EXPECT_TRUE(
      torch::equal(other->regressor.get<LinearRegressor>()->weight, before));
  EXPECT_FALSE(other->normalization->is_adapted());
}

TEST(StandardizedRegressor, Clone_IsDeep) {
  torch::Tensor x, y;
  auto model = fitted_model(&x, &y);
  auto copy =
      std::dynamic_pointer_cast<StandardizedRegressorImpl>(model->clone());
  ASSERT_TRUE(copy);
  auto before = copy->predict(x);
  {
    torch::NoGradGuard g;
    model->regressor.get<LinearRegressor>()->weight.add_(1);
  }
  EXPECT_TRUE(torch::equal(copy->predict(x), before));
  EXPECT_FALSE(torch::equal(model->predict(x), before));
}

TEST(StandardizedRegressor, Float64Model) {
  torch::Tensor x, y;
  auto model = fitted_model(&x, &y);
  model->to(torch::kFloat64);
  auto p = model->predict(x.to(torch::kFloat64));
  EXPECT_EQ(p.scalar_type(), torch::kFloat64);
  EXPECT_TRUE(torch::isfinite(p).all().item<bool>());
}

TEST(StandardizedRegressor, MismatchedRows_Errors) {
  StandardizedRegressor model(LinearRegressor(2));
  expect_error(
      [&] {
        model->fit_statistics(torch::ones({3, 2}), torch::ones({4}));
      },
      {"same number of rows", "[3, 2]", "[4]"});
}

TEST(StandardizedRegressor, Predict_CUDA) {
  NORMOPT_SKIP_WITHOUT_CUDA();
  torch::Tensor x, y;
  auto model = fitted_model(&x, &y);
  auto cpu = model->predict(x);
  model->to(torch::kCUDA);
  auto gpu = model->predict(x.cuda());
  EXPECT_TRUE(gpu.is_cuda());
  EXPECT_LT(normopt::test::max_rel_error(gpu.cpu(), cpu), 1e-6);
}
