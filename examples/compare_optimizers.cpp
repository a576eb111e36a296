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
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  app.add_option("--data",
                 a.data,
                 "numeric CSV with a header row (default: built-in "
                 "synthetic income data, 20 rows)")
      ->type_name("FILE");
  app.add_option(
         "--target", a.target, "target column of --data (default: the last)")
      ->type_name("COL");
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
      ->check(integer_in<int64_t>(1, kMax))
      ->capture_default_str();
  app.add_flag("--resume",
               a.resume,
               "continue each run from its checkpoint in --checkpoint-dir "
               "(runs without one start afresh; the result equals an "
               "uninterrupted run)");
  app.add_flag("--stream",
               a.stream,
               "read --data in parts (data::CsvReader) each epoch instead of "
               "whole: for files larger than memory; no closed-form optimum, "
               "one process");
  app.add_option("--shuffle-buffer",
                 a.shuffle_buffer,
                 "with --stream: rows shuffled together")
      ->type_name("N")
      ->check(integer_in<int64_t>(1, kMax))
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    *code = app.exit(e);  // --help on stdout, errors on stderr
    return std::nullopt;
  }
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

int run(int argc, char** argv) {
  int code = 0;
  const auto parsed = parse(argc, argv, &code);
  if (!parsed) {
    return code;
  }
  const Args& args = *parsed;
  // Everything that can fail on the user's input happens before any file is
  // written: a bad path or column leaves no output behind.
  // Under --stream, `table` is the first part (for the diagnostics), and
  // the runs read the file again each epoch.
  std::optional<data::CsvReader> reader;
  data::Table table;
  int64_t total_rows = 0;
  if (args.stream) {
    reader.emplace(args.data, data::CsvOptions().target(args.target));
    table = *reader->next();  // a file without rows throws here
    total_rows = table.size();
    while (auto part = reader->next()) {
      total_rows += part->size();
    }
  } else {
    table =
        args.data.empty()
            ? data::synthetic_income(20, 0)
            : data::read_csv(args.data, data::CsvOptions().target(args.target));
    total_rows = table.size();
  }
  const auto optimum =
      args.stream ? train::LeastSquares{}
                  : train::solve_least_squares(table.features, table.targets);
  // Under torchrun (WORLD_SIZE set) every run is data-parallel:
  // each rank trains on its shard, rank 0 reports and writes the files.
  int rank = 0;
  data::Table mine = table;
#if NORMOPT_HAVE_DISTRIBUTED
  c10::intrusive_ptr<c10d::ProcessGroup> group;
  if (std::getenv("WORLD_SIZE") != nullptr) {
    group = distributed::init_process_group();
    rank = group->getRank();
    mine = distributed::shard(table, rank, group->getSize());
  }
#endif
  const bool report = rank == 0;  // one report and one set of files
  if (report) {
    std::printf(
        "data: %s, %lld rows, features [",
        args.data.empty() ? "built-in synthetic incomes" : args.data.c_str(),
        static_cast<long long>(total_rows));
    for (size_t i = 0; i < table.feature_names.size(); ++i) {
      std::printf("%s%s", i ? ", " : "", table.feature_names[i].c_str());
    }
    if (args.stream) {
      std::printf(
          "], target %s (read in parts: --stream)\nclosed-form "
          "optimum MSE: not computed under --stream\n\n",
          table.target_name.c_str());
    } else {
      std::printf("], target %s\nclosed-form optimum MSE: %.6g\n\n",
                  table.target_name.c_str(),
                  optimum.mse);
    }
  }

  const int64_t n = args.stream ? total_rows : mine.size();
  const int64_t bs = args.batch_size == 0 ? n : std::min(args.batch_size, n);
  const int64_t steps_per_epoch = (n + bs - 1) / bs;

  const std::string staging =
      args.out + "/.staging-" + std::to_string(::getpid());
  std::vector<std::string> staged;  // the files written into `staging`
  if (report) {
    make_folders(staging);
    if (!args.checkpoint_dir.empty()) {
      make_folders(args.checkpoint_dir);
    }
  }
  struct Row {
    std::string run;
    std::string optimizer;
    double lr;
    bool standardized;
    train::History history;
    train::Diagnosis forecast;
  };
  std::vector<Row> rows;
  const auto started = std::chrono::steady_clock::now();
  try {
    for (bool standardized : {false, true}) {
      for (const auto& opt_name : args.optimizers) {
        for (double lr : args.lrs) {
          const std::string name = opt_name + "_lr" + lr_text(lr) +
                                   (standardized ? "_standardized" : "_raw");
          torch::manual_seed(args.seed);
          nn::StandardizedRegressor model(
              nn::LinearRegressor(table.features.size(1)),
              nn::StandardizedRegressorOptions().targets(
                  nn::TargetStandardizerOptions().method(
                      standardized ? nn::TargetScaling::kZScore
                                   : nn::TargetScaling::kNone)));
          auto opt = make_optimizer(opt_name, model->parameters(), lr);
          // Under --stream the forecast reads the whole file once (its
          // full-batch quadratic); otherwise it replays the planned batches.
          const auto plan = train::DiagnoseOptions()
                                .planned_steps(args.epochs * steps_per_epoch)
                                .batch_size(args.batch_size)
                                .seed(args.seed);
          const auto diagnosis =
              reader ? train::diagnose(model, *opt, *reader, plan)
                     : train::diagnose(model, *opt, table, plan);
          if (report) {
            std::cout << name << ": forecast " << diagnosis;
          }
          auto fit_options = train::FitOptions()
                                 .epochs(args.epochs)
                                 .batch_size(args.batch_size)
                                 .seed(args.seed)
                                 .shuffle_buffer(args.shuffle_buffer)
                                 .progress(train::Progress::kOff);
          if (!args.stream) {
            fit_options.optimum_mse(optimum.mse);
          }
          if (!args.checkpoint_dir.empty()) {
            // Rank 0 writes it (distributed::fit), every rank resumes from it.
            const auto checkpoint = args.checkpoint_dir + "/" + name + ".pt";
            fit_options.checkpoint_path(checkpoint)
                .checkpoint_every(args.checkpoint_every);
            if (args.resume && exists(checkpoint)) {
              fit_options.resume_from(checkpoint);
              if (report) {
                std::printf(
                    "%s: resuming from %s\n", name.c_str(), checkpoint.c_str());
              }
            }
          }
#if NORMOPT_HAVE_DISTRIBUTED
          auto history =
              group ? distributed::fit(model, *opt, mine, fit_options, *group)
              : reader ? train::fit(model, *opt, *reader, fit_options)
                       : train::fit(model, *opt, mine, fit_options);
#else
          auto history = reader ? train::fit(model, *opt, *reader, fit_options)
                                : train::fit(model, *opt, mine, fit_options);
#endif
          if (report) {
            history.write_csv(staging + "/" + name + ".csv");
            staged.push_back(name + ".csv");
            history.write_json(staging + "/" + name + ".json", name);
            staged.push_back(name + ".json");
            write_forecast(
                staging + "/" + name + ".forecast", diagnosis, steps_per_epoch);
            staged.push_back(name + ".forecast");
          }
          rows.push_back({name,
                          opt_name,
                          lr,
                          standardized,
                          std::move(history),
                          diagnosis});
        }
      }
    }
  } catch (...) {
    if (report) {
      move_files(staging, staged, "");
    }
    throw;
  }
  const double total_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started)
          .count();
  if (!report) {
    return 0;
  }
  move_files(staging, staged, args.out);

  std::printf("\n%-32s %16s %14s %22s %10s\n",
              "run",
              "final MSE",
              "vs optimum",
              "forecast",
              "seconds");
  // A ratio to an optimum that is 0 up to rounding (a constant target,
  // fewer rows than features + 1) is noise: the gap is reported instead.
  for (const auto& r : rows) {
    const auto& last = r.history.epochs.back();
    char versus[32];
    if (args.stream) {
      std::snprintf(versus, sizeof(versus), "n/a");
    } else if (optimum.exact) {
      std::snprintf(
          versus, sizeof(versus), "+%.3g", r.history.gap_to_optimum());
    } else {
      std::snprintf(
          versus, sizeof(versus), "%.3gx", last.train_mse / optimum.mse);
    }
    char forecast[48];
    std::snprintf(forecast,
                  sizeof(forecast),
                  "%.3gx %s",
                  r.forecast.forecast_ratio,
                  train::verdict_name(r.forecast.verdict));
    std::printf("%-32s %16.6g %14s %22s %10.3f\n",
                r.run.c_str(),
                last.train_mse,
                versus,
                forecast,
                last.wall_seconds);
  }
  std::printf(
      "\n%s\nhistories: %s/*.csv, *.json\n"
      "all %zu runs: %.3f s\n",
      args.stream
          ? "(vs optimum: the closed-form optimum needs the whole data; "
            "run without --stream on a sample for it)"
      : optimum.exact
          ? "(vs optimum: final MSE - closed-form optimum MSE; the optimum is "
            "0 up to rounding, the data lie on a linear model, so a ratio "
            "would mean nothing)"
          : "(vs optimum: final MSE / closed-form optimum MSE; 1x is the best "
            "a linear model can do; forecast: diagnose()'s forecast of that "
            "ratio and its verdict, made before the run)",
      args.out.c_str(),
      rows.size(),
      total_seconds);
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
