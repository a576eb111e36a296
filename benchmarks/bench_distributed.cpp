// 1 vs N ranks of data-parallel training on a large synthetic income set:
// wall time per epoch and bytes all-reduced per step. Run under
// scripts/launch.sh (see benchmarks/RESULTS.md):
//   scripts/launch.sh -n 2 build/benchmarks/bench_distributed [rows] [epochs]
// and of reading a CSV file plus its statistics (each rank its byte range,
// or with --whole every rank the whole file):
//   scripts/launch.sh -n 2 build/benchmarks/bench_distributed --csv FILE [--whole]
#include <normopt/distributed/distributed.h>
#include <normopt/normopt.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

namespace {

// Reading plus statistics of a CSV file: each rank parses its byte range
// (read_csv_shard), or with `whole` reads the whole file and keeps its rows
// (what read_csv_shard did before), then the statistics of the union.
int bench_csv(const std::string& path, bool whole, int repeat) {
  using namespace normopt;
  auto group = distributed::init_process_group();
  const int rank = group->getRank(), world = group->getSize();
  const auto options = data::CsvOptions();
  double best = 1e300;
  int64_t mine = 0;
  for (int r = 0; r < repeat; ++r) {
    group->barrier()->wait();
    const auto start = std::chrono::steady_clock::now();
    auto part =
        whole ? distributed::shard(data::read_csv(path, options), rank, world)
              : distributed::read_csv_shard(path, options, *group);
    nn::StandardizedRegressor model{nn::LinearRegressor(part.features.size(1))};
    distributed::fit_statistics(model, part.features, part.targets, *group);
    group->barrier()->wait();
    best = std::min(
        best,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count());
    mine = part.size();
  }
  std::printf(
      "rank %d/%d: %lld rows\n", rank, world, static_cast<long long>(mine));
  if (rank == 0) {
    std::printf(
        "csv %s: ranks %d, threads per rank %d, %s: read + statistics %.3f s "
        "(best of %d)\n",
        path.c_str(),
        world,
        at::get_num_threads(),
        whole ? "every rank reads the whole file" : "each rank its byte range",
        best,
        repeat);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace normopt;
  if (argc > 2 && std::string(argv[1]) == "--csv") {
    const bool whole = argc > 3 && std::string(argv[3]) == "--whole";
    return bench_csv(argv[2], whole, 3);
  }
  const int64_t rows = argc > 1 ? std::stoll(argv[1]) : 10'000'000;
  const int64_t epochs = argc > 2 ? std::stoll(argv[2]) : 20;
  auto group = distributed::init_process_group();
  const int rank = group->getRank(), world = group->getSize();
  auto part = distributed::shard(data::synthetic_income(rows, 3), rank, world);
  torch::manual_seed(0);
  nn::StandardizedRegressor model{nn::LinearRegressor(2)};
  optim::Adam adam(model->parameters(), optim::AdamOptions(1e-2));
  int64_t params = 0;
  for (const auto& p : model->parameters())
    params += p.numel();
  auto start = std::chrono::steady_clock::now();
  auto history = distributed::fit(
      model,
      adam,
      part,
      train::FitOptions().epochs(epochs).batch_size(0).progress(
          train::Progress::kOff),
      *group);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  if (rank == 0) {
    // One all-reduce per step: every gradient and the row count, float64.
    std::printf(
        "ranks %d, rows %lld (%lld per rank), %lld full-batch epochs: %.3f s "
        "(%.1f ms per epoch incl. statistics), %lld bytes all-reduced per "
        "step, final MSE %.6g\n",
        world,
        static_cast<long long>(rows),
        static_cast<long long>(part.size()),
        static_cast<long long>(epochs),
        seconds,
        1e3 * seconds / static_cast<double>(epochs),
        static_cast<long long>((params + 1) * 8),
        history.epochs.back().train_mse);
  }
  return 0;
}
