// Optimizer-step benchmarks: normopt's fused ops against torch::optim and
// PyTorch's own fused CPU kernels (at::_fused_adam_ / at::_fused_sgd_), with
// the memory copy bandwidth of the same run as the roofline reference.
// Counters: bytes_per_second (28 B/param for Adam, 16 for SGD with
// momentum, 8 for copy), allocs/step and alloc_bytes/step (CPU allocator).
//
// Run: scripts/bench.sh (builds, runs, and prints the comparison table).
#include "aten_steps.h"

#include <benchmark/benchmark.h>
#include <c10/core/CPUAllocator.h>
#include <normopt/normopt.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <vector>

namespace {

// Counts CPU tensor allocations so the benchmark can show allocs per step.
struct CountingAllocator final : c10::Allocator {
  c10::Allocator* base = nullptr;
  std::atomic<int64_t> count{0}, bytes{0};
  c10::DataPtr allocate(size_t n) override {
    count += 1;
    bytes += static_cast<int64_t>(n);
    return base->allocate(n);
  }
  c10::DeleterFnPtr raw_deleter() const override {
    return base->raw_deleter();
  }
  void copy_data(void* dest, const void* src, std::size_t n) const override {
    default_copy_data(dest, src, n);
  }
};

CountingAllocator& counting() {
  static CountingAllocator* a = [] {
    auto* c = new CountingAllocator;
    c->base = c10::GetCPUAllocator();
    c10::SetCPUAllocator(c, /*priority=*/100);
    return c;
  }();
  return *a;
}

// Shapes: 0 = one tensor of 10M, 1 = 1,000 tensors of 1,000, 2 = the
// 3-parameter linear model (weight 1x2, bias 1).
std::vector<torch::Tensor> make_params(int64_t shape) {
  torch::manual_seed(0);
  std::vector<torch::Tensor> p;
  if (shape == 0) {
    p.push_back(torch::randn({10'000'000}));
  } else if (shape == 1) {
    for (int i = 0; i < 1000; ++i)
      p.push_back(torch::randn({1000}));
  } else {
    p.push_back(torch::randn({1, 2}));
    p.push_back(torch::randn({1}));
  }
  for (auto& t : p) {
    t.requires_grad_();
    t.mutable_grad() = torch::randn_like(t) * 1e-3;
  }
  return p;
}

int64_t numel(const std::vector<torch::Tensor>& p) {
  int64_t n = 0;
  for (auto& t : p)
    n += t.numel();
  return n;
}

void report(benchmark::State& state,
            int64_t n,
            int64_t bytes_per_param,
            int64_t allocs0,
            int64_t bytes0) {
  const auto iters = static_cast<double>(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(iters) * n * bytes_per_param);
  state.counters["params"] = static_cast<double>(n);
  state.counters["allocs/step"] = (counting().count - allocs0) / iters;
  state.counters["alloc_bytes/step"] = (counting().bytes - bytes0) / iters;
}

// PyTorch's fused CPU kernel, called directly with its state lists.
void BM_Adam_aten_fused(benchmark::State& state) {
  torch::NoGradGuard g;
  auto p = make_params(state.range(0));
  std::vector<torch::Tensor> params, grads, m, v, steps;
  for (auto& t : p) {
    params.push_back(t.detach());
    grads.push_back(t.grad());
    m.push_back(torch::zeros_like(t));
    v.push_back(torch::zeros_like(t));
    steps.push_back(torch::ones({}));
  }
  const int64_t a0 = counting().count, b0 = counting().bytes;
  for (auto _ : state) {
    aten_fused_adam(params, grads, m, v, steps);
  }
  report(state, numel(p), 28, a0, b0);
}

void BM_SGD_aten_fused(benchmark::State& state) {
  torch::NoGradGuard g;
  auto p = make_params(state.range(0));
  std::vector<torch::Tensor> params, grads, bufs;
  for (auto& t : p) {
    params.push_back(t.detach());
    grads.push_back(t.grad());
    bufs.push_back(torch::zeros_like(t));
  }
  const int64_t a0 = counting().count, b0 = counting().bytes;
  for (auto _ : state) {
    aten_fused_sgd(params, grads, bufs);
  }
  report(state, numel(p), 16, a0, b0);
}

// The roofline reference: dst.copy_(src) moves 8 B per float (read+write).
void BM_Copy(benchmark::State& state) {
  auto src = torch::randn({10'000'000});
  auto dst = torch::empty_like(src);
  const int64_t a0 = counting().count, b0 = counting().bytes;
  for (auto _ : state) {
    dst.copy_(src);
  }
  report(state, src.numel(), 8, a0, b0);
}

// With --benchmark_repetitions=N, the minimum and the first quartile of the
// N runs besides Google Benchmark's mean, median and spread: on a busy
// machine they move far less than the median.
double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))];
}

void shapes(benchmark::internal::Benchmark* b) {
  b->ArgName("shape")->Arg(0)->Arg(1)->Arg(2)->UseRealTime();
  b->ComputeStatistics(
      "min", [](const std::vector<double>& v) { return quantile(v, 0); });
  b->ComputeStatistics(
      "p25", [](const std::vector<double>& v) { return quantile(v, 0.25); });
}

// Registers `name`: Optimizer(parameters, options).step() over each shape;
// the state is created by a first step, not measured.
template <typename Optimizer, typename Options>
void add_optimizer(const char* name, Options options, int64_t bytes_per_param) {
  benchmark::RegisterBenchmark(name, [=](benchmark::State& state) {
    auto p = make_params(state.range(0));
    Optimizer opt(p, options);
    opt.step();
    const int64_t a0 = counting().count, b0 = counting().bytes;
    for (auto _ : state) {
      opt.step();
    }
    report(state, numel(p), bytes_per_param, a0, b0);
  })->Apply(shapes);
}

}  // namespace

int main(int argc, char** argv) {
  counting();  // install the counting allocator before any tensor exists
  benchmark::RegisterBenchmark("BM_Copy", BM_Copy)->UseRealTime();
  add_optimizer<normopt::optim::Adam>(
      "BM_Adam_normopt", normopt::optim::AdamOptions(1e-3), 28);
  benchmark::RegisterBenchmark("BM_Adam_aten_fused", BM_Adam_aten_fused)
      ->Apply(shapes);
  add_optimizer<torch::optim::Adam>(
      "BM_Adam_libtorch", torch::optim::AdamOptions(1e-3), 28);
  add_optimizer<normopt::optim::SGD>(
      "BM_SGD_normopt", normopt::optim::SGDOptions(1e-3).momentum(0.9), 16);
  benchmark::RegisterBenchmark("BM_SGD_aten_fused", BM_SGD_aten_fused)
      ->Apply(shapes);
  add_optimizer<torch::optim::SGD>(
      "BM_SGD_libtorch", torch::optim::SGDOptions(1e-3).momentum(0.9), 16);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
