// The workflow on CUDA: normopt's optimizers against torch::optim on the
// same device, fit() and the statistics on CUDA against CPU, checkpoints
// across devices, and the TorchScript export of a CUDA-trained model.
// Skipped without a CUDA device.
#include "../common.h"

#include <normopt/jit/export.h>
#include <normopt/normopt.h>
#include <torch/script.h>

#include <functional>
#include <memory>
#include <vector>

using normopt::nn::LinearRegressor;
using normopt::nn::StandardizedRegressor;
using normopt::train::FitOptions;
using normopt::train::History;

namespace {

using Make = std::function<std::unique_ptr<torch::optim::Optimizer>(
    std::vector<torch::Tensor>)>;

// 200 steps of both optimizers on identical CUDA parameters fed identical
// gradients; returns the largest gap, relative to the parameters' size.
double trajectory_gap(const Make& ours, const Make& theirs) {
  torch::manual_seed(3);
  std::vector<torch::Tensor> a, b, start;
  for (int64_t k : {7, 300, 100000}) {
    auto t = torch::randn({k}, torch::kFloat).to(torch::kCUDA);
    start.push_back(t.clone());
    a.push_back(t.clone().requires_grad_(true));
    b.push_back(t.clone().requires_grad_(true));
  }
  auto o1 = ours(a);
  auto o2 = theirs(b);
  for (int step = 0; step < 200; ++step) {
    for (size_t i = 0; i < a.size(); ++i) {
      auto g = torch::sin(a[i].detach() * (step + 1)) + 0.1;
      a[i].mutable_grad() = g.clone();
      b[i].mutable_grad() = g.clone();
    }
    o1->step();
    o2->step();
  }
  double gap = 0, moved = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    gap = std::max(gap, (a[i] - b[i]).abs().max().item<double>());
    moved = std::max(moved, (a[i] - start[i]).abs().max().item<double>());
    EXPECT_EQ(a[i].device().type(), torch::kCUDA);
  }
  EXPECT_GT(moved, 1e-2) << "the runs did not move: a gap of 0 proves nothing";
  return gap;
}

// trajectory_gap between normopt's optimizer Ours and LibTorch's Theirs,
// each built with its options.
template <typename Ours,
          typename Theirs,
          typename OurOptions,
          typename TheirOptions>
double gap_to_libtorch(const OurOptions& ours, const TheirOptions& theirs) {
  return trajectory_gap(
      [&](auto p) { return std::make_unique<Ours>(p, ours); },
      [&](auto p) { return std::make_unique<Theirs>(p, theirs); });
}

History fit_on(torch::Device device,
               const normopt::data::Table& table,
               FitOptions options,
               StandardizedRegressor* out = nullptr) {
  torch::manual_seed(0);
  StandardizedRegressor model(LinearRegressor(2));
  model->to(device);
  normopt::optim::Adam adam(model->parameters(),
                            normopt::optim::AdamOptions(1e-2));
  auto history = normopt::train::fit(
      model, adam, table, options.progress(normopt::train::Progress::kOff));
  if (out) {
    *out = model;
  }
  return history;
}

void expect_same_parameters(StandardizedRegressor a,
                            StandardizedRegressor b,
                            double tol) {
  const auto pa = a->named_parameters(), pb = b->named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (const auto& item : pa) {
    const auto x = item.value().detach().cpu().to(torch::kDouble);
    const auto y = pb[item.key()].detach().cpu().to(torch::kDouble);
    EXPECT_TRUE(torch::allclose(x, y, tol, tol))
        << item.key() << ": " << x << " vs " << y;
  }
}

}  // namespace

TEST(AdamCuda, TrajectoryMatchesTorchOptimAdam) {
  NORMOPT_SKIP_WITHOUT_CUDA();
  EXPECT_LT(
      (gap_to_libtorch<normopt::optim::Adam, torch::optim::Adam>(
          normopt::optim::AdamOptions(1e-2).weight_decay(0.01).amsgrad(true),
          torch::optim::AdamOptions(1e-2).weight_decay(0.01).amsgrad(true))),
      1e-5);
}

TEST(AdamWCuda, TrajectoryMatchesTorchOptimAdamW) {
  NORMOPT_SKIP_WITHOUT_CUDA();
  EXPECT_LT((gap_to_libtorch<normopt::optim::AdamW, torch::optim::AdamW>(
                normopt::optim::AdamWOptions(1e-2).weight_decay(0.1),
                torch::optim::AdamWOptions(1e-2).weight_decay(0.1))),
            1e-5);
}

TEST(SGDCuda, TrajectoryMatchesTorchOptimSGD_NesterovMomentum) {
  NORMOPT_SKIP_WITHOUT_CUDA();
  EXPECT_LT((gap_to_libtorch<normopt::optim::SGD, torch::optim::SGD>(
                normopt::optim::SGDOptions(1e-2)
                    .momentum(0.9)
                    .nesterov(true)
                    .weight_decay(1e-3),
                torch::optim::SGDOptions(1e-2)
                    .momentum(0.9)
                    .nesterov(true)
                    .weight_decay(1e-3))),
            1e-5);
}

TEST(FitCuda, MatchesCpu) {
  NORMOPT_SKIP_WITHOUT_CUDA();
  const auto table = normopt::data::synthetic_income(500, 2);
  StandardizedRegressor on_cpu{nullptr}, on_gpu{nullptr};
  const auto cpu = fit_on(torch::kCPU, table, FitOptions().epochs(20), &on_cpu);
  const auto gpu =
      fit_on(torch::kCUDA, table, FitOptions().epochs(20), &on_gpu);
  ASSERT_EQ(cpu.epochs.size(), gpu.epochs.size());
  for (size_t e = 0; e < cpu.epochs.size(); ++e) {
    EXPECT_NEAR(gpu.epochs[e].train_mse / cpu.epochs[e].train_mse, 1.0, 1e-4)
        << "epoch " << e + 1;
  }
  EXPECT_EQ(on_gpu->parameters().front().device().type(), torch::kCUDA);
  expect_same_parameters(on_gpu, on_cpu, 1e-4);
}

// Statistics are float64 on either device and the same arithmetic (the
// moments ops are composite): CUDA equals CPU to float64 rounding.
TEST(StatisticsCuda, EqualCpuInFloat64) {
  NORMOPT_SKIP_WITHOUT_CUDA();
  torch::manual_seed(4);
  const auto x = torch::randn({10000, 3}, torch::kDouble) * 1000 + 40000;
  const auto y = torch::randn({10000}, torch::kDouble) * 5000 + 45000;
  auto fitted = [&](torch::Device device) {
    StandardizedRegressor model(LinearRegressor(3));
    model->to(device);
    model->fit_statistics(x.to(device), y.to(device));
    return model;
  };
  auto cpu = fitted(torch::kCPU), gpu = fitted(torch::kCUDA);
  auto expect_equal = [](const torch::Tensor& a, const torch::Tensor& b) {
    EXPECT_EQ(a.device().type(), torch::kCUDA);
    EXPECT_TRUE(torch::allclose(a.cpu(), b, 1e-12, 0)) << a << " vs " << b;
  };
  expect_equal(gpu->normalization->mean, cpu->normalization->mean);
  expect_equal(gpu->normalization->variance, cpu->normalization->variance);
  expect_equal(gpu->target->loc, cpu->target->loc);
  expect_equal(gpu->target->scale, cpu->target->scale);
  // Streamed adapt on CUDA batches equals the one-shot CPU statistics.
  normopt::nn::Normalization streamed;
  streamed->to(torch::kCUDA);
  streamed->adapt(x.to(torch::kCUDA).split(999));
  expect_equal(streamed->mean, cpu->normalization->mean);
  expect_equal(streamed->variance, cpu->normalization->variance);
}

// A checkpoint holds CPU tensors: a run saved on one device resumes on the
// other, on that device, and ends where an uninterrupted run on it ends.
TEST(CheckpointCuda, ResumesAcrossDevices) {
  NORMOPT_SKIP_WITHOUT_CUDA();
  const auto table = normopt::data::synthetic_income(300, 2);
  for (auto [from, to] : {std::pair{torch::kCUDA, torch::kCPU},
                          std::pair{torch::kCPU, torch::kCUDA}}) {
    SCOPED_TRACE(std::string("from ") + c10::DeviceTypeName(from) + " to " +
                 c10::DeviceTypeName(to));
    normopt::test::TempDir dir;
    const auto path = dir.file("run.pt");
    const auto opts = FitOptions().epochs(10).batch_size(64).seed(7);
    fit_on(from, table, FitOptions(opts).epochs(5).checkpoint_path(path));
    StandardizedRegressor resumed{nullptr}, straight{nullptr};
    const auto h1 =
        fit_on(to, table, FitOptions(opts).resume_from(path), &resumed);
    const auto h2 = fit_on(to, table, opts, &straight);
    ASSERT_EQ(h1.epochs.size(), 10u);
    EXPECT_EQ(resumed->parameters().front().device().type(), to);
    EXPECT_EQ(resumed->normalization->mean.device().type(), to);
    EXPECT_NEAR(
        h1.epochs.back().train_mse / h2.epochs.back().train_mse, 1.0, 1e-4);
    expect_same_parameters(resumed, straight, 1e-4);
  }
}

// export_pipeline saves a CUDA-trained model's tensors on the CPU; the
// loaded file predicts what the model predicts.
TEST(ExportCuda, PipelineOfACudaTrainedModel) {
  NORMOPT_SKIP_WITHOUT_CUDA();
  const auto table = normopt::data::synthetic_income(200, 2);
  StandardizedRegressor model{nullptr};
  fit_on(torch::kCUDA, table, FitOptions().epochs(5), &model);
  model->eval();
  normopt::test::TempDir dir;
  const auto path = dir.file("pipeline.pt");
  normopt::jit::export_pipeline(model, path);
  auto loaded = normopt::jit::load_pipeline(path);
  const auto x = table.features.narrow(0, 0, 16).to(torch::kFloat);
  const auto expected = model->predict(x.to(torch::kCUDA)).cpu();
  const auto got = loaded.forward({x}).toTensor();
  EXPECT_TRUE(torch::allclose(got, expected, 1e-5, 1e-3))
      << got << " vs " << expected;
  loaded.to(torch::kCUDA);
  const auto got_cuda = loaded.forward({x.to(torch::kCUDA)}).toTensor();
  EXPECT_EQ(got_cuda.device().type(), torch::kCUDA);
  EXPECT_TRUE(torch::allclose(got_cuda.cpu(), expected, 1e-5, 1e-3));
}
