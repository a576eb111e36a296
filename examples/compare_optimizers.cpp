// The main job: why Adam stalls on incomes in dollars, and the fix.
//
// Trains a linear model (features z-scored) with Adam and SGD at two learning
// rates, on raw and on standardized targets (8 runs), prints final MSE in
// dollars² and the gap to the closed-form optimum, and writes each run's
// history as CSV and JSON (scripts/plot_history.py draws them).
//
//   compare_optimizers                         # built-in synthetic incomes
//   compare_optimizers --data my.csv --target income --out results/
//   scripts/launch.sh -n 2 compare_optimizers     # data-parallel, 2 ranks
//   compare_optimizers --checkpoint-dir ckpt/      # killed? add --resume
#include <normopt/normopt.h>  // <normopt/config.h> too
#include <torch/torch.h>
#if NORMOPT_HAVE_DISTRIBUTED  // built with normopt::distributed
#include <normopt/distributed/distributed.h>
#endif

#include <unistd.h>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace normopt;

namespace {

struct Args {
  std::string data, target, out = "out/compare", checkpoint_dir;
  int64_t epochs = 200, batch_size = 32, checkpoint_every = 10;
  bool resume = false;
  uint64_t seed = 0;
  std::vector<std::string> optimizers = {"adam", "sgd"};
  std::vector<double> lrs = {1e-2, 1e-3};
};

const char* kUsage =
    "Usage: compare_optimizers [options]\n"
    "  --data FILE         numeric CSV with a header row (default: built-in\n"
    "                      synthetic income data, 20 rows)\n"
    "  --target COL        target column of --data (default: the last one)\n"
    "  --epochs N          epochs per run (default 200)\n"
    "  --batch-size N      rows per step, 0 = full batch (default 32)\n"
    "  --optimizers LIST   comma-separated: adam, adamw, sgd (default "
    "adam,sgd)\n"
    "  --lrs LIST          comma-separated learning rates (default 1e-2,1e-3)\n"
    "  --seed S            seed for initial weights and shuffling (default 0)\n"
    "  --out DIR           output folder (default out/compare)\n"
    "  --checkpoint-dir D  save each run's checkpoint as D/<run>.pt\n"
    "  --checkpoint-every N  epochs between checkpoints (default 10; the\n"
    "                      last epoch is always saved)\n"
    "  --resume            continue each run from its checkpoint in\n"
    "                      --checkpoint-dir (runs without one start afresh;\n"
    "                      the result equals an uninterrupted run)\n"
    "  --help              this text\n";

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> parts;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty())
      parts.push_back(item);
  }
  return parts;
}

Args parse(int argc, char** argv) {
  Args a;
  auto value = [&](int& i) -> std::string {
    TORCH_CHECK(i + 1 < argc, "option ", argv[i], " needs a value; see --help");
    return argv[++i];
  };
  auto number = [](const std::string& flag, const std::string& v) {
    try {
      size_t used = 0;
      double d = std::stod(v, &used);
      TORCH_CHECK(used == v.size(), "");
      return d;
    } catch (...) {
      TORCH_CHECK(false, "option ", flag, " expects a number, got '", v, "'");
    }
  };
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    if (f == "--help" || f == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else if (f == "--data") {
      a.data = value(i);
    } else if (f == "--target") {
      a.target = value(i);
    } else if (f == "--epochs") {
      a.epochs = static_cast<int64_t>(number(f, value(i)));
    } else if (f == "--batch-size") {
      a.batch_size = static_cast<int64_t>(number(f, value(i)));
    } else if (f == "--seed") {
      a.seed = static_cast<uint64_t>(number(f, value(i)));
    } else if (f == "--out") {
      a.out = value(i);
    } else if (f == "--checkpoint-dir") {
      a.checkpoint_dir = value(i);
    } else if (f == "--checkpoint-every") {
      a.checkpoint_every = static_cast<int64_t>(number(f, value(i)));
    } else if (f == "--resume") {
      a.resume = true;
    } else if (f == "--optimizers") {
      a.optimizers = split(value(i));
    } else if (f == "--lrs") {
      a.lrs.clear();
      for (auto& s : split(value(i)))
        a.lrs.push_back(number(f, s));
    } else {
      TORCH_CHECK(false, "unknown option '", f, "'; see --help");
    }
  }
  TORCH_CHECK(a.epochs >= 1, "--epochs must be at least 1, got ", a.epochs);
  TORCH_CHECK(
      a.batch_size >= 0, "--batch-size must be >= 0, got ", a.batch_size);
  TORCH_CHECK(a.checkpoint_every >= 1,
              "--checkpoint-every must be at least 1, got ",
              a.checkpoint_every);
  TORCH_CHECK(!a.resume || !a.checkpoint_dir.empty(),
              "--resume needs --checkpoint-dir (the folder of the checkpoints "
              "to continue from)");
  TORCH_CHECK(!a.optimizers.empty() && !a.lrs.empty(),
              "--optimizers and --lrs need at least one value each");
  for (auto& o : a.optimizers) {
    TORCH_CHECK(o == "adam" || o == "adamw" || o == "sgd",
                "unknown optimizer '",
                o,
                "'; use adam, adamw or sgd");
  }
  for (double lr : a.lrs) {
    TORCH_CHECK(lr > 0, "learning rates must be positive, got ", lr);
  }
  TORCH_CHECK(a.target.empty() || !a.data.empty(),
              "--target needs --data (the built-in data set has its own)");
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

std::string lr_text(double lr) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", lr);
  return buf;
}

int run(int argc, char** argv) {
  const Args args = parse(argc, argv);
  // Everything that can fail on the user's input happens before any file is
  // written: a bad path or column leaves no output behind.
  data::Table table =
      args.data.empty()
          ? data::synthetic_income(20, 0)
          : data::read_csv(args.data, data::CsvOptions().target(args.target));
  const auto optimum =
      train::solve_least_squares(table.features, table.targets);
  // Under scripts/launch.sh (WORLD_SIZE set) every run is data-parallel:
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
        static_cast<long long>(table.size()));
    for (size_t i = 0; i < table.feature_names.size(); ++i) {
      std::printf("%s%s", i ? ", " : "", table.feature_names[i].c_str());
    }
    std::printf("], target %s\nclosed-form optimum MSE: %.6g\n\n",
                table.target_name.c_str(),
                optimum.mse);
  }

  const int64_t n = mine.size();
  const int64_t bs = args.batch_size == 0 ? n : std::min(args.batch_size, n);
  const int64_t steps_per_epoch = (n + bs - 1) / bs;

  const fs::path staging =
      fs::path(args.out) / (".staging-" + std::to_string(::getpid()));
  if (report) {
    fs::create_directories(staging);
    if (!args.checkpoint_dir.empty()) {
      fs::create_directories(args.checkpoint_dir);
    }
  }
  struct Row {
    std::string run;
    std::string optimizer;
    double lr;
    bool standardized;
    train::History history;
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
          for (const auto& f :
               train::diagnose(model,
                               *opt,
                               table,
                               train::DiagnoseOptions().planned_steps(
                                   args.epochs * steps_per_epoch))) {
            if (report && f.severity == train::Severity::kWarning) {
              std::cout << name << ": " << f << "\n";
            }
          }
          auto fit_options = train::FitOptions()
                                 .epochs(args.epochs)
                                 .batch_size(args.batch_size)
                                 .seed(args.seed)
                                 .progress(train::Progress::kOff)
                                 .optimum_mse(optimum.mse);
          if (!args.checkpoint_dir.empty()) {
            // Rank 0 writes it (distributed::fit), every rank resumes from it.
            const auto checkpoint =
                (fs::path(args.checkpoint_dir) / (name + ".pt")).string();
            fit_options.checkpoint_path(checkpoint)
                .checkpoint_every(args.checkpoint_every);
            if (args.resume && fs::exists(checkpoint)) {
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
                    : train::fit(model, *opt, mine, fit_options);
#else
          auto history = train::fit(model, *opt, mine, fit_options);
#endif
          if (report) {
            history.write_csv((staging / (name + ".csv")).string());
            history.write_json((staging / (name + ".json")).string(), name);
          }
          rows.push_back(
              {name, opt_name, lr, standardized, std::move(history)});
        }
      }
    }
  } catch (...) {
    if (report) {
      fs::remove_all(staging);
    }
    throw;
  }
  const double total_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started)
          .count();
  if (!report) {
    return 0;
  }
  for (const auto& entry : fs::directory_iterator(staging)) {
    fs::rename(entry.path(), fs::path(args.out) / entry.path().filename());
  }
  fs::remove_all(staging);

  std::printf(
      "\n%-32s %16s %14s %10s\n", "run", "final MSE", "vs optimum", "seconds");
  for (const auto& r : rows) {
    const auto& last = r.history.epochs.back();
    std::printf("%-32s %16.6g %13.3gx %10.3f\n",
                r.run.c_str(),
                last.train_mse,
                last.train_mse / optimum.mse,
                last.wall_seconds);
  }
  std::printf(
      "\n(vs optimum: final MSE / closed-form optimum MSE; 1x is "
      "the best a linear model can do)\nhistories: %s/*.csv, *.json\n"
      "all %zu runs: %.3f s\n",
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
