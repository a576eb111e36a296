// The main job: why Adam stalls on incomes in dollars, and the fix.
//
// Trains a linear model (features z-scored) with Adam and SGD at two learning
// rates, on raw and on standardized targets (8 runs), prints final MSE in
// dollars² and the gap to the closed-form optimum, and writes each run's
// history as CSV and JSON (scripts/plot_history.py draws them).
//
//   compare_optimizers                         # built-in synthetic incomes
//   compare_optimizers --data my.csv --target income --out results/
//   torchrun --no-python --standalone --nproc-per-node 2 compare_optimizers
//   compare_optimizers --checkpoint-dir ckpt/      # killed? add --resume
//   compare_optimizers --data huge.csv --stream    # larger than memory
#include <normopt/normopt.h>  // <normopt/config.h> too
#include <torch/torch.h>
#include <CLI/CLI.hpp>
#if NORMOPT_HAVE_DISTRIBUTED  // built with normopt::distributed
#include <normopt/distributed/distributed.h>
#endif

#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <limits>
#include <optional>
#include <string>
#include <vector>

using namespace normopt;

namespace {

// Folders and files through POSIX, not std::filesystem: the PyTorch wheels
// export their own copy of it, which crashes with torch 2.11+cu130 (see
// csrc/util/files.h).
bool exists(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0;
}

// mkdir -p: `path` and its missing parents; throws naming the folder.
void make_folders(const std::string& path) {
  for (size_t end = path.find('/', 1);; end = path.find('/', end + 1)) {
    const std::string part = path.substr(0, end);
    if (!part.empty() && ::mkdir(part.c_str(), 0777) != 0 && errno != EEXIST) {
      throw std::runtime_error("compare_optimizers: cannot create folder '" +
                               part + "': " + std::strerror(errno));
    }
    if (end == std::string::npos) {
      return;
    }
  }
}

// Moves `files` from folder `from` into folder `to` (rename: atomic per
// file), then removes `from`; with `to` empty, deletes them instead.
void move_files(const std::string& from,
                const std::vector<std::string>& files,
                const std::string& to) {
  for (const auto& file : files) {
    const std::string source = from + "/" + file;
    if (to.empty()) {
      std::remove(source.c_str());
    } else if (std::rename(source.c_str(), (to + "/" + file).c_str()) != 0) {
      throw std::runtime_error("compare_optimizers: cannot move '" + source +
                               "' into '" + to + "': " + std::strerror(errno));
    }
  }
  ::rmdir(from.c_str());
}

struct Args {
  std::string data, target, out = "out/compare", checkpoint_dir;
  int64_t epochs = 200, batch_size = 32, checkpoint_every = 10;
  bool resume = false, stream = false;
  int64_t shuffle_buffer = int64_t{1} << 20;
  uint64_t seed = 0;
  std::vector<std::string> optimizers = {"adam", "sgd"};
  std::vector<double> lrs = {1e-2, 1e-3};
};

// A CLI11 check that the value is a whole decimal number in [lo, hi]
// (std::from_chars, all of it): "2.5", "1e30", "-1" for an unsigned value
// and out-of-range values are refused, never truncated or wrapped.
template <typename T>
CLI::Validator integer_in(T lo, T hi) {
  const std::string range =
      "an integer from " + std::to_string(lo) + " to " + std::to_string(hi);
  return CLI::Validator(
      [lo, hi, range](std::string& text) -> std::string {
        T value{};
        const char* end = text.data() + text.size();
        const auto [stop, error] = std::from_chars(text.data(), end, value);
        if (error == std::errc() && stop == end && value >= lo && value <= hi) {
          return "";
        }
        return "expects " + range + ", got '" + text + "'";
      },
      "");
}

// A learning rate: a finite number above 0 ("nan", "inf" and "0" are
// refused here, before anything is written).
CLI::Validator positive_finite() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        char* end = nullptr;
        const double value = std::strtod(text.c_str(), &end);
        if (!text.empty() && *end == '\0' && std::isfinite(value) &&
            value > 0) {
          return "";
        }
        return "expects a finite number above 0, got '" + text + "'";
      },
      "");
}

// The flags, in --help's order: what to train on, how to train, where the
// results go, and reading in parts.
void add_data_options(CLI::App& app, Args& a) {
  app.add_option("--data",
                 a.data,
                 "numeric CSV with a header row (default: built-in "
                 "synthetic income data, 20 rows)")
      ->type_name("FILE");
  app.add_option(
         "--target", a.target, "target column of --data (default: the last)")
      ->type_name("COL");
}

void add_training_options(CLI::App& app, Args& a) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  app.add_option("--epochs", a.epochs, "epochs per run")
      ->type_name("N")
      ->check(integer_in<int64_t>(1, kMax))
      ->capture_default_str();
  app.add_option("--batch-size", a.batch_size, "rows per step, 0 = full batch")
      ->type_name("N")
      ->check(integer_in<int64_t>(0, kMax))
      ->capture_default_str();
  app.add_option(
         "--optimizers", a.optimizers, "comma-separated: adam, adamw, sgd")
      ->type_name("LIST")
      ->delimiter(',')
      ->check(CLI::IsMember({"adam", "adamw", "sgd"}))
      ->capture_default_str();
  app.add_option("--lrs", a.lrs, "comma-separated learning rates")
      ->type_name("LIST")
      ->delimiter(',')
      ->check(positive_finite())
      ->capture_default_str();
  app.add_option("--seed",
                 a.seed,
                 "seed for initial weights and shuffling (0 to 2^64 - 1)")
      ->type_name("S")
      ->check(integer_in<uint64_t>(0, std::numeric_limits<uint64_t>::max()))
      ->capture_default_str();
}

void add_output_options(CLI::App& app, Args& a) {
  app.add_option("--out", a.out, "output folder")
      ->type_name("DIR")
      ->capture_default_str();
  app.add_option("--checkpoint-dir",
                 a.checkpoint_dir,
                 "save each run's checkpoint as D/<run>.pt")
      ->type_name("D");
  app.add_option("--checkpoint-every",
                 a.checkpoint_every,
                 "epochs between checkpoints (the last epoch is always saved)")
      ->type_name("N")
      ->check(integer_in<int64_t>(1, std::numeric_limits<int64_t>::max()))
      ->capture_default_str();
  app.add_flag("--resume",
               a.resume,
               "continue each run from its checkpoint in --checkpoint-dir "
               "(runs without one start afresh; the result equals an "
               "uninterrupted run)");
}

void add_stream_options(CLI::App& app, Args& a) {
  app.add_flag("--stream",
               a.stream,
               "read --data in parts (data::CsvReader) each epoch instead of "
               "whole: for files larger than memory; no closed-form optimum, "
               "one process");
  app.add_option("--shuffle-buffer",
                 a.shuffle_buffer,
                 "with --stream: rows shuffled together")
      ->type_name("N")
      ->check(integer_in<int64_t>(1, std::numeric_limits<int64_t>::max()))
      ->capture_default_str();
}

// The flags that only make sense together; throws naming the missing one.
void check_combinations(const Args& a) {
  TORCH_CHECK(!a.resume || !a.checkpoint_dir.empty(),
              "--resume needs --checkpoint-dir (the folder of the checkpoints "
              "to continue from)");
  TORCH_CHECK(!a.optimizers.empty() && !a.lrs.empty(),
              "--optimizers and --lrs need at least one value each");
  TORCH_CHECK(a.target.empty() || !a.data.empty(),
              "--target needs --data (the built-in data set has its own)");
  TORCH_CHECK(!a.stream || !a.data.empty(),
              "--stream needs --data (the file to read in parts)");
  TORCH_CHECK(!a.stream || a.batch_size >= 1,
              "--stream needs --batch-size >= 1 (a full batch would hold "
              "every row in memory)");
  TORCH_CHECK(!a.stream || std::getenv("WORLD_SIZE") == nullptr,
              "--stream runs in one process; under torchrun, each rank reads "
              "its share of --data without it");
}

// Parses the command line (CLI11): integers must be integers in range,
// unknown flags are named, --help is generated. Returns nullopt after
// printing --help or a parse error (the exit code in *code).
std::optional<Args> parse(int argc, char** argv, int* code) {
  Args a;
  CLI::App app{
      "The main job: trains a linear model with each optimizer and learning "
      "rate on raw and on standardized targets, prints the final MSE and the "
      "gap to the closed-form optimum, and writes each run's history.",
      "compare_optimizers"};
  app.get_formatter()->column_width(30);
  add_data_options(app, a);
  add_training_options(app, a);
  add_output_options(app, a);
  add_stream_options(app, a);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    *code = app.exit(e);  // --help on stdout, errors on stderr
    return std::nullopt;
  }
  check_combinations(a);
  return a;
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(
    const std::string& name, std::vector<torch::Tensor> params, double lr) {
  if (name == "adam") {
    return std::make_unique<optim::Adam>(params, optim::AdamOptions(lr));
  }
  if (name == "adamw") {
    return std::make_unique<optim::AdamW>(params, optim::AdamWOptions(lr));
  }
  return std::make_unique<optim::SGD>(params, optim::SGDOptions(lr));
}

// The forecast trajectory beside a run's history: step, epoch, MSE.
void write_forecast(const std::string& path,
                    const train::Diagnosis& d,
                    int64_t steps_per_epoch) {
  std::ofstream out(path);
  out << "step,epoch,forecast_mse\n";
  out.precision(17);
  for (const auto& p : d.trajectory) {
    out << p.step << ","
        << static_cast<double>(p.step) / static_cast<double>(steps_per_epoch)
        << "," << p.mse << "\n";
  }
  TORCH_CHECK(out.good(), "compare_optimizers: cannot write ", path);
}

std::string lr_text(double lr) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", lr);
  return buf;
}

// The data every run trains on. Under --stream, `table` is the first part
// (for the diagnostics), the runs read the file again each epoch, and there
// is no closed-form optimum.
struct Data {
  std::optional<data::CsvReader> reader;
  data::Table table;
  int64_t total_rows = 0;
  train::LeastSquares optimum;
};

Data load_data(const Args& args) {
  Data d;
  if (args.stream) {
    d.reader.emplace(args.data, data::CsvOptions().target(args.target));
    d.table = *d.reader->next();  // a file without rows throws here
    d.total_rows = d.table.size();
    while (auto part = d.reader->next()) {
      d.total_rows += part->size();
    }
    return d;
  }
  d.table =
      args.data.empty()
          ? data::synthetic_income(20, 0)
          : data::read_csv(args.data, data::CsvOptions().target(args.target));
  d.total_rows = d.table.size();
  d.optimum = train::solve_least_squares(d.table.features, d.table.targets);
  return d;
}

// Under torchrun (WORLD_SIZE set) every run is data-parallel: each rank
// trains on its shard, rank 0 reports and writes the files.
struct Ranks {
  int rank = 0;
  data::Table mine;  // this rank's rows (all of them in one process)
#if NORMOPT_HAVE_DISTRIBUTED
  c10::intrusive_ptr<c10d::ProcessGroup> group;
#endif
  bool report() const {  // one report and one set of files
    return rank == 0;
  }
};

Ranks join_ranks(const data::Table& table) {
  Ranks ranks;
  ranks.mine = table;
#if NORMOPT_HAVE_DISTRIBUTED
  if (std::getenv("WORLD_SIZE") != nullptr) {
    ranks.group = distributed::init_process_group();
    ranks.rank = ranks.group->getRank();
    ranks.mine = distributed::shard(table, ranks.rank, ranks.group->getSize());
  }
#endif
  return ranks;
}

void print_data(const Args& args, const Data& d) {
  std::printf(
      "data: %s, %lld rows, features [",
      args.data.empty() ? "built-in synthetic incomes" : args.data.c_str(),
      static_cast<long long>(d.total_rows));
  for (size_t i = 0; i < d.table.feature_names.size(); ++i) {
    std::printf("%s%s", i ? ", " : "", d.table.feature_names[i].c_str());
  }
  if (args.stream) {
    std::printf(
        "], target %s (read in parts: --stream)\nclosed-form "
        "optimum MSE: not computed under --stream\n\n",
        d.table.target_name.c_str());
  } else {
    std::printf("], target %s\nclosed-form optimum MSE: %.6g\n\n",
                d.table.target_name.c_str(),
                d.optimum.mse);
  }
}

// One run of the plan: an optimizer at a learning rate, on raw or on
// standardized targets.
struct RunSpec {
  std::string name;  // e.g. adam_lr0.01_raw: its files' names
  std::string optimizer;
  double lr;
  bool standardized;
};

// Every optimizer at every learning rate, on raw targets, then on
// standardized ones.
std::vector<RunSpec> plan_runs(const Args& args) {
  std::vector<RunSpec> plan;
  for (bool standardized : {false, true}) {
    for (const auto& optimizer : args.optimizers) {
      for (double lr : args.lrs) {
        plan.push_back({optimizer + "_lr" + lr_text(lr) +
                            (standardized ? "_standardized" : "_raw"),
                        optimizer,
                        lr,
                        standardized});
      }
    }
  }
  return plan;
}

// What every run shares.
struct Setup {
  const Args& args;
  Data& data;
  const Ranks& ranks;
  int64_t steps_per_epoch;  // on this rank's rows (all of them under --stream)
};

int64_t steps_per_epoch(const Args& args, const Data& d, const Ranks& ranks) {
  return train::batches_per_epoch(
      args.stream ? d.total_rows : ranks.mine.size(), args.batch_size);
}

// A run's result: its History and diagnose()'s forecast made before it.
struct Result {
  RunSpec spec;
  train::History history;
  train::Diagnosis forecast;
};

nn::StandardizedRegressor make_model(int64_t features, bool standardized) {
  return nn::StandardizedRegressor(
      nn::LinearRegressor(features),
      nn::StandardizedRegressorOptions().targets(
          nn::TargetStandardizerOptions().method(
              standardized ? nn::TargetScaling::kZScore
                           : nn::TargetScaling::kNone)));
}

// Under --stream the forecast reads the whole file once (its full-batch
// quadratic); otherwise it replays the planned batches.
train::Diagnosis make_forecast(nn::StandardizedRegressor& model,
                               torch::optim::Optimizer& opt,
                               const Setup& s) {
  const auto plan = train::DiagnoseOptions()
                        .planned_steps(s.args.epochs * s.steps_per_epoch)
                        .batch_size(s.args.batch_size)
                        .seed(s.args.seed);
  return s.data.reader ? train::diagnose(model, opt, *s.data.reader, plan)
                       : train::diagnose(model, opt, s.data.table, plan);
}

// The run's fit() options; with --checkpoint-dir, its checkpoint (rank 0
// writes it in distributed::fit, every rank resumes from it).
train::FitOptions fit_options(const RunSpec& spec, const Setup& s) {
  const Args& args = s.args;
  auto options = train::FitOptions()
                     .epochs(args.epochs)
                     .batch_size(args.batch_size)
                     .seed(args.seed)
                     .shuffle_buffer(args.shuffle_buffer)
                     .progress(train::Progress::kOff);
  if (!args.stream) {
    options.optimum_mse(s.data.optimum.mse);
  }
  if (args.checkpoint_dir.empty()) {
    return options;
  }
  const auto checkpoint = args.checkpoint_dir + "/" + spec.name + ".pt";
  options.checkpoint_path(checkpoint).checkpoint_every(args.checkpoint_every);
  if (args.resume && exists(checkpoint)) {
    options.resume_from(checkpoint);
    if (s.ranks.report()) {
      std::printf(
          "%s: resuming from %s\n", spec.name.c_str(), checkpoint.c_str());
    }
  }
  return options;
}

// fit() over the ranks, the file in parts, or the table.
train::History train_model(nn::StandardizedRegressor& model,
                           torch::optim::Optimizer& opt,
                           const train::FitOptions& options,
                           const Setup& s) {
#if NORMOPT_HAVE_DISTRIBUTED
  if (s.ranks.group) {
    return distributed::fit(model, opt, s.ranks.mine, options, *s.ranks.group);
  }
#endif
  return s.data.reader ? train::fit(model, opt, *s.data.reader, options)
                       : train::fit(model, opt, s.ranks.mine, options);
}

Result train_run(const RunSpec& spec, const Setup& s) {
  torch::manual_seed(s.args.seed);
  auto model = make_model(s.data.table.features.size(1), spec.standardized);
  auto opt = make_optimizer(spec.optimizer, model->parameters(), spec.lr);
  auto diagnosis = make_forecast(model, *opt, s);
  if (s.ranks.report()) {
    std::cout << spec.name << ": forecast " << diagnosis;
  }
  auto history = train_model(model, *opt, fit_options(spec, s), s);
  return {spec, std::move(history), std::move(diagnosis)};
}

// Each run's files (history CSV and JSON, forecast), written into a staging
// folder and moved into --out only when every run has finished: a failed
// run leaves no partial results behind.
class Staging {
 public:
  explicit Staging(const std::string& out)
      : folder_(out + "/.staging-" + std::to_string(::getpid())) {}
  void create() const {
    make_folders(folder_);
  }
  void write(const Result& r, int64_t steps_per_epoch) {
    const std::string& name = r.spec.name;
    r.history.write_csv(folder_ + "/" + name + ".csv");
    files_.push_back(name + ".csv");
    r.history.write_json(folder_ + "/" + name + ".json", name);
    files_.push_back(name + ".json");
    write_forecast(
        folder_ + "/" + name + ".forecast", r.forecast, steps_per_epoch);
    files_.push_back(name + ".forecast");
  }
  void publish(const std::string& out) const {
    move_files(folder_, files_, out);
  }
  void discard() const {
    move_files(folder_, files_, "");
  }

 private:
  std::string folder_;
  std::vector<std::string> files_;  // the files written into folder_
};

// Trains every run of the plan in order; rank 0 stages their files.
std::vector<Result> train_all(const std::vector<RunSpec>& plan,
                              const Setup& s) {
  std::vector<Result> results;
  for (const auto& spec : plan) {
    results.push_back(train_run(spec, s));
  }
  return results;
}

// Every run's files into the staging folder (nothing of it is left behind
// when one fails), then into --out.
void write_all(const std::vector<Result>& results,
               const Setup& s,
               Staging& staging,
               const std::string& out) {
  try {
    for (const auto& r : results) {
      staging.write(r, s.steps_per_epoch);
    }
  } catch (...) {
    staging.discard();
    throw;
  }
  staging.publish(out);
}

// The "vs optimum" column. A ratio to an optimum that is 0 up to rounding
// (a constant target, fewer rows than features + 1) is noise: the gap is
// reported instead.
std::string versus_text(const Setup& s, const Result& r) {
  char versus[32];
  if (s.args.stream) {
    std::snprintf(versus, sizeof(versus), "n/a");
  } else if (s.data.optimum.exact) {
    std::snprintf(versus, sizeof(versus), "+%.3g", r.history.gap_to_optimum());
  } else {
    std::snprintf(versus,
                  sizeof(versus),
                  "%.3gx",
                  r.history.epochs.back().train_mse / s.data.optimum.mse);
  }
  return versus;
}

std::string forecast_text(const Result& r) {
  char forecast[48];
  std::snprintf(forecast,
                sizeof(forecast),
                "%.3gx %s",
                r.forecast.forecast_ratio,
                train::verdict_name(r.forecast.verdict));
  return forecast;
}

// What the "vs optimum" column means for this data.
const char* report_note(const Setup& s) {
  if (s.args.stream) {
    return "(vs optimum: the closed-form optimum needs the whole data; "
           "run without --stream on a sample for it)";
  }
  if (s.data.optimum.exact) {
    return "(vs optimum: final MSE - closed-form optimum MSE; the optimum is "
           "0 up to rounding, the data lie on a linear model, so a ratio "
           "would mean nothing)";
  }
  return "(vs optimum: final MSE / closed-form optimum MSE; 1x is the best "
         "a linear model can do; forecast: diagnose()'s forecast of that "
         "ratio and its verdict, made before the run)";
}

// The table of runs, what its "vs optimum" column means, and the time.
void print_report(const Setup& s,
                  const std::vector<Result>& results,
                  double total_seconds) {
  std::printf("\n%-32s %16s %14s %22s %10s\n",
              "run",
              "final MSE",
              "vs optimum",
              "forecast",
              "seconds");
  for (const auto& r : results) {
    const auto& last = r.history.epochs.back();
    std::printf("%-32s %16.6g %14s %22s %10.3f\n",
                r.spec.name.c_str(),
                last.train_mse,
                versus_text(s, r).c_str(),
                forecast_text(r).c_str(),
                last.wall_seconds);
  }
  std::printf(
      "\n%s\nhistories: %s/*.csv, *.json\nall %zu runs: %.3f s (forecasts "
      "and training)\n",
      report_note(s),
      s.args.out.c_str(),
      results.size(),
      total_seconds);
}

// The program: read the data, plan the runs, train each, report. Everything
// that can fail on the user's input happens before any file is written: a
// bad path or column leaves no output behind.
int run(int argc, char** argv) {
  int code = 0;
  const auto args = parse(argc, argv, &code);
  if (!args) {
    return code;
  }
  Data data = load_data(*args);
  const Ranks ranks = join_ranks(data.table);
  if (ranks.report()) {
    print_data(*args, data);
  }
  const Setup setup{*args, data, ranks, steps_per_epoch(*args, data, ranks)};
  Staging staging(args->out);
  if (ranks.report()) {
    staging.create();
    if (!args->checkpoint_dir.empty()) {
      make_folders(args->checkpoint_dir);
    }
  }
  // The clock covers the runs (forecasts and training), not the files.
  const auto started = std::chrono::steady_clock::now();
  std::vector<Result> results;
  try {
    results = train_all(plan_runs(*args), setup);
  } catch (...) {
    if (ranks.report()) {
      staging.discard();
    }
    throw;
  }
  const std::chrono::duration<double> seconds =
      std::chrono::steady_clock::now() - started;
  if (!ranks.report()) {
    return 0;
  }
  write_all(results, setup, staging, args->out);
  print_report(setup, results, seconds.count());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const c10::Error& e) {
    std::cerr << "compare_optimizers: error: " << e.what_without_backtrace()
              << "\n";
  } catch (const std::exception& e) {
    std::cerr << "compare_optimizers: error: " << e.what() << "\n";
  }
  return 1;
}
