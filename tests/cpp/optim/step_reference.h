#pragma once
// Test helper: runs the optimizer-step ops' CPU kernel and another
// implementation of the same op (the ATen fallback, the CUDA kernel) side by
// side, over every option variant and floating dtype, and compares the
// results. The CPU kernel is itself checked against torch.optim's golden
// values (test_golden.cpp).

#include "../common.h"

#include <normopt/ops/optim_step.h>

#include "ops/optim_step_args.h"

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace normopt::test {

using TensorVec = std::vector<torch::Tensor>;

inline const std::vector<torch::ScalarType>& step_dtypes() {
  static const std::vector<torch::ScalarType> d = {
      torch::kFloat, torch::kDouble, torch::kHalf, torch::kBFloat16};
  return d;
}

inline std::vector<std::pair<std::string, ops::AdamStepOptions>>
adam_variants() {
  std::vector<std::pair<std::string, ops::AdamStepOptions>> out;
  out.push_back({"plain", ops::AdamStepOptions{}});
  ops::AdamStepOptions l2;
  l2.weight_decay = 0.1;
  l2.amsgrad = true;
  l2.maximize = true;
  out.push_back({"l2+amsgrad+maximize", l2});
  ops::AdamStepOptions decoupled;
  decoupled.weight_decay = 0.01;
  decoupled.decoupled_weight_decay = true;
  out.push_back({"decoupled", decoupled});
  ops::AdamStepOptions keras;
  keras.keras_epsilon = true;
  keras.eps = 1e-7;
  out.push_back({"keras", keras});
  return out;
}

inline std::vector<std::pair<std::string, ops::SgdStepOptions>> sgd_variants() {
  std::vector<std::pair<std::string, ops::SgdStepOptions>> out;
  out.push_back({"plain", ops::SgdStepOptions{}});
  ops::SgdStepOptions momentum;
  momentum.momentum = 0.9;
  momentum.dampening = 0.1;
  momentum.weight_decay = 0.01;
  out.push_back({"momentum+dampening+decay", momentum});
  ops::SgdStepOptions nesterov;
  nesterov.momentum = 0.9;
  nesterov.nesterov = true;
  nesterov.maximize = true;
  out.push_back({"nesterov+maximize", nesterov});
  return out;
}

/// One tensor of each size, standard normal (|x| when `positive`), made in
/// float64 and rounded to `dtype`.
inline TensorVec random_list(const std::vector<int64_t>& sizes,
                             torch::ScalarType dtype,
                             bool positive = false) {
  TensorVec out;
  for (auto k : sizes) {
    auto t = torch::randn({k}, torch::kFloat64);
    out.push_back((positive ? t.abs() : t).to(dtype));
  }
  return out;
}

/// Copies of `list` on `device`.
inline TensorVec copies_on(const TensorVec& list, torch::Device device) {
  TensorVec out;
  for (const auto& t : list) {
    out.push_back(t.to(device).clone());
  }
  return out;
}

/// Relative tolerance between two implementations of one step, after three
/// steps: a few ulp in float32/float64 (nvcc may contract a*b+c into an
/// FMA; ATen may divide by a scalar as a product with its reciprocal), one
/// ulp of the stored type in float16/bfloat16.
inline double step_tolerance(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kDouble:
      return 1e-12;
    case torch::kFloat:
      return 1e-5;
    case torch::kHalf:
      return 2e-3;
    default:
      return 1.6e-2;
  }
}

inline void expect_close(const TensorVec& actual,
                         const TensorVec& expected,
                         double rtol,
                         const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    auto a = actual[i].cpu().to(torch::kFloat64);
    auto b = expected[i].to(torch::kFloat64);
    EXPECT_TRUE(torch::allclose(a, b, rtol, rtol))
        << what << ": tensor " << i << " (" << b.numel()
        << " elements) differs by up to " << (a - b).abs().max().item<double>();
  }
}

/// An implementation under test, in the form every backend's kernel takes
/// (csrc/ops/optim_step_args.h): adam_step_ (Steps = at::IntArrayRef) or
/// adam_step_capturable_ (at::TensorList), and sgd_step_.
template <typename Steps>
using AdamStepFn = std::function<void(
    const ops::detail::AdamLists&, Steps, const ops::AdamStepOptions&)>;
using SgdStepFn = std::function<void(const ops::detail::SgdLists&,
                                     const ops::SgdStepOptions&)>;

/// The ops through the dispatcher, as a caller reaches them.
inline const AdamStepFn<at::IntArrayRef> kAdamOp =
    &ops::detail::call_adam<at::IntArrayRef>;
inline const AdamStepFn<at::TensorList> kAdamCapturableOp =
    &ops::detail::call_adam<at::TensorList>;
inline const SgdStepFn kSgdOp = &ops::detail::call_sgd;

/// More tensors than one CUDA launch holds (36), a tensor of more chunks
/// than one launch holds (256 x 65536) and so continued in the next
/// launch's slot 0, partial chunks, a scalar and an empty tensor.
inline std::vector<int64_t> cuda_launch_sizes() {
  std::vector<int64_t> out = {1, 0, 3, 65536, 65537, 257 * 65536 + 5};
  for (int i = 0; i < 40; ++i) {
    out.push_back(100 + 37 * i);
  }
  return out;
}

/// `step`, a capturable implementation, as one with host step counts: each
/// call puts steps[i] - 1 in a one-element `step_dtype` tensor on params[i]'s
/// device and expects the implementation to have advanced it to steps[i].
inline AdamStepFn<at::IntArrayRef> as_adam_step(
    const AdamStepFn<at::TensorList>& step, torch::ScalarType step_dtype) {
  return [=](const ops::detail::AdamLists& l,
             at::IntArrayRef steps,
             const ops::AdamStepOptions& o) {
    TensorVec counts;
    for (size_t i = 0; i < l.params.size(); ++i) {
      // Alternately 0-dim and shape [1]: both are one element.
      counts.push_back(
          torch::full(i % 2 ? std::vector<int64_t>{1} : std::vector<int64_t>{},
                      static_cast<double>(steps[i] - 1),
                      l.params[i].options().dtype(step_dtype)));
    }
    step(l, counts, o);
    for (size_t i = 0; i < counts.size(); ++i) {
      EXPECT_EQ(counts[i].item<double>(), static_cast<double>(steps[i]))
          << "state_steps[" << i << "] not advanced by one";
    }
  };
}

/// Three Adam steps of every variant and dtype, over tensors of `sizes`
/// (each with its own step count), by the CPU kernel on CPU tensors and by
/// `step` on copies on `device`: the results agree within step_tolerance.
inline void expect_adam_matches_cpu_kernel(
    const AdamStepFn<at::IntArrayRef>& step,
    torch::Device device,
    const std::vector<int64_t>& sizes) {
  for (auto dtype : step_dtypes()) {
    for (const auto& [name, o] : adam_variants()) {
      SCOPED_TRACE(name + " " + std::string(c10::toString(dtype)));
      torch::manual_seed(0);
      auto p = random_list(sizes, dtype), m = random_list(sizes, dtype);
      auto v = random_list(sizes, dtype, true);
      auto x = random_list(sizes, dtype, true);
      TensorVec none, none_d;
      auto pd = copies_on(p, device), md = copies_on(m, device),
           vd = copies_on(v, device), xd = copies_on(x, device);
      std::vector<int64_t> steps(sizes.size());
      for (int s = 1; s <= 3; ++s) {
        auto g = random_list(sizes, dtype);
        for (size_t i = 0; i < steps.size(); ++i) {
          steps[i] = s + static_cast<int64_t>(i % 3);  // own counts
        }
        ops::adam_step_(p, g, m, v, o.amsgrad ? x : none, steps, o);
        step({pd, copies_on(g, device), md, vd, o.amsgrad ? xd : none_d},
             steps,
             o);
      }
      const double tol = step_tolerance(dtype);
      expect_close(pd, p, tol, "params");
      expect_close(md, m, tol, "exp_avgs");
      expect_close(vd, v, tol, "exp_avg_sqs");
      if (o.amsgrad) {
        expect_close(xd, x, tol, "max_exp_avg_sqs");
      }
    }
  }
}

/// expect_adam_matches_cpu_kernel for adam_step_capturable_ through the
/// dispatcher, with float32 and with float64 step counts.
inline void expect_capturable_matches_cpu_kernel(
    torch::Device device, const std::vector<int64_t>& sizes) {
  for (auto step_dtype : {torch::kFloat, torch::kDouble}) {
    SCOPED_TRACE(c10::toString(step_dtype));
    expect_adam_matches_cpu_kernel(
        as_adam_step(kAdamCapturableOp, step_dtype), device, sizes);
  }
}

/// Three SGD steps of every variant and dtype, as above.
inline void expect_sgd_matches_cpu_kernel(const SgdStepFn& step,
                                          torch::Device device,
                                          const std::vector<int64_t>& sizes) {
  for (auto dtype : step_dtypes()) {
    for (const auto& [name, base] : sgd_variants()) {
      SCOPED_TRACE(name + " " + std::string(c10::toString(dtype)));
      torch::manual_seed(1);
      auto p = random_list(sizes, dtype), b = random_list(sizes, dtype);
      auto pd = copies_on(p, device), bd = copies_on(b, device);
      const bool with_buf = base.momentum != 0;
      TensorVec none, none_d;
      for (int s = 1; s <= 3; ++s) {
        auto o = base;
        o.is_first_step = s == 1;
        auto g = random_list(sizes, dtype);
        ops::sgd_step_(p, g, with_buf ? b : none, o);
        step({pd, copies_on(g, device), with_buf ? bd : none_d}, o);
      }
      const double tol = step_tolerance(dtype);
      expect_close(pd, p, tol, "params");
      if (with_buf) {
        expect_close(bd, b, tol, "momentum_buffers");
      }
    }
  }
}

}  // namespace normopt::test
