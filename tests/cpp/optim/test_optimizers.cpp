#include "../common.h"

#include <normopt/normopt.h>

using namespace normopt::optim;
using normopt::test::expect_error;

namespace {

// A convex problem over several tensors whose optimum is far away (b ~ 20),
// so 1,000 Adam steps keep descending with consistent gradient signs and
// implementation rounding differences do not get amplified.
struct Quadratic {
  std::vector<torch::Tensor> a, b;
  explicit Quadratic(torch::Dtype dtype, uint64_t seed = 0) {
    torch::manual_seed(seed);
    for (auto shape : std::vector<std::vector<int64_t>>{
             {16, 8}, {8}, {5, 5, 3}, {1}, {33}}) {
      a.push_back((0.5 + torch::rand(shape, torch::kFloat64)).to(dtype));
      b.push_back((20 + torch::randn(shape, torch::kFloat64)).to(dtype));
    }
  }
  std::vector<torch::Tensor> init(torch::Dtype dtype) const {
    torch::manual_seed(123);
    std::vector<torch::Tensor> p;
    for (auto& t : a) {
      p.push_back(
          torch::randn(t.sizes(), torch::kFloat64).to(dtype).requires_grad_());
    }
    return p;
  }
  torch::Tensor loss(const std::vector<torch::Tensor>& p) const {
    auto total = torch::zeros({}, p[0].options());
    for (size_t i = 0; i < p.size(); ++i) {
      total = total + (a[i] * p[i] - b[i]).pow(2).sum();
    }
    return total;
  }
};

// Largest |x - y| over all tensors, relative to the largest |y|.
double trajectory_gap(const std::vector<torch::Tensor>& x,
                      const std::vector<torch::Tensor>& y) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    auto xd = x[i].detach().to(torch::kFloat64);
    auto yd = y[i].detach().to(torch::kFloat64);
    diff = std::max(diff, (xd - yd).abs().max().item<double>());
    scale = std::max(scale, yd.abs().max().item<double>());
  }
  return diff / scale;
}

template <typename Ours, typename Theirs>
double compare_with_libtorch(
    torch::Dtype dtype,
    const std::function<std::unique_ptr<Ours>(std::vector<torch::Tensor>)>&
        ours,
    const std::function<std::unique_ptr<Theirs>(std::vector<torch::Tensor>)>&
        theirs,
    int steps = 1000) {
  Quadratic q(dtype);
  auto p1 = q.init(dtype), p2 = q.init(dtype);
  auto o1 = ours(p1);
  auto o2 = theirs(p2);
  for (int s = 0; s < steps; ++s) {
    o1->zero_grad();
    q.loss(p1).backward();
    o1->step();
    o2->zero_grad();
    q.loss(p2).backward();
    o2->step();
  }
  // The runs moved: a gap of 0 between two frozen runs would prove nothing.
  EXPECT_GT(trajectory_gap(p1, q.init(dtype)), 1e-2);
  return trajectory_gap(p1, p2);
}

struct Tol {
  torch::Dtype dtype;
  double tol;
};
const Tol kTolerances[] = {{torch::kFloat32, 1e-6}, {torch::kFloat64, 1e-12}};

}  // namespace

TEST(Adam, MatchesLibTorchAdam_1000Steps) {
  for (auto [dtype, tol] : kTolerances) {
    for (bool ams : {false, true}) {
      for (double wd : {0.0, 0.01}) {
        double gap = compare_with_libtorch<Adam, torch::optim::Adam>(
            dtype,
            [&](auto p) {
              return std::make_unique<Adam>(
                  p, AdamOptions(1e-3).weight_decay(wd).amsgrad(ams));
            },
            [&](auto p) {
              return std::make_unique<torch::optim::Adam>(
                  p,
                  torch::optim::AdamOptions(1e-3).weight_decay(wd).amsgrad(
                      ams));
            });
        EXPECT_LT(gap, tol) << dtype << " amsgrad " << ams << " wd " << wd;
      }
    }
  }
}

TEST(AdamW, MatchesLibTorchAdamW_1000Steps) {
  for (auto [dtype, tol] : kTolerances) {
    double gap = compare_with_libtorch<AdamW, torch::optim::AdamW>(
        dtype,
        [](auto p) {
          return std::make_unique<AdamW>(
              p, AdamWOptions(2e-3).betas({0.85, 0.995}).weight_decay(0.05));
        },
        [](auto p) {
          return std::make_unique<torch::optim::AdamW>(
              p,
              torch::optim::AdamWOptions(2e-3)
                  .betas({0.85, 0.995})
                  .weight_decay(0.05));
        });
    EXPECT_LT(gap, tol) << dtype;
  }
}

TEST(SGD, MatchesLibTorchSGD_1000Steps) {
  struct Cfg {
    double momentum, dampening, wd;
    bool nesterov;
  };
  for (auto [dtype, tol] : kTolerances) {
    for (auto c : {Cfg{0, 0, 0, false},
                   Cfg{0.9, 0, 0, true},
                   Cfg{0.9, 0.1, 0.01, false}}) {
      double gap = compare_with_libtorch<SGD, torch::optim::SGD>(
          dtype,
          [&](auto p) {
            return std::make_unique<SGD>(p,
                                         SGDOptions(1e-3)
                                             .momentum(c.momentum)
                                             .dampening(c.dampening)
                                             .weight_decay(c.wd)
                                             .nesterov(c.nesterov));
          },
          [&](auto p) {
            return std::make_unique<torch::optim::SGD>(
                p,
                torch::optim::SGDOptions(1e-3)
                    .momentum(c.momentum)
                    .dampening(c.dampening)
                    .weight_decay(c.wd)
                    .nesterov(c.nesterov));
          });
      EXPECT_LT(gap, tol) << dtype << " momentum " << c.momentum;
    }
  }
}

TEST(Adam, KerasEpsilonMode_MatchesFloat64KerasFormula) {
  Quadratic q(torch::kFloat64, 1);
  auto p = q.init(torch::kFloat64);
  Adam opt(p, AdamOptions(1e-2).epsilon_mode(EpsilonMode::kKeras));
  EXPECT_DOUBLE_EQ(static_cast<AdamOptions&>(opt.param_groups()[0].options())
                       .effective_eps(),
                   1e-7);
  // Keras's update, written out element by element in float64.
  auto ref = q.init(torch::kFloat64);
  std::vector<std::vector<double>> m(ref.size()), v(ref.size());
  const double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-7;
  for (int t = 1; t <= 200; ++t) {
    opt.zero_grad();
    q.loss(p).backward();
    opt.step();
    for (auto& r : ref)
      r.mutable_grad() = torch::Tensor();
    q.loss(ref).backward();
    const double alpha =
        lr * std::sqrt(1 - std::pow(b2, t)) / (1 - std::pow(b1, t));
    torch::NoGradGuard g;
    for (size_t k = 0; k < ref.size(); ++k) {
      auto pk = ref[k].data().reshape({-1});
      auto gk = ref[k].grad().reshape({-1});
      m[k].resize(pk.numel());
      v[k].resize(pk.numel());
      for (int64_t i = 0; i < pk.numel(); ++i) {
        const double gi = gk[i].item<double>();
        m[k][i] += (gi - m[k][i]) * (1 - b1);
        v[k][i] += (gi * gi - v[k][i]) * (1 - b2);
        pk[i] -= alpha * m[k][i] / (std::sqrt(v[k][i]) + eps);
      }
    }
  }
  EXPECT_LT(trajectory_gap(p, ref), 1e-12);
  // And it is not PyTorch's formula: the eps placement differs visibly.
  auto p_torch = q.init(torch::kFloat64);
  Adam torch_mode(p_torch, AdamOptions(1e-2).eps(1e-1));
  Adam keras_mode(
      p, AdamOptions(1e-2).eps(1e-1).epsilon_mode(EpsilonMode::kKeras));
  auto p_keras = q.init(torch::kFloat64);
  Adam keras2(p_keras,
              AdamOptions(1e-2).eps(1e-1).epsilon_mode(EpsilonMode::kKeras));
  for (int t = 0; t < 5; ++t) {
    torch_mode.zero_grad();
    keras2.zero_grad();
    q.loss(p_torch).backward();
    q.loss(p_keras).backward();
    torch_mode.step();
    keras2.step();
  }
  EXPECT_GT(trajectory_gap(p_keras, p_torch), 1e-6);
}

TEST(Adam, StepLRScheduler_ChangesLearningRate) {
  auto w = torch::ones({3}, torch::requires_grad());
  Adam opt({w}, AdamOptions(0.1));
  torch::optim::StepLR sched(opt, /*step_size=*/2, /*gamma=*/0.5);
  std::vector<double> lrs;
  for (int epoch = 0; epoch < 5; ++epoch) {
    lrs.push_back(opt.param_groups()[0].options().get_lr());
    opt.zero_grad();
    w.sum().backward();
    opt.step();
    sched.step();
  }
  // LibTorch's StepLR decays on every step_size-th call after the first.
  EXPECT_EQ(lrs, (std::vector<double>{0.1, 0.1, 0.1, 0.05, 0.05}));
  // A constant gradient makes each Adam step exactly -lr: the schedule shows.
  EXPECT_NEAR(w[0].item<float>(), 1 - (3 * 0.1 + 2 * 0.05), 1e-6);
}

TEST(SGD, ReduceLROnPlateau_DrivesLearningRate) {
  auto w = torch::ones({2}, torch::requires_grad());
  SGD opt({w}, SGDOptions(1.0));
  torch::optim::ReduceLROnPlateauScheduler sched(
      opt,
      torch::optim::ReduceLROnPlateauScheduler::SchedulerMode::min,
      0.1,
      /*patience=*/1);
  for (int i = 0; i < 4; ++i)
    sched.step(1.0f);  // no improvement
  // The scheduler multiplies by a float factor: 0.1 to float precision.
  EXPECT_NEAR(opt.param_groups()[0].options().get_lr(), 0.1, 1e-7);
}

TEST(Adam, ParamGroups_UseTheirOwnOptions) {
  Quadratic q(torch::kFloat64, 2);
  auto p = q.init(torch::kFloat64);
  auto ref_a = q.init(torch::kFloat64), ref_b = q.init(torch::kFloat64);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>{p[0], p[1]},
                      std::make_unique<AdamOptions>(AdamOptions(1e-2)));
  groups.emplace_back(
      std::vector<torch::Tensor>{p[2], p[3], p[4]},
      std::make_unique<AdamOptions>(AdamOptions(1e-3).amsgrad(true)));
  Adam opt(groups, AdamOptions(5.0));
  Adam ref1({ref_a[0], ref_a[1]}, AdamOptions(1e-2));
  Adam ref2({ref_b[2], ref_b[3], ref_b[4]}, AdamOptions(1e-3).amsgrad(true));
  for (int s = 0; s < 50; ++s) {
    opt.zero_grad();
    ref1.zero_grad();
    ref2.zero_grad();
    q.loss(p).backward();
    q.loss(ref_a).backward();
    q.loss(ref_b).backward();
    opt.step();
    ref1.step();
    ref2.step();
  }
  EXPECT_TRUE(torch::equal(p[0], ref_a[0]));
  EXPECT_TRUE(torch::equal(p[1], ref_a[1]));
  EXPECT_TRUE(torch::equal(p[4], ref_b[4]));
}

template <typename Opt, typename Options>
void check_resume_bit_for_bit(const Options& options) {
  normopt::test::TempDir dir;
  Quadratic q(torch::kFloat32, 3);
  auto straight = q.init(torch::kFloat32);
  auto resumed = q.init(torch::kFloat32);
  Opt a(straight, options);
  auto run = [&](Opt& o, std::vector<torch::Tensor>& p, int n) {
    for (int s = 0; s < n; ++s) {
      o.zero_grad();
      q.loss(p).backward();
      o.step();
    }
  };
  run(a, straight, 100);
  {
    Opt b(resumed, options);
    run(b, resumed, 40);
    torch::save(b, dir.file("opt.pt"));
  }
  Opt fresh(resumed, options);
  torch::load(fresh, dir.file("opt.pt"));
  run(fresh, resumed, 60);
  for (size_t i = 0; i < straight.size(); ++i) {
    EXPECT_TRUE(torch::equal(straight[i], resumed[i])) << i;
  }
}

TEST(Adam, SaveLoadMidTraining_ContinuesBitForBit) {
  check_resume_bit_for_bit<Adam>(AdamOptions(1e-2).amsgrad(true));
  check_resume_bit_for_bit<AdamW>(AdamWOptions(1e-2));
}

TEST(SGD, SaveLoadMidTraining_ContinuesBitForBit) {
  check_resume_bit_for_bit<SGD>(SGDOptions(1e-3).momentum(0.9).nesterov(true));
}

TEST(Adam, SkipNonFinite_SkipsAndReports) {
  auto w = torch::ones({4}, torch::requires_grad());
  Adam opt({w}, AdamOptions(0.1).skip_nonfinite(true));
  w.mutable_grad() = torch::tensor({1.0f, NAN, 1.0f, 1.0f});
  opt.step();
  EXPECT_TRUE(torch::equal(w, torch::ones({4})));
  EXPECT_EQ(opt.skipped_steps(), 1);
  w.mutable_grad() = torch::ones({4});
  opt.step();
  EXPECT_NEAR(w[0].item<float>(), 0.9f, 1e-6);  // first real step: -lr
  // Default: PyTorch's behaviour, the NaN reaches the parameter.
  auto u = torch::ones({2}, torch::requires_grad());
  Adam plain({u}, AdamOptions(0.1));
  u.mutable_grad() = torch::tensor({INFINITY, 1.0f});
  plain.step();
  EXPECT_TRUE(std::isnan(u[0].item<float>()));
}

TEST(SGD, SkipNonFinite_SkipsAndReports) {
  auto w = torch::ones({2}, torch::requires_grad());
  SGD opt({w}, SGDOptions(0.1).momentum(0.9).skip_nonfinite(true));
  w.mutable_grad() = torch::tensor({INFINITY, 1.0f});
  opt.step();
  EXPECT_TRUE(torch::equal(w, torch::ones({2})));
  EXPECT_EQ(opt.skipped_steps(), 1);
}

// The skipped-step count survives torch::save / torch::load, so a resumed
// run reports the same total as an uninterrupted one.
template <typename Opt, typename Options>
void check_skipped_steps_saved(const Options& options) {
  normopt::test::TempDir dir;
  auto w = torch::ones({2}, torch::requires_grad());
  Opt opt({w}, options);
  for (int i = 0; i < 3; ++i) {
    w.mutable_grad() = torch::tensor({NAN, 1.0f});
    opt.step();
  }
  ASSERT_EQ(opt.skipped_steps(), 3);
  torch::save(opt, dir.file("opt.pt"));
  Opt loaded({w}, options);
  torch::load(loaded, dir.file("opt.pt"));
  EXPECT_EQ(loaded.skipped_steps(), 3);
  // A negative count is refused.
  torch::serialize::OutputArchive out;
  opt.save(out);
  out.write("skipped_steps", c10::IValue(int64_t{-2}));
  std::stringstream bytes;
  out.save_to(bytes);
  torch::serialize::InputArchive in;
  in.load_from(bytes);
  Opt bad({w}, options);
  expect_error([&] { bad.load(in); },
               {"saved skipped_steps is -2", "expected a count >= 0"});
  EXPECT_EQ(bad.skipped_steps(), 0);
}

TEST(Optimizers, SkippedSteps_SavedWithTheState) {
  check_skipped_steps_saved<Adam>(AdamOptions(0.1).skip_nonfinite(true));
  check_skipped_steps_saved<AdamW>(AdamWOptions(0.1).skip_nonfinite(true));
  check_skipped_steps_saved<SGD>(
      SGDOptions(0.1).momentum(0.9).skip_nonfinite(true));
}

// operator== compares every field, as LibTorch's options do.
TEST(Optimizers, OptionsEquality_EveryField) {
  EXPECT_TRUE(AdamOptions(0.1) == AdamOptions(0.1));
  EXPECT_FALSE(AdamOptions(0.1) == AdamOptions(0.2));
  EXPECT_FALSE(AdamOptions(0.1) == AdamOptions(0.1).betas({0.8, 0.999}));
  EXPECT_FALSE(AdamOptions(0.1) == AdamOptions(0.1).eps(1e-8));  // set vs unset
  EXPECT_FALSE(AdamOptions(0.1) == AdamOptions(0.1).weight_decay(0.1));
  EXPECT_FALSE(AdamOptions(0.1) == AdamOptions(0.1).amsgrad(true));
  EXPECT_FALSE(AdamOptions(0.1) == AdamOptions(0.1).maximize(true));
  EXPECT_FALSE(AdamOptions(0.1) ==
               AdamOptions(0.1).epsilon_mode(EpsilonMode::kKeras));
  EXPECT_FALSE(AdamOptions(0.1) == AdamOptions(0.1).skip_nonfinite(true));
  EXPECT_TRUE(AdamWOptions(1e-3).weight_decay(0.1) ==
              AdamWOptions(1e-3).weight_decay(0.1));
  EXPECT_FALSE(AdamWOptions(1e-3) == AdamWOptions(1e-3).weight_decay(0.1));
  EXPECT_TRUE(SGDOptions(0.1).momentum(0.9) == SGDOptions(0.1).momentum(0.9));
  EXPECT_FALSE(SGDOptions(0.1) == SGDOptions(0.1).momentum(0.9));
  EXPECT_FALSE(SGDOptions(0.1) == SGDOptions(0.1).dampening(0.5));
  EXPECT_FALSE(SGDOptions(0.1) == SGDOptions(0.1).nesterov(true));
  EXPECT_FALSE(SGDOptions(0.1) == SGDOptions(0.1).skip_nonfinite(true));
  // A saved and loaded optimizer has equal options.
  auto w = torch::ones({2}, torch::requires_grad());
  Adam a({w}, AdamOptions(0.3).amsgrad(true));
  std::stringstream bytes;
  {
    torch::serialize::OutputArchive out;
    a.save(out);
    out.save_to(bytes);
  }
  torch::serialize::InputArchive in;
  in.load_from(bytes);
  Adam b({w}, AdamOptions(0.1));
  b.load(in);
  EXPECT_TRUE(static_cast<const AdamOptions&>(b.param_groups()[0].options()) ==
              AdamOptions(0.3).amsgrad(true));
}

TEST(Adam, SparseGradient_Errors) {
  torch::nn::Embedding emb(torch::nn::EmbeddingOptions(10, 3).sparse(true));
  Adam opt(emb->parameters(), AdamOptions(0.1));
  emb(torch::tensor({1, 2})).sum().backward();
  expect_error([&] { opt.step(); }, {"sparse gradient", "parameter 0"});
}

// A step that fails inside the fused op (here: a parameter that is a
// strided view) keeps no reference to the parameters in the lists it
// reuses across steps: once the caller drops them, they are freed.
TEST(Optimizers, FailedStep_KeepsNoReferenceToTheParameters) {
  auto check = [](const std::function<std::unique_ptr<torch::optim::Optimizer>(
                      std::vector<torch::Tensor>)>& make) {
    std::optional<c10::weak_intrusive_ptr<c10::TensorImpl>> weak;
    {
      auto p = torch::randn({4, 2}).narrow(1, 0, 1).detach().requires_grad_();
      p.mutable_grad() = torch::ones_like(p);
      weak.emplace(p.getIntrusivePtr());
      auto optimizer = make({p});
      expect_error([&] { optimizer->step(); }, {"is not dense"});
    }
    EXPECT_TRUE(weak->expired());
  };
  check([](auto p) { return std::make_unique<Adam>(p, AdamOptions(0.1)); });
  check([](auto p) {
    return std::make_unique<SGD>(p, SGDOptions(0.1).momentum(0.9));
  });
}

// Options read back from an archive are checked, not cast blindly: an
// epsilon_mode that names no mode is refused.
TEST(Adam, LoadOptions_UnknownEpsilonMode_Refused) {
  torch::serialize::OutputArchive out;
  AdamOptions(0.1).serialize(out);
  out.write("epsilon_mode", c10::IValue(int64_t{7}));  // overwrites the field
  std::stringstream bytes;
  out.save_to(bytes);
  torch::serialize::InputArchive in;
  in.load_from(bytes);
  AdamOptions loaded;
  expect_error([&] { loaded.serialize(in); },
               {"epsilon_mode is 7", "expected 0 (PyTorch) or 1 (Keras)"});
  AdamOptions keras(0.1);
  keras.epsilon_mode(EpsilonMode::kKeras);
  torch::serialize::OutputArchive good;
  keras.serialize(good);
  std::stringstream good_bytes;
  good.save_to(good_bytes);
  torch::serialize::InputArchive good_in;
  good_in.load_from(good_bytes);
  loaded.serialize(good_in);
  EXPECT_EQ(loaded.epsilon_mode(), EpsilonMode::kKeras);
}

TEST(Adam, InvalidOptions_Errors) {
  auto w = torch::ones({1}, torch::requires_grad());
  expect_error([&] { Adam({w}, AdamOptions(-1)); }, {"learning rate -1"});
  expect_error(
      [&] {
        Adam({w}, AdamOptions(1).betas({1.0, 0.9}));
      },
      {"beta1 1"});
  expect_error([&] { Adam({w}, AdamOptions(1).eps(-1)); }, {"eps -1"});
  expect_error([&] { SGD({w}, SGDOptions(0.1).nesterov(true)); }, {"Nesterov"});
}

TEST(Adam, ZeroGradAndMissingGrads_LeaveParamsUntouched) {
  auto used = torch::ones({2}, torch::requires_grad());
  auto unused = torch::ones({2}, torch::requires_grad());
  Adam opt({used, unused}, AdamOptions(0.1));
  used.sum().backward();
  opt.step();
  EXPECT_TRUE(torch::equal(unused, torch::ones({2})));
  EXPECT_FALSE(torch::equal(used, torch::ones({2})));
  opt.zero_grad();
  EXPECT_FALSE(used.grad().defined());
}

TEST(AdamStepOp, ReducedPrecision_ComputesInFloat) {
  for (auto dtype : {torch::kBFloat16, torch::kHalf}) {
    auto p = torch::linspace(-1, 1, 37).to(dtype);
    auto g = torch::linspace(2, -3, 37).to(dtype);
    auto m = torch::full({37}, 0.01).to(dtype);
    auto v = torch::full({37}, 0.02).to(dtype);
    auto pf = p.to(torch::kFloat), gf = g.to(torch::kFloat);
    auto mf = m.to(torch::kFloat), vf = v.to(torch::kFloat);
    normopt::ops::AdamStepOptions o;
    o.lr = 0.05;
    normopt::ops::adam_step_({p}, {g}, {m}, {v}, {}, {3}, o);
    normopt::ops::adam_step_({pf}, {gf}, {mf}, {vf}, {}, {3}, o);
    EXPECT_TRUE(torch::equal(p, pf.to(dtype))) << dtype;
    EXPECT_TRUE(torch::equal(m, mf.to(dtype))) << dtype;
  }
}

TEST(AdamStepOp, BadInput_ClearErrors) {
  auto p = torch::zeros({4}), g = torch::zeros({4});
  auto m = torch::zeros({4}), v = torch::zeros({4});
  normopt::ops::AdamStepOptions o;
  using normopt::ops::adam_step_;
  expect_error(
      [&] {
        adam_step_({p}, {g, g}, {m}, {v}, {}, {1}, o);
      },
      {"expected 1 tensors in grads", "got 2"});
  expect_error(
      [&] { adam_step_({p}, {g.to(torch::kDouble)}, {m}, {v}, {}, {1}, o); },
      {"grads[0] is Double", "params[0] is Float"});
  expect_error(
      [&] { adam_step_({p}, {torch::zeros({5})}, {m}, {v}, {}, {1}, o); },
      {"grads[0] has shape [5]"});
  auto wide = torch::zeros({4, 2});
  expect_error(
      [&] { adam_step_({wide.select(1, 0)}, {g}, {m}, {v}, {}, {1}, o); },
      {"params[0]", "not dense"});
  expect_error([&] { adam_step_({p}, {g}, {p}, {v}, {}, {1}, o); },
               {"exp_avgs[0] shares memory with params[0]"});
  expect_error([&] { adam_step_({p}, {g}, {m}, {v}, {}, {0}, o); },
               {"steps[0] is 0"});
  expect_error(
      [&] {
        adam_step_(
            {torch::zeros({4}, torch::kLong)}, {g}, {m}, {v}, {}, {1}, o);
      },
      {"params[0] has dtype Long"});
  o.amsgrad = true;
  expect_error([&] { adam_step_({p}, {g}, {m}, {v}, {}, {1}, o); },
               {"amsgrad needs one max_exp_avg_sqs"});
}

// The ops accept plain lists on a quick test and send the rest to the full
// checks, which decide. Each case below is one the quick test must not
// accept on its own: memory that overlaps within one storage, the same
// tensor twice, strides that differ where contiguity does not see it
// (size-1 dims), and layouts that are dense but not contiguous.
TEST(SgdStepOp, ListsTheQuickTestDoesNotAccept_FullChecksDecide) {
  using normopt::ops::sgd_step_;
  normopt::ops::SgdStepOptions o;
  o.lr = 0.5;
  o.momentum = 0.9;
  // Disjoint views of one buffer: accepted, and stepped like separate
  // tensors (p -= 0.5 * (0.9 * buf + g)).
  auto storage = torch::arange(12, torch::kFloat);
  auto p = storage.narrow(0, 0, 4), g = storage.narrow(0, 4, 4);
  auto buf = storage.narrow(0, 8, 4);
  const auto expected_p = p - 0.5 * (0.9 * buf + g);
  sgd_step_({p}, {g}, {buf}, o);
  EXPECT_TRUE(torch::equal(p, expected_p)) << p;
  // Views that overlap in part, and one tensor passed twice (also when
  // empty): refused.
  auto shared = torch::zeros({6});
  expect_error(
      [&] {
        sgd_step_({shared.narrow(0, 0, 4)},
                  {shared.narrow(0, 2, 4)},
                  {torch::zeros({4})},
                  o);
      },
      {"grads[0] shares memory with params[0]"});
  auto empty = torch::zeros({0});
  expect_error([&] { sgd_step_({empty}, {torch::zeros({0})}, {empty}, o); },
               {"momentum_buffers[0] shares memory with params[0]"});
  // Shape [2, 1] with strides [1, 1] and [1, 2]: both contiguous, but the
  // strides differ, which the ops refuse.
  auto col = torch::zeros({2, 1});
  auto transposed = torch::zeros({1, 2}).t();
  ASSERT_TRUE(transposed.is_contiguous());
  ASSERT_NE(transposed.strides(), col.strides());
  expect_error(
      [&] {
        sgd_step_({col}, {transposed}, {torch::zeros({2, 1})}, o);
      },
      {"grads[0] has shape [2, 1] and strides [1, 2]", "they must match"});
  // Channels-last tensors are dense, not contiguous: accepted, and stepped
  // element for element like contiguous ones.
  torch::manual_seed(0);
  auto cl = [](const torch::Tensor& t) {
    return t.contiguous(torch::MemoryFormat::ChannelsLast);
  };
  auto p4 = torch::randn({2, 3, 2, 2}), g4 = torch::randn({2, 3, 2, 2});
  auto b4 = torch::randn({2, 3, 2, 2});
  auto p_cl = cl(p4), g_cl = cl(g4), b_cl = cl(b4);
  ASSERT_FALSE(p_cl.is_contiguous());
  sgd_step_({p4}, {g4}, {b4}, o);
  sgd_step_({p_cl}, {g_cl}, {b_cl}, o);
  EXPECT_TRUE(torch::equal(p_cl, p4));
  EXPECT_TRUE(torch::equal(b_cl, b4));
}

// An element's update does not depend on where it falls: stepped within a
// tensor of 4,099 (vector body and scalar tail) or as a one-element tensor
// of its own (scalar code only), it comes out bit for bit the same. Before
// the kernels were built with -ffp-contract=off, GCC fused the scalar
// code's multiply-adds on AVX2/AVX512 builds and about a third of the
// elements differed in the last bit (a channels-last tensor then stepped
// differently from a contiguous one).
TEST(OptimStepOps, EachElementRoundsAlike_WhereverItFalls) {
  constexpr int64_t n = 4099;  // not a multiple of any vector width
  for (auto dtype : {torch::kFloat32, torch::kFloat64}) {
    torch::manual_seed(1);
    const auto opt = torch::TensorOptions().dtype(dtype);
    const auto p = torch::randn({n}, opt), g = torch::randn({n}, opt);
    const auto m = torch::randn({n}, opt), v = torch::rand({n}, opt);
    auto split = [](const torch::Tensor& t) {
      std::vector<torch::Tensor> one_each;
      for (int64_t i = 0; i < t.numel(); ++i) {
        one_each.push_back(t.narrow(0, i, 1).clone());
      }
      return one_each;
    };
    normopt::ops::SgdStepOptions so;
    so.lr = 0.1;
    so.momentum = 0.9;
    so.weight_decay = 0.01;
    so.nesterov = true;
    auto whole_p = p.clone(), whole_m = m.clone();
    auto parts_p = split(p), parts_m = split(m);
    normopt::ops::sgd_step_({whole_p}, {g}, {whole_m}, so);
    normopt::ops::sgd_step_(parts_p, split(g), parts_m, so);
    EXPECT_TRUE(torch::equal(torch::cat(parts_p), whole_p)) << dtype;
    EXPECT_TRUE(torch::equal(torch::cat(parts_m), whole_m)) << dtype;
    normopt::ops::AdamStepOptions ao;
    ao.lr = 0.01;
    ao.weight_decay = 0.01;
    ao.amsgrad = true;
    whole_p = p.clone(), whole_m = m.clone();
    auto whole_v = v.clone(), whole_max = v.clone();
    parts_p = split(p), parts_m = split(m);
    auto parts_v = split(v), parts_max = split(v);
    normopt::ops::adam_step_(
        {whole_p}, {g}, {whole_m}, {whole_v}, {whole_max}, {3}, ao);
    normopt::ops::adam_step_(parts_p,
                             split(g),
                             parts_m,
                             parts_v,
                             parts_max,
                             std::vector<int64_t>(n, 3),
                             ao);
    EXPECT_TRUE(torch::equal(torch::cat(parts_p), whole_p)) << dtype;
    EXPECT_TRUE(torch::equal(torch::cat(parts_m), whole_m)) << dtype;
    EXPECT_TRUE(torch::equal(torch::cat(parts_v), whole_v)) << dtype;
    EXPECT_FALSE(torch::equal(whole_p, p)) << "the step must move p";
  }
}

// A gradient whose strides are not its parameter's (here expanded, stride
// 0) goes to the op as a copy laid out like the parameter, kept only for
// the step: the steps equal LibTorch's, which read the gradient as it is.
TEST(Optimizers, GradientWithOtherStrides_StepsLikeLibTorch) {
  auto run = [](auto& optimizer, const torch::Tensor& p) {
    for (int s = 0; s < 3; ++s) {
      p.mutable_grad() =
          torch::tensor({{1.0, -2.0}}, torch::kFloat64).expand({3, 2}) *
          (s + 1);
      optimizer.step();
    }
  };
  auto init = torch::linspace(-1, 1, 6, torch::kFloat64).reshape({3, 2});
  auto ours = init.clone().requires_grad_();
  auto theirs = init.clone().requires_grad_();
  SGD sgd({ours}, SGDOptions(0.1).momentum(0.9));
  torch::optim::SGD torch_sgd({theirs},
                              torch::optim::SGDOptions(0.1).momentum(0.9));
  run(sgd, ours);
  run(torch_sgd, theirs);
  EXPECT_TRUE(torch::allclose(ours, theirs, 0, 1e-15)) << ours - theirs;
  EXPECT_FALSE(torch::allclose(ours, init));
  auto a_ours = init.clone().requires_grad_();
  auto a_theirs = init.clone().requires_grad_();
  Adam adam({a_ours}, AdamOptions(0.1));
  torch::optim::Adam torch_adam({a_theirs}, torch::optim::AdamOptions(0.1));
  run(adam, a_ours);
  run(torch_adam, a_theirs);
  EXPECT_TRUE(torch::allclose(a_ours, a_theirs, 0, 1e-15)) << a_ours - a_theirs;
}

// ---- describe(): what train:: asks of an optimizer --------------------------

TEST(Describe, NormoptAndLibTorchOptimizers_RuleAndSettings) {
  auto w = torch::zeros({3}, torch::requires_grad());
  const SGD sgd({w},
                SGDOptions(0.1)
                    .momentum(0.9)
                    .dampening(0)
                    .nesterov(true)
                    .weight_decay(0.01)
                    .skip_nonfinite(true));
  const torch::optim::SGD torch_sgd(
      {w}, torch::optim::SGDOptions(0.1).momentum(0.5).dampening(0.25));
  for (const auto& [d, momentum, dampening, nesterov, decay, skips] :
       {std::tuple{describe(sgd), 0.9, 0.0, true, 0.01, true},
        std::tuple{describe(torch_sgd), 0.5, 0.25, false, 0.0, false}}) {
    EXPECT_EQ(d.rule, StepRule::kGradientDescent);
    EXPECT_EQ(d.lr, 0.1);
    EXPECT_EQ(d.momentum, momentum);
    EXPECT_EQ(d.dampening, dampening);
    EXPECT_EQ(d.nesterov, nesterov);
    EXPECT_EQ(d.weight_decay, decay);
    EXPECT_EQ(d.skips_nonfinite, skips);
    EXPECT_EQ(skips_nonfinite(sgd), true);
  }
  // Adam's weight decay is an L2 term in the gradient; AdamW's is decoupled.
  const Adam adam({w}, AdamOptions(1e-3).weight_decay(0.5));
  const AdamW adamw({w}, AdamWOptions(2e-3).weight_decay(0.1));
  const torch::optim::Adam torch_adam({w}, torch::optim::AdamOptions(3e-3));
  const torch::optim::AdamW torch_adamw({w}, torch::optim::AdamWOptions(4e-3));
  EXPECT_EQ(describe(adam).rule, StepRule::kAdaptive);
  EXPECT_EQ(describe(adam).lr, 1e-3);
  EXPECT_EQ(describe(adam).weight_decay, 0.5);
  EXPECT_EQ(describe(adamw).lr, 2e-3);
  EXPECT_EQ(describe(adamw).weight_decay, 0);
  EXPECT_EQ(describe(torch_adam).rule, StepRule::kAdaptive);
  EXPECT_EQ(describe(torch_adam).lr, 3e-3);
  EXPECT_EQ(describe(torch_adamw).rule, StepRule::kAdaptive);
  EXPECT_EQ(describe(torch_adamw).lr, 4e-3);
  EXPECT_FALSE(skips_nonfinite(adam));
  // Unknown to normopt: no rule, the lr where the options tell it.
  const torch::optim::RMSprop rms({w}, torch::optim::RMSpropOptions(5e-3));
  EXPECT_EQ(describe(rms).rule, StepRule::kUnknown);
  EXPECT_EQ(describe(rms).lr, 5e-3);
}

TEST(Describe, NewOptimizer_DescribesItself_DiagnoseUsesIt) {
  // An optimizer normopt has never heard of: implementing Describable is
  // all it takes for diagnose() to apply Adam's step-size check to it.
  struct SignSGD : torch::optim::SGD, Describable {
    using torch::optim::SGD::SGD;
    StepDescription describe() const override {
      StepDescription d;
      d.rule = StepRule::kAdaptive;
      d.lr = param_groups()[0].options().get_lr();
      return d;
    }
  };
  normopt::nn::StandardizedRegressor model(
      normopt::nn::LinearRegressor(1),
      normopt::nn::StandardizedRegressorOptions().targets(
          normopt::nn::TargetStandardizerOptions().method(
              normopt::nn::TargetScaling::kNone)));
  SignSGD optimizer(model->parameters(), torch::optim::SGDOptions(1e-2));
  EXPECT_EQ(describe(optimizer).rule, StepRule::kAdaptive);
  normopt::data::Table table;
  table.features = torch::arange(10, torch::kDouble).reshape({10, 1});
  table.targets = table.features * 3 + 40000;
  table.feature_names = {"x"};
  table.target_name = "y";
  const auto findings = normopt::train::diagnose(
      model,
      optimizer,
      table,
      normopt::train::DiagnoseOptions().planned_steps(100));
  bool stall = false;
  for (const auto& f : findings.findings) {
    stall = stall || f.code == "adam_scale_stall";
  }
  EXPECT_TRUE(stall);
}

TEST(AdamFamily, BuildersKeepTheirTypes) {
  auto w = torch::zeros({2}, torch::requires_grad());
  AdamW adamw({w}, AdamWOptions(1e-3).weight_decay(0.1));
  Adam adam({w});
  static_assert(!std::is_same_v<Adam, AdamW>);
  EXPECT_EQ(static_cast<const AdamWOptions&>(adamw.defaults()).weight_decay(),
            0.1);
  EXPECT_EQ(static_cast<const AdamOptions&>(adam.defaults()).lr(), 1e-3);
  EXPECT_TRUE(dynamic_cast<AdamWOptions*>(&adamw.defaults()) != nullptr);
}
