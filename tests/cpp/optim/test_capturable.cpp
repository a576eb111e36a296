// Capturable Adam/AdamW (step counts in tensors on the parameters' device,
// advanced by normopt::adam_step_capturable_) on the CPU: the op against
// adam_step_, the ATen fallback against the CPU kernel, the optimizers'
// trajectories against capturable=false, and saved states across both
// settings. tests/cpp/cuda/test_capturable.cpp captures it in a CUDA graph.
#include "step_reference.h"

#include <normopt/normopt.h>

#include "ops/generic/optim_step_generic.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace normopt::optim;
using normopt::ops::AdamStepOptions;
using normopt::test::expect_error;
using normopt::test::TensorVec;

const std::vector<int64_t> kSizes = {1, 0, 3, 17, 1000, 40000};

// A few tensors of a least-squares problem whose optimum is far away, so
// every step moves every parameter.
struct Problem {
  TensorVec a, b;
  explicit Problem(torch::Dtype dtype) {
    torch::manual_seed(7);
    for (auto shape :
         std::vector<std::vector<int64_t>>{{6, 4}, {4}, {}, {3, 2, 2}}) {
      a.push_back((0.5 + torch::rand(shape, torch::kFloat64)).to(dtype));
      b.push_back((5 + torch::randn(shape, torch::kFloat64)).to(dtype));
    }
  }
  TensorVec init() const {
    torch::manual_seed(11);
    TensorVec p;
    for (const auto& t : a) {
      p.push_back(torch::randn(t.sizes(), t.options()).requires_grad_());
    }
    return p;
  }
  void backward(const TensorVec& p) const {
    auto total = torch::zeros({}, p[0].options());
    for (size_t i = 0; i < p.size(); ++i) {
      total = total + (a[i] * p[i] - b[i]).pow(2).sum();
    }
    total.backward();
  }
};

template <typename Opt>
void run(Opt& opt, const Problem& q, TensorVec& p, int steps) {
  for (int s = 0; s < steps; ++s) {
    opt.zero_grad();
    q.backward(p);
    opt.step();
  }
}

void expect_equal(const TensorVec& x, const TensorVec& y) {
  ASSERT_EQ(x.size(), y.size());
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_TRUE(torch::equal(x[i], y[i]))
        << "tensor " << i << " differs by up to "
        << (x[i] - y[i]).abs().max().item<double>();
  }
}

const AdamParamState& state_of(const torch::optim::Optimizer& opt,
                               const torch::Tensor& p) {
  return static_cast<const AdamParamState&>(
      *opt.state().at(p.unsafeGetTensorImpl()));
}

// Options of one optimizer type under test, with capturable set as asked.
template <typename Options>
using Variant = std::pair<std::string, std::function<Options(bool)>>;

template <typename Opt, typename Options>
void expect_capturable_equals_host_steps(
    const std::vector<Variant<Options>>& variants) {
  for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
    for (const auto& [name, options] : variants) {
      SCOPED_TRACE(name + " " + std::string(c10::toString(dtype)));
      Problem q(dtype);
      auto host = q.init(), device = q.init();
      Opt a(host, options(false));
      Opt b(device, options(true));
      run(a, q, host, 20);
      run(b, q, device, 20);
      expect_equal(device, host);
      // The runs moved: equal frozen parameters would prove nothing.
      EXPECT_FALSE(torch::allclose(host[0], q.init()[0]));
      for (const auto& p : device) {
        const AdamParamState& s = state_of(b, p);
        ASSERT_TRUE(s.step_tensor().defined());
        EXPECT_EQ(s.step_tensor().scalar_type(), torch::kFloat64);
        EXPECT_EQ(s.step_tensor().dim(), 0);
        EXPECT_EQ(s.step_tensor().item<double>(), 20);
        EXPECT_EQ(s.step_count(), 20);
        EXPECT_EQ(s.step(), 0);  // the host count is not advanced
        EXPECT_FALSE(state_of(a, host[0]).step_tensor().defined());
        EXPECT_EQ(state_of(a, host[0]).step_count(), 20);
      }
    }
  }
}

}  // namespace

// ---- The op -----------------------------------------------------------------

TEST(AdamCapturableOp, MatchesAdamStep_AllDtypesAndOptions) {
  normopt::test::expect_capturable_matches_cpu_kernel(torch::kCPU, kSizes);
}

// Bit for bit, not only within expect_adam_matches_cpu_kernel's tolerance:
// the same double step count gives the same constants.
TEST(AdamCapturableOp, BitForBitAdamStep_20Steps) {
  for (const auto& [name, o] : normopt::test::adam_variants()) {
    SCOPED_TRACE(name);
    torch::manual_seed(3);
    auto p = normopt::test::random_list(kSizes, torch::kFloat64);
    auto m = normopt::test::random_list(kSizes, torch::kFloat64);
    auto v = normopt::test::random_list(kSizes, torch::kFloat64, true);
    auto x = normopt::test::random_list(kSizes, torch::kFloat64, true);
    auto p2 = normopt::test::copies_on(p, torch::kCPU),
         m2 = normopt::test::copies_on(m, torch::kCPU),
         v2 = normopt::test::copies_on(v, torch::kCPU),
         x2 = normopt::test::copies_on(x, torch::kCPU);
    TensorVec none, counts;
    for (size_t i = 0; i < kSizes.size(); ++i) {
      counts.push_back(torch::zeros({}, torch::kFloat32));
    }
    for (int64_t s = 1; s <= 20; ++s) {
      auto g = normopt::test::random_list(kSizes, torch::kFloat64);
      normopt::ops::adam_step_(p,
                               g,
                               m,
                               v,
                               o.amsgrad ? x : none,
                               std::vector<int64_t>(kSizes.size(), s),
                               o);
      normopt::ops::adam_step_capturable_(
          p2, g, m2, v2, o.amsgrad ? x2 : none, counts, o);
    }
    expect_equal(p2, p);
    expect_equal(m2, m);
    expect_equal(v2, v);
    expect_equal(x2, x);
  }
}

TEST(AdamCapturableGeneric, MatchesCpuKernel_AllDtypesAndOptions) {
  // Float64 counts: the fallback computes the bias corrections in the
  // counts' dtype.
  normopt::test::expect_adam_matches_cpu_kernel(
      normopt::test::as_adam_step(
          [](const auto& lists, auto steps, const auto& o) {
            normopt::ops::detail::adam_step_generic(lists, steps, o);
          },
          torch::kDouble),
      torch::kCPU,
      kSizes);
}

TEST(AdamCapturableOp, BadInput_NamesTheTensor_ChangesNothing) {
  auto p = torch::zeros({3}), g = torch::ones({3}), m = torch::zeros({3}),
       v = torch::zeros({3});
  TensorVec P{p}, G{g}, M{m}, V{v}, none;
  auto refused = [&](TensorVec steps, std::initializer_list<std::string> what) {
    std::vector<torch::Tensor> before;
    for (const auto& s : steps) {
      before.push_back(s.clone());
    }
    expect_error(
        [&] {
          normopt::ops::adam_step_capturable_(
              P, G, M, V, none, steps, AdamStepOptions{});
        },
        what);
    EXPECT_TRUE(torch::equal(p, torch::zeros({3})));
    for (size_t i = 0; i < steps.size(); ++i) {
      if (steps[i].is_cpu()) {
        EXPECT_TRUE(torch::equal(steps[i], before[i]));
      }
    }
  };
  refused({}, {"normopt::adam_step_capturable_", "expected 1 tensors"});
  refused({torch::zeros({}, torch::kInt64)},
          {"state_steps[0] has dtype Long", "float32 or float64"});
  refused({torch::zeros({2})}, {"state_steps[0] has shape [2]"});
  // A meta tensor among the arguments dispatches to the meta kernel, which
  // checks the same; the counts' device is checked against the parameters'.
  refused({torch::zeros({}, torch::kMeta)},
          {"params[0] is on cpu but this kernel runs on meta"});
  auto on_meta = [](const torch::Tensor& t) { return t.to(torch::kMeta); };
  TensorVec Pm{on_meta(p)}, Gm{on_meta(g)}, Mm{on_meta(m)}, Vm{on_meta(v)};
  TensorVec cpu_steps{torch::zeros({})};
  expect_error(
      [&] {
        normopt::ops::adam_step_capturable_(
            Pm, Gm, Mm, Vm, none, cpu_steps, AdamStepOptions{});
      },
      {"state_steps[0] is on cpu but params[0] on meta",
       "on its parameter's device"});
  // The list checks are adam_step_'s, under this op's name.
  TensorVec wrong_grad{torch::ones({4})};
  TensorVec steps{torch::zeros({})};
  expect_error(
      [&] {
        normopt::ops::adam_step_capturable_(
            P, wrong_grad, M, V, none, steps, AdamStepOptions{});
      },
      {"normopt::adam_step_capturable_", "grads[0] has shape [4]"});
  EXPECT_EQ(steps[0].item<double>(), 0);
}

TEST(AdamCapturableOp, MixedStepDtypes_Refused) {
  TensorVec p{torch::zeros({2}), torch::zeros({2})};
  TensorVec g{torch::ones({2}), torch::ones({2})};
  TensorVec m{torch::zeros({2}), torch::zeros({2})};
  TensorVec v{torch::zeros({2}), torch::zeros({2})};
  TensorVec none;
  TensorVec steps{torch::zeros({}, torch::kFloat32),
                  torch::zeros({}, torch::kFloat64)};
  expect_error(
      [&] {
        normopt::ops::adam_step_capturable_(
            p, g, m, v, none, steps, AdamStepOptions{});
      },
      {"state_steps[1] has dtype Double", "one dtype for the list"});
}

// ---- The optimizers ---------------------------------------------------------

TEST(AdamCapturable, TrajectoryEqualsHostSteps_20Steps) {
  expect_capturable_equals_host_steps<Adam, AdamOptions>({
      {"plain", [](bool c) { return AdamOptions(1e-2).capturable(c); }},
      {"amsgrad+l2",
       [](bool c) {
         return AdamOptions(1e-2).amsgrad(true).weight_decay(0.1).capturable(c);
       }},
      {"keras+maximize",
       [](bool c) {
         return AdamOptions(1e-2)
             .epsilon_mode(EpsilonMode::kKeras)
             .maximize(true)
             .capturable(c);
       }},
  });
  expect_capturable_equals_host_steps<AdamW, AdamWOptions>({
      {"adamw", [](bool c) { return AdamWOptions(1e-2).capturable(c); }},
      {"adamw+amsgrad+keras",
       [](bool c) {
         return AdamWOptions(1e-2)
             .weight_decay(0.1)
             .amsgrad(true)
             .epsilon_mode(EpsilonMode::kKeras)
             .capturable(c);
       }},
  });
}

// Switched on after 7 steps and off after 13 of 20: the counts move between
// the host and the tensors and the run equals one that never switched.
TEST(AdamCapturable, SwitchedMidRun_ConvertsTheCounts) {
  Problem q(torch::kFloat64);
  auto host = q.init(), switched = q.init();
  Adam a(host, AdamOptions(1e-2).amsgrad(true));
  Adam b(switched, AdamOptions(1e-2).amsgrad(true));
  auto& o = static_cast<AdamOptions&>(b.param_groups()[0].options());
  run(a, q, host, 20);
  run(b, q, switched, 7);
  o.capturable(true);
  run(b, q, switched, 6);
  EXPECT_EQ(state_of(b, switched[0]).step_tensor().item<double>(), 13);
  o.capturable(false);
  run(b, q, switched, 7);
  EXPECT_FALSE(state_of(b, switched[0]).step_tensor().defined());
  EXPECT_EQ(state_of(b, switched[0]).step(), 20);
  expect_equal(switched, host);
}

// 12 steps under one setting, torch::save, torch::load into an optimizer
// with the other (or the same), 18 more: the parameters equal 30 straight
// steps, and the loading optimizer keeps its own capturable.
TEST(AdamCapturable, SaveLoad_BothWays_ContinuesBitForBit) {
  for (auto [saved_capturable, loaded_capturable] : {std::pair{false, true},
                                                     std::pair{true, false},
                                                     std::pair{true, true}}) {
    SCOPED_TRACE(std::to_string(saved_capturable) + " -> " +
                 std::to_string(loaded_capturable));
    normopt::test::TempDir dir;
    Problem q(torch::kFloat64);
    auto straight = q.init(), resumed = q.init();
    const auto options = AdamWOptions(1e-2).amsgrad(true);
    AdamW a(straight, options);
    run(a, q, straight, 30);
    {
      AdamW b(resumed, AdamWOptions(options).capturable(saved_capturable));
      run(b, q, resumed, 12);
      torch::save(b, dir.file("opt.pt"));
    }
    AdamW c(resumed, AdamWOptions(options).capturable(loaded_capturable));
    torch::load(c, dir.file("opt.pt"));
    EXPECT_EQ(static_cast<const AdamWOptions&>(c.param_groups()[0].options())
                  .capturable(),
              loaded_capturable);
    EXPECT_EQ(state_of(c, resumed[0]).step_count(), 12);
    run(c, q, resumed, 18);
    expect_equal(resumed, straight);
    EXPECT_EQ(state_of(c, resumed[0]).step_tensor().defined(),
              loaded_capturable);
    EXPECT_EQ(state_of(c, resumed[0]).step_count(), 30);
  }
}

TEST(AdamCapturable, Options_EqualitySerializationAndChecks) {
  EXPECT_FALSE(AdamOptions(0.1) == AdamOptions(0.1).capturable(true));
  EXPECT_FALSE(AdamWOptions(0.1) == AdamWOptions(0.1).capturable(true));
  EXPECT_TRUE(AdamOptions(0.1).capturable(true) ==
              AdamOptions(0.1).capturable(true));
  // The option itself is saved (load then keeps the loader's own).
  torch::serialize::OutputArchive out;
  AdamOptions(0.1).capturable(true).serialize(out);
  std::stringstream bytes;
  out.save_to(bytes);
  torch::serialize::InputArchive in;
  in.load_from(bytes);
  AdamOptions read;
  read.serialize(in);
  EXPECT_TRUE(read.capturable());
  auto w = torch::ones({2}, torch::requires_grad());
  expect_error(
      [&] {
        Adam opt({w}, AdamOptions(0.1).capturable(true).skip_nonfinite(true));
      },
      {"capturable and skip_nonfinite cannot be combined"});
}
