// The CUDA kernels of normopt::adam_step_ / sgd_step_ (built with
// -DNORMOPT_CUDA_KERNELS=ON) against the CPU kernel and against LibTorch's
// own optimizers on the same device. Skipped without a CUDA device.
#include "../common.h"

#include <normopt/normopt.h>

#include <string>
#include <vector>

namespace {

using normopt::ops::AdamStepOptions;
using normopt::ops::SgdStepOptions;

// Sizes that exercise the launch splitting: more tensors than one launch
// holds (36), a tensor of more chunks than one launch holds (256 x 65536),
// partial chunks, a scalar and an empty tensor.
std::vector<int64_t> sizes() {
  std::vector<int64_t> out = {1, 0, 3, 65536, 65537, 257 * 65536 + 5};
  for (int i = 0; i < 40; ++i) {
    out.push_back(100 + 37 * i);
  }
  return out;
}

std::vector<torch::Tensor> random_list(const std::vector<int64_t>& n,
                                       torch::ScalarType dtype,
                                       bool positive = false) {
  std::vector<torch::Tensor> out;
  for (auto k : n) {
    auto t = torch::randn({k}, torch::kFloat64);
    out.push_back((positive ? t.abs() : t).to(dtype));
  }
  return out;
}

std::vector<torch::Tensor> to(const std::vector<torch::Tensor>& list,
                              torch::Device device) {
  std::vector<torch::Tensor> out;
  for (const auto& t : list) {
    out.push_back(t.to(device).clone());
  }
  return out;
}

// Relative tolerance of a step computed on two devices: the arithmetic is
// the same sequence in opmath_t, but nvcc may contract a*b+c into an FMA.
double tolerance(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kDouble:
      return 1e-12;
    case torch::kFloat:
      return 1e-5;
    case torch::kHalf:
      return 2e-3;  // one float16 ulp
    default:
      return 1.6e-2;  // one bfloat16 ulp
  }
}

void expect_close(const std::vector<torch::Tensor>& cuda,
                  const std::vector<torch::Tensor>& cpu,
                  double rtol,
                  const std::string& what) {
  ASSERT_EQ(cuda.size(), cpu.size());
  for (size_t i = 0; i < cpu.size(); ++i) {
    auto a = cuda[i].cpu().to(torch::kFloat64);
    auto b = cpu[i].to(torch::kFloat64);
    EXPECT_TRUE(torch::allclose(a, b, rtol, rtol))
        << what << ": tensor " << i << " (" << b.numel()
        << " elements) differs by up to " << (a - b).abs().max().item<double>();
  }
}

}  // namespace

TEST(AdamStepCuda, MatchesCpuKernel_AllDtypesAndOptions) {
  NORMOPT_SKIP_WITHOUT_CUDA();
  const torch::Device cuda(torch::kCUDA);
  std::vector<std::pair<std::string, AdamStepOptions>> variants;
  variants.push_back({"plain", AdamStepOptions{}});
  AdamStepOptions l2;
  l2.weight_decay = 0.1;
  l2.amsgrad = true;
  l2.maximize = true;
  variants.push_back({"l2+amsgrad+maximize", l2});
  AdamStepOptions decoupled;
  decoupled.weight_decay = 0.01;
  decoupled.decoupled_weight_decay = true;
  variants.push_back({"decoupled", decoupled});
  AdamStepOptions keras;
  keras.keras_epsilon = true;
  keras.eps = 1e-7;
  variants.push_back({"keras", keras});
  for (auto dtype :
       {torch::kFloat, torch::kDouble, torch::kHalf, torch::kBFloat16}) {
    for (const auto& [name, o] : variants) {
      SCOPED_TRACE(name + " " + std::string(c10::toString(dtype)));
      torch::manual_seed(0);
      const auto n = sizes();
      auto p = random_list(n, dtype), m = random_list(n, dtype);
      auto v = random_list(n, dtype, true), x = random_list(n, dtype, true);
      std::vector<torch::Tensor> none;
      auto pc = to(p, cuda), mc = to(m, cuda), vc = to(v, cuda),
           xc = to(x, cuda);
      std::vector<int64_t> steps(n.size());
      for (int step = 1; step <= 3; ++step) {
        auto g = random_list(n, dtype);
        for (size_t i = 0; i < steps.size(); ++i) {
          steps[i] = step + static_cast<int64_t>(i % 3);  // own counts
        }
        normopt::ops::adam_step_(p, g, m, v, o.amsgrad ? x : none, steps, o);
        normopt::ops::adam_step_(
            pc, to(g, cuda), mc, vc, o.amsgrad ? xc : none, steps, o);
      }
      const double tol = tolerance(dtype);
      expect_close(pc, p, tol, "params");
      expect_close(mc, m, tol, "exp_avgs");
      expect_close(vc, v, tol, "exp_avg_sqs");
      if (o.amsgrad) {
        expect_close(xc, x, tol, "max_exp_avg_sqs");
      }
    }
  }
}

TEST(SgdStepCuda, MatchesCpuKernel_AllDtypesAndOptions) {
  NORMOPT_SKIP_WITHOUT_CUDA();
  const torch::Device cuda(torch::kCUDA);
  std::vector<std::pair<std::string, SgdStepOptions>> variants;
  variants.push_back({"plain", SgdStepOptions{}});
  SgdStepOptions momentum;
  momentum.momentum = 0.9;
  momentum.dampening = 0.1;
  momentum.weight_decay = 0.01;
  variants.push_back({"momentum+dampening+decay", momentum});
  SgdStepOptions nesterov;
  nesterov.momentum = 0.9;
  nesterov.nesterov = true;
  nesterov.maximize = true;
  variants.push_back({"nesterov+maximize", nesterov});
  for (auto dtype :
       {torch::kFloat, torch::kDouble, torch::kHalf, torch::kBFloat16}) {
    for (const auto& [name, base] : variants) {
      SCOPED_TRACE(name + " " + std::string(c10::toString(dtype)));
      torch::manual_seed(1);
      const auto n = sizes();
      auto p = random_list(n, dtype), b = random_list(n, dtype);
      auto pc = to(p, cuda), bc = to(b, cuda);
      const bool with_buf = base.momentum != 0;
      std::vector<torch::Tensor> none;
      for (int step = 1; step <= 3; ++step) {
        auto o = base;
        o.is_first_step = step == 1;
        auto g = random_list(n, dtype);
        normopt::ops::sgd_step_(p, g, with_buf ? b : none, o);
        normopt::ops::sgd_step_(pc, to(g, cuda), with_buf ? bc : none, o);
      }
      const double tol = tolerance(dtype);
      expect_close(pc, p, tol, "params");
      if (with_buf) {
        expect_close(bc, b, tol, "momentum_buffers");
      }
    }
  }
}

TEST(AdamStepCuda, BadInput_NamesTheTensor) {
  NORMOPT_SKIP_WITHOUT_CUDA();
  auto p = torch::zeros({4}, torch::kCUDA);
  auto cpu = torch::zeros({4});
  std::vector<torch::Tensor> ps{p}, gs{cpu}, ms{torch::zeros_like(p)},
      vs{torch::zeros_like(p)}, none;
  normopt::test::expect_error(
      [&] {
        normopt::ops::adam_step_(ps, gs, ms, vs, none, {1}, AdamStepOptions{});
      },
      {"normopt::adam_step_", "grads[0]"});
}

TEST(AdamCuda, TrajectoryMatchesTorchOptimAdam) {
  NORMOPT_SKIP_WITHOUT_CUDA();
  torch::manual_seed(3);
  const torch::Device cuda(torch::kCUDA);
  std::vector<torch::Tensor> a, b;
  for (int64_t k : {7, 300, 100000}) {
    auto t = torch::randn({k}, torch::kFloat).to(cuda);
    a.push_back(t.clone().requires_grad_(true));
    b.push_back(t.clone().requires_grad_(true));
  }
  normopt::optim::Adam ours(
      a, normopt::optim::AdamOptions(1e-2).weight_decay(0.01).amsgrad(true));
  torch::optim::Adam theirs(
      b, torch::optim::AdamOptions(1e-2).weight_decay(0.01).amsgrad(true));
  for (int step = 0; step < 200; ++step) {
    for (size_t i = 0; i < a.size(); ++i) {
      auto g = torch::sin(a[i].detach() * (step + 1)) + 0.1;
      a[i].mutable_grad() = g.clone();
      b[i].mutable_grad() = g.clone();
    }
    ours.step();
    theirs.step();
  }
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(
        torch::allclose(a[i].detach().cpu(), b[i].detach().cpu(), 1e-5, 1e-6))
        << "tensor " << i;
  }
}

TEST(FitCuda, MatchesCpu) {
  NORMOPT_SKIP_WITHOUT_CUDA();
  const auto table = normopt::data::synthetic_income(500, 2);
  auto run = [&](torch::Device device) {
    torch::manual_seed(0);
    normopt::nn::StandardizedRegressor model(normopt::nn::LinearRegressor(2));
    model->to(device);
    normopt::optim::Adam adam(model->parameters(),
                              normopt::optim::AdamOptions(1e-2));
    return normopt::train::fit(model,
                               adam,
                               table,
                               normopt::train::FitOptions().epochs(20).progress(
                                   normopt::train::Progress::kOff));
  };
  const auto cpu = run(torch::kCPU);
  const auto gpu = run(torch::kCUDA);
  ASSERT_EQ(cpu.epochs.size(), gpu.epochs.size());
  EXPECT_NEAR(
      gpu.epochs.back().train_mse / cpu.epochs.back().train_mse, 1.0, 1e-4);
}
