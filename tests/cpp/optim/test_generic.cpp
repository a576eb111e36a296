// The ATen fallback of the optimizer-step ops (csrc/ops/generic), which
// serves every device without a normopt kernel, run on CPU tensors against
// the CPU kernel.
#include "step_reference.h"

#include <ATen/core/dispatch/Dispatcher.h>

#include "ops/generic/optim_step_generic.h"

namespace {

using normopt::ops::AdamStepOptions;
using normopt::ops::SgdStepOptions;
using normopt::ops::detail::adam_step_generic;
using normopt::ops::detail::sgd_step_generic;
using normopt::test::TensorVec;

// A scalar, an empty tensor, sizes around vector widths and the CPU
// kernel's parallel threshold (2^15).
const std::vector<int64_t> kSizes = {1, 0, 3, 17, 1000, 40000};

}  // namespace

TEST(AdamStepGeneric, MatchesCpuKernel_AllDtypesAndOptions) {
  normopt::test::expect_adam_matches_cpu_kernel(
      [](const auto& lists, auto steps, const auto& o) {
        adam_step_generic(lists, steps, o);
      },
      torch::kCPU,
      kSizes);
}

TEST(SgdStepGeneric, MatchesCpuKernel_AllDtypesAndOptions) {
  normopt::test::expect_sgd_matches_cpu_kernel(
      &sgd_step_generic, torch::kCPU, kSizes);
}

// The fallback updates leaves that require grad in place, as the optimizers
// call it (under no_grad), and leaves the gradients alone.
TEST(AdamStepGeneric, UpdatesLeavesInPlace_GradsUntouched) {
  torch::NoGradGuard no_grad;
  TensorVec p{torch::ones({4}, torch::kFloat64).requires_grad_()};
  TensorVec g{torch::full({4}, 2.0, torch::kFloat64)};
  TensorVec m{torch::zeros({4}, torch::kFloat64)};
  TensorVec v{torch::zeros({4}, torch::kFloat64)};
  TensorVec none;
  const auto p_data = p[0].data_ptr();
  adam_step_generic({p, g, m, v, none}, {1}, AdamStepOptions{});
  // First step: m = 0.1 g, v = 0.001 g^2, so m / (1 - b1) = g and
  // sqrt(v / (1 - b2)) = |g|: p -= lr * 2 / (2 + eps).
  const double expected = 1 - 1e-3 * 2 / (2 + 1e-8);
  EXPECT_EQ(p[0].data_ptr(), p_data);
  EXPECT_NEAR(p[0][0].item<double>(), expected, 1e-15);
  EXPECT_TRUE(torch::equal(g[0], torch::full({4}, 2.0, torch::kFloat64)));
}

TEST(AdamStepGeneric, BadInput_SameMessagesAsTheKernels) {
  TensorVec p{torch::zeros({4})}, g{torch::zeros({3})}, m{torch::zeros({4})},
      v{torch::zeros({4})}, none;
  normopt::test::expect_error(
      [&] {
        adam_step_generic({p, g, m, v, none}, {1}, AdamStepOptions{});
      },
      {"normopt::adam_step_", "grads[0] has shape [3]"});
  TensorVec b;
  SgdStepOptions momentum;
  momentum.momentum = 0.9;
  normopt::test::expect_error(
      [&] {
        sgd_step_generic({p, m, b}, momentum);
      },
      {"normopt::sgd_step_", "needs one momentum buffer per parameter"});
}

// Devices without a normopt kernel of their own reach the fallback through
// the dispatcher; CPU, Meta (and CUDA when built) keep their own.
TEST(OptimStepDispatch, DevicesWithoutAKernelGetTheFallback) {
  for (const char* name : {"normopt::adam_step_", "normopt::sgd_step_"}) {
    SCOPED_TRACE(name);
    const auto op = c10::Dispatcher::singleton().findSchemaOrThrow(name, "");
    EXPECT_TRUE(op.hasKernelForDispatchKey(
        c10::DispatchKey::CompositeExplicitAutograd));
    for (auto key : {c10::DispatchKey::MPS,
                     c10::DispatchKey::XPU,
                     c10::DispatchKey::PrivateUse1,
                     c10::DispatchKey::CUDA}) {
      EXPECT_TRUE(op.hasComputedKernelForDispatchKey(key)) << toString(key);
    }
    EXPECT_TRUE(op.hasKernelForDispatchKey(c10::DispatchKey::CPU));
    EXPECT_TRUE(op.hasKernelForDispatchKey(c10::DispatchKey::Meta));
  }
}
