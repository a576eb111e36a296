#include "../common.h"

#include <normopt/normopt.h>

using namespace normopt::nn;
using namespace normopt::test;

namespace {

torch::Tensor income_like(int64_t n, torch::Dtype dtype, uint64_t seed = 0) {
  torch::manual_seed(seed);
  auto a = 4e4 + 5.0 * torch::randn({n}, torch::kFloat64);
  auto b = 30.0 + 10.0 * torch::randn({n}, torch::kFloat64);
  auto c = -2.0 + 0.01 * torch::randn({n}, torch::kFloat64);
  return torch::stack({a, b, c}, 1).to(dtype);
}

}  // namespace

TEST(Normalization, Adapt_Float64MatchesTwoPassReference) {
  auto x = income_like(10007, torch::kFloat64);
  Normalization norm;
  norm->adapt(x);
  auto [mean, var] = reference_stats(x);
  EXPECT_LT(max_rel_error(norm->mean, as_tensor(mean)), 1e-12);
  EXPECT_LT(max_rel_error(norm->variance, as_tensor(var)), 1e-12);
  EXPECT_EQ(norm->count.item<int64_t>(), 10007);
  EXPECT_EQ(norm->mean.scalar_type(), torch::kFloat64);
}

TEST(Normalization, Adapt_Float32LargeOffsetKeepsPrecision) {
  torch::manual_seed(1);
  const int64_t n = 100000;
  auto x =
      (4e4 + 5.0 * torch::randn({n, 1}, torch::kFloat64)).to(torch::kFloat32);
  auto [mean, var] = reference_stats(x);  // of the float32 values, exactly
  Normalization norm;
  norm->adapt(x);
  EXPECT_LT(max_rel_error(norm->mean, as_tensor(mean)), 1e-6);
  EXPECT_LT(max_rel_error(norm->variance, as_tensor(var)), 1e-6);

  // The same data through a naive float32 sum / sum-of-squares misses the
  // variance by orders of magnitude more: the test can tell the difference.
  auto naive_mean = x.sum(0) / n;
  auto naive_var = (x * x).sum(0) / n - naive_mean * naive_mean;
  EXPECT_GT(max_rel_error(naive_var, as_tensor(var)), 1e-6);
}

TEST(Normalization, Update_StreamingMatchesAllAtOnce) {
  // Moderate offsets (|mean| / std up to 200). Streaming N single rows keeps
  // the running mean to float64 rounding, which feeds ~sqrt(N) eps |mean|/std
  // into the variance: 1.4e-12 at the 8000 of income_like's first column.
  torch::manual_seed(2);
  auto x = torch::randn({1000, 3}, torch::kFloat64) *
               torch::tensor({5.0, 10.0, 0.01}, torch::kFloat64) +
           torch::tensor({40.0, 30.0, -2.0}, torch::kFloat64);
  Normalization whole;
  whole->adapt(x);
  for (int64_t batch : {1, 7, 128}) {
    Normalization streamed;
    for (auto& b : x.split(batch)) {
      streamed->update(b);
    }
    EXPECT_LT(max_rel_error(streamed->mean, whole->mean), 1e-12) << batch;
    EXPECT_LT(max_rel_error(streamed->variance, whole->variance), 1e-12)
        << batch;
    EXPECT_EQ(streamed->count.item<int64_t>(), 1000);
  }
  Normalization listed;
  listed->adapt(x.split(100));
  EXPECT_LT(max_rel_error(listed->variance, whole->variance), 1e-12);
}

TEST(Normalization, Adapt_ReplacesEarlierStatistics) {
  Normalization norm;
  norm->adapt(income_like(50, torch::kFloat64, 3));
  auto y = income_like(60, torch::kFloat64, 4);
  norm->adapt(y);
  auto [mean, var] = reference_stats(y);
  EXPECT_LT(max_rel_error(norm->mean, as_tensor(mean)), 1e-12);
  EXPECT_EQ(norm->count.item<int64_t>(), 60);
}

TEST(Normalization, Forward_IsZScoreWithPopulationStd) {
  auto x =
      torch::tensor({{1.0, 10.0}, {2.0, 20.0}, {3.0, 60.0}}, torch::kFloat64);
  Normalization norm;
  norm->adapt(x);
  // Column 0: mean 2, var 2/3. Column 1: mean 30, var (400+100+900)/3.
  auto expected =
      torch::stack({(x.select(1, 0) - 2.0) / std::sqrt(2.0 / 3.0),
                    (x.select(1, 1) - 30.0) / std::sqrt(1400.0 / 3.0)},
                   1);
  EXPECT_LT((norm(x) - expected).abs().max().item<double>(), 1e-15);
}

TEST(Normalization, Inverse_RoundTripIsIdentity) {
  auto x = income_like(257, torch::kFloat64, 5);
  Normalization norm;
  norm->adapt(x);
  auto back = norm->inverse(norm(x));
  EXPECT_LT((back - x).abs().max().item<double>(), 1e-9);
  // z has zero mean and unit variance up to eps * |mean| / std (8000 for the
  // first column): 1.8e-12.
  auto z = norm(x);
  EXPECT_LT(z.mean(0).abs().max().item<double>(), 1e-11);
  EXPECT_LT((z.var(0, /*unbiased=*/false) - 1).abs().max().item<double>(),
            1e-11);
}

TEST(Normalization, Forward_KeepsInputDtype) {
  auto x = income_like(100, torch::kFloat32, 6);
  Normalization norm;
  norm->adapt(x);
  auto z = norm(x);
  EXPECT_EQ(z.scalar_type(), torch::kFloat32);
  auto z64 = norm(x.to(torch::kFloat64));
  EXPECT_LT((z.to(torch::kFloat64) - z64).abs().max().item<double>(), 1e-5);
}

TEST(Normalization, ConstantFeature_ScaleOneAndFiniteOutput) {
  auto x = torch::stack({torch::full({5}, 0.1, torch::kFloat64),
                         torch::arange(5, torch::kFloat64)},
                        1);
  Normalization norm;
  norm->adapt(x);
  auto scale = norm->scale();
  EXPECT_EQ(scale[0].item<double>(), 1.0);
  EXPECT_DOUBLE_EQ(scale[1].item<double>(), std::sqrt(2.0));
  auto z = norm(x);
  EXPECT_TRUE(torch::isfinite(z).all().item<bool>());
  EXPECT_LT(z.select(1, 0).abs().max().item<double>(), 1e-15);
}

TEST(Normalization, Invert_ForwardMapsBack) {
  auto x = income_like(64, torch::kFloat64, 7);
  Normalization norm;
  norm->adapt(x);
  Normalization inv(NormalizationOptions().invert(true));
  inv->adapt(x);
  auto z = norm(x);
  EXPECT_LT((inv(z) - x).abs().max().item<double>(), 1e-9);
  EXPECT_LT((inv->inverse(x) - z).abs().max().item<double>(), 1e-12);
}

TEST(Normalization, Axis_ChannelsOfImageBatch) {
  torch::manual_seed(8);
  auto x = torch::randn({4, 3, 5, 5}, torch::kFloat64) * 3 + 7;
  Normalization norm(NormalizationOptions().axis({1}));
  norm->adapt(x);
  ASSERT_EQ(norm->mean.sizes(), torch::IntArrayRef({3}));
  auto flat = x.permute({0, 2, 3, 1}).reshape({-1, 3});
  auto [mean, var] = reference_stats(flat);
  EXPECT_LT(max_rel_error(norm->mean, as_tensor(mean)), 1e-12);
  EXPECT_LT(max_rel_error(norm->variance, as_tensor(var)), 1e-12);
  auto z = norm(x);
  EXPECT_LT(z.mean({0, 2, 3}).abs().max().item<double>(), 1e-12);
}

TEST(Normalization, Axis_EmptyMeansOneScalarStatistic) {
  auto x = torch::tensor({{1.0, 2.0}, {3.0, 4.0}}, torch::kFloat64);
  Normalization norm(NormalizationOptions().axis({}));
  norm->adapt(x);
  EXPECT_EQ(norm->mean.dim(), 0);
  EXPECT_DOUBLE_EQ(norm->mean.item<double>(), 2.5);
  EXPECT_DOUBLE_EQ(norm->variance.item<double>(), 1.25);
}

TEST(Normalization, FixedStatistics_NeedNoAdaptAndRefuseOne) {
  Normalization norm(NormalizationOptions()
                         .mean(torch::tensor({1.0, 2.0}))
                         .variance(torch::tensor({4.0, 0.0})));
  EXPECT_TRUE(norm->is_adapted());
  auto z = norm(torch::tensor({{3.0, 5.0}}, torch::kFloat64));
  EXPECT_DOUBLE_EQ(z[0][0].item<double>(), 1.0);  // (3 - 1) / 2
  EXPECT_DOUBLE_EQ(z[0][1].item<double>(), 3.0);  // zero variance: scale 1
  expect_error(
      [&] {
        norm->adapt(torch::ones({2, 2}));
      },
      {"fixed mean and variance"});
}

TEST(Normalization, SaveLoad_RoundTripsStatistics) {
  normopt::test::TempDir dir;
  auto x = income_like(99, torch::kFloat64, 9);
  Normalization norm;
  norm->adapt(x);
  torch::save(norm, dir.file("norm.pt"));
  Normalization fresh;
  torch::load(fresh, dir.file("norm.pt"));
  EXPECT_TRUE(torch::equal(fresh->mean, norm->mean));
  EXPECT_TRUE(torch::equal(fresh->variance, norm->variance));
  EXPECT_EQ(fresh->count.item<int64_t>(), 99);
  EXPECT_TRUE(torch::equal(fresh(x), norm(x)));
}

TEST(Normalization, ToDtype_ConvertsStatistics) {
  auto x = income_like(30, torch::kFloat64, 10);
  Normalization norm;
  norm->adapt(x);
  norm->to(torch::kFloat32);
  EXPECT_EQ(norm->mean.scalar_type(), torch::kFloat32);
  EXPECT_EQ(norm->count.scalar_type(), torch::kLong);
  auto z = norm(x.to(torch::kFloat32));
  EXPECT_EQ(z.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::isfinite(z).all().item<bool>());
}

// The row count stays an exact int64 through .to(dtype): 100,000,001 is
// not a float32 (it rounds to 1e8), and past float16's and bfloat16's range
// or precision altogether.
TEST(Normalization, ToDtype_KeepsTheCountExact) {
  for (auto dtype : {torch::kFloat32, torch::kFloat16, torch::kBFloat16}) {
    SCOPED_TRACE(c10::toString(dtype));
    Normalization norm;
    norm->merge(torch::tensor(int64_t{100000001}),
                torch::tensor({1.0, 2.0}, torch::kFloat64),
                torch::tensor({3.0, 4.0}, torch::kFloat64));
    norm->to(dtype);
    EXPECT_EQ(norm->mean.scalar_type(), dtype);
    EXPECT_EQ(norm->count.scalar_type(), torch::kLong);
    EXPECT_EQ(norm->count.item<int64_t>(), 100000001);
    norm->to(torch::kCPU, torch::kFloat64);
    EXPECT_EQ(norm->count.item<int64_t>(), 100000001);
  }
}

TEST(Normalization, Clone_IsDeep) {
  Normalization norm;
  norm->adapt(income_like(20, torch::kFloat64, 11));
  auto copy =
      std::dynamic_pointer_cast<normopt::nn::NormalizationImpl>(norm->clone());
  norm->adapt(income_like(20, torch::kFloat64, 12));
  EXPECT_FALSE(torch::equal(copy->mean, norm->mean));
}

TEST(Normalization, ForwardBeforeAdapt_Errors) {
  Normalization norm;
  expect_error(
      [&] {
        norm(torch::ones({2, 3}));
      },
      {"forward", "before the statistics", "adapt"});
  expect_error(
      [&] {
        norm->inverse(torch::ones({2, 3}));
      },
      {"inverse", "adapt"});
}

TEST(Normalization, EmptyTensor_Errors) {
  Normalization norm;
  expect_error(
      [&] {
        norm->adapt(torch::ones({0, 3}));
      },
      {"empty tensor", "[0, 3]"});
}

TEST(Normalization, NonFiniteData_NamesTheFeature) {
  auto x = torch::ones({4, 3});
  x[2][1] = std::numeric_limits<float>::quiet_NaN();
  Normalization norm;
  expect_error([&] { norm->adapt(x); },
               {"non-finite", "[2, 1]", "feature [1]"});
  x[2][1] = 1;
  x[3][2] = std::numeric_limits<float>::infinity();
  expect_error([&] { norm->update(x); }, {"feature [2]"});
}

TEST(Normalization, FeatureCountMismatch_Errors) {
  Normalization norm;
  norm->adapt(torch::randn({10, 3}));
  expect_error(
      [&] {
        norm(torch::randn({4, 5}));
      },
      {"feature shape [5]", "statistics have shape [3]"});
  expect_error(
      [&] {
        norm->update(torch::randn({4, 2}));
      },
      {"feature shape [2]", "adapted on [3]"});
}

TEST(Normalization, IntegerData_Errors) {
  Normalization norm;
  expect_error(
      [&] {
        norm->adapt(torch::ones({3, 2}, torch::kLong));
      },
      {"floating-point", "Long", "torch::kFloat32"});
}

TEST(Normalization, AxisOutOfRange_Errors) {
  Normalization norm(NormalizationOptions().axis({2}));
  expect_error(
      [&] {
        norm->adapt(torch::ones({3, 2}));
      },
      {"axis 2 is out of range", "2-D"});
}

TEST(Normalization, LoadDifferentShapes_ErrorsAndKeepsState) {
  normopt::test::TempDir dir;
  Normalization three;
  three->adapt(torch::randn({10, 3}, torch::kFloat64));
  torch::save(three, dir.file("three.pt"));
  Normalization two;
  two->adapt(torch::randn({10, 2}, torch::kFloat64));
  auto before = two->mean.clone();
  expect_error([&] { torch::load(two, dir.file("three.pt")); },
               {"'mean'", "[3]", "[2]"});
  EXPECT_TRUE(torch::equal(two->mean, before));
}

TEST(Normalization, Adapt_CUDA) {
  NORMOPT_SKIP_WITHOUT_CUDA();
  auto x = income_like(1000, torch::kFloat32, 13);
  Normalization norm;
  norm->to(torch::kCUDA);
  norm->adapt(x.cuda());
  auto [mean, var] = reference_stats(x);
  EXPECT_TRUE(norm->mean.is_cuda());
  EXPECT_LT(max_rel_error(norm->mean, as_tensor(mean)), 1e-6);
  EXPECT_LT(max_rel_error(norm->variance, as_tensor(var)), 1e-6);
  auto z = norm(x.cuda());
  EXPECT_TRUE(z.is_cuda());
  EXPECT_LT((norm->inverse(z).cpu() - x).abs().max().item<float>(), 1e-2);
}
