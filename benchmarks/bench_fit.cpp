// fit()'s cost per optimizer step (issue 24: small models at the speed of a
// hand-written loop). Google Benchmark, one thread (OMP_NUM_THREADS=1):
//
//   BM_FitStep/fused:F/batch:B/features:P  a LinearRegressor trained by
//       fit() with normopt's Adam on 20,000 rows (20 batches when more),
//       fused runs on (1) or off (0); per_step is a fit()'s time (at least
//       5,000 steps) over its steps: the setup and the end-of-epoch loss
//       evaluations included.
//   BM_MlpStep/fit:F  the tests' small MLP (2 -> 16 tanh -> 1), batch 32:
//       fit() (1) against a hand-written LibTorch loop doing the same
//       forward, backward and step (0).
//
// With --stream ROWS FEATURES PATH [REPEATS] it instead writes a CSV of
// ROWS x FEATURES (+ target) to PATH unless it exists, then times a read of
// it by a CsvReader, a streamed fit() epoch (batch 32) and that epoch's
// training-loss pass, each the fastest of REPEATS (3), and prints a table.
//
//   OMP_NUM_THREADS=1 build/benchmarks/bench_fit
//   OMP_NUM_THREADS=1 build/benchmarks/bench_fit --stream 5000000 10 /tmp/big.csv
#include <normopt/normopt.h>

#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

namespace {

using Clock = std::chrono::steady_clock;
namespace nn = normopt::nn;
namespace tr = normopt::train;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

normopt::data::Table random_table(int64_t rows, int64_t features) {
  auto g = at::make_generator<at::CPUGeneratorImpl>(7);
  normopt::data::Table t;
  t.features = at::randn({rows, features}, g) * 10 + 40;
  t.targets = t.features.sum(1, true) * 300 + at::randn({rows, 1}, g) * 1000;
  return t;
}

// Seconds per step, shown in us (Google Benchmark scales the unit).
void per_step_counter(benchmark::State& state, int64_t steps) {
  state.counters["per_step"] =
      benchmark::Counter(static_cast<double>(steps),
                         benchmark::Counter::kIsIterationInvariantRate |
                             benchmark::Counter::kInvert);
}

void BM_FitStep(benchmark::State& state) {
  const bool fused = state.range(0) != 0;
  const int64_t batch = state.range(1), features = state.range(2);
  // At least 20 steps an epoch and 20,000 rows.
  const int64_t rows = std::max<int64_t>(20000, 20 * batch);
  const auto table = random_table(rows, features);
  nn::StandardizedRegressor model{nn::LinearRegressor(features)};
  normopt::optim::Adam adam(model->parameters(),
                            normopt::optim::AdamOptions(1e-3));
  // Epochs for at least 5,000 steps a fit(), so its setup (preparing the
  // rows) is spread as in a real run; each epoch's loss evaluation over
  // every row is counted.
  const int64_t per_epoch = tr::batches_per_epoch(rows, batch);
  const int64_t epochs = (5000 + per_epoch - 1) / per_epoch;
  const auto options = tr::FitOptions()
                           .epochs(epochs)
                           .batch_size(batch)
                           .fuse_steps(fused)
                           .progress(tr::Progress::kOff);
  tr::fit(model, adam, table, options);  // statistics, optimizer state
  for (auto _ : state) {
    tr::fit(model, adam, table, options);
  }
  per_step_counter(state, epochs * per_epoch);
}

void grid(benchmark::internal::Benchmark* b) {
  b->ArgNames({"fused", "batch", "features"});
  for (int64_t fused : {0, 1}) {
    for (int64_t batch : {1, 32, 256, 4096}) {
      for (int64_t features : {4, 16, 64, 256}) {
        b->Args({fused, batch, features});
      }
    }
  }
  b->Unit(benchmark::kMillisecond);
}

// The tests' small MLP: one hidden layer of 16 tanh units.
struct MlpImpl : torch::nn::Module {
  MlpImpl()
      : hidden(register_module("hidden", torch::nn::Linear(2, 16))),
        out(register_module("out", torch::nn::Linear(16, 1))) {}
  torch::Tensor forward(const torch::Tensor& x) {
    return out(torch::tanh(hidden(x)));
  }
  torch::nn::Linear hidden, out;
};
TORCH_MODULE(Mlp);

void BM_MlpStep(benchmark::State& state) {
  const bool through_fit = state.range(0) != 0;
  const int64_t rows = 20000, batch = 32;
  const auto table = random_table(rows, 2);
  torch::manual_seed(0);
  nn::StandardizedRegressor model{Mlp()};
  model->fit_statistics(table.features, table.targets);
  normopt::optim::Adam adam(model->parameters(),
                            normopt::optim::AdamOptions(1e-3));
  const auto options =
      tr::FitOptions().epochs(1).batch_size(batch).progress(tr::Progress::kOff);
  // The hand loop gets fit()'s prepared rows and order, so both do the same
  // steps; it evaluates the loss over all rows once an epoch, as fit() does.
  torch::NoGradGuard no_grad;
  const auto x = model->normalization->forward(table.features);
  const auto y = model->transform_targets(table.targets);
  const int64_t steps = tr::batches_per_epoch(rows, batch);
  for (auto _ : state) {
    if (through_fit) {
      tr::fit(model, adam, table, options);
      continue;
    }
    torch::AutoGradMode grad(true);
    const auto order = torch::randperm(rows);
    for (int64_t s = 0; s < steps; ++s) {
      const auto picked =
          order.narrow(0, s * batch, std::min(batch, rows - s * batch));
      adam.zero_grad();
      auto loss =
          torch::mse_loss(model->regressor.forward(x.index_select(0, picked)),
                          y.index_select(0, picked));
      benchmark::DoNotOptimize(loss.item<double>());
      loss.backward();
      adam.step();
    }
    torch::NoGradGuard eval;
    benchmark::DoNotOptimize(
        torch::mse_loss(model->regressor.forward(x), y).item<double>());
  }
  state.counters["us_per_step"] =
      benchmark::Counter(static_cast<double>(steps) * 1e-6,
                         benchmark::Counter::kIsIterationInvariantRate |
                             benchmark::Counter::kInvert);
}

// --stream: reading alone, a streamed epoch, the loss pass.
int stream(int64_t rows,
           int64_t features,
           const std::string& path,
           int repeats) {
  if (!std::ifstream(path).good()) {
    std::ofstream out(path);
    for (int64_t f = 0; f < features; ++f) {
      out << "x" << f << ",";
    }
    out << "y\n";
    const int64_t block = 100000;
    for (int64_t start = 0; start < rows; start += block) {
      const auto t = random_table(std::min(block, rows - start), features);
      const auto xa = t.features.accessor<float, 2>();
      const auto ya = t.targets.accessor<float, 2>();
      char line[64];
      for (int64_t r = 0; r < t.features.size(0); ++r) {
        for (int64_t f = 0; f < features; ++f) {
          std::snprintf(line, sizeof line, "%.6g,", xa[r][f]);
          out << line;
        }
        std::snprintf(line, sizeof line, "%.7g\n", ya[r][0]);
        out << line;
      }
    }
  }
  normopt::data::CsvReader reader(path);
  // Each quantity is the fastest of `repeats` interleaved passes: on a
  // shared machine the page cache and other work make single passes vary
  // by up to 1.5x.
  double read = 1e300, train_seconds = 1e300, loss_seconds = 1e300;
  int64_t n = 0;
  for (int rep = 0; rep < repeats; ++rep) {
    auto start = Clock::now();
    n = 0;
    reader.rewind();
    while (auto part = reader.next()) {
      n += part->size();
    }
    read = std::min(read, seconds_since(start));
    nn::StandardizedRegressor model{nn::LinearRegressor(features)};
    model->fit_statistics(reader);
    normopt::optim::Adam adam(model->parameters(),
                              normopt::optim::AdamOptions(1e-3));
    const auto options = tr::FitOptions()
                             .epochs(1)
                             .batch_size(32)
                             .progress(tr::Progress::kOff)
                             .callbacks({tr::on_epoch_end(
                                 [&](const tr::EpochLog& log) { (void)log; })});
    // The epoch's time is fit()'s wall_seconds; the loss pass is timed
    // apart by evaluating once more the way fit() does (a read and a
    // forward).
    const auto history = tr::fit(model, adam, reader, options);
    train_seconds = std::min(train_seconds, history.epochs.back().wall_seconds);
    start = Clock::now();
    {
      torch::NoGradGuard no_grad;
      reader.rewind();
      double sum = 0;
      while (auto part = reader.next()) {
        const auto z = model->forward(part->features);
        sum += torch::mse_loss(z, part->targets).item<double>();
      }
      benchmark::DoNotOptimize(sum);
    }
    loss_seconds = std::min(loss_seconds, seconds_since(start));
  }
  std::printf(
      "| rows | features | read only | fit() epoch (steps + loss pass) | "
      "loss pass | steps alone | epoch / read "
      "|\n|---|---|---|---|---|---|---|\n");
  std::printf("| %lld | %lld | %.2f s | %.2f s | %.2f s | %.2f s | %.2fx |\n",
              static_cast<long long>(n),
              static_cast<long long>(features),
              read,
              train_seconds,
              loss_seconds,
              train_seconds - loss_seconds,
              (train_seconds - loss_seconds) / read);
  return 0;
}

}  // namespace

BENCHMARK(BM_FitStep)->Apply(grid);
BENCHMARK(BM_MlpStep)
    ->ArgName("fit")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  if ((argc == 5 || argc == 6) && std::strcmp(argv[1], "--stream") == 0) {
    return stream(std::atoll(argv[2]),
                  std::atoll(argv[3]),
                  argv[4],
                  argc == 6 ? std::max(1, std::atoi(argv[5])) : 3);
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
