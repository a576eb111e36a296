// A rank of the multi-process tests (run by tests/python/test_distributed.py
// through scripts/launch.sh). Every rank holds the whole synthetic data set
// to compute the single-process reference, but trains on its shard only.
//   dist_check adapt | fit | die | csv FILE
#include <normopt/distributed/distributed.h>
#include <normopt/normopt.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

using namespace normopt;

namespace {

double rel(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max() /
          b.to(torch::kFloat64).abs().max().clamp_min(1e-300))
      .item<double>();
}

nn::StandardizedRegressor make_model(int64_t features) {
  torch::manual_seed(11);
  nn::StandardizedRegressor model{nn::LinearRegressor(features)};
  model->to(torch::kFloat64);
  return model;
}

int run(const std::string& mode, const std::string& csv) {
  auto group = distributed::init_process_group(
      distributed::InitOptions().timeout(std::chrono::seconds(20)));
  const int rank = group->getRank(), world = group->getSize();
  if (mode == "csv") {
    auto options = data::CsvOptions().dtype(torch::kFloat64);
    auto part = distributed::read_csv_shard(csv, options, *group);
    auto whole = data::read_csv(csv, options);
    nn::StandardizedRegressor model{
        nn::LinearRegressor(whole.features.size(1))};
    distributed::fit_statistics(model, part.features, part.targets, *group);
    nn::StandardizedRegressor reference{
        nn::LinearRegressor(whole.features.size(1))};
    reference->fit_statistics(whole.features, whole.targets);
    const double e = std::max(
        {rel(model->normalization->mean, reference->normalization->mean),
         rel(model->normalization->variance,
             reference->normalization->variance),
         rel(model->target->scale, reference->target->scale)});
    std::printf("rank %d/%d csv: %lld of %lld rows, max relative error %.3g\n",
                rank,
                world,
                static_cast<long long>(part.size()),
                static_cast<long long>(whole.size()),
                e);
    return e < 1e-12 ? 0 : 1;
  }
  auto table = data::synthetic_income(1001, 7, torch::kFloat64);
  auto part = distributed::shard(table, rank, world);

  if (mode == "adapt") {
    nn::Normalization norm;
    distributed::adapt(norm, part.features, *group);
    nn::Normalization whole;
    whole->adapt(table.features);
    nn::TargetStandardizer ts, ts_whole;
    distributed::fit(ts, part.targets, *group);
    ts_whole->fit(table.targets);
    nn::TargetStandardizer mm(
        nn::TargetStandardizerOptions().method(nn::TargetScaling::kMinMax));
    nn::TargetStandardizer mm_whole(
        nn::TargetStandardizerOptions().method(nn::TargetScaling::kMinMax));
    distributed::fit(mm, part.targets, *group);
    mm_whole->fit(table.targets);
    const double e = std::max({rel(norm->mean, whole->mean),
                               rel(norm->variance, whole->variance),
                               rel(ts->loc, ts_whole->loc),
                               rel(ts->scale, ts_whole->scale),
                               rel(mm->loc, mm_whole->loc),
                               rel(mm->scale, mm_whole->scale)});
    std::printf("rank %d/%d adapt: count %lld, max relative error %.3g\n",
                rank,
                world,
                static_cast<long long>(norm->count.item<int64_t>()),
                e);
    return (e < 1e-12 && norm->count.item<int64_t>() == 1001) ? 0 : 1;
  }

  auto options = train::FitOptions().epochs(60).batch_size(0).progress(
      train::Progress::kOff);
  if (mode == "die") {
    options.on_epoch_end([rank](const train::EpochLog& log) {
      if (rank == 1 && log.epoch == 5) {
        std::fprintf(stderr, "rank 1: exiting on purpose at epoch 5\n");
        std::_Exit(3);
      }
    });
  }
  auto model = make_model(2);
  optim::Adam adam(model->parameters(), optim::AdamOptions(1e-2));
  auto history = distributed::fit(model, adam, part, options, *group);
  if (mode == "die") {
    return 0;  // not reached by a surviving rank: fit() throws
  }
  auto reference = make_model(2);
  optim::Adam adam_ref(reference->parameters(), optim::AdamOptions(1e-2));
  auto history_ref = train::fit(reference, adam_ref, table, options);
  double e = 0;
  auto a = model->parameters(), b = reference->parameters();
  for (size_t i = 0; i < a.size(); ++i) {
    e = std::max(e, rel(a[i], b[i]));
  }
  const double mse_gap = std::abs(history.epochs.back().train_mse -
                                  history_ref.epochs.back().train_mse) /
                         history_ref.epochs.back().train_mse;
  e = std::max(e, mse_gap);
  std::printf(
      "rank %d/%d fit: max relative difference of parameters and final MSE "
      "%.3g\n",
      rank,
      world,
      e);
  return e < 1e-6 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode != "adapt" && mode != "fit" && mode != "die" &&
      !(mode == "csv" && argc > 2)) {
    std::cerr << "usage: dist_check adapt|fit|die|csv FILE (under "
                 "scripts/launch.sh)\n";
    return 2;
  }
  try {
    return run(mode, argc > 2 ? argv[2] : "");
  } catch (const std::exception& e) {
    const char* rank = std::getenv("RANK");
    std::cerr << "rank " << (rank ? rank : "?") << ": error: " << e.what()
              << "\n";
    return 1;
  }
}
