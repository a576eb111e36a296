// A rank of the multi-process tests (run by tests/python/test_distributed.py
// through scripts/launch.sh). Every rank holds the whole synthetic data set
// to compute the single-process reference, but trains on its shard only.
//   dist_check adapt | fit | die | csv FILE | resume DIR
#include <normopt/distributed/distributed.h>
#include <normopt/normopt.h>
#include <torch/torch.h>

#include <dirent.h>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <stdexcept>
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

// Counts the hooks fit() calls.
struct CountingCallback : train::Callback {
  int64_t epoch_ends = 0, steps = 0, measured = 0;
  void before_step(train::FitState& /*state*/, int64_t /*rows*/) override {
    ++steps;
  }
  void on_epoch_measured(train::FitState& /*state*/,
                         train::EpochLog& /*log*/) override {
    ++measured;
  }
  void on_epoch_end(train::FitState& /*state*/,
                    const train::EpochLog& /*log*/) override {
    ++epoch_ends;
  }
};

// CsvOptions in float64, with the features $NORMOPT_CHECK_FEATURES lists
// (comma-separated), if set.
data::CsvOptions csv_options() {
  auto options = data::CsvOptions().dtype(torch::kFloat64);
  if (const char* features = std::getenv("NORMOPT_CHECK_FEATURES")) {
    std::vector<std::string> names;
    std::string list = features;
    for (size_t at = 0; at <= list.size();) {
      const size_t comma = std::min(list.find(',', at), list.size());
      names.push_back(list.substr(at, comma - at));
      at = comma + 1;
    }
    options.features(names);
  }
  return options;
}

// The index of this rank's first row in the file: the row counts of the
// ranks before it.
int64_t first_row(const data::Table& part,
                  c10d::ProcessGroup& group,
                  int rank,
                  int world) {
  std::vector<std::vector<torch::Tensor>> sizes(1);
  std::vector<torch::Tensor> mine{torch::tensor({part.size()})};
  for (int r = 0; r < world; ++r) {
    sizes[0].push_back(torch::empty_like(mine[0]));
  }
  group.allgather(sizes, mine)->wait();
  int64_t begin = 0;
  for (int r = 0; r < rank; ++r) {
    begin += sizes[0][r].item<int64_t>();
  }
  return begin;
}

// The largest relative error of the statistics fitted over the ranks'
// shards against one process's on the whole file.
double csv_statistics_error(const data::Table& part,
                            const data::Table& whole,
                            c10d::ProcessGroup& group) {
  nn::StandardizedRegressor model{nn::LinearRegressor(whole.features.size(1))};
  distributed::fit_statistics(model, part.features, part.targets, group);
  nn::StandardizedRegressor reference{
      nn::LinearRegressor(whole.features.size(1))};
  reference->fit_statistics(whole.features, whole.targets);
  return std::max(
      {rel(model->normalization->mean, reference->normalization->mean),
       rel(model->normalization->variance, reference->normalization->variance),
       rel(model->target->scale, reference->target->scale)});
}

// Full-batch data-parallel training on the byte-range shards against the
// History of one process on the whole file: the largest relative difference
// of train_mse over 15 epochs.
double csv_history_difference(const data::Table& part,
                              const data::Table& whole,
                              c10d::ProcessGroup& group) {
  auto fit_options = train::FitOptions().epochs(15).batch_size(0).progress(
      train::Progress::kOff);
  auto trained = make_model(whole.features.size(1));
  optim::Adam adam(trained->parameters(), optim::AdamOptions(1e-2));
  auto history = distributed::fit(trained, adam, part, fit_options, group);
  auto single = make_model(whole.features.size(1));
  optim::Adam adam_single(single->parameters(), optim::AdamOptions(1e-2));
  auto history_single = train::fit(single, adam_single, whole, fit_options);
  double h = 0;
  for (size_t i = 0; i < history_single.epochs.size(); ++i) {
    const double want = history_single.epochs[i].train_mse;
    h = std::max(h, std::abs(history.epochs[i].train_mse - want) / want);
  }
  return h;
}

// csv FILE: each rank's read_csv_shard is its run of the file's rows, and
// the statistics and training on the shards equal one process's.
int check_csv(c10d::ProcessGroup& group, const std::string& csv) {
  const int rank = group.getRank(), world = group.getSize();
  const auto options = csv_options();
  data::Table part;
  try {
    part = distributed::read_csv_shard(csv, options, group);
  } catch (const c10::Error& e) {
    std::printf("rank %d csv error: %s\n", rank, e.what_without_backtrace());
    return 3;
  }
  auto whole = data::read_csv(csv, options);
  // The shards, in rank order, are the file's rows.
  const int64_t begin = first_row(part, group, rank, world);
  const bool same =
      begin + part.size() <= whole.size() &&
      torch::equal(part.features,
                   whole.features.narrow(0, begin, part.size())) &&
      torch::equal(part.targets, whole.targets.narrow(0, begin, part.size()));
  std::printf("rank %d/%d csv: rows [%lld, %lld) %s\n",
              rank,
              world,
              static_cast<long long>(begin),
              static_cast<long long>(begin + part.size()),
              same ? "equal the file's" : "DIFFER from the file's");
  const double e = csv_statistics_error(part, whole, group);
  std::printf("rank %d/%d csv: %lld of %lld rows, max relative error %.3g\n",
              rank,
              world,
              static_cast<long long>(part.size()),
              static_cast<long long>(whole.size()),
              e);
  const double h = csv_history_difference(part, whole, group);
  std::printf(
      "rank %d/%d csv: History (15 epochs) vs one process: max "
      "relative difference %.3g\n",
      rank,
      world,
      h);
  return e < 1e-12 && same && h < 1e-10 ? 0 : 1;
}

// adapt: statistics fitted over the shards equal one process's.
int check_adapt(const data::Table& table,
                const data::Table& part,
                c10d::ProcessGroup& group) {
  nn::Normalization norm;
  distributed::adapt(norm, part.features, group);
  nn::Normalization whole;
  whole->adapt(table.features);
  nn::TargetStandardizer ts, ts_whole;
  distributed::fit(ts, part.targets, group);
  ts_whole->fit(table.targets);
  nn::TargetStandardizer mm(
      nn::TargetStandardizerOptions().method(nn::TargetScaling::kMinMax));
  nn::TargetStandardizer mm_whole(
      nn::TargetStandardizerOptions().method(nn::TargetScaling::kMinMax));
  distributed::fit(mm, part.targets, group);
  mm_whole->fit(table.targets);
  const double e = std::max({rel(norm->mean, whole->mean),
                             rel(norm->variance, whole->variance),
                             rel(ts->loc, ts_whole->loc),
                             rel(ts->scale, ts_whole->scale),
                             rel(mm->loc, mm_whole->loc),
                             rel(mm->scale, mm_whole->scale)});
  std::printf("rank %d/%d adapt: count %lld, max relative error %.3g\n",
              group.getRank(),
              group.getSize(),
              static_cast<long long>(norm->count.item<int64_t>()),
              e);
  return (e < 1e-12 && norm->count.item<int64_t>() == 1001) ? 0 : 1;
}

using Run = std::pair<train::History, std::vector<torch::Tensor>>;

// A data-parallel SGD run with early stopping and ReduceLROnPlateau,
// checkpointed to `checkpoint`, resumed from `resume` (each "" for none),
// throwing at the end of epoch `crash_at` (-1: never).
Run train_resumable(const data::Table& part,
                    c10d::ProcessGroup& group,
                    const std::string& checkpoint,
                    const std::string& resume,
                    int64_t crash_at) {
  using Plateau = torch::optim::ReduceLROnPlateauScheduler;
  auto model = make_model(2);
  optim::SGD sgd(model->parameters(), optim::SGDOptions(0.01).momentum(0.9));
  auto options = train::FitOptions()
                     .epochs(200)
                     .batch_size(167)  // equal steps on 2 or 3 ranks
                     .progress(train::Progress::kOff)
                     .early_stopping_patience(4)
                     .early_stopping_min_delta(1e-9)
                     .plateau(std::make_shared<Plateau>(
                         sgd, Plateau::SchedulerMode::min, 0.5f, 1))
                     .checkpoint_path(checkpoint)
                     .resume_from(resume);
  options.callbacks(
      {train::on_epoch_end([crash_at](const train::EpochLog& log) {
        if (log.epoch == crash_at) {
          throw std::runtime_error("crash");
        }
      })});
  auto h = distributed::fit(model, sgd, part, options, group);
  return std::make_pair(h, model->parameters());
}

// The entries of folder `dir` not starting with '.'. Counted with POSIX: no
// std::filesystem beside LibTorch (see csrc/util/files.h).
int64_t count_files(const std::string& dir) {
  int64_t files = 0;
  if (DIR* folder = ::opendir(dir.c_str())) {
    while (const dirent* entry = ::readdir(folder)) {
      files += entry->d_name[0] != '.';
    }
    ::closedir(folder);
  }
  return files;
}

// Equal epoch counts, stopping, train_mse and lr of every epoch, and
// parameters.
bool same_runs(const Run& a, const Run& b) {
  const auto& [ha, pa] = a;
  const auto& [hb, pb] = b;
  bool same = ha.epochs.size() == hb.epochs.size() &&
              ha.stopped_early == hb.stopped_early;
  for (size_t e = 0; same && e < ha.epochs.size(); ++e) {
    same = ha.epochs[e].train_mse == hb.epochs[e].train_mse &&
           ha.epochs[e].lr == hb.epochs[e].lr;
  }
  for (size_t i = 0; same && i < pa.size(); ++i) {
    same = torch::equal(pa[i], pb[i]);
  }
  return same;
}

// resume DIR: a data-parallel run checkpointed by rank 0, crashed on every
// rank at epoch 5 and resumed by every rank from rank 0's file, equals the
// run that never stopped.
int check_resume(const data::Table& part,
                 c10d::ProcessGroup& group,
                 const std::string& dir) {
  const int rank = group.getRank(), world = group.getSize();
  const std::string path = dir + "/run.pt";
  const Run whole = train_resumable(part, group, "", "", -1);
  const auto& history = whole.first;
  try {
    train_resumable(part, group, path, "", 5);
    std::printf("rank %d: the run ended after %zu epochs, before the crash\n",
                rank,
                history.epochs.size());
    return 1;  // not reached: the crash throws
  } catch (const std::runtime_error&) {
  }
  group.barrier()->wait();
  const int64_t files = count_files(dir);
  const bool same =
      same_runs(whole, train_resumable(part, group, path, path, -1));
  std::printf(
      "rank %d/%d resume: %zu epochs, stopped early %d, lr %g -> %g, "
      "files in the checkpoint folder %lld, identical to the uninterrupted "
      "run %d\n",
      rank,
      world,
      history.epochs.size(),
      static_cast<int>(history.stopped_early),
      history.epochs.front().lr,
      history.epochs.back().lr,
      static_cast<long long>(files),
      static_cast<int>(same));
  return same && files == 1 && history.stopped_early &&
                 history.epochs.back().lr < history.epochs.front().lr
             ? 0
             : 1;
}

// The largest relative difference of the parameters and of every measured
// field of every epoch (the validation's included) against the reference.
double fit_difference(const nn::StandardizedRegressor& model,
                      const nn::StandardizedRegressor& reference,
                      const train::History& history,
                      const train::History& history_ref) {
  double e = 0;
  auto a = model->parameters(), b = reference->parameters();
  for (size_t i = 0; i < a.size(); ++i) {
    e = std::max(e, rel(a[i], b[i]));
  }
  for (size_t i = 0; i < history_ref.epochs.size(); ++i) {
    for (const auto& field : train::kEpochLogFields) {
      if (field.combine == train::Combine::kSame) {
        continue;
      }
      const double want = history_ref.epochs[i].*field.member;
      const double got = history.epochs[i].*field.member;
      e = std::max(e, std::abs(got - want) / std::max(std::abs(want), 1e-300));
    }
  }
  return e;
}

// fit: full-batch data-parallel training (with validation and a caller's
// callback) equals one process's. die: rank 1 exits at epoch 5, and the
// others' fit() must throw.
int check_fit(const std::string& mode,
              const data::Table& table,
              const data::Table& part,
              c10d::ProcessGroup& group) {
  const int rank = group.getRank(), world = group.getSize();
  auto options = train::FitOptions().epochs(60).batch_size(0).progress(
      train::Progress::kOff);
  if (mode == "die") {
    options.callbacks({train::on_epoch_end([rank](const train::EpochLog& log) {
      if (rank == 1 && log.epoch == 5) {
        std::fprintf(stderr, "rank 1: exiting on purpose at epoch 5\n");
        std::_Exit(3);
      }
    })});
  }
  // A caller's callback under distributed::fit: it must still run, once per
  // epoch and step on every rank.
  auto counter = std::make_shared<CountingCallback>();
  auto distributed_options = options;
  auto reference_options = options;
  if (mode == "fit") {
    distributed_options.callbacks({counter});
    // Validation: each rank its shard, the reference the whole set.
    const auto validation = data::synthetic_income(301, 8, torch::kFloat64);
    distributed_options.validation(distributed::shard(validation, rank, world));
    reference_options.validation(validation);
  }
  auto model = make_model(2);
  optim::Adam adam(model->parameters(), optim::AdamOptions(1e-2));
  auto history =
      distributed::fit(model, adam, part, distributed_options, group);
  if (mode == "die") {
    return 0;  // not reached by a surviving rank: fit() throws
  }
  auto reference = make_model(2);
  optim::Adam adam_ref(reference->parameters(), optim::AdamOptions(1e-2));
  auto history_ref = train::fit(reference, adam_ref, table, reference_options);
  const double e = fit_difference(model, reference, history, history_ref);
  std::printf(
      "rank %d/%d fit: max relative difference of parameters and losses "
      "%.3g\n",
      rank,
      world,
      e);
  std::printf(
      "rank %d/%d user callback: %lld epoch ends, %lld steps, %lld "
      "measurements\n",
      rank,
      world,
      static_cast<long long>(counter->epoch_ends),
      static_cast<long long>(counter->steps),
      static_cast<long long>(counter->measured));
  const bool counted = counter->epoch_ends == 60 && counter->steps == 60 &&
                       counter->measured == 60;
  return e < 1e-6 && counted ? 0 : 1;
}

// `arg` is the CSV file (csv) or the checkpoint folder (resume).
int run(const std::string& mode, const std::string& arg) {
  auto group = distributed::init_process_group(
      distributed::InitOptions().timeout(std::chrono::seconds(20)));
  if (mode == "csv") {
    return check_csv(*group, arg);
  }
  const auto table = data::synthetic_income(1001, 7, torch::kFloat64);
  const auto part =
      distributed::shard(table, group->getRank(), group->getSize());
  if (mode == "adapt") {
    return check_adapt(table, part, *group);
  }
  if (mode == "resume") {
    return check_resume(part, *group, arg);
  }
  return check_fit(mode, table, part, *group);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode != "adapt" && mode != "fit" && mode != "die" &&
      !((mode == "csv" || mode == "resume") && argc > 2)) {
    std::cerr << "usage: dist_check adapt|fit|die|csv FILE|resume DIR (under "
                 "scripts/launch.sh; csv reads the features listed in "
                 "$NORMOPT_CHECK_FEATURES, comma-separated, if set)\n";
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
