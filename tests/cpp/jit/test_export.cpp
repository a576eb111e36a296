#include "../common.h"

#include <normopt/jit/export.h>
#include <normopt/normopt.h>
#include <torch/script.h>

#include <fstream>
#include <sstream>
#include <string>

using namespace normopt::nn;
using normopt::jit::export_pipeline;
using normopt::jit::load_pipeline;
using normopt::test::expect_error;
using normopt::test::TempDir;

namespace {

// A regressor with statistics and non-trivial weights: adapted on income-like
// data, then a few Adam steps so the weights are not the initial draw.
StandardizedRegressor trained_model(int64_t out_features = 1,
                                    torch::Dtype dtype = torch::kFloat32,
                                    StandardizedRegressorOptions options = {},
                                    bool bias = true) {
  torch::manual_seed(3);
  auto x = torch::cat(
      {22 + 38 * torch::rand({64, 1}), 20 * torch::rand({64, 1})}, 1);
  auto y = 20000 + 300 * x.select(1, 0).unsqueeze(1) +
           1400 * x.select(1, 1).unsqueeze(1) +
           torch::arange(out_features, torch::kFloat32) * 1000 +
           2500 * torch::randn({64, out_features});
  StandardizedRegressor model(
      LinearRegressor(
          LinearRegressorOptions(2).out_features(out_features).bias(bias)),
      options);
  if (dtype != torch::kFloat32) {
    model->to(dtype);  // (to(kFloat32) would also make the statistics float32)
  }
  x = x.to(dtype);
  y = y.to(dtype);
  model->fit_statistics(x, y);
  torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.1));
  for (int i = 0; i < 5; ++i) {
    sgd.zero_grad();
    torch::mse_loss(model(x), model->transform_targets(y)).backward();
    sgd.step();
  }
  return model;
}

torch::Tensor features(torch::Dtype dtype = torch::kFloat32) {
  return torch::tensor({{25.0, 1.0}, {32.0, 5.0}, {47.0, 12.0}, {58.0, 20.0}},
                       torch::kFloat64)
      .to(dtype);
}

// The exported forward against model->predict: to 1e-6 (the contract) and,
// being the same ATen ops on the same machine, bit for bit.
void expect_same_predictions(StandardizedRegressor& model,
                             const std::string& path,
                             const torch::Tensor& x) {
  auto loaded = torch::jit::load(path);
  torch::NoGradGuard no_grad;
  auto expected = model->predict(x);
  auto got = loaded.forward({x}).toTensor();
  ASSERT_EQ(got.sizes(), expected.sizes());
  ASSERT_EQ(got.scalar_type(), expected.scalar_type());
  EXPECT_LT(normopt::test::max_rel_error(got, expected), 1e-6);
  EXPECT_TRUE(torch::equal(got, expected)) << got << "\nvs\n" << expected;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST(Export, RoundTrip_MatchesPredict) {
  TempDir dir;
  auto model = trained_model();
  const auto path = dir.file("pipeline.pt");
  export_pipeline(model, path);
  expect_same_predictions(model, path, features());
  EXPECT_EQ(normopt::test::files_in(dir.path),
            std::vector<std::string>{"pipeline.pt"});
}

TEST(Export, RoundTrip_Float64MultiOutputNoBias) {
  TempDir dir;
  auto model = trained_model(
      /*out_features=*/3, torch::kFloat64, {}, /*bias=*/false);
  const auto path = dir.file("pipeline.pt");
  export_pipeline(model, path);
  expect_same_predictions(model, path, features(torch::kFloat64));
}

TEST(Export, RoundTrip_MinMaxTargetsAndInvertedNormalization) {
  TempDir dir;
  auto model = trained_model(
      1,
      torch::kFloat32,
      StandardizedRegressorOptions()
          .inputs(NormalizationOptions().invert(true))
          .targets(TargetStandardizerOptions().method(TargetScaling::kMinMax)));
  const auto path = dir.file("pipeline.pt");
  export_pipeline(model, path);
  expect_same_predictions(model, path, features());
}

TEST(Export, Forward_AcceptsOtherFloatDtypesAndBatchShapes) {
  TempDir dir;
  auto model = trained_model();
  const auto path = dir.file("pipeline.pt");
  export_pipeline(model, path);
  auto loaded = load_pipeline(path);
  torch::NoGradGuard no_grad;
  // float64 features: standardized in float64, regressed in float32.
  auto x64 = features(torch::kFloat64);
  auto got = loaded.forward({x64}).toTensor();
  EXPECT_EQ(got.scalar_type(), torch::kFloat32);
  EXPECT_LT(normopt::test::max_rel_error(got, model->predict(features())),
            1e-6);
  // Extra batch dims (which model->predict refuses): statistics broadcast
  // along the last dim, rows come out as in the 2-D call.
  auto x3 = features().reshape({2, 2, 2});
  EXPECT_TRUE(torch::equal(loaded.forward({x3}).toTensor().reshape({4, 1}),
                           model->predict(features())));
}

TEST(Export, Graph_UsesNoNormoptOps) {
  TempDir dir;
  auto model = trained_model();
  const auto path = dir.file("pipeline.pt");
  export_pipeline(model, path);
  auto loaded = torch::jit::load(path);
  auto graph = loaded.get_method("forward").graph();
  for (auto* node : graph->nodes()) {
    EXPECT_NE(node->kind().ns().toUnqualString(), std::string("normopt"))
        << *node;
  }
  // Buffers and parameters the file documents.
  std::vector<std::string> names;
  for (const auto& b : loaded.named_buffers()) {
    names.push_back(b.name);
  }
  for (const auto& p : loaded.named_parameters()) {
    names.push_back(p.name);
  }
  for (const char* expected :
       {"mean", "scale", "target_loc", "target_scale", "weight", "bias"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), expected), names.end())
        << expected;
  }
  EXPECT_TRUE(torch::equal(loaded.attr("scale").toTensor(),
                           model->normalization->scale()));
}

TEST(Export, Forward_BadInput_ClearErrors) {
  TempDir dir;
  auto model = trained_model();
  const auto path = dir.file("pipeline.pt");
  export_pipeline(model, path);
  auto loaded = load_pipeline(path);
  // Errors raised by TorchScript code arrive as torch::jit::JITException.
  auto expect_raise = [&](const torch::Tensor& x, const std::string& needle) {
    try {
      loaded.forward({x});
      ADD_FAILURE() << "expected an error containing '" << needle << "'";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
          << e.what();
    }
  };
  expect_raise(torch::ones({3, 2}, torch::kLong),
               "normopt pipeline: expected floating-point features");
  expect_raise(torch::ones({3, 5}),
               "normopt pipeline: expected features with 2 columns in the "
               "last dimension, got shape [3, 5]");
}

TEST(Export, FailedExport_KeepsExistingFile) {
  TempDir dir;
  const auto path = dir.file("pipeline.pt");
  {
    std::ofstream out(path);
    out << "previous export";
  }
  // Not adapted: refused before anything is written.
  StandardizedRegressor fresh(LinearRegressor(2));
  expect_error([&] { export_pipeline(fresh, path); },
               {"no statistics", path, "fit_statistics"});
  EXPECT_EQ(read_file(path), "previous export");
  EXPECT_EQ(normopt::test::files_in(dir.path),
            std::vector<std::string>{"pipeline.pt"});

  auto model = trained_model();
#if defined(__linux__)
  // Writing fails mid-way (a full disk, here the file-size limit): the old
  // file is still there, untouched, and no temporary file is left.
  {
    normopt::test::FileSizeLimit limit(1024);
    expect_error([&] { export_pipeline(model, path); },
                 {"cannot write", path, "File too large"});
  }
  EXPECT_EQ(read_file(path), "previous export");
  EXPECT_EQ(normopt::test::files_in(dir.path),
            std::vector<std::string>{"pipeline.pt"});
#endif

  // A good export replaces it.
  export_pipeline(model, path);
  expect_same_predictions(model, path, features());
}

TEST(Export, UnwritablePath_NamesIt) {
  TempDir dir;
  auto model = trained_model();
  const auto path = dir.file("no_such_dir/pipeline.pt");
  expect_error([&] { export_pipeline(model, path); },
               {"export_pipeline", "no_such_dir/pipeline.pt"});
}

TEST(Export, OtherRegressor_Refused) {
  TempDir dir;
  StandardizedRegressor model(torch::nn::Linear(2, 1));
  model->fit_statistics(features(), torch::ones({4, 1}));
  const auto path = dir.file("pipeline.pt");
  expect_error([&] { export_pipeline(model, path); },
               {"export_pipeline supports affine regressors", "got", "Linear"});
  EXPECT_FALSE(normopt::test::exists(path));
}

TEST(Export, UntargetedOrMismatched_Refused) {
  TempDir dir;
  const auto path = dir.file("pipeline.pt");
  StandardizedRegressor model(LinearRegressor(2));
  model->normalization->adapt(features());
  expect_error([&] { export_pipeline(model, path); },
               {"TargetStandardizer is not fitted", path});

  StandardizedRegressor wide(LinearRegressor(3));
  wide->fit_statistics(features(), torch::ones({4, 1}));
  expect_error([&] { export_pipeline(wide, path); },
               {"adapted on [2] features", "takes 3"});
  EXPECT_FALSE(normopt::test::exists(path));
}

TEST(Export, LoadPipeline_MissingFile_NamesPath) {
  TempDir dir;
  const auto path = dir.file("missing.pt");
  expect_error([&] { load_pipeline(path); }, {"load_pipeline", path});
}
