// Capturable Adam on CUDA: normopt::adam_step_capturable_ against the CPU
// kernel (launch splitting, both step-count dtypes), the op alone in a CUDA
// graph, and a whole training step (forward, backward, normopt::optim::Adam
// with capturable) captured in an at::cuda::CUDAGraph and replayed against
// the same steps run eagerly. Skipped without a CUDA device.
#include "../optim/step_reference.h"

#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <normopt/normopt.h>

#include <vector>

namespace {

using normopt::ops::AdamStepOptions;
using normopt::test::TensorVec;

torch::nn::Sequential small_model() {
  torch::manual_seed(0);
  torch::nn::Sequential m(
      torch::nn::Linear(8, 16), torch::nn::Tanh(), torch::nn::Linear(16, 1));
  m->to(torch::kCUDA, torch::kFloat64);
  return m;
}

void train_step(torch::nn::Sequential& model,
                torch::optim::Optimizer& opt,
                const torch::Tensor& x,
                const torch::Tensor& y) {
  // Gradients zeroed in place: a captured backward accumulates into the
  // same tensors at every replay.
  opt.zero_grad(/*set_to_none=*/false);
  torch::mse_loss(model->forward(x), y).backward();
  opt.step();
}

double max_gap(torch::nn::Sequential& a, torch::nn::Sequential& b) {
  double gap = 0;
  const auto pa = a->parameters(), pb = b->parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    gap = std::max(gap, (pa[i] - pb[i]).abs().max().item<double>());
  }
  return gap;
}

}  // namespace

TEST(AdamCapturableCuda, MatchesCpuKernel_AllDtypesAndOptions) {
  NORMOPT_SKIP_WITHOUT_CUDA();
  normopt::test::expect_capturable_matches_cpu_kernel(
      torch::kCUDA, normopt::test::cuda_launch_sizes());
}

// The op alone, captured once and replayed 5 times, equals 5 eager calls:
// each replay reads the counts the previous one advanced.
TEST(AdamCapturableCuda, OpInAGraph_EachReplayAdvancesTheCounts) {
  NORMOPT_SKIP_WITHOUT_CUDA();
  torch::manual_seed(1);
  const std::vector<int64_t> sizes = {1000, 3, 65537};
  AdamStepOptions o;
  o.amsgrad = true;
  o.weight_decay = 0.01;
  auto make = [&](bool positive) {
    return normopt::test::copies_on(
        normopt::test::random_list(sizes, torch::kFloat, positive),
        torch::kCUDA);
  };
  auto p = make(false), m = make(false), v = make(true), x = make(true);
  const auto g = make(false);
  auto p2 = normopt::test::copies_on(p, torch::kCUDA),
       m2 = normopt::test::copies_on(m, torch::kCUDA),
       v2 = normopt::test::copies_on(v, torch::kCUDA),
       x2 = normopt::test::copies_on(x, torch::kCUDA);
  TensorVec steps, steps2;
  for (size_t i = 0; i < sizes.size(); ++i) {
    steps.push_back(
        torch::zeros({}, torch::dtype(torch::kFloat).device(torch::kCUDA)));
    steps2.push_back(steps.back().clone());
  }
  torch::cuda::synchronize();
  at::cuda::CUDAGraph graph;
  {
    const c10::cuda::CUDAStreamGuard side(c10::cuda::getStreamFromPool());
    graph.capture_begin();
    normopt::ops::adam_step_capturable_(p, g, m, v, x, steps, o);
    graph.capture_end();
  }
  for (int r = 0; r < 5; ++r) {
    graph.replay();
    normopt::ops::adam_step_capturable_(p2, g, m2, v2, x2, steps2, o);
  }
  torch::cuda::synchronize();
  for (size_t i = 0; i < sizes.size(); ++i) {
    EXPECT_EQ(steps[i].item<double>(), 5);
    EXPECT_TRUE(torch::equal(p[i], p2[i])) << i;
    EXPECT_TRUE(torch::equal(x[i], x2[i])) << i;
  }
}

// A small model's whole training step in one graph: 3 eager warm-up steps
// (the state is created), one capture, 20 replays on new data. After each,
// the parameters equal the same steps run eagerly with capturable (the same
// kernels) and, to the device pow()'s ulps, with host step counts.
TEST(AdamCapturableCuda, CapturedTrainingStep_ReplaysEqualEagerSteps) {
  NORMOPT_SKIP_WITHOUT_CUDA();
  auto captured = small_model(), eager = small_model(), host = small_model();
  const auto options = normopt::optim::AdamOptions(1e-2).amsgrad(true);
  normopt::optim::Adam opt(
      captured->parameters(),
      normopt::optim::AdamOptions(options).capturable(true));
  normopt::optim::Adam opt_eager(
      eager->parameters(),
      normopt::optim::AdamOptions(options).capturable(true));
  normopt::optim::Adam opt_host(host->parameters(), options);
  torch::manual_seed(2);
  const auto on_gpu = torch::dtype(torch::kFloat64).device(torch::kCUDA);
  std::vector<torch::Tensor> xs, ys;
  for (int k = 0; k < 23; ++k) {
    xs.push_back(torch::randn({32, 8}, on_gpu));
    ys.push_back(torch::randn({32, 1}, on_gpu));
  }
  auto x_static = xs[0].clone(), y_static = ys[0].clone();
  torch::cuda::synchronize();
  at::cuda::CUDAGraph graph;
  {
    const c10::cuda::CUDAStreamGuard side(c10::cuda::getStreamFromPool());
    for (int k = 0; k < 3; ++k) {
      x_static.copy_(xs[k]);
      y_static.copy_(ys[k]);
      train_step(captured, opt, x_static, y_static);
      train_step(eager, opt_eager, xs[k], ys[k]);
      train_step(host, opt_host, xs[k], ys[k]);
    }
    c10::cuda::getCurrentCUDAStream().synchronize();
    graph.capture_begin();
    train_step(captured, opt, x_static, y_static);
    graph.capture_end();
  }
  double gap_eager = 0, gap_host = 0;
  for (int k = 3; k < 23; ++k) {
    x_static.copy_(xs[k]);
    y_static.copy_(ys[k]);
    graph.replay();
    train_step(eager, opt_eager, xs[k], ys[k]);
    train_step(host, opt_host, xs[k], ys[k]);
    gap_eager = std::max(gap_eager, max_gap(captured, eager));
    gap_host = std::max(gap_host, max_gap(captured, host));
  }
  EXPECT_LE(gap_eager, 1e-12);
  EXPECT_LE(gap_host, 1e-10);
  // The replays trained: the model moved from its initial weights.
  auto initial = small_model();
  EXPECT_GT(max_gap(captured, initial), 1e-3);
  for (const auto& p : captured->parameters()) {
    const auto& s = static_cast<const normopt::optim::AdamParamState&>(
        *opt.state().at(p.unsafeGetTensorImpl()));
    EXPECT_TRUE(s.step_tensor().is_cuda());
    EXPECT_EQ(s.step_count(), 23);
  }
}
