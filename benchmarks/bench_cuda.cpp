// CUDA step benchmarks (built with the CUDA kernels, scripts/setup.sh
// --cuda; measures only where a GPU is): normopt's Adam and SGD on 16M fp32 parameters against PyTorch's
// fused CUDA kernels, torch::optim, and the device's copy bandwidth measured
// in the same run (the roofline: Adam moves 28 B per parameter, SGD with
// momentum 16 B, a copy 8 B per float). Each iteration times kReps steps
// between two synchronizations, so launch latency is amortized as in a
// training loop. BM_CudaTrainStep_*: a whole training step (forward,
// backward, normopt's Adam) of a 3-parameter model and of a 1M-parameter
// MLP, run eagerly (host step counts, then capturable) and replayed from a
// CUDA graph (capturable): the time per step.
//   build/benchmarks/bench_cuda --benchmark_format=json |
//       .venv/bin/python benchmarks/compare_cuda.py
#include "aten_steps.h"

#include <ATen/cuda/CUDAGraph.h>
#include <benchmark/benchmark.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <normopt/normopt.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>

namespace {

constexpr int kReps = 20;
constexpr int64_t kParams = 16 * 1024 * 1024;

// The manual time of an iteration: kReps steps between two
// synchronizations, per step.
template <typename Step>
void timed_steps(benchmark::State& state, Step step) {
  step();  // state allocation, first launch
  torch::cuda::synchronize();
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    for (int r = 0; r < kReps; ++r) {
      step();
    }
    torch::cuda::synchronize();
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count() /
        kReps);
  }
}

template <typename Step>
void timed(benchmark::State& state, int64_t bytes_per_param, Step step) {
  timed_steps(state, step);
  state.SetItemsProcessed(state.iterations() * kParams);
  state.SetBytesProcessed(state.iterations() * kParams * bytes_per_param);
}

torch::Tensor param() {
  auto p = torch::randn({kParams}, torch::kCUDA).requires_grad_(true);
  p.mutable_grad() = torch::randn({kParams}, torch::kCUDA);
  return p;
}

void BM_CudaCopy(benchmark::State& state) {
  auto src = torch::randn({kParams}, torch::kCUDA);
  auto dst = torch::empty_like(src);
  timed(state, 8, [&] { dst.copy_(src); });
}

void BM_CudaAdam_normopt(benchmark::State& state) {
  auto p = param();
  normopt::optim::Adam adam({p}, normopt::optim::AdamOptions(1e-3));
  timed(state, 28, [&] { adam.step(); });
}

void BM_CudaAdam_aten_fused(benchmark::State& state) {
  torch::NoGradGuard no_grad;
  auto p = param();
  std::vector<torch::Tensor> params{p.detach()}, grads{p.grad()},
      m{torch::zeros_like(p)}, v{torch::zeros_like(p)},
      steps{torch::ones({}, torch::kCUDA)};
  timed(state, 28, [&] { aten_fused_adam(params, grads, m, v, steps); });
}

void BM_CudaAdam_libtorch(benchmark::State& state) {
  auto p = param();
  torch::optim::Adam adam({p}, torch::optim::AdamOptions(1e-3));
  timed(state, 28, [&] { adam.step(); });
}

void BM_CudaSGD_normopt(benchmark::State& state) {
  auto p = param();
  normopt::optim::SGD sgd({p}, normopt::optim::SGDOptions(1e-3).momentum(0.9));
  timed(state, 16, [&] { sgd.step(); });
}

void BM_CudaSGD_aten_fused(benchmark::State& state) {
  torch::NoGradGuard no_grad;
  auto p = param();
  std::vector<torch::Tensor> params{p.detach()}, grads{p.grad()},
      buf{torch::zeros_like(p)};
  timed(state, 16, [&] { aten_fused_sgd(params, grads, buf); });
}

void BM_CudaSGD_libtorch(benchmark::State& state) {
  auto p = param();
  torch::optim::SGD sgd({p}, torch::optim::SGDOptions(1e-3).momentum(0.9));
  timed(state, 16, [&] { sgd.step(); });
}

// How a training step runs: eagerly with host step counts, eagerly with
// capturable, or replayed from one CUDA graph capture (capturable).
enum class Run { kEager, kEagerCapturable, kGraph };

// 3 parameters: a 1x2 weight and a bias.
torch::nn::Sequential three_parameter_model() {
  return torch::nn::Sequential(torch::nn::Linear(2, 1));
}

// 1,050,625 parameters.
torch::nn::Sequential mlp_1m() {
  return torch::nn::Sequential(torch::nn::Linear(1024, 1024),
                               torch::nn::ReLU(),
                               torch::nn::Linear(1024, 1));
}

void train_step(benchmark::State& state,
                torch::nn::Sequential model,
                int64_t batch,
                Run run) {
  torch::manual_seed(0);
  model->to(torch::kCUDA);
  const int64_t inputs = model->parameters()[0].size(1);
  auto x = torch::randn({batch, inputs}, torch::kCUDA);
  auto y = torch::randn({batch, 1}, torch::kCUDA);
  normopt::optim::Adam adam(
      model->parameters(),
      normopt::optim::AdamOptions(1e-3).capturable(run != Run::kEager));
  auto step = [&] {
    adam.zero_grad(/*set_to_none=*/false);  // a replay reuses the gradients
    torch::mse_loss(model->forward(x), y).backward();
    adam.step();
  };
  at::cuda::CUDAGraph graph;
  if (run == Run::kGraph) {
    torch::cuda::synchronize();
    const c10::cuda::CUDAStreamGuard side(c10::cuda::getStreamFromPool());
    for (int k = 0; k < 3; ++k) {
      step();  // warm-up: the optimizer's state, cuBLAS's handles
    }
    c10::cuda::getCurrentCUDAStream().synchronize();
    graph.capture_begin();
    step();
    graph.capture_end();
  }
  timed_steps(state, [&] {
    if (run == Run::kGraph) {
      graph.replay();
    } else {
      step();
    }
  });
  int64_t n = 0;
  for (const auto& p : model->parameters()) {
    n += p.numel();
  }
  state.counters["params"] = static_cast<double>(n);
}

// Registers BM_CudaTrainStep_<model>_<run> for both models and the three
// ways to run a step.
void add_train_steps() {
  const struct {
    const char* name;
    torch::nn::Sequential (*model)();
    int64_t batch;
  } models[] = {{"3params", &three_parameter_model, 32},
                {"mlp1M", &mlp_1m, 256}};
  const std::pair<const char*, Run> runs[] = {
      {"eager", Run::kEager},
      {"eager_capturable", Run::kEagerCapturable},
      {"graph", Run::kGraph}};
  for (const auto& m : models) {
    for (const auto& [run_name, run] : runs) {
      const std::string name =
          std::string("BM_CudaTrainStep_") + m.name + "_" + run_name;
      benchmark::RegisterBenchmark(name.c_str(),
                                   [m, run = run](benchmark::State& state) {
                                     train_step(state, m.model(), m.batch, run);
                                   })
          ->UseManualTime()
          ->MinTime(0.05);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (!torch::cuda::is_available()) {
    std::fprintf(stderr, "bench_cuda: no CUDA device; nothing to measure\n");
    return 0;
  }
  for (auto [name, fn] :
       {std::pair{"BM_CudaCopy", &BM_CudaCopy},
        std::pair{"BM_CudaAdam_normopt", &BM_CudaAdam_normopt},
        std::pair{"BM_CudaAdam_aten_fused", &BM_CudaAdam_aten_fused},
        std::pair{"BM_CudaAdam_libtorch", &BM_CudaAdam_libtorch},
        std::pair{"BM_CudaSGD_normopt", &BM_CudaSGD_normopt},
        std::pair{"BM_CudaSGD_aten_fused", &BM_CudaSGD_aten_fused},
        std::pair{"BM_CudaSGD_libtorch", &BM_CudaSGD_libtorch}}) {
    // The manual time is per step, a twentieth (kReps) of an iteration's
    // wall time: 0.05 s of it is about 1 s of wall time per repetition.
    benchmark::RegisterBenchmark(name, fn)->UseManualTime()->MinTime(0.05);
  }
  add_train_steps();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
