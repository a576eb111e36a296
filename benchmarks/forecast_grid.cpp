// How often diagnose()'s verdict matches the run it forecasts, over a grid
// of data sets, optimizers, learning rates, step counts and batch sizes;
// and what a forecast costs (100 features, 100,000 rows, 10,000 steps).
//
//   build/benchmarks/forecast_grid [--mlp] [--cost]
//
// Each run is trained with train::fit() after diagnose(); its clear outcome
// (<= 1.2x the optimum: converges; >= 2x or worse than at the start or
// overflowing: stalls/diverges) is compared with the verdict. Runs between
// 1.2x and 2x are not scored (the issue allows either verdict there).
#include <normopt/normopt.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

using namespace normopt;

namespace {

struct DataSet {
  std::string name;
  data::Table table;
};

// Synthetic sets of very different scales, from a fixed seed.
std::vector<DataSet> data_sets() {
  std::vector<DataSet> sets;
  auto make = [](const std::string& name,
                 int64_t n,
                 int64_t p,
                 double x_scale,
                 double y_offset,
                 double y_scale,
                 double collinear,
                 uint64_t seed) {
    auto g = at::make_generator<at::CPUGeneratorImpl>(seed);
    auto x = at::randn({n, p}, g, at::kDouble) * x_scale + x_scale;
    if (collinear > 0 && p >= 2) {
      x.select(1, 1).copy_(x.select(1, 0) +
                           collinear * at::randn({n}, g, at::kDouble));
    }
    auto w = at::randn({p, 1}, g, at::kDouble);
    auto y = (at::matmul((x - x_scale) / x_scale, w) +
              0.3 * at::randn({n, 1}, g, at::kDouble)) *
                 y_scale +
             y_offset;
    data::Table t;
    t.features = x.to(at::kFloat);
    t.targets = y.to(at::kFloat);
    for (int64_t j = 0; j < p; ++j) {
      t.feature_names.push_back("x" + std::to_string(j));
    }
    t.target_name = "y";
    return DataSet{name, t};
  };
  sets.push_back(make("incomes_300", 300, 3, 20, 45000, 9000, 0, 1));
  sets.push_back(make("incomes_20k", 20000, 4, 30, 50000, 12000, 0, 2));
  sets.push_back(make("collinear_500", 500, 4, 1, 0, 1, 1e-3, 3));
  sets.push_back(make("tiny_targets_400", 400, 3, 1, 1e-4, 1e-4, 0, 4));
  sets.push_back(make("large_targets_2k", 2000, 5, 100, 1e7, 1e6, 0, 5));
  sets.push_back(make("unit_100k", 100000, 6, 1, 0.5, 1, 0, 6));
  return sets;
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(
    const std::string& name, std::vector<at::Tensor> params, double lr) {
  if (name == "adam") {
    return std::make_unique<optim::Adam>(params, optim::AdamOptions(lr));
  }
  if (name == "adamw") {
    return std::make_unique<optim::AdamW>(
        params, optim::AdamWOptions(lr).weight_decay(1e-2));
  }
  if (name == "sgd") {
    return std::make_unique<optim::SGD>(params, optim::SGDOptions(lr));
  }
  return std::make_unique<optim::SGD>(params,
                                      optim::SGDOptions(lr).momentum(0.9));
}

// One hidden tanh layer of 16.
struct MlpImpl : torch::nn::Module {
  explicit MlpImpl(int64_t in)
      : hidden(register_module("hidden", torch::nn::Linear(in, 16))),
        out(register_module("out", torch::nn::Linear(16, 1))) {}
  at::Tensor forward(const at::Tensor& x) {
    return out(torch::tanh(hidden(x)));
  }
  torch::nn::Linear hidden, out;
};
TORCH_MODULE(Mlp);

const char* clear_outcome(double final_mse,
                          double initial,
                          double optimum,
                          bool overflow) {
  const double r = final_mse / optimum;
  if (overflow || !std::isfinite(final_mse) ||
      (final_mse > initial && r >= 2)) {
    return "diverges";
  }
  if (r <= train::kConvergedRatio) {
    return "converges";
  }
  return r >= train::kStalledRatio ? "stalls" : nullptr;
}

// One run of the grid.
struct Cell {
  const DataSet* set;
  const char* optimizer;
  bool standardized;
  double lr;
  int64_t batch;
  int64_t epochs;
  int64_t steps;  // epochs x batches per epoch
};

// The grid's runs: each data set (the MLP's only up to 20,000 rows) with
// each optimizer, target scaling, lr, batch size and length.
std::vector<Cell> cells(const std::vector<DataSet>& sets, bool mlp) {
  std::vector<Cell> out;
  for (const auto& set : sets) {
    const int64_t n = set.table.features.size(0);
    if (mlp && n > 20000) {
      continue;
    }
    for (const char* opt : {"adam", "adamw", "sgd", "sgd_momentum"}) {
      for (bool standardized : {false, true}) {
        for (double lr : {1e-4, 1e-3, 1e-2, 1e-1}) {
          for (int64_t batch : {int64_t{0}, int64_t{32}}) {
            for (int64_t steps : {int64_t{200}, int64_t{2000}}) {
              const int64_t per_epoch = train::batches_per_epoch(n, batch);
              const int64_t epochs = std::max<int64_t>(1, steps / per_epoch);
              if (batch > 0 && n * epochs > 400000) {
                continue;  // keep the grid's wall time in minutes
              }
              out.push_back({&set,
                             opt,
                             standardized,
                             lr,
                             batch,
                             epochs,
                             epochs * per_epoch});
            }
          }
        }
      }
    }
  }
  return out;
}

struct Outcome {
  const char* forecast;
  const char* actual;  // null: between 1.2x and 2x, not scored
  double forecast_ratio;
  double actual_ratio;
};

// Forecasts the cell's run, then trains it.
Outcome run(const Cell& c, bool mlp, double optimum) {
  const auto& table = c.set->table;
  const int64_t features = table.features.size(1);
  torch::manual_seed(0);
  const auto targets = nn::StandardizedRegressorOptions().targets(
      nn::TargetStandardizerOptions().method(c.standardized
                                                 ? nn::TargetScaling::kZScore
                                                 : nn::TargetScaling::kNone));
  nn::StandardizedRegressor model =
      mlp ? nn::StandardizedRegressor(Mlp(features), targets)
          : nn::StandardizedRegressor(nn::LinearRegressor(features), targets);
  auto opt = make_optimizer(c.optimizer, model->parameters(), c.lr);
  const auto options =
      train::FitOptions().epochs(c.epochs).batch_size(c.batch).progress(
          train::Progress::kOff);
  const auto d = train::diagnose(
      model,
      *opt,
      table,
      train::DiagnoseOptions::for_fit(options, table.features.size(0)));
  double final_mse = NAN;
  bool overflow = false;
  try {
    final_mse = train::fit(model, *opt, table, options).epochs.back().train_mse;
  } catch (const c10::Error&) {
    overflow = true;
  }
  return {train::verdict_name(d.verdict),
          clear_outcome(final_mse, d.initial_mse, optimum, overflow),
          d.forecast_ratio,
          final_mse / optimum};
}

void grid(bool mlp) {
  int scored = 0, agree = 0, skipped = 0;
  std::printf("%-18s %-8s %-6s %8s %6s %5s %10s %10s %s\n",
              "data",
              "opt",
              "scale",
              "lr",
              "steps",
              "batch",
              "forecast",
              "actual",
              "");
  const auto sets = data_sets();
  std::vector<double> optimum;
  for (const auto& set : sets) {
    optimum.push_back(
        train::solve_least_squares(set.table.features, set.table.targets).mse);
  }
  for (const auto& c : cells(sets, mlp)) {
    const auto o = run(c, mlp, optimum[c.set - sets.data()]);
    if (o.actual == nullptr) {
      ++skipped;
      continue;
    }
    ++scored;
    const bool ok = std::strcmp(o.actual, o.forecast) == 0;
    agree += ok;
    if (!ok) {
      std::printf(
          "%-18s %-8s %-6s %8.0e %6lld %5lld %10s %10s "
          "MISS (forecast %.3gx, actual %.3gx)\n",
          c.set->name.c_str(),
          c.optimizer,
          c.standardized ? "zscore" : "raw",
          c.lr,
          static_cast<long long>(c.steps),
          static_cast<long long>(c.batch),
          o.forecast,
          o.actual,
          o.forecast_ratio,
          o.actual_ratio);
    }
  }
  std::printf(
      "%s grid: %d of %d clear runs agree (%.1f%%); %d runs between "
      "1.2x and 2x not scored\n",
      mlp ? "MLP" : "linear",
      agree,
      scored,
      scored ? 100.0 * agree / scored : 0.0,
      skipped);
}

void cost() {
  auto g = at::make_generator<at::CPUGeneratorImpl>(7);
  data::Table t;
  t.features = at::randn({100000, 100}, g, at::kFloat);
  t.targets = at::matmul(t.features, at::randn({100, 1}, g, at::kFloat)) +
              at::randn({100000, 1}, g, at::kFloat);
  torch::manual_seed(0);
  nn::StandardizedRegressor model(nn::LinearRegressor(100));
  optim::Adam adam(model->parameters(), optim::AdamOptions(1e-2));
  for (int rep = 0; rep < 3; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    const auto d = train::diagnose(
        model, adam, t, train::DiagnoseOptions().planned_steps(10000));
    const double ms = std::chrono::duration<double, std::milli>(
                          std::chrono::steady_clock::now() - start)
                          .count();
    std::printf(
        "cost: 100 features, 100,000 rows, 10,000 full-batch steps: "
        "%.1f ms (%s, %s)\n",
        ms,
        train::verdict_name(d.verdict),
        d.method.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool mlp = false, cost_only = false;
  for (int i = 1; i < argc; ++i) {
    mlp = mlp || std::strcmp(argv[i], "--mlp") == 0;
    cost_only = cost_only || std::strcmp(argv[i], "--cost") == 0;
  }
  if (cost_only) {
    cost();
    return 0;
  }
  grid(mlp);
  return 0;
}
