// fit()'s fused runs of steps (FitOptions::fuse_steps) against its per-step
// path, which computes each batch with ATen calls and normopt's step ops:
// the same Histories, parameters and optimizer state, the same messages,
// and the per-step path wherever something must run between two steps.
#include "fixtures.h"

#include <ATen/record_function.h>

#include <atomic>
#include <functional>
#include <string>

namespace normopt::test::train {
namespace {

// 300 rows, 3 features, 2 targets, float64: y = x A + noise, targets in
// the thousands.
Table wide_table() {
  auto g = at::make_generator<at::CPUGeneratorImpl>(11);
  const auto x = at::randn({300, 3}, g, at::kDouble) * 5 + 20;
  const auto a = torch::tensor({{300.0, -20.0}, {150.0, 40.0}, {-80.0, 10.0}},
                               torch::kFloat64);
  Table t;
  t.features = x;
  t.targets = x.matmul(a) + at::randn({300, 2}, g, at::kDouble) * 50 + 1000;
  return t;
}

StandardizedRegressor wide_model(bool bias, TargetScaling scaling) {
  torch::manual_seed(3);
  StandardizedRegressor model(
      LinearRegressor(LinearRegressorOptions(3).out_features(2).bias(bias)),
      StandardizedRegressorOptions().targets(
          TargetStandardizerOptions().method(scaling)));
  model->to(torch::kFloat64);
  return model;
}

using MakeOptimizer = std::function<std::unique_ptr<torch::optim::Optimizer>(
    std::vector<torch::Tensor>)>;

struct Case {
  std::string name;
  MakeOptimizer make;
};

std::vector<Case> optimizer_cases() {
  using namespace normopt::optim;
  auto adam = [](AdamOptions o) -> MakeOptimizer {
    return [o](std::vector<torch::Tensor> p) {
      return std::make_unique<Adam>(std::move(p), o);
    };
  };
  auto sgd = [](SGDOptions o) -> MakeOptimizer {
    return [o](std::vector<torch::Tensor> p) {
      return std::make_unique<SGD>(std::move(p), o);
    };
  };
  return {
      {"adam", adam(AdamOptions(1e-2))},
      {"adam amsgrad l2",
       adam(AdamOptions(1e-2).amsgrad(true).weight_decay(1e-3))},
      {"adam keras", adam(AdamOptions(3e-2).epsilon_mode(EpsilonMode::kKeras))},
      {"adamw",
       [](std::vector<torch::Tensor> p) {
         return std::make_unique<AdamW>(std::move(p),
                                        AdamWOptions(1e-2).weight_decay(0.1));
       }},
      {"sgd", sgd(SGDOptions(1e-2))},
      {"sgd nesterov l2",
       sgd(SGDOptions(1e-2).momentum(0.9).nesterov(true).weight_decay(1e-3))},
      {"sgd dampening", sgd(SGDOptions(2e-2).momentum(0.5).dampening(0.3))},
  };
}

// Counts the ATen matrix products (the per-step path's at::linear and
// addmm) run while it lives.
class MatmulCounter {
 public:
  MatmulCounter() {
    handle_ = at::addGlobalCallback(
        at::RecordFunctionCallback([](const at::RecordFunction& fn)
                                       -> std::unique_ptr<at::ObserverContext> {
          const std::string name = fn.name();
          if (name == "aten::addmm" || name == "aten::mm") {
            ++count();
          }
          return nullptr;
        }).scopes({at::RecordScope::FUNCTION}));
    count() = 0;
  }
  ~MatmulCounter() {
    at::removeCallback(handle_);
  }
  int64_t value() const {
    return count();
  }

 private:
  static std::atomic<int64_t>& count() {
    static std::atomic<int64_t> c{0};
    return c;
  }
  at::CallbackHandle handle_;
};

struct Run {
  History history;
  std::vector<torch::Tensor> params;
  std::vector<int64_t> steps;  // Adam's per-parameter step counts
  int64_t matmuls = 0;
};

Run train(StandardizedRegressor model,
          const MakeOptimizer& make,
          const Table& table,
          FitOptions options) {
  auto opt = make(model->parameters());
  Run run;
  {
    MatmulCounter counter;
    run.history = normopt::train::fit(model, *opt, table, options);
    run.matmuls = counter.value();
  }
  run.params = snapshot(*model);
  for (const auto& p : model->parameters()) {
    const auto it = opt->state().find(p.unsafeGetTensorImpl());
    if (it != opt->state().end()) {
      if (auto* s =
              dynamic_cast<normopt::optim::AdamParamState*>(it->second.get())) {
        run.steps.push_back(s->step());
      }
    }
  }
  return run;
}

void expect_same_run(const Run& fused, const Run& stepped, double tol) {
  ASSERT_EQ(fused.history.epochs.size(), stepped.history.epochs.size());
  for (size_t e = 0; e < fused.history.epochs.size(); ++e) {
    const auto& a = fused.history.epochs[e];
    const auto& b = stepped.history.epochs[e];
    EXPECT_LT(rel(a.train_mse, b.train_mse), tol) << "epoch " << e + 1;
    EXPECT_LT(rel(a.train_loss, b.train_loss), tol) << "epoch " << e + 1;
    EXPECT_EQ(a.lr, b.lr);
  }
  for (size_t i = 0; i < fused.params.size(); ++i) {
    EXPECT_LT((fused.params[i] - stepped.params[i]).abs().max().item<double>(),
              tol)
        << "tensor " << i;
  }
  EXPECT_EQ(fused.steps, stepped.steps);
}

}  // namespace

TEST(FusedSteps, EveryOptimizer_SameRunAsPerStepPath) {
  // Raw targets in the thousands, shuffled batches of 32 with a last batch
  // of 12, 2 targets, with and without a bias: float64 to 1e-12.
  const auto table = wide_table();
  for (const auto& c : optimizer_cases()) {
    for (bool bias : {true, false}) {
      SCOPED_TRACE(c.name + (bias ? " with bias" : " without bias"));
      const auto options = quiet().epochs(6).batch_size(32).seed(4);
      const auto fused =
          train(wide_model(bias, TargetScaling::kNone), c.make, table, options);
      const auto stepped = train(wide_model(bias, TargetScaling::kNone),
                                 c.make,
                                 table,
                                 FitOptions(options).fuse_steps(false));
      expect_same_run(fused, stepped, 1e-12);
      // The per-step path multiplies matrices at every step (60 steps); the
      // fused one only for its first step and the evaluations.
      EXPECT_GE(stepped.matmuls, 6 * 10 * 2);
      EXPECT_LT(fused.matmuls, 6 * 2 + 4);
    }
  }
}

TEST(FusedSteps, ParamGroupsFloat32StandardizedNoShuffle_SameRun) {
  const auto table = wide_table();
  MakeOptimizer groups = [](std::vector<torch::Tensor> p) {
    std::vector<torch::optim::OptimizerParamGroup> g;
    g.emplace_back(std::vector<torch::Tensor>{p[0]},
                   std::make_unique<normopt::optim::AdamOptions>(1e-2));
    g.emplace_back(std::vector<torch::Tensor>{p[1]},
                   std::make_unique<normopt::optim::AdamOptions>(1e-1));
    return std::make_unique<normopt::optim::Adam>(
        g, normopt::optim::AdamOptions(1e-3));
  };
  const auto options = quiet().epochs(5).batch_size(50).shuffle(false);
  expect_same_run(
      train(wide_model(true, TargetScaling::kZScore), groups, table, options),
      train(wide_model(true, TargetScaling::kZScore),
            groups,
            table,
            FitOptions(options).fuse_steps(false)),
      1e-12);
  // float32: the sums' order differs, within float32's rounding.
  auto f32 = [](StandardizedRegressor m) {
    m->to(torch::kFloat32);
    return m;
  };
  const auto sgd = optimizer_cases()[5].make;
  const auto o32 = quiet().epochs(5).batch_size(16);
  expect_same_run(
      train(f32(wide_model(true, TargetScaling::kZScore)), sgd, table, o32),
      train(f32(wide_model(true, TargetScaling::kZScore)),
            sgd,
            table,
            FitOptions(o32).fuse_steps(false)),
      2e-5);
}

TEST(FusedSteps, OptimizerHoldingAnotherParameter_SameRun) {
  // Each step() also moves a parameter fit() does not train (its gradient
  // stays as set): the steps are then taken one by one, as before.
  const auto table = wide_table();
  std::vector<torch::Tensor> extras;
  MakeOptimizer with_extra = [&](std::vector<torch::Tensor> p) {
    auto extra = torch::ones({3}, torch::kFloat64).requires_grad_();
    extra.mutable_grad() = torch::full({3}, 0.5, torch::kFloat64);
    extras.push_back(extra);
    p.push_back(extra);
    return std::make_unique<normopt::optim::Adam>(
        std::move(p), normopt::optim::AdamOptions(1e-2));
  };
  const auto options = quiet().epochs(3).batch_size(32);
  const auto fused = train(
      wide_model(true, TargetScaling::kZScore), with_extra, table, options);
  const auto stepped = train(wide_model(true, TargetScaling::kZScore),
                             with_extra,
                             table,
                             FitOptions(options).fuse_steps(false));
  expect_same_run(fused, stepped, 1e-12);
  ASSERT_EQ(extras.size(), 2u);
  // 30 Adam steps of lr 1e-2 against a constant gradient move it by
  // 0.01 each (up to eps / 0.5 = 2e-8 of a step): 1 - 30 * 0.01.
  EXPECT_TRUE(torch::allclose(
      extras[0], torch::full({3}, 0.7, torch::kFloat64), 0, 1e-7));
  EXPECT_TRUE(torch::equal(extras[0], extras[1]));
}

TEST(FusedSteps, Divergence_SameMessageAsPerStepPath) {
  // SGD at lr 5 on raw targets in the thousands grows the errors about
  // 30-fold a step and overflows float32 some 20 batches into epoch 1: both
  // paths stop before the same step.
  auto table = wide_table();
  table.features = table.features.to(torch::kFloat32);
  table.targets = table.targets.to(torch::kFloat32);
  std::vector<std::string> messages;
  for (bool fuse : {true, false}) {
    auto model = wide_model(true, TargetScaling::kNone);
    model->to(torch::kFloat32);
    normopt::optim::SGD sgd(model->parameters(), normopt::optim::SGDOptions(5));
    try {
      normopt::train::fit(
          model, sgd, table, quiet().epochs(3).batch_size(8).fuse_steps(fuse));
      ADD_FAILURE() << "expected the run to diverge";
    } catch (const c10::Error& e) {
      messages.push_back(e.what_without_backtrace());
    }
    EXPECT_TRUE(torch::isfinite(model->regressor.get<LinearRegressor>()->weight)
                    .all()
                    .item<bool>());
  }
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[0], messages[1]);
  // Batch 1 took the per-step path, batches 2 to 26 the fused one.
  EXPECT_NE(messages[0].find("Inf at epoch 1, batch 27 (of 38)"),
            std::string::npos)
      << messages[0];
}

TEST(FusedSteps, CallbackActingBeforeEachStep_KeepsThePerStepPath) {
  // A callback overriding before_step sees every step; one that does not
  // leaves the steps fused.
  struct ClipCounter : normopt::train::Callback {
    int64_t calls = 0;
    void before_step(normopt::train::FitState&, int64_t) override {
      ++calls;
    }
  };
  struct EpochCounter : normopt::train::Callback {
    int64_t epochs = 0;
    void on_epoch_end(normopt::train::FitState&,
                      const normopt::train::EpochLog&) override {
      ++epochs;
    }
  };
  const auto table = wide_table();
  auto clip = std::make_shared<ClipCounter>();
  auto epochs = std::make_shared<EpochCounter>();
  const auto make = optimizer_cases()[0].make;
  const auto acting =
      train(wide_model(true, TargetScaling::kZScore),
            make,
            table,
            quiet().epochs(3).batch_size(32).callbacks({clip, epochs}));
  EXPECT_EQ(clip->calls, 3 * 10);
  EXPECT_GE(acting.matmuls, 3 * 10 * 2);
  const auto quiet_run =
      train(wide_model(true, TargetScaling::kZScore),
            make,
            table,
            quiet().epochs(3).batch_size(32).callbacks({epochs}));
  EXPECT_EQ(epochs->epochs, 6);
  EXPECT_LT(quiet_run.matmuls, 3 * 2 + 4);
  expect_same_run(quiet_run, acting, 1e-12);
}

}  // namespace normopt::test::train
