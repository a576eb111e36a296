// Optimizer-step benchmarks: normopt's fused ops against torch::optim and
// PyTorch's own fused CPU kernels (at::_fused_adam_ / at::_fused_sgd_), with
// the memory copy bandwidth of the same run as the roofline reference.
// Counters: bytes_per_second (28 B/param for Adam, 16 for SGD with
// momentum, 8 for copy), allocs/step and alloc_bytes/step (CPU allocator).
//
// Run: scripts/bench.sh (builds, runs, and prints the comparison table).
#include <benchmark/benchmark.h>
#include <c10/core/CPUAllocator.h>
#include <normopt/normopt.h>
#include <torch/torch.h>

#include <atomic>

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

template <typename MakeOpt>
void run_optimizer(benchmark::State& state, MakeOpt make, int64_t bpp) {
  auto p = make_params(state.range(0));
  auto opt = make(p);
  opt->step();  // state is created at the first step, not measured
  const int64_t a0 = counting().count, b0 = counting().bytes;
  for (auto _ : state) {
    opt->step();
  }
  report(state, numel(p), bpp, a0, b0);
}

void BM_Adam_normopt(benchmark::State& state) {
  run_optimizer(
      state,
      [](auto& p) {
        return std::make_unique<normopt::optim::Adam>(
            p, normopt::optim::AdamOptions(1e-3));
      },
      28);
}

void BM_Adam_libtorch(benchmark::State& state) {
  run_optimizer(
      state,
      [](auto& p) {
        return std::make_unique<torch::optim::Adam>(
            p, torch::optim::AdamOptions(1e-3));
      },
      28);
}

void BM_SGD_normopt(benchmark::State& state) {
  run_optimizer(
      state,
      [](auto& p) {
        return std::make_unique<normopt::optim::SGD>(
            p, normopt::optim::SGDOptions(1e-3).momentum(0.9));
      },
      16);
}

void BM_SGD_libtorch(benchmark::State& state) {
  run_optimizer(
      state,
      [](auto& p) {
        return std::make_unique<torch::optim::SGD>(
            p, torch::optim::SGDOptions(1e-3).momentum(0.9));
      },
      16);
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
    at::_fused_adam_(params,
                     grads,
                     m,
                     v,
                     {},
                     steps,
                     1e-3,
                     0.9,
                     0.999,
                     0,
                     1e-8,
                     false,
                     false);
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
    at::_fused_sgd_(params, grads, bufs, 0, 0.9, 1e-3, 0, false, false, false);
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

void shapes(benchmark::internal::Benchmark* b) {
  b->ArgName("shape")->Arg(0)->Arg(1)->Arg(2)->UseRealTime();
}

}  // namespace

BENCHMARK(BM_Copy)->UseRealTime();
BENCHMARK(BM_Adam_normopt)->Apply(shapes);
BENCHMARK(BM_Adam_aten_fused)->Apply(shapes);
BENCHMARK(BM_Adam_libtorch)->Apply(shapes);
BENCHMARK(BM_SGD_normopt)->Apply(shapes);
BENCHMARK(BM_SGD_aten_fused)->Apply(shapes);
BENCHMARK(BM_SGD_libtorch)->Apply(shapes);

int main(int argc, char** argv) {
  counting();  // install the counting allocator before any tensor exists
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
