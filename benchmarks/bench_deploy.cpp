// Prediction latency of one trained model served three ways: an
// AOTInductor package (normopt::deploy::Predictor), the TorchScript pipeline
// (normopt::jit::export_pipeline / load_pipeline) and the eager C++ module
// (StandardizedRegressor::predict), each for 1 row and 10,000 rows of 2
// float32 features.
//
//   bench_deploy --prepare DIR   trains a StandardizedRegressor(LinearRegressor(2))
//                                on data::synthetic_income and writes
//                                DIR/model.pt (torch::save) and
//                                DIR/pipeline.pt (export_pipeline)
//   bench_deploy DIR [benchmark flags]
//                                needs DIR/model.pt2 as well
//                                (python -m normopt.export DIR/model.pt DIR/model.pt2);
//                                checks once that the three routes agree on
//                                10,000 rows, then runs Predict/<route>/<rows>
//
// Run: benchmarks/deploy_latency.py (prepares, packages, runs, prints a table).
#include <benchmark/benchmark.h>
#include <normopt/deploy/predictor.h>
#include <normopt/jit/export.h>
#include <normopt/normopt.h>
#include <torch/torch.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace {

using normopt::nn::LinearRegressor;
using normopt::nn::StandardizedRegressor;

struct Routes {
  StandardizedRegressor eager{nullptr};
  torch::jit::Module pipeline;
  std::unique_ptr<normopt::deploy::Predictor> aoti;
  at::Tensor x1, x10k;  // float32 [1, 2] and [10000, 2]
};

Routes& routes() {
  static Routes r;
  return r;
}

int prepare(const std::string& dir) {
  using namespace normopt;
  auto table = data::synthetic_income(/*rows=*/200, /*seed=*/0);
  torch::manual_seed(0);
  nn::StandardizedRegressor model(nn::LinearRegressor(2));
  optim::Adam adam(model->parameters(), optim::AdamOptions(1e-2));
  auto history =
      train::fit(model,
                 adam,
                 table,
                 train::FitOptions().epochs(300).batch_size(0).progress(
                     train::Progress::kOff));
  std::printf("trained %zu epochs, training MSE %.6g\n",
              history.epochs.size(),
              history.epochs.back().train_mse);
  torch::save(model, dir + "/model.pt");
  jit::export_pipeline(model, dir + "/pipeline.pt");
  std::printf(
      "wrote %s/model.pt and %s/pipeline.pt\n", dir.c_str(), dir.c_str());
  return 0;
}

// Loads the three routes and checks once that they agree on 10,000 rows.
bool load(const std::string& dir) {
  auto& r = routes();
  r.eager = StandardizedRegressor(LinearRegressor(2));
  torch::load(r.eager, dir + "/model.pt");
  r.eager->eval();
  r.pipeline = normopt::jit::load_pipeline(dir + "/pipeline.pt");
  r.aoti = std::make_unique<normopt::deploy::Predictor>(dir + "/model.pt2");

  // Inputs not seen in training (another seed), float32 as the model.
  r.x10k = normopt::data::synthetic_income(10'000, /*seed=*/1)
               .features.to(at::kFloat)
               .contiguous();
  r.x1 = r.x10k.slice(0, 0, 1).clone();

  torch::NoGradGuard no_grad;
  const at::Tensor e = r.eager->predict(r.x10k);
  const at::Tensor t = r.pipeline.forward({r.x10k}).toTensor();
  const at::Tensor a = r.aoti->predict(r.x10k);
  std::printf(
      "dtypes: eager %s, torchscript %s, aoti %s; shapes [%lld, %lld]"
      "; threads %d\n",
      c10::toString(e.scalar_type()),
      c10::toString(t.scalar_type()),
      c10::toString(a.scalar_type()),
      static_cast<long long>(e.size(0)),
      static_cast<long long>(e.dim() > 1 ? e.size(1) : 1),
      at::get_num_threads());
  bool ok = true;
  auto compare = [&](const char* name, const at::Tensor& other) {
    if (other.sizes() != e.sizes()) {
      std::printf("MISMATCH %s: shape %s vs eager %s\n",
                  name,
                  c10::str(other.sizes()).c_str(),
                  c10::str(e.sizes()).c_str());
      ok = false;
      return;
    }
    const auto ed = e.to(at::kDouble), od = other.to(at::kDouble);
    const double max_abs = (od - ed).abs().max().item<double>();
    const double max_rel =
        ((od - ed).abs() / ed.abs().clamp_min(1e-30)).max().item<double>();
    const bool good = max_rel <= 1e-5;
    std::printf("%s vs eager: max |diff| %.6g, max relative %.3g (%s)\n",
                name,
                max_abs,
                max_rel,
                good ? "ok, <= 1e-5" : "MISMATCH");
    ok = ok && good;
  };
  compare("torchscript", t);
  compare("aoti", a);
  // One row too (the package's batch dimension is dynamic).
  const at::Tensor e1 = r.eager->predict(r.x1);
  const at::Tensor a1 = r.aoti->predict(r.x1);
  const at::Tensor t1 = r.pipeline.forward({r.x1}).toTensor();
  if (!a1.to(at::kDouble).allclose(e1.to(at::kDouble), 1e-5, 0) ||
      !t1.to(at::kDouble).allclose(e1.to(at::kDouble), 1e-5, 0)) {
    std::printf("MISMATCH on 1 row: eager %.9g, torchscript %.9g, aoti %.9g\n",
                e1.item<double>(),
                t1.item<double>(),
                a1.item<double>());
    ok = false;
  }
  return ok;
}

const at::Tensor& input(int64_t rows) {
  return rows == 1 ? routes().x1 : routes().x10k;
}

// Registers Predict/<route>/<rows>: `predict` on the 1-row or 10,000-row
// input, given as an Input (made once, outside the timed loop).
template <typename Input, typename Predict>
void add_route(const char* name, Predict predict) {
  benchmark::RegisterBenchmark(
      name,
      [predict](benchmark::State& state) {
        torch::NoGradGuard no_grad;
        const Input x{input(state.range(0))};
        for (auto _ : state) {
          benchmark::DoNotOptimize(predict(x));
        }
        state.SetItemsProcessed(state.iterations() * state.range(0));
      })
      ->Arg(1)
      ->Arg(10'000)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
}

void register_all() {
  add_route<at::Tensor>("Predict/aoti", [](const at::Tensor& x) {
    return routes().aoti->predict(x);
  });
  add_route<std::vector<c10::IValue>>("Predict/torchscript",
                                      [](const std::vector<c10::IValue>& x) {
                                        return routes().pipeline.forward(x);
                                      });
  add_route<at::Tensor>("Predict/eager", [](const at::Tensor& x) {
    return routes().eager->predict(x);
  });
}

}  // namespace

int main(int argc, char** argv) {
  const char* usage =
      "usage: bench_deploy --prepare DIR\n"
      "       bench_deploy DIR [benchmark flags]   (DIR holds model.pt, "
      "pipeline.pt, model.pt2)\n";
  if (argc < 2) {
    std::fprintf(stderr, "%s", usage);
    return 2;
  }
  try {
    if (std::string(argv[1]) == "--prepare") {
      if (argc != 3) {
        std::fprintf(stderr, "%s", usage);
        return 2;
      }
      return prepare(argv[2]);
    }
    const std::string dir = argv[1];
    if (!dir.empty() && dir[0] == '-') {
      std::fprintf(stderr, "%s", usage);
      return 2;
    }
    if (!load(dir)) {
      std::fprintf(stderr, "bench_deploy: the routes disagree (see above)\n");
      return 1;
    }
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "bench_deploy: %s\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_deploy: %s\n", e.what());
    return 1;
  }
  // DIR is not a benchmark flag: drop it before Initialize.
  std::vector<char*> args{argv[0]};
  for (int i = 2; i < argc; ++i)
    args.push_back(argv[i]);
  int n = static_cast<int>(args.size());
  args.push_back(nullptr);
  register_all();
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data()))
    return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
